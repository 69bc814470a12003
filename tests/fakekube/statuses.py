"""The status a real controller or kubelet would write, ready or stuck.

Shapes follow the real types (zero counters omitted where the Go field is
`omitempty`) and the conditions kstatus reads, so readiness computed from
these objects matches what a tool would compute against a real cluster.
A condition keeps its lastTransitionTime while its status does not change.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

Obj = dict[str, Any]


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _hash(value: Any) -> str:
    """A pod-template-hash-like suffix."""
    return _digest(value)[:10]


def _condition(
    previous: Obj, kind: str, status: str, reason: str, message: str, now: str, *, stamp: str | None = None
) -> Obj:
    """A condition; `stamp` names the extra timestamp the type carries (lastUpdateTime, lastProbeTime)."""
    before = next((c for c in previous.get("conditions") or [] if c.get("type") == kind), None)
    since = before["lastTransitionTime"] if before and before.get("status") == status else now
    out = {"type": kind, "status": status}
    if stamp:
        out[stamp] = now
    out["lastTransitionTime"] = since
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def _omit_zero(status: Obj, *always: str) -> Obj:
    return {k: v for k, v in status.items() if v != 0 or k in always}


def compute(kind: str, obj: Obj, *, failing: str | None, now: str, lb_address: str) -> Obj | None:
    """The status to write for `obj`, or None when the kind has nothing to simulate."""
    builder = _BUILDERS.get(kind)
    return builder(obj, failing, now, lb_address) if builder else None


def _deployment(obj: Obj, failing: str | None, now: str, _: str) -> Obj:
    spec, meta, old = obj.get("spec", {}), obj["metadata"], obj.get("status") or {}
    replicas = spec.get("replicas", 1)
    replica_set = f"{meta['name']}-{_hash(spec.get('template'))}"
    ready = 0 if failing else replicas
    stamp = "lastUpdateTime"
    if failing:
        message = "Deployment does not have minimum availability."
        available = _condition(
            old, "Available", "False", "MinimumReplicasUnavailable", message, now, stamp=stamp
        )
        progressing = _condition(
            old, "Progressing", "False", "ProgressDeadlineExceeded", failing, now, stamp=stamp
        )
    else:
        message = "Deployment has minimum availability."
        available = _condition(
            old, "Available", "True", "MinimumReplicasAvailable", message, now, stamp=stamp
        )
        message = f'ReplicaSet "{replica_set}" has successfully progressed.'
        progressing = _condition(
            old, "Progressing", "True", "NewReplicaSetAvailable", message, now, stamp=stamp
        )
    counts = _omit_zero(
        {
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": replicas - ready,
        }
    )
    return {"observedGeneration": meta.get("generation", 1), **counts, "conditions": [available, progressing]}


def _replica_set(obj: Obj, failing: str | None, now: str, _: str) -> Obj:
    replicas = obj.get("spec", {}).get("replicas", 1)
    ready = 0 if failing else replicas
    counts = {
        "replicas": replicas,
        "fullyLabeledReplicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
    }
    return {**_omit_zero(counts, "replicas"), "observedGeneration": obj["metadata"].get("generation", 1)}


def _stateful_set(obj: Obj, failing: str | None, now: str, _: str) -> Obj:
    spec, meta = obj.get("spec", {}), obj["metadata"]
    replicas = spec.get("replicas", 1)
    ready = 0 if failing else replicas
    revision = f"{meta['name']}-{_hash(spec.get('template'))}"
    counts = {
        "replicas": replicas,
        "readyReplicas": ready,
        "currentReplicas": replicas,
        "updatedReplicas": replicas,
        "availableReplicas": ready,
    }
    return {
        "observedGeneration": meta.get("generation", 1),
        **_omit_zero(counts, "replicas", "availableReplicas"),
        "currentRevision": revision,
        "updateRevision": revision,
        "collisionCount": 0,
    }


def _daemon_set(obj: Obj, failing: str | None, now: str, _: str) -> Obj:
    ready = 0 if failing else 1
    counts = {
        "currentNumberScheduled": 1,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": 1,
        "numberReady": ready,
        "observedGeneration": obj["metadata"].get("generation", 1),
        "updatedNumberScheduled": 1,
        "numberAvailable": ready,
        "numberUnavailable": 1 - ready,
    }
    return _omit_zero(
        counts, "currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"
    )


def _job(obj: Obj, failing: str | None, now: str, _: str) -> Obj:
    spec, old = obj.get("spec", {}), obj.get("status") or {}
    probe = "lastProbeTime"
    base = {
        "startTime": old.get("startTime", now),
        "ready": 0,
        "terminating": 0,
        "uncountedTerminatedPods": {},
    }
    if failing:
        reason = "BackoffLimitExceeded"
        conditions = [
            _condition(
                old,
                "FailureTarget",
                "True",
                reason,
                "Job has reached the specified backoff limit",
                now,
                stamp=probe,
            ),
            _condition(old, "Failed", "True", reason, failing, now, stamp=probe),
        ]
        return {**base, "failed": spec.get("backoffLimit", 6) + 1, "conditions": conditions}
    reached = "Reached expected number of succeeded pods"
    conditions = [
        _condition(old, "SuccessCriteriaMet", "True", "CompletionsReached", reached, now, stamp=probe),
        _condition(old, "Complete", "True", "CompletionsReached", reached, now, stamp=probe),
    ]
    return {**base, "completionTime": now, "succeeded": spec.get("completions", 1), "conditions": conditions}


def _pod(obj: Obj, failing: str | None, now: str, _: str) -> Obj:
    old = obj.get("status") or {}
    containers = [c for c in obj.get("spec", {}).get("containers") or [] if isinstance(c, dict)]
    names = " ".join(c.get("name", "") for c in containers)
    conditions = []
    for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"):
        if failing and kind in ("Ready", "ContainersReady"):
            message = f"containers with unready status: [{names}]"
            conditions.append(_condition(old, kind, "False", "ContainersNotReady", message, now))
        else:
            conditions.append(_condition(old, kind, "True", "", "", now))
    statuses = []
    for container in containers:
        state = (
            {"waiting": {"reason": "CrashLoopBackOff", "message": failing}}
            if failing
            else {"running": {"startedAt": old.get("startTime", now)}}
        )
        statuses.append(
            {
                "name": container.get("name"),
                "image": container.get("image"),
                "imageID": f"{container.get('image')}@sha256:{_digest(container.get('image'))}",
                "containerID": f"containerd://{_digest([obj['metadata'].get('uid'), container.get('name')])}",
                "ready": not failing,
                "started": not failing,
                "restartCount": 3 if failing else 0,
                "state": state,
            }
        )
    return {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": "10.0.0.1",
        "hostIPs": [{"ip": "10.0.0.1"}],
        "podIP": old.get("podIP") or f"10.42.0.{int(_hash(obj['metadata'].get('uid')), 16) % 250 + 2}",
        "startTime": old.get("startTime", now),
        "containerStatuses": statuses,
        "qosClass": "BestEffort",
    }


def _claim(obj: Obj, failing: str | None, now: str, _: str) -> Obj:
    if failing:
        return {"phase": "Pending"}
    spec = obj.get("spec", {})
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    return {
        "phase": "Bound",
        "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
        "capacity": {"storage": storage},
    }


def _crd(obj: Obj, failing: str | None, now: str, _: str) -> Obj:
    spec, old = obj.get("spec", {}), obj.get("status") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    stored = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
    if failing:
        conditions = [
            _condition(old, "NamesAccepted", "False", "NameConflict", failing, now),
            _condition(old, "Established", "False", "NotAccepted", "not all names are accepted", now),
        ]
        return {
            "acceptedNames": {"kind": "", "plural": ""},
            "conditions": conditions,
            "storedVersions": stored,
        }
    conditions = [
        _condition(old, "NamesAccepted", "True", "NoConflicts", "no conflicts found", now),
        _condition(
            old, "Established", "True", "InitialNamesAccepted", "the initial names have been accepted", now
        ),
    ]
    return {"acceptedNames": names, "conditions": conditions, "storedVersions": stored}


def _service(obj: Obj, failing: str | None, now: str, lb_address: str) -> Obj | None:
    if obj.get("spec", {}).get("type") != "LoadBalancer":
        return None
    if failing:
        return {"loadBalancer": {}}
    existing = (obj.get("status") or {}).get("loadBalancer", {}).get("ingress")
    return {"loadBalancer": {"ingress": existing or [{"ip": lb_address, "ipMode": "VIP"}]}}


_BUILDERS = {
    "Deployment": _deployment,
    "ReplicaSet": _replica_set,
    "StatefulSet": _stateful_set,
    "DaemonSet": _daemon_set,
    "Job": _job,
    "Pod": _pod,
    "PersistentVolumeClaim": _claim,
    "CustomResourceDefinition": _crd,
    "Service": _service,
}
SIMULATED = frozenset(_BUILDERS)
