"""Applying variants to the local cluster: the only module that imports `kubernetes`.

Server-side apply with the field manager `edgefleet` and forced ownership:
the controller is the source of truth for the fields it sets, as Fleet's
Helm-based apply is. Objects are applied in Helm's install order (namespaces
and CRDs first, CRDs waited on until Established, workloads last) and
removed in the reverse order. Every object carries the label
`edgefleet.io/bundle=<bundle>`; removal deletes only objects that still
carry it, so the agent never deletes what it does not own.

Kubernetes errors are classified here (edge_agent.errors): invalid or
forbidden objects are permanent; server errors, timeouts, and a missing
namespace or API kind (another bundle may be about to create it) are
transient. Every request, discovery included, carries the applier's request
timeout: an API that hangs costs one timeout and a retry, never the worker
thread (which holds the cluster lock) for good.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import kubernetes
import urllib3
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic import discovery as dynamic_discovery
from kubernetes.dynamic import exceptions as dynamic_errors

from edge_agent import errors
from edge_agent.reporting import Observed
from edge_agent.store import ObjectRef, write_atomic
from wire import manifests, status

log = logging.getLogger(__name__)

FIELD_MANAGER = "edgefleet"
BUNDLE_LABEL = "edgefleet.io/bundle"

# Per request: connect within 5 s, answer within 30 s; a hung API is a transient error.
REQUEST_TIMEOUT: tuple[float, float] = (5.0, 30.0)
# A CRD is normally Established within a second; a minute means the API server is unwell.
CRD_ESTABLISH_TIMEOUT = 60.0
CRD_POLL_INTERVAL = 0.1

# Helm's install order (pkg/releaseutil/kind_sorter.go); unknown kinds go last.
INSTALL_ORDER = [
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
    "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
    "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole", "ClusterRoleList",
    "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
    "Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
]  # fmt: skip
_RANK = {kind: rank for rank, kind in enumerate(INSTALL_ORDER)}

# Built-in kinds that live outside namespaces: a bundle of only these needs no namespace.
CLUSTER_SCOPED = frozenset({
    "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
    "StorageClass", "PersistentVolume", "IngressClass", "APIService", "RuntimeClass",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
})  # fmt: skip


def install_rank(kind: str) -> int:
    return _RANK.get(kind, len(INSTALL_ORDER))


class KindMissing(errors.TransientApplyError):
    """Discovery answered, and the cluster has no API for this kind (yet, or any more)."""


class Applier(Protocol):
    """The seam between deciding and the cluster; the simulator and unit tests use others."""

    def refs(self, bundle: str, variant: manifests.Variant) -> tuple[ObjectRef, ...]: ...

    def apply(self, bundle: str, variant: manifests.Variant) -> tuple[ObjectRef, ...]: ...

    def remove(self, bundle: str, refs: Iterable[ObjectRef]) -> None: ...

    def observe(self, bundle: str, variant: manifests.Variant) -> list[Observed]: ...

    def facts(self) -> status.NodeFacts: ...


class _Discoverer(dynamic_discovery.LazyDiscoverer):
    """The client's discovery, with its cache file written atomically.

    The cache lives in the state directory, whose files are always either the
    old version or the new one: the client's own write truncates first, so a
    full disk would leave an empty cache behind.
    """

    def __init__(self, client: Any, cache_file: str | None) -> None:
        self._cache_path = Path(cache_file) if cache_file else None
        super().__init__(client, cache_file)

    def _write_cache(self) -> None:
        if self._cache_path is None:
            super()._write_cache()
            return
        try:
            body = json.dumps(self._cache, cls=dynamic_discovery.CacheEncoder).encode()
            write_atomic(self._cache_path, body)
        except (errors.StateError, TypeError, ValueError) as exc:  # a cache: discovery still works without it
            log.warning("discovery cache not saved: %s", exc)


class _TimedClient(DynamicClient):
    """A DynamicClient whose every request, discovery included, gives up after `timeout`."""

    def __init__(self, client: kubernetes.client.ApiClient, *, cache_file: str | None, timeout: Any) -> None:
        self._timeout = timeout  # before super(): discovery starts in the constructor
        super().__init__(client, cache_file=cache_file, discoverer=_Discoverer)

    def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        params.setdefault("_request_timeout", self._timeout)
        return super().request(method, path, body, **params)


def api_client(*, kubeconfig: Path | None = None, in_cluster: bool = False) -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    try:
        if in_cluster:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        else:
            kubernetes.config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else None, client_configuration=configuration
            )
    except (kubernetes.config.ConfigException, OSError, TypeError, ValueError) as exc:
        raise errors.ConfigError(f"cannot load Kubernetes credentials: {exc}") from exc
    # No retries inside the client: urllib3 would retry a GET that timed out three more
    # times, so one hung read held the worker for four request timeouts. The agent's own
    # backoff retries, and reports each failure while it does.
    configuration.retries = 0
    return kubernetes.client.ApiClient(configuration)


class KubeApplier:
    def __init__(
        self,
        client: kubernetes.client.ApiClient,
        *,
        discovery_cache: Path | None = None,
        pause: Callable[[float], None] = time.sleep,
        request_timeout: float | tuple[float, float] = REQUEST_TIMEOUT,
    ) -> None:
        """`request_timeout`: seconds for a whole request, or (connect, read) seconds."""
        self._client = client
        self._cache = discovery_cache
        self._dynamic: DynamicClient | None = None
        # The client's discovery cache is not thread-safe, and node facts and a worker both
        # look kinds up: concurrent lookups failed with KeyError while it filled itself.
        self._discovering = threading.RLock()
        self._pause = pause
        self._timeout = request_timeout

    def _api(self) -> DynamicClient:
        with self._discovering:
            return self._discovered()

    def _discovered(self) -> DynamicClient:
        if self._dynamic is None:
            try:
                self._dynamic = _TimedClient(
                    self._client, cache_file=str(self._cache) if self._cache else None, timeout=self._timeout
                )
            except Exception as exc:  # discovery on first contact: any failure is "cluster unreachable"
                raise _classify(exc, "API discovery") from exc
        return self._dynamic

    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            with self._discovering:
                return self._api().resources.get(api_version=api_version, kind=kind)
        except dynamic_errors.ResourceNotFoundError as exc:
            raise KindMissing(
                f"the cluster has no API for {kind} in {api_version} (is its CRD installed?)",
                objects=(kind,),
            ) from exc
        except errors.ApplyError:
            raise
        except Exception as exc:  # discovery refetches fail like any other request
            raise _classify(exc, f"API discovery for {kind}") from exc

    @staticmethod
    def _namespace(obj: Mapping[str, Any], variant: manifests.Variant, *, namespaced: bool) -> str:
        target_namespace = variant.options.get("targetNamespace")
        if namespaced:
            return str(target_namespace or obj["metadata"].get("namespace") or variant.namespace)
        if target_namespace:
            name = f"{obj['kind']} {obj['metadata']['name']}"
            raise errors.PermanentApplyError(
                f"{name} is cluster-scoped, but the bundle forces namespace {target_namespace}",
                objects=(name,),
            )
        return ""

    def refs(self, bundle: str, variant: manifests.Variant) -> tuple[ObjectRef, ...]:
        """The objects `apply` will create, as far as discovery knows now (kinds whose
        CRD is in the same variant are taken as namespaced until it exists)."""
        found = []
        for obj in variant.objects:
            try:
                namespaced = self._resource(str(obj["apiVersion"]), str(obj["kind"])).namespaced
            except KindMissing:
                namespaced = True
            namespace = self._namespace(obj, variant, namespaced=namespaced)
            found.append(
                ObjectRef(str(obj["apiVersion"]), str(obj["kind"]), namespace, obj["metadata"]["name"])
            )
        return tuple(found)

    def _prepared(
        self, bundle: str, source: Mapping[str, Any], variant: manifests.Variant
    ) -> tuple[Any, dict[str, Any], ObjectRef]:
        """The API resource, the object as we apply it (labelled, namespaced), and its ref."""
        obj = _labelled(source, bundle)
        resource = self._resource(obj["apiVersion"], obj["kind"])
        namespace = self._namespace(obj, variant, namespaced=resource.namespaced)
        if namespace:
            obj["metadata"]["namespace"] = namespace
        return resource, obj, ObjectRef(obj["apiVersion"], obj["kind"], namespace, obj["metadata"]["name"])

    def _ensure_namespace(self, variant: manifests.Variant) -> None:
        """Create the bundle's default namespace when it is missing, as Fleet does.

        Created, not applied: the bundle does not own it (it carries no bundle
        label), so removing the bundle never deletes a namespace others may use.
        """
        name = str(variant.options.get("targetNamespace") or variant.namespace)
        brings_it = any(o["kind"] == "Namespace" and o["metadata"]["name"] == name for o in variant.objects)
        if brings_it:
            return
        namespaces = self._resource("v1", "Namespace")
        try:
            namespaces.get(name=name)
            return
        except dynamic_errors.NotFoundError:
            pass
        except Exception as exc:
            raise _classify(exc, f"Namespace {name}") from exc
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        try:
            namespaces.create(body=body, field_manager=FIELD_MANAGER)
            log.info("created namespace %s for %s", name, variant.deployment_id[:12])
        except dynamic_errors.ConflictError:
            pass
        except Exception as exc:
            raise _classify(exc, f"Namespace {name}") from exc

    def apply(self, bundle: str, variant: manifests.Variant) -> tuple[ObjectRef, ...]:
        """Server-side apply every object of `variant`; return what was applied."""
        objects = sorted(variant.objects, key=lambda o: install_rank(str(o["kind"])))
        if any(str(o["kind"]) not in CLUSTER_SCOPED for o in objects):
            self._ensure_namespace(variant)
        applied: list[ObjectRef] = []
        for source in objects:
            resource, obj, ref = self._prepared(bundle, source, variant)
            namespace = ref.namespace
            try:
                resource.server_side_apply(
                    body=obj,
                    namespace=namespace or None,
                    field_manager=FIELD_MANAGER,
                    force_conflicts=True,
                )
            except Exception as exc:
                raise _classify(exc, str(ref)) from exc
            applied.append(ref)
            if obj["kind"] == "CustomResourceDefinition":
                self._await_established(resource, ref)
        log.info("applied %d objects of %s", len(applied), bundle)
        return tuple(applied)

    def _await_established(self, resource: Any, ref: ObjectRef) -> None:
        deadline = time.monotonic() + CRD_ESTABLISH_TIMEOUT
        while True:
            try:
                live = resource.get(name=ref.name).to_dict()
            except Exception as exc:
                raise _classify(exc, str(ref)) from exc
            conditions = (live.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                return
            if time.monotonic() > deadline:
                raise errors.TransientApplyError(
                    f"{ref} was not Established within {CRD_ESTABLISH_TIMEOUT:.0f}s"
                )
            self._pause(CRD_POLL_INTERVAL)

    def observe(self, bundle: str, variant: manifests.Variant) -> list[Observed]:
        """Each object of `variant` as applied and as it is live now."""
        found = []
        for source in variant.objects:
            resource, obj, ref = self._prepared(bundle, source, variant)
            try:
                live = resource.get(name=ref.name, namespace=ref.namespace or None).to_dict()
            except dynamic_errors.NotFoundError:
                live = None
            except Exception as exc:
                raise _classify(exc, str(ref)) from exc
            found.append(Observed(ref, obj, live))
        return found

    def facts(self) -> status.NodeFacts:
        """Kubernetes version, platform and node readiness, as far as the API tells."""
        try:
            version = self._api().version.get("kubernetes", {})
        except Exception as exc:
            raise _classify(exc, "API version") from exc
        ready: bool | None = None
        try:
            nodes = self._resource("v1", "Node").get().to_dict().get("items", [])
            ready = bool(nodes) and all(_node_ready(node) for node in nodes)
        except Exception:  # no Node API (or not allowed to list nodes): readiness unknown
            ready = None
        return status.NodeFacts(
            kubernetes_version=str(version.get("gitVersion", "")),
            platform=str(version.get("platform", "")),
            ready=ready,
        )

    def remove(self, bundle: str, refs: Iterable[ObjectRef]) -> None:
        """Delete `refs` in reverse install order, skipping objects not labelled as this bundle's."""
        for ref in sorted(refs, key=lambda r: install_rank(r.kind), reverse=True):
            try:
                resource = self._resource(ref.api_version, ref.kind)
            except KindMissing:
                log.info("%s: its API is gone, so is the object", ref)
                continue
            namespace = ref.namespace or None
            try:
                live = resource.get(name=ref.name, namespace=namespace).to_dict()
            except dynamic_errors.NotFoundError:
                continue
            except Exception as exc:
                raise _classify(exc, str(ref)) from exc
            owner = ((live.get("metadata") or {}).get("labels") or {}).get(BUNDLE_LABEL)
            if owner != bundle:
                log.warning("not deleting %s: it is labelled for %r, not %r", ref, owner, bundle)
                continue
            try:
                resource.delete(name=ref.name, namespace=namespace)
            except dynamic_errors.NotFoundError:
                continue
            except Exception as exc:
                raise _classify(exc, str(ref)) from exc
            log.info("deleted %s of %s", ref, bundle)


def _node_ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _labelled(source: Mapping[str, Any], bundle: str) -> dict[str, Any]:
    obj: dict[str, Any] = copy.deepcopy(dict(source))
    metadata = obj.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), BUNDLE_LABEL: bundle}
    return obj


def _status_message(exc: kubernetes.client.exceptions.ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return f"{exc.status} {body.get('reason') or exc.reason}: {message or exc.body or ''}".strip()


def _classify(exc: BaseException, what: str) -> errors.ApplyError:
    """Map a client failure to a permanent or transient ApplyError naming the object."""
    if isinstance(exc, kubernetes.client.exceptions.ApiException):
        message = f"{what}: {_status_message(exc)}"
        if exc.status in (400, 401, 403, 405, 410, 415, 422):
            return errors.PermanentApplyError(message, objects=(what,))
        return errors.TransientApplyError(message, objects=(what,))
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError, TimeoutError)):
        return errors.TransientApplyError(f"{what}: cannot reach the Kubernetes API: {exc}", objects=(what,))
    if isinstance(exc, errors.ApplyError):
        return exc
    return errors.TransientApplyError(f"{what}: {type(exc).__name__}: {exc}", objects=(what,))
