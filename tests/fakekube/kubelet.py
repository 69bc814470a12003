"""The simulated kubelet and controllers: what makes written objects come alive.

Each time the spec of a simulated object changes (creation included), its
clock restarts: `ready_delay` seconds later, if the object still has that
spec, its status is written as ready (or as stuck, for objects marked with
`keep_failing`). Until then the status still describes the previous
generation, which is exactly what readiness checks must cope with on a real
cluster. Namespace and CRD lifecycles run on the same clock: a deleted
namespace stays Terminating for `ready_delay`, then it and its contents go.

Status is written through the API's own write path (as manager "k3s",
subresource status), so it bumps resourceVersion and managedFields like a
real controller's write.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from tests.fakekube import managedfields, statuses
from tests.fakekube.discovery import ResourceType
from tests.fakekube.scheduler import Scheduler
from tests.fakekube.verbs import Api

MANAGER = "k3s"  # k3s runs the kubelet and controller-manager in one process with this user agent


def _digest(obj: dict[str, Any]) -> str:
    spec = {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


class Kubelet:
    def __init__(self, api: Api, scheduler: Scheduler, *, ready_delay: float) -> None:
        self._api = api
        self._scheduler = scheduler
        self._lock = threading.Lock()
        self._ready_delay = ready_delay
        self._failing: dict[tuple[str, str, str], str] = {}
        self._addresses: dict[str, str] = {}  # uid -> load balancer address
        api.store.subscribe(self._observe)

    @property
    def ready_delay(self) -> float:
        with self._lock:
            return self._ready_delay

    def set_ready_delay(self, seconds: float) -> None:
        with self._lock:
            self._ready_delay = seconds

    def keep_failing(self, kind: str, namespace: str, name: str, message: str) -> None:
        with self._lock:
            self._failing[(kind, namespace, name)] = message
        with self._api.store.lock:
            for rtype in self._api.registry.kind_named(kind):
                live = self._api.store.peek(rtype, namespace, name)
                if live is not None and rtype.builtin:
                    self._schedule(rtype, live)

    def _observe(self, rtype: ResourceType, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        """Store listener: runs under the store lock, so it only schedules."""
        if new is None or not rtype.builtin:
            return
        if rtype.kind == "Namespace":
            was_deleting = old is not None and old["metadata"].get("deletionTimestamp")
            if new["metadata"].get("deletionTimestamp") and not was_deleting:
                name = new["metadata"]["name"]
                self._scheduler.call_later(self.ready_delay, lambda: self._api.finish_namespace(name))
            return
        if rtype.kind in statuses.SIMULATED and (old is None or _digest(old) != _digest(new)):
            self._schedule(rtype, new)

    def _schedule(self, rtype: ResourceType, obj: dict[str, Any]) -> None:
        namespace, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
        digest = _digest(obj)
        self._scheduler.call_later(self.ready_delay, lambda: self._reconcile(rtype, namespace, name, digest))

    def _reconcile(self, rtype: ResourceType, namespace: str, name: str, digest: str) -> None:
        with self._api.store.lock:
            live = self._api.store.peek(rtype, namespace, name)
            if live is None or _digest(live) != digest or live["metadata"].get("deletionTimestamp"):
                return  # gone, or changed since: the newer change has its own timer
            with self._lock:
                failing = self._failing.get((rtype.kind, namespace, name))
                address = ""
                if rtype.kind == "Service":
                    fresh = f"10.0.0.{len(self._addresses) + 100}"
                    address = self._addresses.setdefault(live["metadata"]["uid"], fresh)
            status = statuses.compute(
                rtype.kind, live, failing=failing, now=managedfields.now(), lb_address=address
            )
            if status is not None:
                self._api.controller_status(rtype, namespace, name, status, manager=MANAGER)
