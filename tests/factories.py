"""Small builders for wire values used across tests."""

from __future__ import annotations

from typing import Any

from wire import manifests


def config_map(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": dict(data)}


def manifest(
    *,
    group: str = "edge/us-west",
    bundle: str = "web",
    generation: int = 1,
    objects: tuple[dict[str, Any], ...] | None = None,
) -> manifests.Manifest:
    variant = manifests.Variant("default", objects or (config_map("web", greeting="hello"),))
    target = manifests.Target("all", variant.deployment_id, cluster_selector=manifests.ClusterSelector())
    return manifests.Manifest(
        manifests.Kind.BUNDLE, bundle, group, generation, 1_700_000_000.0, (target,), (variant,)
    )
