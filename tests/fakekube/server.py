"""The HTTP face of the fake: real requests in, real Status/objects out.

`Server` owns the pieces (registry, store, API semantics, simulated kubelet,
faults) and answers one request at a time per connection thread; the request
path does no waiting except an injected delay. Everything but JSON/YAML is
refused: the official Python client asks for JSON, so protobuf, CBOR, Table
output and watch streams are not served (a watch answers 405).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.fakekube import discovery, errors, routing, verbs
from tests.fakekube.faults import Faults
from tests.fakekube.kubelet import Kubelet
from tests.fakekube.scheduler import Scheduler
from tests.fakekube.store import Store

log = logging.getLogger(__name__)

_TRUE = ("1", "t", "T", "TRUE", "true", "True")  # Go's strconv.ParseBool
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_BODY_TYPES = ("application/json", "application/yaml", "")
_POLL = 0.02  # seconds between shutdown checks of serve_forever: bounds stop() latency


def _decode(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    try:
        if content_type in ("application/apply-patch+yaml", "application/yaml"):
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise errors.bad_request(f"error decoding request body: {exc}") from exc


def _flag(query: dict[str, list[str]], name: str) -> bool | None:
    if name not in query:
        return None
    value = query[name][-1]
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise errors.bad_request(f"invalid boolean value for {name}: {value!r}")


@dataclass(frozen=True)
class Exchange:
    """One answered request: what was asked, when (time.monotonic), and the status code given."""

    method: str
    path: str
    began: float
    ended: float
    code: int


class Server:
    """One fake cluster's request handling, shared by all connection threads."""

    def __init__(self, *, ready_delay: float, listener: socket.socket | None = None) -> None:
        self.registry = discovery.Registry()
        self.store = Store()
        self.api = verbs.Api(self.store, self.registry)
        self.scheduler = Scheduler()
        self.kubelet = Kubelet(self.api, self.scheduler, ready_delay=ready_delay)
        self.faults = Faults()
        self.stopping = threading.Event()
        self._requests: list[tuple[str, str]] = []
        self._exchanges: list[Exchange] = []
        self._requests_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._http = _HttpServer(self, listener)
        self._thread = threading.Thread(
            target=self._http.serve_forever, args=(_POLL,), name="fakekube-http", daemon=True
        )

    @property
    def address(self) -> str:
        host, port = self._http.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> None:
        self.scheduler.start()
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self._http.shutdown()
        self._http.server_close()
        with self._requests_lock:
            connections = list(self._connections)
        for connection in connections:  # wake keep-alive threads blocked reading the next request
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.scheduler.stop()
        self._thread.join()

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._requests_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    @property
    def requests(self) -> list[tuple[str, str]]:
        with self._requests_lock:
            return list(self._requests)

    @property
    def exchanges(self) -> list[Exchange]:
        with self._requests_lock:
            return list(self._exchanges)

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        url = urlsplit(target)
        began = time.monotonic()
        with self._requests_lock:
            self._requests.append((method, url.path))
        code, body = self._answer(method, target, url.path, url.query, headers, raw)
        with self._requests_lock:
            self._exchanges.append(Exchange(method, url.path, began, time.monotonic(), code))
        return code, body

    def _answer(
        self, method: str, target: str, path: str, query: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        try:
            fault = self.faults.take(method, target)
            if fault is not None:
                if fault.delay:
                    self.stopping.wait(fault.delay)
                if fault.status is not None:
                    raise errors.injected(fault.status, fault.message)
            return self._dispatch(method, path, parse_qs(query, keep_blank_values=True), headers, raw)
        except errors.ApiError as exc:
            return exc.code, exc.status()
        except Exception as exc:  # a bug in the fake must surface as a 500, not a dropped connection
            log.exception("fake API server failed on %s %s", method, target)
            return 500, errors.ApiError(500, "InternalError", f"fake API server bug: {exc!r}").status()

    def _dispatch(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        route = routing.parse(path)
        if route is None:
            raise errors.no_such_path()
        if route.kind != "resource":
            if method != "GET":
                raise errors.method_not_allowed()
            return 200, self._discovery(route)
        rtype = self.registry.lookup(route.group, route.version, route.plural)
        if rtype is None or (route.in_namespace and not rtype.namespaced):
            raise errors.no_such_path()
        if route.name and rtype.namespaced and not route.in_namespace:
            raise errors.no_such_path()
        if route.subresource and not (route.subresource == "status" and rtype.status):
            raise errors.no_such_path()
        target = verbs.Target(rtype, route.namespace, route.name, route.subresource)
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        given = query.get("fieldManager", [""])[-1]
        if not given and content_type != verbs.APPLY_PATCH:  # updaters default to their user agent's product
            given = headers.get("user-agent", "").split("/", 1)[0][:128]
        options = verbs.Options(
            manager=given,
            dry_run="All" in query.get("dryRun", []),
            force=_flag(query, "force"),
        )
        if not route.name:
            return self._collection(
                method,
                target,
                query,
                content_type,
                raw,
                options,
                all_namespaces=rtype.namespaced and not route.in_namespace,
            )
        if method == "GET":
            return 200, self.api.get(target)
        if method == "DELETE":
            return 200, self.api.delete(target, _decode(raw, "application/json"), options)
        if method == "PUT":
            self._require_body_type(content_type)
            return 200, self.api.replace(target, _decode(raw, content_type), options)
        if method == "PATCH":
            if content_type not in verbs.PATCH_TYPES:
                raise errors.unsupported_media_type(list(verbs.PATCH_TYPES))
            patched, code = self.api.patch(target, content_type, _decode(raw, content_type), options)
            return code, patched
        raise errors.method_not_allowed()

    @staticmethod
    def _require_body_type(content_type: str) -> None:
        if content_type not in _BODY_TYPES:
            raise errors.unsupported_media_type(["application/json", "application/yaml"])

    def _collection(
        self,
        method: str,
        target: verbs.Target,
        query: dict[str, list[str]],
        content_type: str,
        raw: bytes,
        options: verbs.Options,
        *,
        all_namespaces: bool,
    ) -> tuple[int, Any]:
        labels = query.get("labelSelector", [""])[-1]
        fields = query.get("fieldSelector", [""])[-1]
        if method == "GET":
            if _flag(query, "watch"):
                raise errors.method_not_allowed("watch is not supported by the fake API server")
            limit = query.get("limit", ["0"])[-1]
            if not limit.isdigit():
                raise errors.bad_request(f"invalid limit {limit!r}")
            listing = self.api.list(
                target,
                label_selector=labels,
                field_selector=fields,
                limit=int(limit),
                continue_token=query.get("continue", [""])[-1],
            )
            return 200, listing
        if all_namespaces:
            raise errors.method_not_allowed()
        if method == "POST":
            self._require_body_type(content_type)
            return 201, self.api.create(target, _decode(raw, content_type), options)
        if method == "DELETE" and "deletecollection" in target.rtype.verbs():
            return 200, self.api.delete_collection(
                target, label_selector=labels, field_selector=fields, options=options
            )
        raise errors.method_not_allowed()

    def _discovery(self, route: routing.Route) -> Any:
        if route.kind == "version":
            return discovery.SERVER_VERSION
        if route.kind == "health":
            return "ok"
        if route.kind == "api":
            return discovery.api_versions(self.address)
        if route.kind == "groups":
            return discovery.api_group_list(self.registry)
        if route.kind == "group":
            document = discovery.api_group(self.registry, route.group)
        else:
            document = discovery.api_resource_list(self.registry, route.group, route.version)
        if document is None:
            raise errors.no_such_path()
        return document


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True  # connection threads never outlive the test process
    block_on_close = False  # stop() wakes them by shutting their sockets instead of joining

    def __init__(self, fake: Server, listener: socket.socket | None) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler, bind_and_activate=listener is None)
        if listener is not None:  # a socket made elsewhere, e.g. in a device's network namespace
            self.socket.close()
            self.socket = listener
            try:
                self.server_bind()
                self.server_activate()
            except OSError:
                self.server_close()
                raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended abruptly", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid the delayed-ACK stall
    server_version = "fakekube"

    server: _HttpServer

    @property
    def fake(self) -> Server:
        return self.server.fake

    def setup(self) -> None:
        super().setup()
        self.fake.track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.fake.track(self.connection, open_=False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        code, body = self.fake.handle(self.command, self.path, headers, raw)
        if isinstance(body, str):
            data, content_type = body.encode(), "text/plain; charset=utf-8"
        else:
            data, content_type = json.dumps(body).encode(), "application/json"
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
