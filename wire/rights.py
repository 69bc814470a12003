"""Who may do what on the broker: the ACL table, and MQTT topic matching.

One table for both brokers. The embedded amqtt broker evaluates it directly
(broker.auth); for Mosquitto the controller translates it into
dynamic-security roles (controller.dynsec). docs/security.md prints the same
table, and a test holds the two together.

    principal   publish                                   subscribe (and receive)
    controller  #                                         #
    bootstrap   <prefix>/register/<client-id>             <prefix>/register/<client-id>/reply
    cluster     <root>/status/<name>, <root>/presence/<name>
                                                          <root>/bundles/+, <prefix>/summary/#,
                                                          <prefix>/controller

Everything not listed is denied. A subscription is allowed when every topic
it could match is allowed (`covers`), so `#` or another group's filter never
slips through a wildcard.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

from wire import topics


class Role(enum.Enum):
    CONTROLLER = "controller"
    BOOTSTRAP = "bootstrap"  # holds a join token: may only ask to register
    CLUSTER = "cluster"


class Action(enum.Enum):
    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"
    RECEIVE = "receive"


@dataclass(frozen=True)
class Principal:
    """An authenticated broker client. `client_id` binds a bootstrap client to its
    own register topics; `name` and `root` bind a cluster to its own."""

    role: Role
    username: str
    client_id: str = ""
    name: str = ""  # cluster name
    root: str = ""  # cluster's group topic root


@dataclass(frozen=True)
class Rules:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


# Principals whose rules are kept: every connected client's, for a large fleet. The embedded
# broker asks for every delivery, and building the topics validates every name again.
RULES_CACHED = 16384


@functools.lru_cache(maxsize=RULES_CACHED)
def rules(principal: Principal, space: topics.Topics) -> Rules:
    if principal.role is Role.CONTROLLER:
        return Rules(publish=("#",), subscribe=("#",))
    if principal.role is Role.BOOTSTRAP:
        return Rules(
            publish=(space.register(principal.client_id),),
            subscribe=(space.register_reply(principal.client_id),),
        )
    return Rules(
        publish=(
            space.status(principal.root, principal.name),
            space.presence(principal.root, principal.name),
        ),
        subscribe=(space.bundles_filter(principal.root), f"{space.prefix}/summary/#", space.controller()),
    )


def matches(pattern: str, topic: str) -> bool:
    """Whether topic name `topic` matches filter `pattern` (MQTT 3.1.1, section 4.7)."""
    if topic.startswith("$") and not pattern.startswith("$"):
        return False  # wildcards never match $-topics [MQTT-4.7.2-1]
    want, have = pattern.split("/"), topic.split("/")
    for index, level in enumerate(want):
        if level == "#":
            return True
        if index >= len(have) or (level != "+" and level != have[index]):
            return False
    return len(want) == len(have)


def covers(pattern: str, topic_filter: str) -> bool:
    """Whether every topic `topic_filter` can match is matched by `pattern`."""
    if topic_filter.startswith("$") and not pattern.startswith("$"):
        return False
    want, asked = pattern.split("/"), topic_filter.split("/")
    for index, level in enumerate(want):
        if level == "#":
            return True
        if index >= len(asked):
            return False
        if level == "+":
            if asked[index] == "#":
                return False
            continue
        if asked[index] != level:
            return False
    return len(want) == len(asked)


def allows(principal: Principal, action: Action, topic: str, space: topics.Topics) -> bool:
    granted = rules(principal, space)
    if action is Action.PUBLISH:
        return "+" not in topic and "#" not in topic and any(matches(p, topic) for p in granted.publish)
    if action is Action.SUBSCRIBE:
        return any(covers(p, topic) for p in granted.subscribe)
    return any(matches(p, topic) for p in granted.subscribe)
