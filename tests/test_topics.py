from __future__ import annotations

import pytest

from wire import errors, names, topics

T = topics.Topics()


def test_builds_and_parses_every_group_topic() -> None:
    group = "edge/us-west"
    assert T.bundle(group, "web") == "edge/us-west/bundles/web"
    assert T.parse(T.bundle(group, "web")) == topics.Address(topics.Kind.BUNDLE, group, "web")
    assert T.parse(T.status(group, "pi-7")) == topics.Address(topics.Kind.STATUS, group, "pi-7")
    assert T.parse(T.presence(group, "pi-7")) == topics.Address(topics.Kind.PRESENCE, group, "pi-7")
    assert T.bundles_filter(group) == "edge/us-west/bundles/+"


def test_builds_and_parses_controller_topics() -> None:
    assert T.parse(T.summary()) == topics.Address(topics.Kind.SUMMARY)
    assert T.parse(T.controller()) == topics.Address(topics.Kind.CONTROLLER)
    assert T.parse(T.register("c-1")) == topics.Address(topics.Kind.REGISTER, name="c-1")
    assert T.parse(T.register_reply("c-1")) == topics.Address(topics.Kind.REGISTER_REPLY, name="c-1")
    assert T.parse(T.summary_bundle("web")) == topics.Address(topics.Kind.SUMMARY_BUNDLE, name="web")
    assert T.summary_group("edge/eu") == "fleet/summary/groups/edge/eu"
    assert T.parse(T.summary_group("edge/eu")) == topics.Address(topics.Kind.SUMMARY_GROUP, group="edge/eu")


def test_custom_prefix_roots_controller_topics() -> None:
    acme = topics.Topics("acme/fleet")
    assert acme.summary() == "acme/fleet/summary"
    assert acme.parse("acme/fleet/summary/bundles/web").kind is topics.Kind.SUMMARY_BUNDLE
    with pytest.raises(errors.InvalidName):
        acme.bundle("acme/stores", "web")


@pytest.mark.parametrize(
    "group",
    [
        "",
        "edge/",
        "/edge",
        "edge//west",
        "edge/+",
        "edge/#",
        "$SYS/x",
        "edge/$x",
        "edge/ west",
        "fleet/summary",
        "fleet",
        "a/" * 8 + "a",
        "x" * 129,
        "edge/../x",
        "edge/-x",
        "edge/é",
    ],
)
def test_rejects_bad_group_names(group: str) -> None:
    with pytest.raises(errors.InvalidName):
        T.bundle(group, "web")


@pytest.mark.parametrize(
    "name", ["", "a/b", "+", "#", "$x", "a b", "-a", "a-", ".", "..", "x" * 64, "a\x00b"]
)
def test_rejects_bad_bundle_and_cluster_names(name: str) -> None:
    with pytest.raises(errors.InvalidName):
        names.bundle(name)
    with pytest.raises(errors.InvalidName):
        names.cluster(name)


@pytest.mark.parametrize(
    "topic",
    [
        "edge/us-west/bundles",
        "edge/us-west/other/web",
        "bundles/web",
        "edge/us-west/bundles/+",
        "fleet/nothing",
        "fleet/register/a/b",
        "fleet/summary/bundles/a/b",
        "edge/us-west/status/a b",
    ],
)
def test_parse_refuses_foreign_topics(topic: str) -> None:
    with pytest.raises(errors.InvalidName):
        T.parse(topic)


def test_accepts_longest_allowed_names() -> None:
    group = "/".join(["g" * 15] * 8)
    assert len(group) == 127
    assert T.parse(T.bundle(group, "b" * 63)).name == "b" * 63


def test_parse_refuses_a_bad_group_every_time_and_remembers_few_good_ones() -> None:
    space = topics.Topics()
    for _ in range(2):  # a remembered check must not let the second one through
        with pytest.raises(errors.InvalidName):
            space.parse("fleet-x/-bad/status/pi")
        with pytest.raises(errors.InvalidName):
            space.parse("fleet/x/status/pi")  # under the prefix: not a group's topic
    for n in range(topics._GROUPS_REMEMBERED + 10):
        assert space.parse(f"edge/g{n}/status/pi") == topics.Address(topics.Kind.STATUS, f"edge/g{n}", "pi")
    assert len(space._valid_groups) <= topics._GROUPS_REMEMBERED
    assert space == topics.Topics() and hash(space) == hash(topics.Topics())
