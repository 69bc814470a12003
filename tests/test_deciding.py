"""The agent's pure decision: apply, remove or keep."""

from __future__ import annotations

from edge_agent import deciding
from edge_agent.store import Applied, ObjectRef
from tests import factories
from wire import manifests

REF = ObjectRef("v1", "ConfigMap", "default", "web")


def _for_env(env: str, generation: int = 1) -> manifests.Manifest:
    variant = manifests.Variant("default", (factories.config_map("web", env=env),))
    target = manifests.Target(
        env, variant.deployment_id, cluster_selector=manifests.ClusterSelector({"env": env})
    )
    return manifests.Manifest(
        manifests.Kind.BUNDLE, "web", "edge/us-west", generation, 1.0, (target,), (variant,)
    )


def test_applies_the_selected_variant_when_nothing_is_applied() -> None:
    manifest = _for_env("prod")
    action = deciding.decide(manifest, cluster="pi", labels={"env": "prod"}, applied=Applied())
    assert isinstance(action, deciding.Apply)
    assert action.variant == manifest.variants[0]


def test_keeps_an_already_applied_deployment() -> None:
    manifest = _for_env("prod", generation=2)
    applied = Applied(1, manifest.variants[0].deployment_id, (REF,))
    assert isinstance(
        deciding.decide(manifest, cluster="pi", labels={"env": "prod"}, applied=applied), deciding.Keep
    )


def test_reapplies_when_the_last_apply_did_not_complete() -> None:
    manifest = _for_env("prod")
    applied = Applied(1, manifest.variants[0].deployment_id, (REF,), complete=False)
    assert isinstance(
        deciding.decide(manifest, cluster="pi", labels={"env": "prod"}, applied=applied), deciding.Apply
    )


def test_removes_when_no_longer_selected_and_keeps_when_nothing_is_there() -> None:
    manifest = _for_env("prod")
    applied = Applied(1, "old", (REF,))
    assert isinstance(
        deciding.decide(manifest, cluster="pi", labels={"env": "dev"}, applied=applied), deciding.Remove
    )
    assert isinstance(
        deciding.decide(manifest, cluster="pi", labels={"env": "dev"}, applied=Applied()), deciding.Keep
    )


def test_tombstone_removes_what_is_applied() -> None:
    stone = manifests.tombstone(bundle="web", group="edge/us-west", generation=3, issued_at=1.0)
    assert isinstance(
        deciding.decide(stone, cluster="pi", labels={}, applied=Applied(2, "d", (REF,))), deciding.Remove
    )
    assert isinstance(deciding.decide(stone, cluster="pi", labels={}, applied=Applied()), deciding.Keep)
