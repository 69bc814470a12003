"""Helm values: Fleet's deep merge, and reading `valuesFiles` from the bundle.

As in Fleet's bundle reader, a descriptor's `valuesFiles` are read when the
bundle is read and folded under its inline `values` (files in order, inline
values on top). The base and each target customization do this separately;
a customization's values are then deep-merged over the base's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from controller import errors, safeyaml, sandbox


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Fleet's MergeMaps: maps merge key by key, anything else in `override` replaces."""
    result = dict(base)
    for key, value in override.items():
        current = result.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            result[key] = deep_merge(current, value)
        else:
            result[key] = value
    return result


def with_files(
    root: Path, files: tuple[str, ...], inline: Mapping[str, Any], *, source: str
) -> dict[str, Any]:
    """The values files under `root`, in order, then `inline` on top."""
    merged: dict[str, Any] = {}
    for name in files:
        path = sandbox.resolve_inside(root, name, what="valuesFiles entry", source=source)
        if not path.is_file():
            raise errors.BundleError(f"{source}: valuesFiles entry {name!r} does not exist")
        for document in safeyaml.load_file(path, source=f"{source}: {name}"):
            if document is None:
                continue
            if not isinstance(document, dict):
                raise errors.BundleError(f"{source}: {name} is not a map of values")
            merged = deep_merge(merged, document)
    return deep_merge(merged, inline)
