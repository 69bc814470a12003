"""The object store: etcd's role, with one lock and one revision counter.

Invariants: every stored object carries the cluster-wide revision of its last
write as `metadata.resourceVersion` (a string, increasing across all kinds,
as in etcd); stored dicts are never handed out, only copies; listeners hear
about every committed change while the lock is held, in commit order, so they
must only record or schedule work, never block.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

from tests.fakekube.discovery import ResourceType

Key = tuple[str, str, str, str]  # group, kind, namespace ("" when cluster-scoped), name
Listener = Callable[[ResourceType, "dict[str, Any] | None", "dict[str, Any] | None"], None]


def key_of(rtype: ResourceType, namespace: str, name: str) -> Key:
    return (rtype.group, rtype.kind, namespace if rtype.namespaced else "", name)


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._objects: dict[Key, tuple[ResourceType, dict[str, Any]]] = {}
        self._revision = 0
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    @property
    def revision(self) -> str:
        with self.lock:
            return str(self._revision)

    def peek(self, rtype: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object itself: read it under `lock`, never modify it."""
        with self.lock:
            entry = self._objects.get(key_of(rtype, namespace, name))
            return entry[1] if entry else None

    def items(self, group: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Stored objects of a kind in key order (namespace, then name), optionally one namespace's."""
        with self.lock:
            keys = sorted(
                key
                for key in self._objects
                if key[:2] == (group, kind) and (namespace is None or key[2] == namespace)
            )
            return [self._objects[key][1] for key in keys]

    def in_namespace(self, namespace: str) -> list[tuple[ResourceType, dict[str, Any]]]:
        with self.lock:
            return [entry for key, entry in sorted(self._objects.items()) if key[2] == namespace]

    def put(self, rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a copy of `obj` at the next revision; returns the stored object."""
        with self.lock:
            self._revision += 1
            stored = copy.deepcopy(obj)
            stored["metadata"]["resourceVersion"] = str(self._revision)
            key = key_of(rtype, stored["metadata"].get("namespace", ""), stored["metadata"]["name"])
            old = self._objects.get(key)
            self._objects[key] = (rtype, stored)
            self._notify(rtype, old[1] if old else None, stored)
            return stored

    def drop(self, rtype: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            entry = self._objects.pop(key_of(rtype, namespace, name), None)
            if entry is None:
                return None
            self._revision += 1
            self._notify(entry[0], entry[1], None)
            return entry[1]

    def _notify(self, rtype: ResourceType, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        for listener in self._listeners:
            listener(rtype, old, new)

    def snapshot(self) -> list[tuple[ResourceType, dict[str, Any]]]:
        with self.lock:
            return [(rtype, copy.deepcopy(obj)) for _, (rtype, obj) in sorted(self._objects.items())]
