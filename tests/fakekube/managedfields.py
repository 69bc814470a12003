"""Who owns which fields: `metadata.managedFields`, kept the way the real server keeps it.

Entries are identified by (manager, operation, subresource) plus, for Update
operations, apiVersion, as in the real `BuildManagerIdentifier`. Ownership
moves by the structured-merge-diff rules:

- an Update takes every field it adds or changes, silently taking them from
  other managers (updates never conflict);
- an Apply owns exactly the fields of its configuration; a change to a field
  another manager owns is a conflict unless forced, in which case ownership
  moves; applying the value a field already has shares ownership;
- fields removed from the object are removed from every manager;
- a manager left owning nothing disappears.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from tests.fakekube import errors, fieldsets
from tests.fakekube import schema as schemas
from tests.fakekube.fieldsets import Path

APPLY = "Apply"
UPDATE = "Update"

# Never owned by anyone: identity and bookkeeping the server itself maintains.
_STRIPPED: tuple[Path, ...] = (
    ("f:apiVersion",),
    ("f:kind",),
    *(
        ("f:metadata", f"f:{name}")
        for name in (
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        )
    ),
)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Entry:
    manager: str
    operation: str
    api_version: str
    subresource: str
    time: str
    fields: frozenset[Path]

    @property
    def label(self) -> str:
        """How conflict messages name this manager (the real printManager)."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text

    @property
    def key(self) -> tuple[str, str, str, str]:
        version = "" if self.operation == APPLY else self.api_version
        return (self.manager, self.operation, self.subresource, version)


def decode(obj: dict[str, Any]) -> list[Entry]:
    out = []
    for raw in obj.get("metadata", {}).get("managedFields") or []:
        if not isinstance(raw, dict) or not raw.get("manager"):
            continue
        out.append(
            Entry(
                manager=raw["manager"],
                operation=raw.get("operation", UPDATE),
                api_version=raw.get("apiVersion", ""),
                subresource=raw.get("subresource", ""),
                time=raw.get("time", ""),
                fields=frozenset(fieldsets.from_fields_v1(raw.get("fieldsV1") or {})),
            )
        )
    return out


def encode(entries: Iterable[Entry]) -> list[dict[str, Any]]:
    out = []
    for entry in entries:
        raw: dict[str, Any] = {
            "manager": entry.manager,
            "operation": entry.operation,
            "apiVersion": entry.api_version,
            "time": entry.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": fieldsets.to_fields_v1(entry.fields),
        }
        if entry.subresource:
            raw["subresource"] = entry.subresource
        out.append(raw)
    return out


def relevant(paths: Iterable[Path], *, subresource: str, status_is_subresource: bool) -> set[Path]:
    """The paths a write through this endpoint may own: status only via /status when that exists."""
    out = set()
    for path in paths:
        if any(fieldsets.under(path, stripped) for stripped in _STRIPPED):
            continue
        in_status = bool(path) and path[0] == "f:status"
        if subresource == "status" and not in_status:
            continue
        if subresource != "status" and status_is_subresource and in_status:
            continue
        out.add(path)
    return out


@dataclass(frozen=True)
class Write:
    """One write's identity for ownership purposes."""

    manager: str
    operation: str
    api_version: str
    subresource: str

    def entry(self, fields: Iterable[Path], time: str) -> Entry:
        return Entry(
            self.manager, self.operation, self.api_version, self.subresource, time, frozenset(fields)
        )


def record(
    live: dict[str, Any],
    new: dict[str, Any],
    entries: list[Entry],
    *,
    write: Write,
    schema: schemas.Schema,
    status_is_subresource: bool,
    applied: set[Path] | None = None,
    force: bool = True,
) -> list[Entry]:
    """Entries after `write` turned `live` into `new`; raises the apply conflict error.

    `applied` is the applier's configuration field set (Apply only).
    """
    scope = relevant(
        fieldsets.field_set(live, schema) | fieldsets.field_set(new, schema),
        subresource=write.subresource,
        status_is_subresource=status_is_subresource,
    )
    diff = fieldsets.compare(live, new, schema, scope)
    me = write.entry((), "").key
    changed = diff.changed
    conflicts: list[tuple[str, str]] = []
    taken: dict[tuple[str, str, str, str], set[Path]] = {}
    for entry in entries:
        if entry.key == me:
            continue
        clash = entry.fields & changed
        if clash:
            taken[entry.key] = set(clash)
            conflicts += [(entry.label, fieldsets.describe(path)) for path in sorted(clash)]
    if conflicts and not force:
        raise errors.apply_conflicts(conflicts)
    mine = next((entry for entry in entries if entry.key == me), None)
    if applied is not None:
        own = set(applied) - diff.removed
    else:
        own = (set(mine.fields if mine else ()) - diff.removed) | changed
    untouched = mine is not None and mine.fields == frozenset(own) and not changed
    updated = write.entry(own, mine.time if mine is not None and untouched else now())
    out: list[Entry] = []
    for entry in entries:
        if entry.key == me:
            if own:
                out.append(updated)
            continue
        kept = entry.fields - taken.get(entry.key, set()) - diff.removed
        if kept:
            out.append(replace(entry, fields=frozenset(kept)))
    if own and mine is None:
        out.append(updated)
    return out


def without_time(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in raw.items() if k != "time"} for raw in entries]
