"""Server-side apply: merging an applied configuration into the live object.

Apply is merge, then prune, then ownership (`managedfields.record`, which
raises the conflict). Merge follows the list semantics of `schema`: keyed lists
merge item by item, set lists take the union, atomic lists are replaced. Prune
removes what this manager applied last time and no longer applies, unless some
manager (including this one, via another path) still owns it or something
inside it; maps and lists left empty by a removal go too.

A `null` in an applied configuration is treated as if the field were absent.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.fakekube import fieldsets
from tests.fakekube import schema as schemas
from tests.fakekube.fieldsets import Path


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value if item is not None]
    return value


def merge(live: Any, config: Any, schema: schemas.Schema, names: tuple[str, ...] = ()) -> Any:
    """`config` laid over `live`; neither argument is modified."""
    if isinstance(live, dict) and isinstance(config, dict):
        out = copy.deepcopy(live)
        for key, value in config.items():
            out[key] = merge(live[key], value, schema, (*names, key)) if key in live else copy.deepcopy(value)
        return out
    if isinstance(live, list) and isinstance(config, list):
        ltype = schema.list_type(names)
        if ltype.kind == "set":
            return copy.deepcopy(live) + [copy.deepcopy(v) for v in config if v not in live]
        if ltype.kind == "map":
            return _merge_keyed(live, config, ltype.keys, schema, names)
    return copy.deepcopy(config)


def _merge_keyed(
    live: list[Any], config: list[Any], keys: tuple[str, ...], schema: schemas.Schema, names: tuple[str, ...]
) -> list[Any]:
    live_keys = [schemas.key_of(item, keys) for item in live]
    config_keys = [schemas.key_of(item, keys) for item in config]
    if None in live_keys or None in config_keys:
        return copy.deepcopy(config)
    out = copy.deepcopy(live)
    for item, key in zip(config, config_keys, strict=True):
        if key in live_keys:
            index = live_keys.index(key)
            out[index] = merge(live[index], item, schema, names)
        else:
            out.append(copy.deepcopy(item))
    return out


def prune(obj: dict[str, Any], *, last_applied: set[Path], owned: set[Path]) -> None:
    """Remove, in place, members applied last time that nobody owns any more."""
    # Outermost first: a removed list item takes its fields with it, while an item that stays
    # (someone owns part of it) keeps its key fields, which identify it.
    for path in sorted(last_applied - owned, key=len):
        if fieldsets.owned_below(path, owned) or _is_key_field(path):
            continue
        if fieldsets.remove(obj, path):
            _drop_emptied_parents(obj, path, owned)


def _is_key_field(path: Path) -> bool:
    if len(path) < 2 or not path[-2].startswith("k:"):
        return False
    return path[-1][2:] in json.loads(path[-2][2:])


def _drop_emptied_parents(obj: dict[str, Any], path: Path, owned: set[Path]) -> None:
    for end in range(len(path) - 1, 0, -1):
        parent = path[:end]
        if parent == ("f:metadata",) or parent[-1].startswith("k:"):
            return
        value = fieldsets.lookup(obj, parent)
        if value not in ({}, []) or fieldsets.owned_below(parent, owned):
            return
        fieldsets.remove(obj, parent)
