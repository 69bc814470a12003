"""Canonical encoding: one byte string per value, so content can be addressed.

A variant's `deployment_id` is the SHA-256 of its canonical encoding; the agent
re-hashes what it receives and refuses a variant whose id does not match, the
way Fleet content-addresses its manifests. Canonical means: msgpack, map keys
sorted, only JSON-shaped values (maps with string keys, lists, strings,
integers, floats, booleans, nil), nesting bounded. The same walk validates
what came off the wire.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import msgpack

from wire import errors, limits

_MIN_INT = -(2**63)
_MAX_INT = 2**64 - 1

Json = Any
"""A JSON-shaped value: what Kubernetes objects and manifest options are made of."""


def normalize(value: Json, *, depth: int = 0) -> Json:
    """Return `value` as plain dicts/lists with sorted keys; raise Malformed otherwise."""
    if depth > limits.MAX_DEPTH:
        raise errors.Malformed(f"value nested deeper than {limits.MAX_DEPTH} levels")
    # Exact types first: what msgpack and YAML produce, and most of what an agent's
    # verify spends (the abstract-class checks below cost four times as much).
    kind = type(value)
    if kind is str or kind is bool or kind is float or value is None:
        return value
    if kind is dict:
        for key in value:
            if type(key) is not str and not isinstance(key, str):
                raise errors.Malformed(f"map key {key!r} is not a string")
        return {key: normalize(value[key], depth=depth + 1) for key in sorted(value)}
    if kind is list:
        return [normalize(item, depth=depth + 1) for item in value]
    if isinstance(value, (bool, float, str)):
        return value
    if isinstance(value, int):  # int and its subclasses; bool was answered above
        if not _MIN_INT <= value <= _MAX_INT:
            raise errors.Malformed(f"integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, Mapping):
        keys = list(value)
        for key in keys:
            if not isinstance(key, str):
                raise errors.Malformed(f"map key {key!r} is not a string")
        return {key: normalize(value[key], depth=depth + 1) for key in sorted(keys)}
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [normalize(item, depth=depth + 1) for item in value]
    raise errors.Malformed(f"{type(value).__name__} is not a JSON-shaped value")


def encode(value: Json) -> bytes:
    """Canonical msgpack bytes of a JSON-shaped value."""
    packed: bytes = msgpack.packb(normalize(value), use_bin_type=True)
    return packed


def digest(value: Json) -> str:
    """Hex SHA-256 of the canonical encoding."""
    return hashlib.sha256(encode(value)).hexdigest()
