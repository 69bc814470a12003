"""What to do with a verified manifest (pure: no I/O, no clock).

Given the manifest, this cluster's name and labels, and what the agent last
applied for the bundle, answer one of:

- Apply(variant): the selected deployment differs from the applied one, or
  the last apply did not complete;
- Remove: the bundle was deleted (tombstone) or this cluster is no longer
  targeted (doNotDeploy, or no target matches) and objects remain;
- Keep: nothing to change on the cluster (same deployment already applied,
  or nothing applied and nothing wanted); the generation is still recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edge_agent.store import Applied
from wire import manifests, selectors


@dataclass(frozen=True)
class Apply:
    variant: manifests.Variant
    reason: str


@dataclass(frozen=True)
class Remove:
    reason: str


@dataclass(frozen=True)
class Keep:
    reason: str


Action = Apply | Remove | Keep


def decide(
    manifest: manifests.Manifest, *, cluster: str, labels: Mapping[str, str], applied: Applied
) -> Action:
    has_objects = bool(applied.inventory) or not applied.complete
    if manifest.kind is manifests.Kind.TOMBSTONE:
        if has_objects:
            return Remove(f"bundle {manifest.bundle} was deleted (generation {manifest.generation})")
        return Keep(f"bundle {manifest.bundle} was deleted; nothing of it is applied here")
    selection = selectors.select(manifest.targets, cluster=cluster, labels=labels)
    if selection.deployment_id is None:
        if has_objects:
            return Remove(selection.reason)
        return Keep(selection.reason)
    if applied.deployment_id == selection.deployment_id and applied.complete:
        return Keep(f"deployment {selection.deployment_id[:12]} is already applied")
    return Apply(manifest.variant(selection.deployment_id), selection.reason)
