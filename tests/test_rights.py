"""The broker's ACL table (wire.rights): who may publish, subscribe to and receive which topics."""

from __future__ import annotations

import pytest

from wire import errors, rights, topics
from wire.rights import Action, Principal, Role

GROUP = "edge/us-west"
OTHER_GROUP = "edge/eu-central"
CLIENT_ID = "join-0123456789abcdef"

CONTROLLER = Principal(Role.CONTROLLER, "edgefleet-controller")
BOOTSTRAP = Principal(Role.BOOTSTRAP, "join-a1b2c3d4", client_id=CLIENT_ID)
CLUSTER = Principal(Role.CLUSTER, "cluster-pi-7", "edgefleet-agent-pi-7", name="pi-7", root=GROUP)

PUBLISH, SUBSCRIBE, RECEIVE = Action.PUBLISH, Action.SUBSCRIBE, Action.RECEIVE


def _topics() -> topics.Topics:
    return topics.Topics()


ALLOWED_AND_DENIED = [
    # -- a cluster publishes only its own status and presence -------------------------------------
    (CLUSTER, PUBLISH, "edge/us-west/status/pi-7", True),
    (CLUSTER, PUBLISH, "edge/us-west/presence/pi-7", True),
    (CLUSTER, PUBLISH, "edge/us-west/status/pi-8", False),
    (CLUSTER, PUBLISH, "edge/us-west/presence/pi-8", False),
    (CLUSTER, PUBLISH, "edge/eu-central/status/pi-7", False),
    (CLUSTER, PUBLISH, "edge/eu-central/presence/pi-7", False),
    (CLUSTER, PUBLISH, "edge/us-west/bundles/web", False),
    (CLUSTER, PUBLISH, "edge/us-west/status/pi-7/extra", False),
    (CLUSTER, PUBLISH, "edge/us-west/status", False),
    (CLUSTER, PUBLISH, "edge/us-west/status/+", False),
    (CLUSTER, PUBLISH, "edge/us-west/status/#", False),
    (CLUSTER, PUBLISH, "edge/+/status/pi-7", False),
    (CLUSTER, PUBLISH, "fleet/summary", False),
    (CLUSTER, PUBLISH, "fleet/controller", False),
    (CLUSTER, PUBLISH, "fleet/register/pi-7", False),
    (CLUSTER, PUBLISH, "fleet/register/pi-7/reply", False),
    # -- a cluster subscribes to its group's bundles and the controller's topics -------------------
    (CLUSTER, SUBSCRIBE, "edge/us-west/bundles/+", True),
    (CLUSTER, SUBSCRIBE, "edge/us-west/bundles/web", True),
    (CLUSTER, SUBSCRIBE, "fleet/summary/#", True),
    (CLUSTER, SUBSCRIBE, "fleet/summary", True),
    (CLUSTER, SUBSCRIBE, "fleet/summary/bundles/x", True),
    (CLUSTER, SUBSCRIBE, "fleet/summary/bundles/+", True),
    (CLUSTER, SUBSCRIBE, "fleet/summary/groups/edge/us-west", True),
    (CLUSTER, SUBSCRIBE, "fleet/controller", True),
    (CLUSTER, SUBSCRIBE, "#", False),
    (CLUSTER, SUBSCRIBE, "+/bundles/+", False),
    (CLUSTER, SUBSCRIBE, "edge/+/bundles/+", False),
    (CLUSTER, SUBSCRIBE, "edge/us-west/#", False),
    (CLUSTER, SUBSCRIBE, "edge/us-west/+/+", False),
    (CLUSTER, SUBSCRIBE, "edge/us-west/bundles/#", False),
    (CLUSTER, SUBSCRIBE, "edge/eu-central/bundles/+", False),
    (CLUSTER, SUBSCRIBE, "edge/eu-central/bundles/web", False),
    (CLUSTER, SUBSCRIBE, "edge/us-west/status/pi-8", False),
    (CLUSTER, SUBSCRIBE, "edge/us-west/status/+", False),
    (CLUSTER, SUBSCRIBE, "fleet/#", False),
    (CLUSTER, SUBSCRIBE, "fleet/+", False),
    (CLUSTER, SUBSCRIBE, "fleet/register/+", False),
    (CLUSTER, SUBSCRIBE, "fleet/register/+/reply", False),
    (CLUSTER, SUBSCRIBE, "$SYS/#", False),
    # -- what a cluster receives follows its subscriptions ---------------------------------------
    (CLUSTER, RECEIVE, "edge/us-west/bundles/web", True),
    (CLUSTER, RECEIVE, "fleet/summary", True),
    (CLUSTER, RECEIVE, "fleet/summary/groups/edge/us-west", True),
    (CLUSTER, RECEIVE, "fleet/controller", True),
    (CLUSTER, RECEIVE, "edge/eu-central/bundles/web", False),
    (CLUSTER, RECEIVE, "edge/us-west/status/pi-8", False),
    (CLUSTER, RECEIVE, "fleet/register/pi-7/reply", False),
    # -- a bootstrap client may only ask to register under its own client id ---------------------
    (BOOTSTRAP, PUBLISH, f"fleet/register/{CLIENT_ID}", True),
    (BOOTSTRAP, PUBLISH, "fleet/register/join-ffffffffffffffff", False),
    (BOOTSTRAP, PUBLISH, f"fleet/register/{CLIENT_ID}/reply", False),
    (BOOTSTRAP, PUBLISH, "fleet/register/+", False),
    (BOOTSTRAP, PUBLISH, "edge/us-west/status/pi-7", False),
    (BOOTSTRAP, PUBLISH, "fleet/controller", False),
    (BOOTSTRAP, SUBSCRIBE, f"fleet/register/{CLIENT_ID}/reply", True),
    (BOOTSTRAP, SUBSCRIBE, "fleet/register/+/reply", False),
    (BOOTSTRAP, SUBSCRIBE, "fleet/register/join-ffffffffffffffff/reply", False),
    (BOOTSTRAP, SUBSCRIBE, f"fleet/register/{CLIENT_ID}", False),
    (BOOTSTRAP, SUBSCRIBE, f"fleet/register/{CLIENT_ID}/#", False),
    (BOOTSTRAP, SUBSCRIBE, "fleet/register/#", False),
    (BOOTSTRAP, SUBSCRIBE, "#", False),
    (BOOTSTRAP, SUBSCRIBE, "fleet/summary/#", False),
    (BOOTSTRAP, SUBSCRIBE, "edge/us-west/bundles/+", False),
    (BOOTSTRAP, RECEIVE, f"fleet/register/{CLIENT_ID}/reply", True),
    (BOOTSTRAP, RECEIVE, "fleet/register/join-ffffffffffffffff/reply", False),
    (BOOTSTRAP, RECEIVE, "edge/us-west/bundles/web", False),
    # -- the controller may do anything, except with wildcards in names or on $-topics -----------
    (CONTROLLER, PUBLISH, "edge/us-west/bundles/web", True),
    (CONTROLLER, PUBLISH, "fleet/register/join-x/reply", True),
    (CONTROLLER, PUBLISH, "fleet/summary", True),
    (CONTROLLER, PUBLISH, "#", False),
    (CONTROLLER, PUBLISH, "edge/+/bundles/web", False),
    (CONTROLLER, PUBLISH, "edge/us-west/bundles/#", False),
    (CONTROLLER, PUBLISH, "$SYS/broker/uptime", False),
    (CONTROLLER, SUBSCRIBE, "#", True),
    (CONTROLLER, SUBSCRIBE, "fleet/register/+", True),
    (CONTROLLER, SUBSCRIBE, "+/+/status/+", True),
    (CONTROLLER, SUBSCRIBE, "$SYS/#", False),
    (CONTROLLER, RECEIVE, "edge/eu-central/status/pi-8", True),
    (CONTROLLER, RECEIVE, "fleet/register/join-x", True),
    (CONTROLLER, RECEIVE, "$SYS/broker/uptime", False),
]


