"""From Fleet's `targets` and `targetCustomizations` to one group's ordered targets (pure).

Fleet's semantics: `targets` decide *where* a bundle goes (none given: every
cluster of every group); `targetCustomizations` decide *how*: the first
customization that matches a cluster is used, a cluster matching none gets
the base, and `doNotDeploy` excludes it. Criteria in one entry are ANDed and
an entry without criteria matches nothing.

Group criteria (`clusterGroup`, `clusterGroupSelector`) are decided here,
per group, because the controller knows its groups. Cluster criteria
(`clusterName`, `clusterSelector`) go into the manifest for the agent to
evaluate with `wire.selectors`. The compiled list keeps Fleet's meaning for
a first-match evaluator: for each customization in order, one target per
"where" entry (customization AND where); then one target per "where" entry
with the base variant; targets after one that matches every cluster are
unreachable and left out, as are targets whose clusters earlier targets
all take (`_shadowed`), so their variants are never rendered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from controller import fleetyaml
from wire import manifests, selectors

EVERYWHERE = fleetyaml.TargetEntry(
    name="default", criteria=fleetyaml.Criteria(cluster_selector=manifests.ClusterSelector())
)
BASE = None
"""Key of the base variant in `compile`'s deployment map (customizations use their index)."""


@dataclass(frozen=True)
class Group:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterCriteria:
    """What is left of an entry's criteria once its group criteria hold."""

    cluster_name: str | None
    cluster_selector: manifests.ClusterSelector | None


def resolve(criteria: fleetyaml.Criteria, group: Group) -> ClusterCriteria | None:
    """The cluster-level criteria of an entry within `group`, or None when it cannot match there."""
    if criteria.empty:
        return None
    if criteria.cluster_group is not None and criteria.cluster_group != group.name:
        return None
    if criteria.cluster_group_selector is not None and not selectors.selector_matches(
        criteria.cluster_group_selector, group.labels
    ):
        return None
    if criteria.cluster_name is None and criteria.cluster_selector is None:
        # Only group criteria, and they hold: every cluster of the group.
        return ClusterCriteria(None, manifests.ClusterSelector())
    return ClusterCriteria(criteria.cluster_name, criteria.cluster_selector)


def conjoin(a: ClusterCriteria, b: ClusterCriteria) -> ClusterCriteria | None:
    """Both criteria at once, or None when no cluster can meet both."""
    if a.cluster_name and b.cluster_name and a.cluster_name != b.cluster_name:
        return None
    name = a.cluster_name or b.cluster_name
    if a.cluster_selector is None or b.cluster_selector is None:
        return ClusterCriteria(name, a.cluster_selector or b.cluster_selector)
    labels = dict(a.cluster_selector.match_labels)
    for key, value in b.cluster_selector.match_labels.items():
        if labels.get(key, value) != value:
            return None
        labels[key] = value
    expressions = a.cluster_selector.match_expressions + b.cluster_selector.match_expressions
    return ClusterCriteria(name, manifests.ClusterSelector(labels, expressions))


def where(spec: fleetyaml.BundleSpec, group: Group) -> list[tuple[str, ClusterCriteria]]:
    """The `targets` entries that can match in `group`, resolved to cluster criteria."""
    entries = spec.targets or (EVERYWHERE,)
    resolved = [(entry.name, resolve(entry.criteria, group)) for entry in entries]
    return [(name, criteria) for name, criteria in resolved if criteria is not None]


def applicable(spec: fleetyaml.BundleSpec, group: Group) -> list[int]:
    """Indices of the customizations that can apply to some cluster of `group`."""
    if not where(spec, group):
        return []
    return [i for i, entry in enumerate(spec.customizations) if resolve(entry.criteria, group) is not None]


def compile_targets(
    spec: fleetyaml.BundleSpec, group: Group, deployments: Mapping[int | None, str | None]
) -> tuple[manifests.Target, ...]:
    """The ordered wire targets of `group`; `deployments` maps customization index (BASE: base) to id.

    A doNotDeploy customization maps to None. Returns () when the group is not targeted.
    """
    places = where(spec, group)
    targets: list[manifests.Target] = []
    for index, entry in enumerate(spec.customizations):
        how = resolve(entry.criteria, group)
        if how is None:
            continue
        deployment = None if entry.do_not_deploy else deployments[index]
        for place_name, place in places:
            both = conjoin(how, place)
            if both is not None:
                name = entry.name if len(places) == 1 else f"{entry.name}@{place_name}"
                targets.append(manifests.Target(name, deployment, both.cluster_name, both.cluster_selector))
    for place_name, place in places:
        targets.append(
            manifests.Target(place_name, deployments[BASE], place.cluster_name, place.cluster_selector)
        )
    return _reachable(targets)


def _reachable(targets: list[manifests.Target]) -> tuple[manifests.Target, ...]:
    """Drop targets no cluster can reach: first match wins, so a target is dead when
    every cluster it matches already matched an earlier one."""
    kept: list[manifests.Target] = []
    for target in targets:
        if _shadowed(target, kept):
            continue
        kept.append(target)
        if target.cluster_name is None and target.cluster_selector == manifests.ClusterSelector():
            break  # matches every cluster: nothing after it is reachable
    return tuple(kept)


def _implies(
    selector: manifests.ClusterSelector,
    labels: Mapping[str, str],
    expressions: tuple[manifests.Requirement, ...],
) -> bool:
    """Whether every cluster with `labels` and meeting `expressions` meets `selector`."""
    return all(labels.get(k) == v for k, v in selector.match_labels.items()) and all(
        r in expressions
        or (r.operator == "In" and labels.get(r.key) in r.values)
        or (r.operator == "Exists" and r.key in labels)
        for r in selector.match_expressions
    )


def _shadowed(target: manifests.Target, earlier: list[manifests.Target]) -> bool:
    """True when the clusters `target` matches are all taken by `earlier` targets.

    Decided for the common case (Fleet's own examples): a target whose selector
    limits one label to a set of values, each value covered by an earlier target
    that asks for no more than that value and the target's own criteria.
    """
    selector = target.cluster_selector
    if target.cluster_name is not None or selector is None:
        return False
    choices: list[tuple[str, tuple[str, ...]]] = [(k, (v,)) for k, v in selector.match_labels.items()]
    choices += [(r.key, r.values) for r in selector.match_expressions if r.operator == "In"]
    for key, values in choices:

        def covered(value: str, key: str = key) -> bool:
            labels = {**selector.match_labels, key: value}
            return any(
                e.cluster_name is None
                and e.cluster_selector is not None
                and _implies(e.cluster_selector, labels, selector.match_expressions)
                for e in earlier
            )

        if values and all(covered(value) for value in values):
            return True
    return False
