from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edge_agent import errors
from edge_agent.store import Applied, ObjectRef, Store


def test_applied_record_and_manifest_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    record = Applied(
        4, "d" * 64, (ObjectRef("v1", "ConfigMap", "ns", "a"),), keep_resources=True, complete=False
    )
    store.save_applied("web", record)
    store.save_manifest("web", b"\x95envelope")
    again = Store(tmp_path / "state")
    assert again.applied("web") == record
    assert again.manifests() == {"web": b"\x95envelope"}
    assert again.applied("other") == Applied()
    assert stat.S_IMODE((tmp_path / "state/applied/web.json").stat().st_mode) == 0o600
    assert not [p for p in (tmp_path / "state").rglob("*.tmp")]


def test_corrupt_record_is_a_state_error(tmp_path: Path) -> None:
    store = Store(tmp_path)
    (tmp_path / "applied/web.json").write_text("{not json")
    with pytest.raises(errors.StateError, match=r"web\.json"):
        store.applied("web")


def test_write_failure_leaves_the_old_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    store.save_applied("web", Applied(1, "a"))

    def full_disk(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(errors.StateError, match="No space left"):
        store.save_applied("web", Applied(2, "b"))
    monkeypatch.undo()
    assert store.applied("web") == Applied(1, "a")
    assert not list(tmp_path.rglob("*.tmp"))
