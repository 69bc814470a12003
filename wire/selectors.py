"""Which clusters a target means: Kubernetes label-selector semantics, pure.

Shared by both sides so they cannot disagree: the agent evaluates the ordered
targets of a manifest against its own name and labels to pick its variant;
the controller evaluates the same targets against its registry to know how
many clusters should run each variant.

Semantics follow Kubernetes and Rancher Fleet:
- `matchLabels` and `matchExpressions` are ANDed; an empty selector matches
  every cluster.
- `In`: the key is present and its value is listed. `NotIn`: the key is
  absent or its value is not listed. `Exists` / `DoesNotExist`: presence.
- A target's criteria (cluster name, selector) are ANDed; a target with no
  criteria matches nothing.
- The first matching target decides; its deployment id (None for
  `doNotDeploy`) is the answer. No matching target: the cluster runs nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from wire import manifests


def requirement_matches(requirement: manifests.Requirement, labels: Mapping[str, str]) -> bool:
    present = requirement.key in labels
    if requirement.operator == "In":
        return present and labels[requirement.key] in requirement.values
    if requirement.operator == "NotIn":
        return not present or labels[requirement.key] not in requirement.values
    if requirement.operator == "Exists":
        return present
    if requirement.operator == "DoesNotExist":
        return not present
    raise ValueError(f"unknown selector operator {requirement.operator!r}")


def selector_matches(selector: manifests.ClusterSelector, labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.match_labels.items()) and all(
        requirement_matches(r, labels) for r in selector.match_expressions
    )


def target_matches(target: manifests.Target, *, cluster: str, labels: Mapping[str, str]) -> bool:
    if target.cluster_name is None and target.cluster_selector is None:
        return False
    if target.cluster_name is not None and target.cluster_name != cluster:
        return False
    return target.cluster_selector is None or selector_matches(target.cluster_selector, labels)


class Outcome(enum.Enum):
    DEPLOY = "deploy"
    DO_NOT_DEPLOY = "doNotDeploy"
    NOT_TARGETED = "notTargeted"


@dataclass(frozen=True)
class Selection:
    """What one cluster gets from one manifest, and which target decided it."""

    outcome: Outcome
    deployment_id: str | None = None
    target: str | None = None

    @property
    def reason(self) -> str:
        if self.outcome is Outcome.DEPLOY:
            return f"target {self.target!r} selects deployment {str(self.deployment_id)[:12]}"
        if self.outcome is Outcome.DO_NOT_DEPLOY:
            return f"target {self.target!r} says doNotDeploy"
        return "no target matches this cluster's name and labels"


def select(targets: Iterable[manifests.Target], *, cluster: str, labels: Mapping[str, str]) -> Selection:
    """The first matching target decides."""
    for target in targets:
        if target_matches(target, cluster=cluster, labels=labels):
            if target.deployment_id is None:
                return Selection(Outcome.DO_NOT_DEPLOY, target=target.name)
            return Selection(Outcome.DEPLOY, target.deployment_id, target.name)
    return Selection(Outcome.NOT_TARGETED)
