"""Drift: do the fields we set still hold the values we set? (pure)

Only the fields present in what the agent applied are compared; everything
the API server or controllers add (status, defaults, other managers' fields)
is ignored, as server-side apply itself ignores them. A missing object is
drift too. Lists are compared item by item, each item as a subset of the
live one, because the server defaults fields inside list items (a container
port's protocol, say).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

# Written by the API server on every object; never ours to compare.
_SERVER_METADATA = frozenset(
    {
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
    }
)


def as_stored(desired: Mapping[str, Any]) -> Mapping[str, Any]:
    """What the API server stores for `desired`: a Secret's stringData is folded into data."""
    string_data = desired.get("stringData")
    if desired.get("kind") != "Secret" or not isinstance(string_data, Mapping):
        return desired
    encoded = {k: base64.b64encode(str(v).encode()).decode() for k, v in string_data.items()}
    folded = {k: v for k, v in desired.items() if k != "stringData"}
    folded["data"] = {**(desired.get("data") or {}), **encoded}
    return folded


def differences(desired: Any, live: Any, path: str = "") -> list[str]:
    """JSON-pointer-like paths where `live` no longer holds what `desired` sets."""
    if path == "" and isinstance(desired, Mapping):
        desired = as_stored(desired)
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return [path or "/"]
        found = []
        for key, value in desired.items():
            if path == "/metadata" and key in _SERVER_METADATA:
                continue
            if path == "" and key == "status":
                continue
            child = f"{path}/{key}"
            if key not in live:
                found.append(child)
            else:
                found.extend(differences(value, live[key], child))
        return found
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return [path]
        found = []
        for index, (want, have) in enumerate(zip(desired, live, strict=True)):
            found.extend(differences(want, have, f"{path}/{index}"))
        return found
    if isinstance(desired, bool) or isinstance(live, bool):
        return [] if desired is live else [path]
    if isinstance(desired, (int, float)) and isinstance(live, (int, float)):
        return [] if desired == live else [path]
    return [] if desired == live else [path]
