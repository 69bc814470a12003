"""Canonical encoding: one byte string per value, the same by every path into it."""

from __future__ import annotations

import collections
import enum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire import canonical, errors


class Tag(enum.StrEnum):
    NAME = "name"


class Level(enum.IntEnum):
    HIGH = 3


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _as_abstract(value: Any) -> Any:
    """The same value in other containers: mappings and sequences that are not dict and list."""
    if isinstance(value, dict):
        return collections.OrderedDict(reversed([(k, _as_abstract(v)) for k, v in value.items()]))
    if isinstance(value, list):
        return tuple(_as_abstract(v) for v in value)
    return value


@given(json_values)
def test_plain_and_abstract_containers_encode_the_same(value: Any) -> None:
    assert canonical.encode(value) == canonical.encode(_as_abstract(value))


def test_keys_are_sorted_at_every_level() -> None:
    assert list(canonical.normalize({"b": {"z": 1, "a": 2}, "a": [{"y": 0, "x": 0}]})) == ["a", "b"]
    assert list(canonical.normalize({"b": {"z": 1, "a": 2}})["b"]) == ["a", "z"]


def test_string_and_int_subclasses_are_their_plain_values() -> None:
    assert canonical.encode({Tag.NAME: Level.HIGH}) == canonical.encode({"name": 3})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({1: "x"}, "not a string"),
        ({"a": {b"k": 1}}, "not a string"),
        ({"a": [2**64]}, "64 bits"),
        ({"a": b"bytes"}, "JSON-shaped"),
        ([{1, 2}], "JSON-shaped"),
    ],
)
def test_values_that_are_not_json_shaped_are_refused(value: object, message: str) -> None:
    with pytest.raises(errors.Malformed, match=message):
        canonical.normalize(value)
