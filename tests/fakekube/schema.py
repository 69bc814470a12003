"""How lists merge: the part of the OpenAPI schema that server-side apply and
strategic merge patch both need.

A real server reads `x-kubernetes-list-type`/`x-kubernetes-list-map-keys` (and
`patchMergeKey`) from its OpenAPI schema. The fake keeps a small table for the
lists that commonly matter in manifests; every other list is atomic (replaced
as a whole, owned as one field). Custom resources get atomic lists except in
`metadata`, matching a CRD schema that declares no list types (the fake does
not read `x-kubernetes-list-type` from CRD schemas).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

_POD_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers"})


@dataclass(frozen=True)
class ListType:
    kind: Literal["atomic", "set", "map"]
    keys: tuple[str, ...] = ()


ATOMIC = ListType("atomic")
SET = ListType("set")

# Key fields whose absence means their default (the real server defaults before keying).
_KEY_DEFAULTS = {"protocol": "TCP"}


def _keyed(*keys: str) -> ListType:
    return ListType("map", keys)


@dataclass(frozen=True)
class Schema:
    kind: str
    builtin: bool

    def list_type(self, names: tuple[str, ...]) -> ListType:
        """`names` is the path of field names to the list, list positions left out."""
        if names == ("metadata", "finalizers"):
            return SET
        if names == ("metadata", "ownerReferences"):
            return _keyed("uid")
        if not self.builtin or not names:
            return ATOMIC
        last, parent = names[-1], (names[-2] if len(names) > 1 else "")
        if parent == "spec" and (last in _POD_LISTS or last in ("volumes", "imagePullSecrets")):
            return _keyed("name")
        if parent == "spec" and last == "topologySpreadConstraints":
            return _keyed("topologyKey", "whenUnsatisfiable")
        if parent == "spec" and last == "hostAliases":
            return _keyed("ip")
        if parent in _POD_LISTS:
            if last == "env":
                return _keyed("name")
            if last == "ports":
                return _keyed("containerPort", "protocol")
            if last == "volumeMounts":
                return _keyed("mountPath")
        if self.kind == "Service" and names == ("spec", "ports"):
            return _keyed("port", "protocol")
        if names[0] == "status" and last == "conditions":
            return _keyed("type")
        return ATOMIC


def key_of(item: Any, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The identifying fields of a list-map item, defaults filled in; None if it cannot be keyed."""
    if not isinstance(item, dict):
        return None
    out = {}
    for key in keys:
        if key in item:
            out[key] = item[key]
        elif key in _KEY_DEFAULTS:
            out[key] = _KEY_DEFAULTS[key]
        elif key == keys[0]:
            return None
    return out


def schema_for(kind: str, *, builtin: bool) -> Schema:
    return Schema(kind, builtin)
