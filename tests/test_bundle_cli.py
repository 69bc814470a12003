"""`edgefleet bundle render|inspect` as an operator uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from controller import cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_render_prints_the_objects_one_cluster_gets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "bundle", "render", str(EXAMPLES / "helm-app"), "--labels", "env=prod,region=us-west"
    )
    assert code == 0
    assert "# target 'production' selects deployment" in out
    objects = [d for d in yaml.safe_load_all(out) if d]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2


def test_render_says_when_a_cluster_gets_nothing_and_why(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "bundle", "render", str(EXAMPLES / "canary"), "--labels", "env=prod")
    assert code == 0
    assert "# gets nothing: no target matches this cluster's name and labels" in out
    assert [d for d in yaml.safe_load_all(out) if d] == []


def test_render_json_for_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "bundle", "render", str(EXAMPLES / "multi-region"), "--group", "edge/eu-central", "-o", "json"
    )
    document = json.loads(out)
    assert code == 0 and document["deploy"] is True and document["target"] == "eu-central"
    assert {o["metadata"]["name"] for o in document["objects"]} == {"euc-pos", "euc-pos-settings"}
    assert len(document["deployment_id"]) == 64


def test_inspect_lists_variants_and_targets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "bundle", "inspect", str(EXAMPLES / "plain-overlays"))
    assert code == 0
    assert "retired                  doNotDeploy" in out
    for name in ("base", "prod", "lab"):
        assert f"  {name} " in out
    assert "objects" in out and "bytes" in out
    assert "1. retired" in out and "-> doNotDeploy" in out
    assert "clusterSelector={decommissioned Exists}" in out


def test_inspect_reports_an_untargeted_group(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "bundle", "inspect", str(EXAMPLES / "multi-region"), "--group", "edge/asia")
    assert code == 0 and "none: this group is not targeted" in out


def test_warnings_name_unsupported_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "fleet.yaml").write_text("rolloutStrategy: {}\n")
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    code, _, err = _run(capsys, "bundle", "inspect", str(tmp_path))
    assert code == 0 and "rolloutStrategy is a Fleet key edgefleet does not support yet" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bundle", "render", "/nonexistent/bundle"], "not a directory"),
        (
            ["bundle", "render", str(EXAMPLES / "hello-web"), "--labels", "novalue"],
            "'novalue' is not key=value",
        ),
        (["bundle", "inspect", str(EXAMPLES / "hello-web"), "--group", "edge/+"], "--group"),
    ],
)
def test_bad_input_is_a_message_and_exit_status_1(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.startswith("edgefleet: error: ") and message in err


def test_broken_bundle_is_a_message_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "fleet.yaml").write_text("helm: {chart: ./chart, valus: {}}\n")
    code, _, err = _run(capsys, "bundle", "render", str(tmp_path))
    assert code == 1 and "fleet.yaml" in err and "'valus'" in err and "did you mean 'values'" in err
