"""Whether one live Kubernetes object is ready (pure: no I/O, no clock).

After applying a bundle the agent must say whether its objects are ready, but
Kubernetes has no single readiness field: each built-in controller reports
progress in its own status shape. This module keeps that knowledge in one
place and follows the kstatus conventions (sigs.k8s.io/cli-utils), which
Flux, Argo CD and `kubectl wait` users already know:

- generic rules first, for every kind: an object being deleted, or whose
  controller has not yet observed its latest generation, is not ready; a
  ``Stalled`` condition is a failure and a ``Reconciling`` one is progress;
- then one rule per built-in kind, keyed by API group *and* kind, so that a
  custom ``Deployment`` in some other group is not read as apps/Deployment;
- any other kind is judged by its ``Ready`` condition, or is ready once
  applied when it has none.

``failed`` is reserved for outcomes that waiting will not fix (a failed Job,
a Deployment past its progress deadline): the bundle is NotReady, as Fleet
reports it, and the object's message says "failed: …" so people can tell.

The input is whatever the API server sent, so nothing here trusts its shape
and `assess` never raises. A field of the wrong type on a kind with a rule
makes the object not ready with a message naming the field; other kinds stay
lenient about ``status``, which a custom resource may use for anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, overload

MESSAGE_LIMIT = 120  # condition messages can run to paragraphs; status reports carry one short line
INT64 = range(-(2**63), 2**63)  # Kubernetes counts are int32/int64; a huge int cannot even be formatted
NO_PROGRESS_DEADLINE = 2**31 - 1  # the Deployment controller's "never time out" progressDeadlineSeconds


@dataclass(frozen=True)
class Readiness:
    """The verdict on one object; `failed` implies not `ready`."""

    ready: bool
    failed: bool = False  # a terminal failure: waiting will not make it ready
    message: str = ""  # one short line for people


def assess(obj: Mapping[str, Any]) -> Readiness:
    """How ready `obj` (a live object as the API returns it) is; never raises."""
    if not isinstance(obj, Mapping):
        return _not_ready(f"not an object: {_show(obj)}")
    rule = _RULES.get(_group_kind(obj))
    root = _Fields(obj, "")
    try:
        metadata = root.section("metadata")
        status = root.section("status") if rule is not None else root.lenient_section("status")
        verdict = _generic(metadata, status)
        if verdict is not None:
            return verdict
        if rule is None:
            return _other(status)
        return rule(root.section("spec"), status)
    except _Malformed as exc:
        return _not_ready(f"malformed {exc}")


class _Malformed(Exception):
    """A field has a type the API server would never send; `assess` reports it."""


@dataclass(frozen=True)
class _Fields:
    """One section of an object and its path, so bad data can be named."""

    data: Mapping[str, Any]
    path: str

    def section(self, key: str) -> _Fields:
        value = self.data.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise _Malformed(f"{self._at(key)}: expected an object, got {_show(value)}")
        return _Fields(value or {}, self._at(key))

    def lenient_section(self, key: str) -> _Fields:
        value = self.data.get(key)
        return _Fields(value if isinstance(value, Mapping) else {}, self._at(key))

    @overload
    def number(self, key: str, default: int) -> int: ...
    @overload
    def number(self, key: str, default: None = None) -> int | None: ...
    def number(self, key: str, default: int | None = None) -> int | None:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value not in INT64:
            raise _Malformed(f"{self._at(key)}: expected a 64-bit integer, got {_show(value)}")
        return value

    def text(self, key: str, default: str = "") -> str:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise _Malformed(f"{self._at(key)}: expected a string, got {_show(value)}")
        return value

    def items(self, key: str) -> list[Mapping[str, Any]]:
        """The objects in a list field; anything else in it is skipped."""
        value = self.data.get(key)
        if not isinstance(value, list):
            return []
        return [item for item in value if isinstance(item, Mapping)]

    def _at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key


@dataclass(frozen=True)
class _Condition:
    status: str
    reason: str
    message: str

    @property
    def true(self) -> bool:
        return self.status == "True"


def _conditions(status: _Fields) -> dict[str, _Condition]:
    """status.conditions by type (first wins). Conditions are a convention that
    custom resources bend, so entries without a string type are ignored."""
    found: dict[str, _Condition] = {}
    for item in status.items("conditions"):
        kind = item.get("type")
        if isinstance(kind, str) and kind not in found:
            found[kind] = _Condition(
                _str(item.get("status")), _str(item.get("reason")), _str(item.get("message"))
            )
    return found


def _generic(metadata: _Fields, status: _Fields) -> Readiness | None:
    if metadata.data.get("deletionTimestamp"):
        return _not_ready("being deleted")
    generation = metadata.number("generation")
    observed = status.number("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return _not_ready(f"waiting for the controller to observe generation {generation}")
    conditions = _conditions(status)
    stalled = conditions.get("Stalled")
    if stalled and stalled.true:
        return _failed(_say("stalled", stalled))
    reconciling = conditions.get("Reconciling")
    if reconciling and reconciling.true:
        return _not_ready(_say("reconciling", reconciling))
    return None


def _deployment(spec: _Fields, status: _Fields) -> Readiness:
    conditions = _conditions(status)
    progressing = conditions.get("Progressing")
    if progressing and progressing.reason == "ProgressDeadlineExceeded":
        return _failed(_say("progress deadline exceeded", progressing, with_reason=False))
    want = spec.number("replicas", 1)
    total = status.number("replicas", 0)
    updated = status.number("updatedReplicas", 0)
    available = status.number("availableReplicas", 0)
    if updated < want:
        return _not_ready(f"{updated}/{want} replicas updated")
    if total > updated:
        return _not_ready(f"{total - updated} old replicas pending termination")
    if total > want:
        return _not_ready(f"{total - want} replicas pending termination")
    if available < want:
        return _not_ready(f"{available}/{want} replicas available")
    condition = conditions.get("Available")
    if not (condition and condition.true):
        return _not_ready(_say("not Available", condition))
    # Without a progress deadline the controller never reports the rollout done.
    if spec.number("progressDeadlineSeconds", NO_PROGRESS_DEADLINE) != NO_PROGRESS_DEADLINE and not (
        progressing and progressing.true and progressing.reason == "NewReplicaSetAvailable"
    ):
        return _not_ready(_say("rollout not finished", progressing))
    return _ready(f"{available}/{want} replicas available")


def _stateful_set(spec: _Fields, status: _Fields) -> Readiness:
    want = spec.number("replicas", 1)
    total = status.number("replicas", 0)
    ready = status.number("readyReplicas", 0)
    if total < want:
        return _not_ready(f"{total}/{want} replicas created")
    if ready < want:
        return _not_ready(f"{ready}/{want} replicas ready")
    if total > want:
        return _not_ready(f"{total - want} replicas pending termination")
    strategy = spec.section("updateStrategy")
    if strategy.text("type", "RollingUpdate") == "OnDelete":
        return _ready(f"{ready}/{want} replicas ready (OnDelete: pods update when deleted)")
    # Pods below the partition stay at the old revision on purpose.
    partition = strategy.section("rollingUpdate").number("partition", 0)
    updated = status.number("updatedReplicas", 0)
    if updated < want - partition:
        return _not_ready(f"{updated}/{want - partition} replicas updated")
    if partition <= 0:
        current = status.number("currentReplicas", 0)
        if current < want:
            return _not_ready(f"{current}/{want} replicas at the current revision")
        current_revision, update_revision = status.text("currentRevision"), status.text("updateRevision")
        if current_revision and update_revision and current_revision != update_revision:
            return _not_ready(f"rolling out revision {update_revision}")
    return _ready(f"{ready}/{want} replicas ready")


def _daemon_set(spec: _Fields, status: _Fields) -> Readiness:
    # A new DaemonSet's status is all zeros, which would otherwise read as done.
    if status.number("observedGeneration") is None:
        return _not_ready("waiting for the controller to observe the DaemonSet")
    desired = status.number("desiredNumberScheduled", 0)
    for key, what in (
        ("currentNumberScheduled", "scheduled"),
        ("updatedNumberScheduled", "updated"),
        ("numberReady", "ready"),
        ("numberAvailable", "available"),
    ):
        count = status.number(key, 0)
        if count < desired:
            return _not_ready(f"{count}/{desired} pods {what}")
    return _ready(f"{desired}/{desired} pods available")


def _replica_set(spec: _Fields, status: _Fields) -> Readiness:
    failure = _conditions(status).get("ReplicaFailure")
    if failure and failure.true:
        return _not_ready(_say("replica failure", failure))
    want = spec.number("replicas", 1)
    ready = status.number("readyReplicas", 0)
    available = status.number("availableReplicas", 0)
    total = status.number("replicas", 0)
    if ready < want:
        return _not_ready(f"{ready}/{want} replicas ready")
    if available < want:
        return _not_ready(f"{available}/{want} replicas available")
    if total > want:
        return _not_ready(f"{total - want} replicas pending termination")
    return _ready(f"{available}/{want} replicas available")


def _job(spec: _Fields, status: _Fields) -> Readiness:
    conditions = _conditions(status)
    # FailureTarget is set first when a pod failure policy decides; Failed follows.
    for kind in ("Failed", "FailureTarget"):
        condition = conditions.get(kind)
        if condition and condition.true:
            return _failed(f"Job failed: {condition.reason or condition.message or 'no reason given'}")
    complete = conditions.get("Complete")
    if complete and complete.true:
        return _ready(f"Job complete: {status.number('succeeded', 0)} succeeded")
    suspended = conditions.get("Suspended")
    if suspended and suspended.true:
        return _not_ready("Job suspended")
    if not status.text("startTime"):
        return _not_ready("Job not started")
    return _not_ready(f"running: {status.number('active', 0)} active")


def _cron_job(spec: _Fields, status: _Fields) -> Readiness:
    return _ready("schedule")


def _pod(spec: _Fields, status: _Fields) -> Readiness:
    phase = status.text("phase")
    if phase == "Succeeded":
        return _ready("Pod succeeded")
    if phase == "Failed":
        why = status.text("reason") or _container(status, "terminated") or "no reason given"
        return _failed(_clip(f"Pod failed: {why}"))
    conditions = _conditions(status)
    ready = conditions.get("Ready")
    if phase == "Running" and ready and ready.true:
        return _ready("Pod ready")
    waiting = _container(status, "waiting")
    if waiting:
        return _not_ready(waiting)
    scheduled = conditions.get("PodScheduled")
    if scheduled and scheduled.status == "False":
        return _not_ready(_say("not scheduled", scheduled))
    return _not_ready(_say(f"{phase or 'no phase yet'}, not ready", ready))


def _container(status: _Fields, state_name: str) -> str:
    """The first container in `state_name` (waiting, terminated) and its reason;
    init containers come first because they hold the others back."""
    for entry in status.items("initContainerStatuses") + status.items("containerStatuses"):
        state = entry.get("state")
        detail = state.get(state_name) if isinstance(state, Mapping) else None
        reason = detail.get("reason") if isinstance(detail, Mapping) else None
        if isinstance(reason, str) and reason:
            return _clip(f"container {_str(entry.get('name')) or '?'}: {reason}")
    return ""


def _persistent_volume_claim(spec: _Fields, status: _Fields) -> Readiness:
    phase = status.text("phase")
    if phase == "Bound":
        return _ready("Bound")
    return _not_ready(f"claim is {phase or 'not bound yet'}")


def _service(spec: _Fields, status: _Fields) -> Readiness:
    kind = spec.text("type", "ClusterIP")
    if kind != "LoadBalancer":
        return _ready(kind)
    ingress = status.section("loadBalancer").items("ingress")
    if not ingress:
        return _not_ready("waiting for a load balancer address")
    address = ingress[0].get("ip") or ingress[0].get("hostname")
    return _ready(f"load balancer at {address}" if isinstance(address, str) else "load balancer ready")


def _custom_resource_definition(spec: _Fields, status: _Fields) -> Readiness:
    conditions = _conditions(status)
    names = conditions.get("NamesAccepted")
    if names and names.status == "False":
        # A name clash lasts until someone changes the definition.
        return _failed(_say("names not accepted", names))
    established = conditions.get("Established")
    if established and established.true:
        return _ready("established")
    return _not_ready(_say("not established yet", established))


def _namespace(spec: _Fields, status: _Fields) -> Readiness:
    phase = status.text("phase")
    if phase == "Terminating":
        return _not_ready("namespace is terminating")
    return _ready(phase)


def _other(status: _Fields) -> Readiness:
    ready = _conditions(status).get("Ready")
    if ready is None or ready.true:
        return _ready("")
    return _not_ready(_say("not Ready", ready))


_Rule = Callable[[_Fields, _Fields], Readiness]
_RULES: dict[tuple[str, str], _Rule] = {
    ("apps", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _stateful_set,
    ("apps", "DaemonSet"): _daemon_set,
    ("apps", "ReplicaSet"): _replica_set,
    ("batch", "Job"): _job,
    ("batch", "CronJob"): _cron_job,
    ("", "Pod"): _pod,
    ("", "PersistentVolumeClaim"): _persistent_volume_claim,
    ("", "Service"): _service,
    ("", "Namespace"): _namespace,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _custom_resource_definition,
}


def _group_kind(obj: Mapping[str, Any]) -> tuple[str, str]:
    api_version, kind = _str(obj.get("apiVersion")), _str(obj.get("kind"))
    group, _, _version = api_version.rpartition("/")
    return group, kind


def _say(what: str, condition: _Condition | None, *, with_reason: bool = True) -> str:
    """`what`, then the condition's reason and message when they add something."""
    details = [condition.reason if with_reason else "", condition.message] if condition else []
    return _clip(": ".join([what, *(detail for detail in details if detail)]))


def _clip(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MESSAGE_LIMIT else line[: MESSAGE_LIMIT - 3] + "..."


def _show(value: object) -> str:
    """A short, safe rendering: repr of a huge int or a deep list can itself raise."""
    if isinstance(value, str):
        return repr(value if len(value) <= 30 else value[:27] + "...")
    if value is None or isinstance(value, bool | float) or (isinstance(value, int) and value in INT64):
        return repr(value)
    name = type(value).__name__
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _ready(message: str) -> Readiness:
    return Readiness(ready=True, message=message)


def _not_ready(message: str) -> Readiness:
    return Readiness(ready=False, message=message)


def _failed(message: str) -> Readiness:
    return Readiness(ready=False, failed=True, message=message)
