"""Every example is exercised: the demo runs, and each bundle renders with the
real tool it names (plain YAML reader, kubectl kustomize, Helm) and survives a
seal/verify round trip."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller import plain
from tests import factories
from wire import canonical, envelopes, keys

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))
import demo  # noqa: E402


def _documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _render(example: str) -> list[dict[str, Any]]:
    if example == "hello-web":
        return plain.load_objects(EXAMPLES / example)
    if example == "kustomize-app":
        kubectl = shutil.which("kubectl")
        command = [kubectl, "kustomize"] if kubectl else [shutil.which("kustomize") or "kustomize", "build"]
        out = subprocess.run(
            [*command, str(EXAMPLES / "kustomize-app/overlays/prod")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return _documents(out)
    if example == "helm-app":
        import helm_python

        fleet = yaml.safe_load((EXAMPLES / "helm-app/fleet.yaml").read_text())
        chart = helm_python.Chart.load(str(EXAMPLES / "helm-app/chart"))
        rendered = chart.render(
            fleet["helm"]["values"], name=fleet["helm"]["releaseName"], namespace=fleet["defaultNamespace"]
        )
        return [
            doc
            for path, text in sorted(rendered.items())
            if path.endswith(".yaml")
            for doc in _documents(text)
        ]
    raise AssertionError(example)


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        (
            "hello-web",
            {"Namespace/hello", "ConfigMap/hello-web", "Deployment/hello-web", "Service/hello-web"},
        ),
        ("kustomize-app", {"ConfigMap/pos-config-g65t662hf9", "Deployment/pos", "Service/pos"}),
        ("helm-app", {"ConfigMap/collector-config", "Deployment/collector", "Service/collector"}),
    ],
)
def test_example_bundle_renders_and_round_trips(
    example: str, expected: set[str], signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    objects = _render(example)
    assert {f"{o['kind']}/{o['metadata']['name']}" for o in objects} == expected
    manifest = factories.manifest(objects=tuple(objects))
    opened = envelopes.verify(
        envelopes.seal(manifest, signing_key), trusted=trusted, group="edge/us-west", bundle="web"
    )
    assert opened == manifest
    assert [dict(o) for o in opened.variants[0].objects] == [_normal(o) for o in objects]


def _normal(obj: dict[str, Any]) -> dict[str, Any]:
    normalized: dict[str, Any] = canonical.normalize(obj)
    return normalized


def test_kustomize_overlay_applies_its_changes() -> None:
    deployment = next(o for o in _render("kustomize-app") if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["metadata"]["namespace"] == "shop"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.4.2")


async def test_demo_verifies_the_bundle_and_refuses_the_forgery(tmp_path: Path) -> None:
    lines: list[str] = []
    assert await demo.run(tmp_path / "state", out=lines.append) == 0
    text = "\n".join(lines)
    assert "VERIFIED hello-web for demo/site-1: generation 1" in text
    assert "REFUSED hello-web-forged: UnknownKey" in text
    assert "  - Deployment hello/hello-web" in text


def test_demo_script_exits_zero() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VERIFIED" in result.stdout
