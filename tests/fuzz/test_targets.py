"""Runs each atheris target (tests/fuzz/*_target.py) for a bounded time and fails on what it
finds. `make test` gives each a few seconds; `make fuzz` sets FUZZ_SECONDS (default 300)
and keeps a corpus (FUZZ_CORPUS) between runs. Skipped where atheris does not install:
it ships wheels for some platforms and Pythons only, and building it needs clang."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "atheris",
    reason="atheris is not installed here (no wheel for this platform or Python): `pip install -e .[fuzz]`",
)

ROOT = Path(__file__).resolve().parents[2]
TARGETS = sorted(path.stem for path in Path(__file__).parent.glob("*_target.py"))
# Seconds each target runs in `make test`: enough for thousands of inputs per target.
DEFAULT_SECONDS = 3


def test_every_target_is_found() -> None:
    assert TARGETS == ["envelope_target", "intake_target"]


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_finds_nothing(target: str, tmp_path: Path) -> None:
    seconds = int(os.environ.get("FUZZ_SECONDS", DEFAULT_SECONDS))
    corpus = Path(os.environ.get("FUZZ_CORPUS", tmp_path / "corpus")) / target
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts = corpus.parent / "findings"
    artifacts.mkdir(exist_ok=True)
    command = [
        sys.executable, "-m", f"tests.fuzz.{target}",
        f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048",
        f"-artifact_prefix={artifacts}/{target}-", str(corpus),
    ]  # fmt: skip
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60, check=False)
    done = re.search(r"Done (\d+) runs in (\d+) second", run.stderr)
    assert run.returncode == 0 and done, (
        f"{target} found a crash (input in {artifacts}):\n{run.stderr[-4000:]}"
    )
    assert int(done.group(1)) > 0
