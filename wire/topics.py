"""Topic builders and the parser that inverts them (docs/protocol.md, "Topics").

One `Topics` value per deployment: its `prefix` (default `fleet`) roots the
controller's own topics. Groups root everything else, so a group may not start
with the prefix's first level, or a group's topics could shadow the
controller's summaries. Topics are built only from validated names, and every
received topic is parsed back into an `Address` before it is trusted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from wire import errors, names


class Kind(enum.Enum):
    BUNDLE = "bundles"
    STATUS = "status"
    PRESENCE = "presence"
    REGISTER = "register"
    REGISTER_REPLY = "register-reply"
    SUMMARY = "summary"
    SUMMARY_BUNDLE = "summary-bundle"
    SUMMARY_GROUP = "summary-group"
    CONTROLLER = "controller"


_GROUP_KINDS = {"bundles": Kind.BUNDLE, "status": Kind.STATUS, "presence": Kind.PRESENCE}

# Valid groups `parse` remembers. A deployment has a few groups, and every status message
# names one: checking it once instead of per message took parsing a status topic from
# about 5 µs to 2 (docs/benchmarks.md, "Status ingest"). Bounded, since any client can
# publish under made-up groups that are valid.
_GROUPS_REMEMBERED = 1024


@dataclass(frozen=True)
class Address:
    """What a topic means: its kind, and the group and name it is about, if any."""

    kind: Kind
    group: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Topics:
    """Builds and parses every topic of one edgefleet deployment."""

    prefix: str = "fleet"
    _valid_groups: set[str] = field(default_factory=set, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names.group(self.prefix)

    @property
    def _root(self) -> str:
        return self.prefix.split("/", 1)[0]

    def group(self, value: str) -> str:
        """Validate a group name for this deployment (not under the prefix)."""
        names.group(value)
        if value.split("/", 1)[0] == self._root:
            raise errors.InvalidName(
                f"group {value!r} may not start with {self._root!r}: that topic root is the controller's"
            )
        return value

    # group topics
    def bundle(self, group: str, bundle: str) -> str:
        return f"{self.group(group)}/bundles/{names.bundle(bundle)}"

    def bundles_filter(self, group: str) -> str:
        """Subscription filter for every bundle of one group."""
        return f"{self.group(group)}/bundles/+"

    def status(self, group: str, cluster: str) -> str:
        return f"{self.group(group)}/status/{names.cluster(cluster)}"

    def presence(self, group: str, cluster: str) -> str:
        return f"{self.group(group)}/presence/{names.cluster(cluster)}"

    # controller topics
    def register(self, client_id: str) -> str:
        return f"{self.prefix}/register/{names.cluster(client_id)}"

    def register_reply(self, client_id: str) -> str:
        return f"{self.prefix}/register/{names.cluster(client_id)}/reply"

    def register_filter(self) -> str:
        """Every join request (the controller subscribes to it)."""
        return f"{self.prefix}/register/+"

    def register_reply_filter(self) -> str:
        """Every join reply: nobody may subscribe to it (wire.rights)."""
        return f"{self.prefix}/register/+/reply"

    def summary(self) -> str:
        return f"{self.prefix}/summary"

    def summary_bundle(self, bundle: str) -> str:
        return f"{self.prefix}/summary/bundles/{names.bundle(bundle)}"

    def summary_group(self, group: str) -> str:
        return f"{self.prefix}/summary/groups/{self.group(group)}"

    def controller(self) -> str:
        return f"{self.prefix}/controller"

    def controller_sync(self, client_id: str) -> str:
        """Where a controller sends itself markers through the broker (controller.restoring)."""
        return f"{self.prefix}/controller/sync/{names.cluster(client_id)}"

    def parse(self, topic: str) -> Address:
        """Return what `topic` addresses; raise InvalidName for anything else."""
        if self._is_under_prefix(topic):
            return self._parse_controller_topic(topic[len(self.prefix) + 1 :])
        levels = topic.split("/")
        if len(levels) < 3 or levels[-2] not in _GROUP_KINDS:
            raise errors.InvalidName(f"topic {topic[:200]!r} is not an edgefleet topic")
        group = "/".join(levels[:-2])
        if group not in self._valid_groups:
            self.group(group)
            if len(self._valid_groups) >= _GROUPS_REMEMBERED:
                self._valid_groups.clear()
            self._valid_groups.add(group)
        kind = _GROUP_KINDS[levels[-2]]
        name = names.bundle(levels[-1]) if kind is Kind.BUNDLE else names.cluster(levels[-1])
        return Address(kind, group, name)

    def _is_under_prefix(self, topic: str) -> bool:
        return topic == self.prefix or topic.startswith(self.prefix + "/")

    def _parse_controller_topic(self, rest: str) -> Address:
        levels = rest.split("/")
        if levels == ["summary"]:
            return Address(Kind.SUMMARY)
        if levels == ["controller"]:
            return Address(Kind.CONTROLLER)
        if len(levels) == 2 and levels[0] == "register":
            return Address(Kind.REGISTER, name=names.cluster(levels[1]))
        if len(levels) == 3 and levels[0] == "register" and levels[2] == "reply":
            return Address(Kind.REGISTER_REPLY, name=names.cluster(levels[1]))
        if len(levels) == 3 and levels[:2] == ["summary", "bundles"]:
            return Address(Kind.SUMMARY_BUNDLE, name=names.bundle(levels[2]))
        if len(levels) >= 3 and levels[:2] == ["summary", "groups"]:
            return Address(Kind.SUMMARY_GROUP, group=self.group("/".join(levels[2:])))
        raise errors.InvalidName(f"topic {self.prefix}/{rest[:200]!r} is not an edgefleet topic")
