"""`FakeCluster`: the handle tests hold, a fake API server on a free loopback port."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import socket
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import kubernetes.client
import yaml

from tests.fakekube.faults import Armed, Fault
from tests.fakekube.server import Exchange, Server


def _discovery_cache(url: str) -> Path:
    """Where `kubernetes.dynamic` caches discovery for `url` when given no cache_file.

    The client keys that file by host URL alone and trusts it across processes,
    so a new fake on a port an earlier fake used would inherit stale resources.
    """
    digest = hashlib.md5(url.encode(), usedforsecurity=False).hexdigest()
    return Path(tempfile.gettempdir()) / f"osrcp-{digest}.json"


class FakeCluster:
    """A Kubernetes API server for tests; use as a context manager.

    `ready_delay` is how long the simulated kubelet/controllers take to make an
    object ready after each spec change (and to finish deleting a namespace).
    `listener`: an unbound TCP socket to serve on, bound to its loopback address;
    a socket created in a network namespace serves the devices inside it
    (tests.netns.socket_in). Default: a new socket in this process's namespace.
    """

    def __init__(self, *, ready_delay: float = 0.0, listener: socket.socket | None = None) -> None:
        self._server = Server(ready_delay=ready_delay, listener=listener)
        self.url = f"http://{self._server.address}"
        self._stopped = False

    def __enter__(self) -> FakeCluster:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._forget_discovery_cache()
        self._server.start()

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._server.stop()
            self._forget_discovery_cache()

    def _forget_discovery_cache(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(_discovery_cache(self.url))

    # -- connecting -------------------------------------------------------------

    def write_kubeconfig(self, path: str | os.PathLike[str]) -> Path:
        """A kubeconfig (no credentials) for `kubernetes.config.load_kube_config(config_file=...)`."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fakekube", "cluster": {"server": self.url}}],
            "users": [{"name": "fakekube", "user": {}}],
            "contexts": [{"name": "fakekube", "context": {"cluster": "fakekube", "user": "fakekube"}}],
            "current-context": "fakekube",
            "preferences": {},
        }
        target = Path(path)
        target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return target

    def api_client(self) -> kubernetes.client.ApiClient:
        """A client on its own Configuration (the global default is left alone)."""
        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        configuration.proxy = None  # loopback: never route through an HTTP(S)_PROXY from the environment
        return kubernetes.client.ApiClient(configuration)

    # -- looking inside -----------------------------------------------------------

    def objects(
        self, api_version: str | None = None, kind: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """Copies of stored objects, in (kind, namespace, name) order, optionally filtered."""
        out = []
        for rtype, obj in self._server.store.snapshot():
            if api_version is not None and api_version not in (obj.get("apiVersion"), rtype.api_version):
                continue
            if kind is not None and rtype.kind != kind:
                continue
            if namespace is not None and obj["metadata"].get("namespace", "") != namespace:
                continue
            out.append(obj)
        return out

    def get_object(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        rtype = self._server.registry.by_kind(api_version, kind)
        if rtype is None:
            return None
        with self._server.store.lock:
            obj = self._server.store.peek(rtype, namespace or "", name)
            return copy.deepcopy(obj) if obj is not None else None

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path without query) of every request received, in arrival order."""
        return self._server.requests

    @property
    def exchanges(self) -> list[Exchange]:
        """Every answered request with its arrival and answer times, in the order answered.

        A request the client gave up on is answered all the same once its injected delay
        ends, as a real API server finishes a write whose caller timed out."""
        return self._server.exchanges

    # -- steering -------------------------------------------------------------

    def keep_failing(
        self, kind: str, namespace: str, name: str, message: str = "Back-off pulling image"
    ) -> None:
        """Never make this object ready; it gets a realistic stuck status instead (a Job fails)."""
        self._server.kubelet.keep_failing(kind, namespace, name, message)

    def set_ready_delay(self, seconds: float) -> None:
        """Applies to changes made from now on."""
        self._server.kubelet.set_ready_delay(seconds)

    def inject(self, fault: Fault) -> Armed:
        """Make matching requests fail or stall; returns a handle whose `remaining` counts down."""
        return self._server.faults.inject(fault)

    def clear_faults(self) -> None:
        self._server.faults.clear()
