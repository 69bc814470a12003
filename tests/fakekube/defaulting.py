"""Server-side defaults, so live objects differ from manifests the way real ones do.

Only the defaults manifests most often leave out, applied on every write
(after merge/patch, before validation), never overwriting a value:

- Pod specs (Pods and every pod template): restartPolicy Always, dnsPolicy
  ClusterFirst, schedulerName, terminationGracePeriodSeconds 30,
  securityContext {}; containers: imagePullPolicy (Always for `:latest` or no
  tag, else IfNotPresent), terminationMessagePath/Policy, resources {},
  ports[].protocol TCP.
- Deployment: replicas 1, revisionHistoryLimit 10, progressDeadlineSeconds 600,
  RollingUpdate 25%/25%. StatefulSet: replicas 1, podManagementPolicy,
  updateStrategy, revisionHistoryLimit, PVC retention policy. DaemonSet:
  updateStrategy, revisionHistoryLimit. ReplicaSet: replicas 1.
- Job: backoffLimit 6, completions 1, parallelism 1, completionMode, suspend,
  and on create the controller-uid selector and template labels.
  CronJob: concurrencyPolicy, suspend, history limits.
- Service: type ClusterIP, sessionAffinity None, a clusterIP from
  10.43.0.0/16 (kept across updates), ipFamilies, ports[].protocol and
  targetPort, nodePorts for NodePort/LoadBalancer (kept across updates).
- Secret: type Opaque; stringData folded into base64 data and dropped.
- Namespace: spec.finalizers [kubernetes] and the kubernetes.io/metadata.name label.
- PersistentVolumeClaim: volumeMode Filesystem, storageClassName local-path (k3s).
- CRD: conversion strategy None.
"""

from __future__ import annotations

import base64
import itertools
import threading
from typing import Any

_addresses = itertools.count(10)
_node_ports = itertools.count(30080)
_lock = threading.Lock()


def _next(counter: itertools.count[int]) -> int:
    with _lock:
        return next(counter)


def apply_defaults(kind: str, obj: dict[str, Any], live: dict[str, Any] | None) -> None:
    """Fill defaults into `obj` in place; `live` is the stored object on updates."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else None
    if kind == "Secret":
        _secret(obj)
    elif kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif spec is None:
        return
    elif kind == "Pod":
        _pod_spec(spec)
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        _workload(kind, spec)
    elif kind == "Job":
        _job(obj, spec, creating=live is None)
    elif kind == "CronJob":
        for key, value in (("concurrencyPolicy", "Allow"), ("suspend", False)):
            spec.setdefault(key, value)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        job_spec = spec.get("jobTemplate", {}).get("spec")
        if isinstance(job_spec, dict):
            _job_spec(job_spec)
    elif kind == "Service":
        _service(spec, (live or {}).get("spec") or {})
    elif kind == "PersistentVolumeClaim":
        spec.setdefault("volumeMode", "Filesystem")
        spec.setdefault("storageClassName", "local-path")
    elif kind == "CustomResourceDefinition":
        spec.setdefault("conversion", {"strategy": "None"})


def _secret(obj: dict[str, Any]) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _template_spec(spec: dict[str, Any]) -> None:
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        _pod_spec(template["spec"])


def _workload(kind: str, spec: dict[str, Any]) -> None:
    if kind != "DaemonSet":
        spec.setdefault("replicas", 1)
    if kind == "Deployment":
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault(
            "strategy",
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        )
    elif kind == "StatefulSet":
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        spec.setdefault(
            "persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"}
        )
    elif kind == "DaemonSet":
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault(
            "updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
        )
    _template_spec(spec)


def _job_spec(spec: dict[str, Any]) -> None:
    for key, value in (("backoffLimit", 6), ("completions", 1), ("parallelism", 1)):
        spec.setdefault(key, value)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    _template_spec(spec)


def _job(obj: dict[str, Any], spec: dict[str, Any], *, creating: bool) -> None:
    _job_spec(spec)
    if not creating or spec.get("manualSelector") or "selector" in spec:
        return
    uid, name = obj["metadata"]["uid"], obj["metadata"]["name"]
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    template = spec.get("template")
    if isinstance(template, dict):
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
        )


def _pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            if isinstance(container, dict):
                _container(container)


def _container(container: dict[str, Any]) -> None:
    image = str(container.get("image", ""))
    tag = image.rsplit("/", 1)[-1]
    latest = "@" not in tag and (":" not in tag or tag.endswith(":latest"))
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def _service(spec: dict[str, Any], live: dict[str, Any]) -> None:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] == "ExternalName":
        return
    spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    if "clusterIP" not in spec:
        spec["clusterIP"] = live.get("clusterIP") or _address()
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    node_ports = spec["type"] in ("NodePort", "LoadBalancer")
    if node_ports:
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if spec["type"] == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    previous = {
        (p.get("port"), p.get("protocol", "TCP")): p for p in live.get("ports") or [] if isinstance(p, dict)
    }
    for port in spec.get("ports") or []:
        if not isinstance(port, dict):
            continue
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
        if node_ports and "nodePort" not in port:
            old = previous.get((port.get("port"), port["protocol"]), {})
            port["nodePort"] = old.get("nodePort") or _next(_node_ports)


def _address() -> str:
    n = _next(_addresses)
    return f"10.43.{n // 250}.{n % 250 + 1}"
