"""Which resources the fake serves, and the discovery documents that announce them.

The registry is the single answer to "does /apis/{group}/{version}/{plural}
exist?": routing, CRUD and discovery all ask it, so a custom resource becomes
servable at the same moment it appears in discovery (when its CRD is
Established), exactly as on a real server.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from dataclasses import dataclass
from typing import Any

SERVER_VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.4+k3s1",
    "gitCommit": "a2b8b8e4c1e0b6b5b8a1d7c9f0e1d2c3b4a5f6e7",
    "gitTreeState": "clean",
    "buildDate": "2024-12-17T21:32:04Z",
    "goVersion": "go1.22.9",
    "compiler": "gc",
    "platform": "linux/amd64",
}

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
STATUS_VERBS = ["get", "patch", "update"]


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    status: bool  # has a /status subresource: main writes ignore status, /status writes touch only it
    generation: bool  # the real strategy maintains metadata.generation for this kind
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    builtin: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_kind(self) -> tuple[str, str]:
        return (self.group, self.kind)

    def verbs(self) -> list[str]:
        if self.kind == "Namespace":
            return [verb for verb in VERBS if verb != "deletecollection"]
        return list(VERBS)


def _t(
    group: str,
    kind: str,
    plural: str,
    *,
    namespaced: bool = True,
    status: bool = False,
    generation: bool = False,
    short: tuple[str, ...] = (),
    all_category: bool = False,
) -> ResourceType:
    return ResourceType(
        group=group,
        version="v1",
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        namespaced=namespaced,
        status=status,
        generation=generation,
        short_names=short,
        categories=("all",) if all_category else (),
    )


BUILTINS: tuple[ResourceType, ...] = (
    _t("", "Namespace", "namespaces", namespaced=False, status=True, short=("ns",)),
    _t("", "ConfigMap", "configmaps", short=("cm",)),
    _t("", "Secret", "secrets"),
    _t("", "Service", "services", status=True, short=("svc",), all_category=True),
    _t("", "ServiceAccount", "serviceaccounts", short=("sa",)),
    _t("", "Pod", "pods", status=True, short=("po",), all_category=True),
    _t("", "PersistentVolumeClaim", "persistentvolumeclaims", status=True, short=("pvc",)),
    _t(
        "apps",
        "Deployment",
        "deployments",
        status=True,
        generation=True,
        short=("deploy",),
        all_category=True,
    ),
    _t(
        "apps", "StatefulSet", "statefulsets", status=True, generation=True, short=("sts",), all_category=True
    ),
    _t("apps", "DaemonSet", "daemonsets", status=True, generation=True, short=("ds",), all_category=True),
    _t("apps", "ReplicaSet", "replicasets", status=True, generation=True, short=("rs",), all_category=True),
    _t("batch", "Job", "jobs", status=True, generation=True, all_category=True),
    _t("batch", "CronJob", "cronjobs", status=True, generation=True, short=("cj",), all_category=True),
    _t("networking.k8s.io", "Ingress", "ingresses", status=True, generation=True, short=("ing",)),
    _t("networking.k8s.io", "NetworkPolicy", "networkpolicies", generation=True, short=("netpol",)),
    _t("rbac.authorization.k8s.io", "Role", "roles"),
    _t("rbac.authorization.k8s.io", "RoleBinding", "rolebindings"),
    _t("rbac.authorization.k8s.io", "ClusterRole", "clusterroles", namespaced=False),
    _t("rbac.authorization.k8s.io", "ClusterRoleBinding", "clusterrolebindings", namespaced=False),
    _t(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        namespaced=False,
        status=True,
        generation=True,
        short=("crd", "crds"),
    ),
)

_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key putting versions in Kubernetes priority order: v2 > v1 > v1beta2 > v1alpha1 > others."""
    match = _VERSION.match(version)
    if not match:
        return (3, 0, 0, version)
    major, stability, minor = match.groups()
    rank = {None: 0, "beta": 1, "alpha": 2}[stability]
    return (rank, -int(major), -int(minor or 0), version)


def crd_types(crd: dict[str, Any]) -> list[ResourceType]:
    """The served versions of a CRD as resource types (conversion strategy None: same fields in every version)."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    out = []
    for entry in spec.get("versions", []):
        if not entry.get("served", True):
            continue
        out.append(
            ResourceType(
                group=spec["group"],
                version=entry["name"],
                kind=names["kind"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                namespaced=spec.get("scope") == "Namespaced",
                status="status" in (entry.get("subresources") or {}),
                generation=True,
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                builtin=False,
            )
        )
    return out


class Registry:
    """The resource types currently served; custom ones come and go with their CRDs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._custom: dict[str, list[ResourceType]] = {}  # CRD name -> its served versions

    def _all(self) -> list[ResourceType]:
        with self._lock:
            custom = [t for types in self._custom.values() for t in types]
        return [*BUILTINS, *custom]

    def serve_crd(self, crd: dict[str, Any]) -> None:
        with self._lock:
            self._custom[crd["metadata"]["name"]] = crd_types(crd)

    def forget_crd(self, name: str) -> None:
        with self._lock:
            self._custom.pop(name, None)

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        for rtype in self._all():
            if (rtype.group, rtype.version, rtype.plural) == (group, version, plural):
                return rtype
        return None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        for rtype in self._all():
            if rtype.api_version == api_version and rtype.kind == kind:
                return rtype
        return None

    def kind_named(self, kind: str) -> list[ResourceType]:
        return [rtype for rtype in self._all() if rtype.kind == kind]

    def versions_of(self, group: str, kind: str) -> list[ResourceType]:
        return [rtype for rtype in self._all() if rtype.group_kind == (group, kind)]

    def groups(self) -> dict[str, list[str]]:
        """Group name -> served versions, preferred first."""
        out: dict[str, set[str]] = {}
        for rtype in self._all():
            out.setdefault(rtype.group, set()).add(rtype.version)
        return {group: sorted(versions, key=version_priority) for group, versions in out.items()}

    def resources(self, group: str, version: str) -> list[ResourceType]:
        return [rtype for rtype in self._all() if (rtype.group, rtype.version) == (group, version)]


def _storage_version_hash(rtype: ResourceType) -> str:
    digest = hashlib.sha256(f"{rtype.group}/{rtype.version}/{rtype.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = [_group(name, versions) for name, versions in registry.groups().items() if name]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, name: str) -> dict[str, Any] | None:
    versions = registry.groups().get(name)
    if not name or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.resources(group, version)
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for rtype in sorted(types, key=lambda t: t.plural):
        entry: dict[str, Any] = {
            "name": rtype.plural,
            "singularName": rtype.singular,
            "namespaced": rtype.namespaced,
            "kind": rtype.kind,
            "verbs": rtype.verbs(),
            "storageVersionHash": _storage_version_hash(rtype),
        }
        if rtype.short_names:
            entry["shortNames"] = list(rtype.short_names)
        if rtype.categories:
            entry["categories"] = list(rtype.categories)
        resources.append(entry)
        if rtype.status:
            resources.append(
                {
                    "name": f"{rtype.plural}/status",
                    "singularName": "",
                    "namespaced": rtype.namespaced,
                    "kind": rtype.kind,
                    "verbs": list(STATUS_VERBS),
                }
            )
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }
