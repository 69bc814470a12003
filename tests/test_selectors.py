"""Label-selector and target semantics, as Kubernetes and Fleet define them."""

from __future__ import annotations

import pytest

from wire import manifests, selectors

R = manifests.Requirement
SEL = manifests.ClusterSelector
LABELS = {"env": "prod", "region": "us-west", "gpu": ""}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (SEL(), True),  # empty selector matches every cluster
        (SEL({"env": "prod"}), True),
        (SEL({"env": "dev"}), False),
        (SEL({"env": "prod", "region": "eu"}), False),  # matchLabels are ANDed
        (SEL({"missing": "x"}), False),
        (SEL({}, (R("env", "In", ("prod", "staging")),)), True),
        (SEL({}, (R("env", "In", ("dev",)),)), False),
        (SEL({}, (R("missing", "In", ("x",)),)), False),  # In needs the key
        (SEL({}, (R("env", "NotIn", ("dev",)),)), True),
        (SEL({}, (R("env", "NotIn", ("prod",)),)), False),
        (SEL({}, (R("missing", "NotIn", ("x",)),)), True),  # NotIn holds when the key is absent
        (SEL({}, (R("gpu", "Exists"),)), True),  # present with an empty value
        (SEL({}, (R("missing", "Exists"),)), False),
        (SEL({}, (R("missing", "DoesNotExist"),)), True),
        (SEL({}, (R("env", "DoesNotExist"),)), False),
        (SEL({"env": "prod"}, (R("region", "NotIn", ("us-west",)),)), False),  # labels AND expressions
        (SEL({"env": "prod"}, (R("region", "In", ("us-west",)), R("gpu", "Exists"))), True),
    ],
)
def test_selector_semantics(selector: manifests.ClusterSelector, expected: bool) -> None:
    assert selectors.selector_matches(selector, LABELS) is expected


def T(
    name: str,
    deployment: str | None,
    *,
    cluster: str | None = None,
    sel: manifests.ClusterSelector | None = None,
):
    return manifests.Target(name, deployment, cluster, sel)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (T("none", "d"), False),  # no criteria matches nothing
        (T("all", "d", sel=SEL()), True),
        (T("by-name", "d", cluster="pi-7"), True),
        (T("other-name", "d", cluster="pi-8"), False),
        (T("name-and-selector", "d", cluster="pi-7", sel=SEL({"env": "prod"})), True),
        (T("name-and-bad-selector", "d", cluster="pi-7", sel=SEL({"env": "dev"})), False),  # ANDed
    ],
)
def test_target_criteria_are_anded_and_empty_matches_nothing(
    target: manifests.Target, expected: bool
) -> None:
    assert selectors.target_matches(target, cluster="pi-7", labels=LABELS) is expected


def test_first_matching_target_decides() -> None:
    targets = [
        T("dev", "d-dev", sel=SEL({"env": "dev"})),
        T("prod", "d-prod", sel=SEL({"env": "prod"})),
        T("all", "d-all", sel=SEL()),
    ]
    chosen = selectors.select(targets, cluster="pi-7", labels=LABELS)
    assert (chosen.outcome, chosen.deployment_id, chosen.target) == (
        selectors.Outcome.DEPLOY,
        "d-prod",
        "prod",
    )


def test_do_not_deploy_stops_evaluation() -> None:
    targets = [T("retired", None, sel=SEL({}, (R("gpu", "Exists"),))), T("all", "d-all", sel=SEL())]
    chosen = selectors.select(targets, cluster="pi-7", labels=LABELS)
    assert chosen.outcome is selectors.Outcome.DO_NOT_DEPLOY
    assert chosen.deployment_id is None
    assert "doNotDeploy" in chosen.reason


def test_no_match_means_not_targeted() -> None:
    chosen = selectors.select([T("dev", "d", sel=SEL({"env": "dev"}))], cluster="pi-7", labels=LABELS)
    assert chosen.outcome is selectors.Outcome.NOT_TARGETED
    assert "no target matches" in chosen.reason
