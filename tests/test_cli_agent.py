from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent import cli
from tests import factories
from wire import envelopes, keys


@pytest.fixture
def files(tmp_path: Path, signing_key: keys.SigningKey) -> tuple[Path, Path]:
    message = tmp_path / "web.bin"
    message.write_bytes(envelopes.seal(factories.manifest(), signing_key, version=2))
    public = tmp_path / "signing-key.pub.pem"
    public.write_bytes(signing_key.verify_key.to_pem())
    return message, public


def test_verify_prints_what_it_verified(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    message, public = files
    code = cli.main(["verify", str(message), "--topic", "edge/us-west/bundles/web", "--trust", str(public)])
    assert code == 0
    assert "verified bundle web for group edge/us-west, generation 1, 1 variant(s)" in capsys.readouterr().out


def test_verify_names_the_reason_for_a_refusal(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    message, public = files
    assert cli.main(["verify", str(message), "--topic", "edge/eu/bundles/web", "--trust", str(public)]) == 1
    assert "refused: WrongBinding" in capsys.readouterr().err
    data = bytearray(message.read_bytes())
    data[-1] ^= 0xFF
    message.write_bytes(bytes(data))
    assert (
        cli.main(["verify", str(message), "--topic", "edge/us-west/bundles/web", "--trust", str(public)]) == 1
    )
    assert "refused: BadSignature" in capsys.readouterr().err


def test_verify_reports_unreadable_inputs(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message, public = files
    missing = tmp_path / "missing.bin"
    assert (
        cli.main(["verify", str(missing), "--topic", "edge/us-west/bundles/web", "--trust", str(public)]) == 1
    )
    assert "missing.bin" in capsys.readouterr().err
    assert (
        cli.main(["verify", str(message), "--topic", "edge/us-west/bundles/web", "--trust", str(message)])
        == 1
    )
    assert "trusted key" in capsys.readouterr().err