@pytest.mark.parametrize(
    ("principal", "action", "topic", "allowed"),
    ALLOWED_AND_DENIED,
    ids=[f"{p.role.value}-{a.value}-{t}-{'allow' if ok else 'deny'}" for p, a, t, ok in ALLOWED_AND_DENIED],
)
def test_allows_grants_exactly_the_documented_rights(
    principal: Principal, action: Action, topic: str, allowed: bool
) -> None:
    assert rights.allows(principal, action, topic, _topics()) is allowed


def test_cluster_of_another_group_is_held_to_its_own_group() -> None:
    other = Principal(Role.CLUSTER, "cluster-pi-9", name="pi-9", root=OTHER_GROUP)
    space = _topics()
    assert rights.allows(other, PUBLISH, "edge/eu-central/status/pi-9", space)
    assert rights.allows(other, SUBSCRIBE, "edge/eu-central/bundles/+", space)
    assert not rights.allows(other, PUBLISH, "edge/us-west/status/pi-9", space)
    assert not rights.allows(other, SUBSCRIBE, "edge/us-west/bundles/+", space)


def test_group_that_prefixes_another_does_not_share_its_bundles() -> None:
    parent = Principal(Role.CLUSTER, "cluster-pi-1", name="pi-1", root="edge")
    space = _topics()
    assert rights.allows(parent, SUBSCRIBE, "edge/bundles/+", space)
    assert not rights.allows(parent, SUBSCRIBE, "edge/us-west/bundles/+", space)
    assert not rights.allows(parent, RECEIVE, "edge/us-west/bundles/web", space)


