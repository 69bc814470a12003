"""Field paths and field sets, the vocabulary of managedFields.

A path is a tuple of FieldsV1 keys exactly as the real server writes them:
`f:<field>` for a map/struct field, `k:<json>` for an item of a keyed list,
`v:<json>` for a member of a set list. A field set holds the *members* of an
object: every scalar, every atomic list, every empty map, and every keyed-list
item or set-list value (an item is a member and its fields are members too).
Intermediate maps are not members, so two managers can own different keys of
the same map. This is the structure structured-merge-diff uses; the fake
implements the subset that JSON objects without a typed schema need.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.fakekube import schema as schemas

Path = tuple[str, ...]
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def field_set(obj: Any, schema: schemas.Schema) -> set[Path]:
    out: set[Path] = set()
    _walk(obj, (), (), schema, out)
    return out


def _walk(value: Any, path: Path, names: tuple[str, ...], schema: schemas.Schema, out: set[Path]) -> None:
    if isinstance(value, dict):
        if not value and path:
            out.add(path)
        for key, child in value.items():
            _walk(child, (*path, f"f:{key}"), (*names, key), schema, out)
    elif isinstance(value, list):
        ltype = schema.list_type(names)
        if ltype.kind == "atomic" or not value:
            out.add(path)
        elif ltype.kind == "set":
            out.update((*path, f"v:{_compact(item)}") for item in value)
        else:
            keys = [schemas.key_of(item, ltype.keys) for item in value]
            if any(key is None for key in keys):
                out.add(path)  # items that cannot be keyed: the list can only be owned whole
                return
            for item, key in zip(value, keys, strict=True):
                item_path = (*path, f"k:{_compact(key)}")
                out.add(item_path)
                for field, child in item.items():
                    _walk(child, (*item_path, f"f:{field}"), (*names, field), schema, out)
    else:
        out.add(path)


def _find_item(items: list[Any], element: str) -> int:
    wanted = json.loads(element[2:])
    keys = tuple(wanted)
    for index, item in enumerate(items):
        if schemas.key_of(item, keys) == wanted:
            return index
    return -1


def lookup(obj: Any, path: Path) -> Any:
    """The value at `path`, or MISSING."""
    current = obj
    for element in path:
        tag, rest = element[:2], element[2:]
        if tag == "f:" and isinstance(current, dict):
            current = current.get(rest, MISSING)
        elif tag == "k:" and isinstance(current, list):
            index = _find_item(current, element)
            current = current[index] if index >= 0 else MISSING
        elif tag == "v:" and isinstance(current, list):
            value = json.loads(rest)
            current = value if value in current else MISSING
        else:
            return MISSING
        if current is MISSING:
            return MISSING
    return current


def remove(obj: Any, path: Path) -> bool:
    """Delete the member at `path` from `obj` in place; True if something was removed."""
    if not path:
        return False
    parent = lookup(obj, path[:-1])
    element = path[-1]
    tag, rest = element[:2], element[2:]
    if tag == "f:" and isinstance(parent, dict) and rest in parent:
        del parent[rest]
        return True
    if tag == "k:" and isinstance(parent, list):
        index = _find_item(parent, element)
        if index >= 0:
            del parent[index]
            return True
    if tag == "v:" and isinstance(parent, list):
        value = json.loads(rest)
        if value in parent:
            parent.remove(value)
            return True
    return False


def is_container(value: Any) -> bool:
    """Members whose own value does not count as modified: their fields are compared instead."""
    return isinstance(value, dict) and bool(value)


@dataclass(frozen=True)
class Comparison:
    added: set[Path]
    removed: set[Path]
    modified: set[Path]

    @property
    def changed(self) -> set[Path]:
        return self.added | self.modified


def compare(old: Any, new: Any, schema: schemas.Schema, relevant: set[Path] | None = None) -> Comparison:
    old_set, new_set = field_set(old, schema), field_set(new, schema)
    if relevant is not None:
        old_set &= relevant
        new_set &= relevant
    modified = set()
    for path in old_set & new_set:
        before, after = lookup(old, path), lookup(new, path)
        if not (is_container(before) and is_container(after)) and before != after:
            modified.add(path)
    return Comparison(added=new_set - old_set, removed=old_set - new_set, modified=modified)


def under(path: Path, prefix: Path) -> bool:
    return path[: len(prefix)] == prefix


def owned_below(path: Path, owned: Iterable[Path]) -> bool:
    return any(under(other, path) for other in owned)


def describe(path: Path) -> str:
    """Human form used in conflict messages: `.spec.containers[name="app"].image`."""
    out = []
    for element in path:
        tag, rest = element[:2], element[2:]
        if tag == "f:":
            out.append(f".{rest}")
        elif tag == "k:":
            key = json.loads(rest)
            out.append("[" + ",".join(f"{k}={_compact(v)}" for k, v in key.items()) + "]")
        else:
            out.append(f"[={rest}]")
    return "".join(out)


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    members = set(paths)
    root: dict[str, Any] = {}
    for path in members:
        node = root
        for element in path:
            node = node.setdefault(element, {})
    for path in members:
        node = root
        for element in path:
            node = node[element]
        if node and path:
            node["."] = {}
    return _sorted(root)


def _sorted(node: dict[str, Any]) -> dict[str, Any]:
    return {key: _sorted(node[key]) for key in sorted(node)}


def from_fields_v1(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for key, child in tree.items():
        if key == ".":
            out.add(prefix)
        elif not child:
            out.add((*prefix, key))
        else:
            out |= from_fields_v1(child, (*prefix, key))
    return out
