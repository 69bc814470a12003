"""Every example is exercised: the demo runs, and each bundle renders with the
real tools it names (YAML and overlays, kubectl kustomize, Helm), lands where
its targets say, and survives a seal/verify round trip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controller import bundles, targeting
from wire import envelopes, keys, selectors

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEFAULT = targeting.Group("default")
sys.path.insert(0, str(EXAMPLES))
import demo  # noqa: E402


def _names(directory: str, *, group: targeting.Group = DEFAULT, **labels: str) -> set[str]:
    with bundles.open_bundle(EXAMPLES / directory) as bundle:
        view = bundle.for_cluster(group, cluster="c", labels=labels)
    if view.variant is None:
        return set()
    return {f"{o['kind']}/{o['metadata']['name']}" for o in view.variant.objects}


def test_every_example_bundle_is_exercised() -> None:
    bundle_dirs = {p.name for p in EXAMPLES.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    assert bundle_dirs == set(EXPECTED)


EXPECTED = {
    "hello-web": {"Namespace/hello", "ConfigMap/hello-web", "Deployment/hello-web", "Service/hello-web"},
    "kustomize-app": {"ConfigMap/pos-config-g65t662hf9", "Deployment/pos", "Service/pos"},
    "helm-app": {"ConfigMap/collector-config", "Deployment/collector", "Service/collector"},
    "multi-region": {"ConfigMap/usw-pos-settings", "Deployment/usw-pos"},
    "canary": {"Namespace/sensors", "DaemonSet/sensor-gateway"},
    "plain-overlays": {"ConfigMap/kiosk-config", "Deployment/kiosk"},
}
WEST = targeting.Group("edge/us-west", {"region": "us-west"})
LABELS = {"canary": {"env": "canary"}, "plain-overlays": {"env": "prod"}, "helm-app": {"env": "prod"}}


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_example_bundle_renders_and_round_trips(
    example: str, signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    with bundles.open_bundle(EXAMPLES / example) as bundle:
        plan = bundle.plan(WEST)
    manifest = plan.manifest(bundle.name, generation=1, issued_at=1.0)
    opened = envelopes.verify(
        envelopes.seal(manifest, signing_key, version=2), trusted=trusted, group=WEST.name, bundle=bundle.name
    )
    assert opened == manifest
    assert _names(example, group=WEST, **LABELS.get(example, {})) == EXPECTED[example]


def test_region_overlays_prefix_names_per_group_and_skip_other_regions() -> None:
    assert _names("multi-region", group=WEST) == {"ConfigMap/usw-pos-settings", "Deployment/usw-pos"}
    eu = targeting.Group("edge/eu-central", {"region": "eu-central"})
    assert _names("multi-region", group=eu) == {"ConfigMap/euc-pos-settings", "Deployment/euc-pos"}
    assert _names("multi-region", group=targeting.Group("edge/asia", {"region": "asia"})) == set()


def test_canary_lands_on_one_cluster_per_group() -> None:
    groups = [targeting.Group(f"stores/g{i}") for i in range(3)]
    fleet = {g.name: [("a", {"env": "canary"}), ("b", {"env": "prod"}), ("c", {})] for g in groups}
    with bundles.open_bundle(EXAMPLES / "canary") as bundle:
        plans = {g.name: bundle.plan(g) for g in groups}
    running = [
        (group, cluster)
        for group, clusters in fleet.items()
        for cluster, labels in clusters
        if selectors.select(plans[group].targets, cluster=cluster, labels=labels).deployment_id is not None
    ]
    assert running == [(g.name, "a") for g in groups]


def test_plain_overlays_give_each_environment_its_own_variant() -> None:
    with bundles.open_bundle(EXAMPLES / "plain-overlays") as bundle:
        plan = bundle.plan(targeting.Group("default"))
    assert [t.name for t in plan.targets] == ["retired", "prod", "lab", "default"]
    assert plan.targets[0].deployment_id is None
    assert len(plan.variants) == 3
    assert _names("plain-overlays", decommissioned="2026") == set()


def test_kustomize_overlay_applies_its_changes() -> None:
    with bundles.open_bundle(EXAMPLES / "kustomize-app") as bundle:
        [variant] = bundle.plan(targeting.Group("default")).variants
    deployment = next(o for o in variant.objects if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["metadata"]["namespace"] == "shop"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.4.2")


async def test_demo_converges_prints_the_status_and_refuses_the_forgery(tmp_path: Path) -> None:
    lines: list[str] = []
    assert await demo.run(tmp_path / "state", out=lines.append) == 0
    text = "\n".join(lines)
    assert "SIMULATION: 6 simulated clusters" in text
    assert "applied multi-region: generation 1 to edge/us-west" in text
    assert "FLEET: 3 groups, 6/6 clusters online" in text
    assert "26/26 deployments ready" in text
    assert "pi-00000 refused it (untrusted key)" in text


def test_demo_script_exits_zero() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "converged in" in result.stdout
