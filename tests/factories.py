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


def crd(kind: str, *, group: str = "example.com", scope: str = "Namespaced") -> dict[str, Any]:
    """A CustomResourceDefinition serving `kind` at <group>/v1, any content allowed."""
    plural = kind.lower() + "s"
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": schema}],
        },
    }
