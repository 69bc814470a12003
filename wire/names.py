"""Names that become MQTT topic levels and Kubernetes label values.

Every name is checked once, where it enters (CLI argument, fleet.yaml, topic
received), so the rest of the code can splice it into topics without fear of
wildcards (`+`, `#`), empty levels, `$`-prefixed system topics or path tricks.
Bundle and cluster names follow Kubernetes label values because the agent
labels every object it applies with them; a group is one or more such levels
joined by `/`, because a group *is* its topic root.
"""

from __future__ import annotations

import re

from wire import errors, limits

_LEVEL = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?")


def _check_level(value: str, *, what: str, max_length: int) -> None:
    if not value:
        raise errors.InvalidName(f"{what} is empty")
    if len(value) > max_length:
        raise errors.InvalidName(f"{what} {value[:80]!r}… is longer than {max_length} characters")
    if not _LEVEL.fullmatch(value):
        raise errors.InvalidName(
            f"{what} {value!r} must be letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )


def bundle(value: str) -> str:
    """Return `value` if it is a valid bundle name, else raise InvalidName."""
    _check_level(value, what="bundle name", max_length=limits.MAX_NAME_LENGTH)
    return value


def cluster(value: str) -> str:
    """Return `value` if it is a valid cluster name (or client id), else raise InvalidName."""
    _check_level(value, what="cluster name", max_length=limits.MAX_NAME_LENGTH)
    return value


def group(value: str) -> str:
    """Return `value` if it is a valid group (a topic root such as `edge/us-west`)."""
    if not value:
        raise errors.InvalidName("group name is empty")
    if len(value) > limits.MAX_GROUP_LENGTH:
        raise errors.InvalidName(
            f"group name {value[:80]!r}… is longer than {limits.MAX_GROUP_LENGTH} characters"
        )
    levels = value.split("/")
    if len(levels) > limits.MAX_GROUP_LEVELS:
        raise errors.InvalidName(
            f"group name {value!r} has {len(levels)} levels, at most {limits.MAX_GROUP_LEVELS} allowed"
        )
    for level in levels:
        if not level:
            raise errors.InvalidName(f"group name {value!r} has an empty topic level")
        _check_level(level, what=f"group level in {value!r}", max_length=limits.MAX_NAME_LENGTH)
    return value
