"""Fleet's where/how semantics compiled into per-group first-match targets (pure)."""

from __future__ import annotations

from pathlib import Path

from controller import fleetyaml, targeting
from wire import manifests, selectors

SEL = manifests.ClusterSelector
C = fleetyaml.Criteria
E = fleetyaml.TargetEntry
US_WEST = targeting.Group("edge/us-west", {"region": "us-west"})
EU = targeting.Group("edge/eu-central", {"region": "eu"})
IDS = {targeting.BASE: "base", 0: "c0", 1: "c1", 2: "c2"}


def _spec(*, targets: tuple[E, ...] = (), customizations: tuple[E, ...] = ()) -> fleetyaml.BundleSpec:
    return fleetyaml.BundleSpec(
        "app", Path("."), fleetyaml.Options(), targets=targets, customizations=customizations
    )


def _gets(spec: fleetyaml.BundleSpec, group: targeting.Group, cluster: str, **labels: str) -> str | None:
    targets = targeting.compile_targets(spec, group, IDS)
    return selectors.select(targets, cluster=cluster, labels=labels).deployment_id


def test_no_targets_means_every_cluster_of_every_group_gets_the_base() -> None:
    spec = _spec()
    assert _gets(spec, US_WEST, "a") == "base"
    assert _gets(spec, EU, "b", env="x") == "base"


def test_first_matching_customization_wins_and_others_get_the_base() -> None:
    spec = _spec(
        customizations=(
            E("prod", C(cluster_selector=SEL({"env": "prod"}))),
            E("gold", C(cluster_selector=SEL({"tier": "gold"}))),
        )
    )
    assert _gets(spec, US_WEST, "a", env="prod", tier="gold") == "c0"
    assert _gets(spec, US_WEST, "a", tier="gold") == "c1"
    assert _gets(spec, US_WEST, "a", env="dev") == "base"


def test_do_not_deploy_excludes_matching_clusters() -> None:
    spec = _spec(customizations=(E("retired", C(cluster_name="old"), do_not_deploy=True),))
    assert _gets(spec, US_WEST, "old") is None
    assert _gets(spec, US_WEST, "new") == "base"


def test_targets_restrict_where_even_for_matching_customizations() -> None:
    spec = _spec(
        targets=(E("prod-only", C(cluster_selector=SEL({"env": "prod"}))),),
        customizations=(E("pinned", C(cluster_name="lab-1")),),
    )
    assert _gets(spec, US_WEST, "lab-1", env="dev") is None  # matches the customization, not the targets
    assert _gets(spec, US_WEST, "lab-1", env="prod") == "c0"
    assert _gets(spec, US_WEST, "x", env="prod") == "base"
    assert _gets(spec, US_WEST, "x", env="dev") is None


def test_group_criteria_are_resolved_per_group() -> None:
    spec = _spec(
        targets=(
            E("west", C(cluster_group_selector=SEL({"region": "us-west"}))),
            E("eu", C(cluster_group="edge/eu-central", cluster_selector=SEL({"env": "prod"}))),
        )
    )
    assert targeting.where(spec, US_WEST) == [("west", targeting.ClusterCriteria(None, SEL()))]
    assert _gets(spec, US_WEST, "a") == "base"
    assert _gets(spec, EU, "b") is None
    assert _gets(spec, EU, "b", env="prod") == "base"
    assert targeting.compile_targets(spec, targeting.Group("edge/asia"), IDS) == ()


def test_entry_without_criteria_matches_nothing_and_empty_selector_matches_all() -> None:
    assert targeting.compile_targets(_spec(targets=(E("nothing", C()),)), US_WEST, IDS) == ()
    assert _gets(_spec(targets=(E("all", C(cluster_selector=SEL())),)), US_WEST, "a") == "base"


def test_customization_and_target_selectors_are_combined() -> None:
    spec = _spec(
        targets=(E("stores", C(cluster_selector=SEL({"kind": "store"}))),),
        customizations=(
            E("prod", C(cluster_selector=SEL({"env": "prod"}))),
            E("contradiction", C(cluster_selector=SEL({"kind": "depot"}))),
        ),
    )
    [prod, base] = targeting.compile_targets(spec, US_WEST, IDS)
    assert prod.cluster_selector == SEL({"env": "prod", "kind": "store"})
    assert base.cluster_selector == SEL({"kind": "store"})


def test_targets_after_a_catch_all_are_dropped() -> None:
    spec = _spec(customizations=(E("everyone-in-west", C(cluster_group="edge/us-west")),))
    assert [t.name for t in targeting.compile_targets(spec, US_WEST, IDS)] == ["everyone-in-west"]
    assert [t.name for t in targeting.compile_targets(spec, EU, IDS)] == ["default"]


def test_applicable_lists_only_customizations_that_can_match_in_the_group() -> None:
    spec = _spec(
        customizations=(E("west", C(cluster_group="edge/us-west")), E("prod", C(cluster_selector=SEL())))
    )
    assert targeting.applicable(spec, US_WEST) == [0, 1]
    assert targeting.applicable(spec, EU) == [1]


def test_a_base_target_covered_value_by_value_is_dropped() -> None:
    spec = _spec(
        targets=(
            E("envs", C(cluster_selector=SEL({}, (manifests.Requirement("env", "In", ("dev", "prod")),)))),
        ),
        customizations=(
            E("dev", C(cluster_selector=SEL({"env": "dev"}))),
            E("prod", C(cluster_selector=SEL({"env": "prod"}))),
        ),
    )
    assert [t.name for t in targeting.compile_targets(spec, US_WEST, IDS)] == ["dev", "prod"]
    partial = _spec(targets=spec.targets, customizations=spec.customizations[:1])
    assert [t.name for t in targeting.compile_targets(partial, US_WEST, IDS)] == ["dev", "envs"]
