from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

import wire
from controller import cli, keystore
from wire import keys


def test_keys_init_writes_private_key_0600_and_prints_fingerprint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    assert cli.main(["keys", "init", "--state-dir", str(state)]) == 0
    private = keystore.private_path(state)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    key = keys.SigningKey.from_pem(private.read_bytes())
    public = keys.VerifyKey.from_pem(keystore.public_path(state).read_bytes())
    assert public.key_id == key.key_id
    assert key.verify_key.fingerprint in capsys.readouterr().out
    assert not list(state.glob(".*tmp"))


def test_keys_init_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["keys", "init", "--state-dir", str(tmp_path)]) == 0
    before = keystore.private_path(tmp_path).read_bytes()
    assert cli.main(["keys", "init", "--state-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err
    assert keystore.private_path(tmp_path).read_bytes() == before
    assert cli.main(["keys", "init", "--state-dir", str(tmp_path), "--force"]) == 0
    assert keystore.private_path(tmp_path).read_bytes() != before


def test_state_dir_comes_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(cli.STATE_DIR_ENV, str(tmp_path))
    assert cli.main(["keys", "init"]) == 0
    assert cli.main(["keys", "show"]) == 0
    fingerprint = keystore.load(tmp_path).verify_key.fingerprint
    assert capsys.readouterr().out.splitlines()[-1] == fingerprint


def test_missing_state_dir_and_missing_key_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(cli.STATE_DIR_ENV, raising=False)
    assert cli.main(["keys", "show"]) == 1
    assert "--state-dir" in capsys.readouterr().err
    assert cli.main(["keys", "show", "--state-dir", str(tmp_path)]) == 1
    assert "edgefleet keys init" in capsys.readouterr().err


def test_corrupt_key_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keystore.private_path(tmp_path).write_bytes(b"not a key")
    assert cli.main(["keys", "show", "--state-dir", str(tmp_path)]) == 1
    assert "signing-key.pem" in capsys.readouterr().err


def test_unwritable_state_dir_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["keys", "init", "--state-dir", str(blocker / "state")]) == 1
    assert "cannot create state directory" in capsys.readouterr().err


@pytest.mark.parametrize("program", ["edgefleet", "edgefleet-agent"])
def test_console_scripts_print_version(program: str) -> None:
    script = Path(sys.executable).with_name(program)
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"{program} {wire.__version__}"
