"""The controller's database: what an older version left behind still opens."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from controller import errors, join_cli
from controller.identities import Identities
from controller.state import Cluster, Group, State
from wire import keys, urls


def test_a_database_from_before_registration_and_format_2_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "edgefleet.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE groups (name TEXT PRIMARY KEY, topic_root TEXT NOT NULL UNIQUE, labels TEXT NOT NULL,"
        " created_at REAL NOT NULL);"
        "CREATE TABLE clusters (name TEXT PRIMARY KEY, group_name TEXT NOT NULL, labels TEXT NOT NULL,"
        " created_at REAL NOT NULL);"
        "INSERT INTO groups VALUES ('edge/west', 'edge/west', '{}', 0);"
        "INSERT INTO clusters VALUES ('pi-1', 'edge/west', '{}', 0);"
    )
    old.commit()
    old.close()
    state = State(path)
    try:
        assert state.clusters() == [Cluster("pi-1", "edge/west", {}, revoked=False, envelope_formats=None)]
        state.record_envelope_formats({("edge/west", "pi-1"): frozenset({1, 2})})
        assert state.clusters()[0].envelope_formats == {1, 2}
    finally:
        state.close()


def test_the_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    state = State(tmp_path / "edgefleet.db")
    try:
        state.add_group(Group("edge/west", "edge/west", {}))  # a write: the WAL files appear
    finally:
        state.close()
    again = State(tmp_path / "edgefleet.db")
    again.close()
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_a_group_with_a_live_token_is_kept_and_one_with_only_revoked_tokens_goes(tmp_path: Path) -> None:
    state = State(tmp_path / "edgefleet.db")
    try:
        state.add_group(Group("edge/west", "edge/west", {}))
        registry = Identities(state)
        token, _ = join_cli.issue(
            registry, keys.SigningKey.generate(), group="edge/west", broker=urls.BrokerUrl("h", 1)
        )
        with pytest.raises(errors.ControllerError, match="join tokens"):
            state.delete_group("edge/west")
        registry.revoke_token(token.id, 0.0)
        state.delete_group("edge/west")
        assert state.groups() == [] and registry.all_tokens() == []
    finally:
        state.close()