def test_custom_prefix_moves_the_controller_topics() -> None:
    acme = topics.Topics("acme/fleet")
    assert rights.allows(CLUSTER, SUBSCRIBE, "acme/fleet/summary/#", acme)
    assert not rights.allows(CLUSTER, SUBSCRIBE, "fleet/summary/#", acme)
    assert rights.allows(BOOTSTRAP, PUBLISH, f"acme/fleet/register/{CLIENT_ID}", acme)
    assert not rights.allows(BOOTSTRAP, PUBLISH, f"fleet/register/{CLIENT_ID}", acme)


def test_rules_list_the_documented_table() -> None:
    space = _topics()
    assert rights.rules(CONTROLLER, space) == rights.Rules(publish=("#",), subscribe=("#",))
    assert rights.rules(BOOTSTRAP, space) == rights.Rules(
        publish=(f"fleet/register/{CLIENT_ID}",), subscribe=(f"fleet/register/{CLIENT_ID}/reply",)
    )
    assert rights.rules(CLUSTER, space) == rights.Rules(
        publish=("edge/us-west/status/pi-7", "edge/us-west/presence/pi-7"),
        subscribe=("edge/us-west/bundles/+", "fleet/summary/#", "fleet/controller"),
    )


@pytest.mark.parametrize("client_id", ["", "a/b", "+", "#", "$x"])
def test_bootstrap_with_a_client_id_that_is_not_a_name_gets_no_rules(client_id: str) -> None:
    principal = Principal(Role.BOOTSTRAP, "join-a1b2c3d4", client_id=client_id)
    with pytest.raises(errors.InvalidName):
        rights.rules(principal, _topics())


# -- matches: topic name against filter --------------------------------------------------------------

MATCHES = [
    ("#", "a", True),
    ("#", "a/b/c", True),
    ("#", "/", True),
    ("#", "$SYS/broker", False),
    ("#", "$SYS", False),
    ("+", "$SYS", False),
    ("+/broker", "$SYS/broker", False),
    ("$SYS/#", "$SYS/broker", True),
    ("$SYS/+", "$SYS/broker", True),
    ("a/#", "a", True),
    ("a/#", "a/b", True),
    ("a/#", "a/b/c", True),
    ("a/#", "ab", False),
    ("a/#", "b/a", False),
    ("a/+", "a/b", True),
    ("a/+", "a/", True),
    ("a/+", "a", False),
    ("a/+", "a/b/c", False),
    ("+", "a", True),
    ("+", "a/b", False),
    ("+/+", "/a", True),
    ("+/b/+", "a/b/c", True),
    ("+/b/+", "a/x/c", False),
    ("a/b", "a/b", True),
    ("a/b", "a/b/c", False),
    ("a/b/c", "a/b", False),
    ("a/b", "a/B", False),
    ("a", "a/", False),
]


@pytest.mark.parametrize(("pattern", "topic", "expected"), MATCHES)
def test_matches_follows_mqtt_topic_filter_rules(pattern: str, topic: str, expected: bool) -> None:
    assert rights.matches(pattern, topic) is expected


# -- covers: filter against filter ----------------------------------------------------------------

COVERS = [
    ("#", "#", True),
    ("#", "a/#", True),
    ("#", "+/+", True),
    ("#", "$SYS/#", False),
    ("#", "$SYS/broker", False),
    ("$SYS/#", "$SYS/+", True),
    ("a/#", "a", True),
    ("a/#", "a/#", True),
    ("a/#", "a/+/c", True),
    ("a/#", "#", False),
    ("a/#", "+", False),
    ("a/#", "+/b", False),
    ("a/#", "b/#", False),
    ("a/+", "a/b", True),
    ("a/+", "a/+", True),
    ("a/+", "a/#", False),
    ("a/+", "a", False),
    ("a/+", "a/b/c", False),
    ("a/+", "a/+/c", False),
    ("+", "#", False),
    ("+", "+", True),
    ("+", "a", True),
    ("+/+", "a/+", True),
    ("+/+", "+/#", False),
    ("a/+/c", "a/+/c", True),
    ("a/b", "a/+", False),
    ("a/b", "a/#", False),
    ("a/b", "a/b/c", False),
    ("a/b/c", "a/b", False),
    ("a/b", "a/b", True),
]


@pytest.mark.parametrize(("pattern", "topic_filter", "expected"), COVERS)
def test_covers_only_when_every_matched_topic_is_matched(
    pattern: str, topic_filter: str, expected: bool
) -> None:
    assert rights.covers(pattern, topic_filter) is expected


@pytest.mark.parametrize(("pattern", "topic", "expected"), MATCHES)
def test_covers_agrees_with_matches_for_a_filter_without_wildcards(
    pattern: str, topic: str, expected: bool
) -> None:
    assert rights.covers(pattern, topic) is expected
