"""The three classic PATCH formats, applied to an object as plain JSON.

- JSON merge patch (RFC 7386), complete.
- JSON patch (RFC 6902), complete: add, remove, replace, move, copy, test.
- Strategic merge patch, the subset manifests use: maps merge recursively and
  `null` deletes a key; lists that `schema` keys (containers by name, ports,
  env, volumes, conditions, ...) merge item by item on the first key; set
  lists (finalizers) take the union; every other list is replaced. Directives:
  `$patch: replace|delete` on maps and list items, `$deleteFromPrimitiveList/<f>`,
  `$retainKeys`; `$setElementOrder/<f>` is accepted and ignored (items keep the
  live order, new ones are appended).

Errors are `PatchError`; the caller answers 422 as the real server does.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.fakekube import schema as schemas


class PatchError(Exception):
    pass


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def strategic_merge_patch(
    target: Any, patch: Any, schema: schemas.Schema, names: tuple[str, ...] = ()
) -> Any:
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return _strip_directives(copy.deepcopy(patch))
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip_directives({k: v for k, v in patch.items() if k != "$patch"})
    if directive == "delete":
        return None
    if directive is not None:
        raise PatchError(f"Unknown patch type: {directive}")
    out = copy.deepcopy(target)
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key == "$retainKeys":
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(out.get(field), list) and isinstance(value, list):
                out[field] = [item for item in out[field] if item not in value]
            continue
        if value is None:
            out.pop(key, None)
            continue
        current = out.get(key)
        path = (*names, key)
        if isinstance(value, list) and isinstance(current, list):
            out[key] = _merge_list(current, value, schema, path)
        elif isinstance(value, dict) and isinstance(current, dict):
            merged = strategic_merge_patch(current, value, schema, path)
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
        elif isinstance(value, dict) and value.get("$patch") == "delete":
            out.pop(key, None)
        else:
            out[key] = _strip_directives(copy.deepcopy(value))
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _merge_list(
    current: list[Any], patch: list[Any], schema: schemas.Schema, names: tuple[str, ...]
) -> list[Any]:
    ltype = schema.list_type(names)
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [
            _strip_directives(item) for item in patch if not (isinstance(item, dict) and "$patch" in item)
        ]
    if ltype.kind == "set":
        return copy.deepcopy(current) + [item for item in patch if item not in current]
    if ltype.kind != "map":
        return [_strip_directives(item) for item in patch]
    key = ltype.keys[0]
    out = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise PatchError(f"map: {item!r} does not contain declared merge key: {key}")
        index = next(
            (i for i, have in enumerate(out) if isinstance(have, dict) and have.get(key) == item[key]), -1
        )
        if item.get("$patch") == "delete":
            if index >= 0:
                del out[index]
        elif index >= 0:
            out[index] = strategic_merge_patch(out[index], item, schema, names)
        else:
            out.append(_strip_directives(copy.deepcopy(item)))
    return out


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(item) for item in value]
    return value


def json_patch(target: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation: {op!r}")
        kind, path = op["op"], _pointer(op["path"])
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(_required(op, "value")))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            doc = _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(_required(op, "value")))
        elif kind in ("move", "copy"):
            source = _pointer(_required(op, "from"))
            value = copy.deepcopy(_get(doc, source))
            if kind == "move":
                doc = _remove(doc, source)
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != _required(op, "value"):
                raise PatchError(f"testing value {op['path']} failed")
        else:
            raise PatchError(f"Unexpected kind: {kind}")
    return doc


def _required(op: dict[str, Any], field: str) -> Any:
    if field not in op:
        raise PatchError(f"operation {op['op']!r} requires {field!r}")
    return op[field]


def _pointer(text: Any) -> list[str]:
    if not isinstance(text, str) or (text and not text.startswith("/")):
        raise PatchError(f"invalid JSON pointer: {text!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in text.split("/")[1:]]


def _index(container: list[Any], token: str, *, adding: bool) -> int:
    if adding and token == "-":
        return len(container)
    if not token.isdigit():
        raise PatchError(f"invalid array index: {token!r}")
    index = int(token)
    if index > len(container) or (not adding and index == len(container)):
        raise PatchError(f"array index out of bounds: {index}")
    return index


def _get(doc: Any, path: list[str]) -> Any:
    current = doc
    for token in path:
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, adding=False)]
        else:
            raise PatchError(f"doc is missing path: /{'/'.join(path)}")
    return current


def _add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _get(doc, path[:-1])
    token = path[-1]
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, adding=True), value)
    else:
        raise PatchError(f"doc is missing path: /{'/'.join(path)}")
    return doc


def _remove(doc: Any, path: list[str]) -> Any:
    if not path:
        raise PatchError("cannot remove the whole document")
    parent = _get(doc, path[:-1])
    token = path[-1]
    if isinstance(parent, dict) and token in parent:
        del parent[token]
    elif isinstance(parent, list):
        del parent[_index(parent, token, adding=False)]
    else:
        raise PatchError(f"doc is missing path: /{'/'.join(path)}")
    return doc
