"""Readiness of live objects, judged from status as a real API server returns it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent import readiness

T0 = "2024-05-01T10:00:00Z"


def _obj(
    api_version: str,
    kind: str,
    *,
    spec: dict[str, Any] | None = None,
    status: Any = None,
    generation: int = 1,
    **metadata: Any,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "0b0c5a8e-6a43-4a3c-9a59-0d6f1f0e2c11",
            "resourceVersion": "48211",
            "generation": generation,
            "creationTimestamp": T0,
            **metadata,
        },
    }
    if spec is not None:
        obj["spec"] = spec
    if status is not None:
        obj["status"] = status
    return obj


def _cond(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    condition = {"type": kind, "status": status, "lastTransitionTime": T0}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


# -- Deployment ---------------------------------------------------------------

DEPLOYMENT_SPEC = {
    "replicas": 2,
    "progressDeadlineSeconds": 600,
    "revisionHistoryLimit": 10,
    "selector": {"matchLabels": {"app": "web"}},
    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web"}]}},
}
AVAILABLE = _cond("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
UNAVAILABLE = _cond(
    "Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."
)
PROGRESSED = _cond(
    "Progressing",
    "True",
    "NewReplicaSetAvailable",
    'ReplicaSet "web-7c5ddbdf54" has successfully progressed.',
)
UPDATING = _cond("Progressing", "True", "ReplicaSetUpdated", 'ReplicaSet "web-59d8c6d9f" is progressing.')


def _deployment(**status: Any) -> dict[str, Any]:
    return _obj(
        "apps/v1",
        "Deployment",
        spec=DEPLOYMENT_SPEC,
        generation=2,
        status={"observedGeneration": 2, **status},
    )


DEPLOYMENTS = [
    pytest.param(
        _deployment(
            replicas=2,
            updatedReplicas=2,
            readyReplicas=2,
            availableReplicas=2,
            conditions=[AVAILABLE, PROGRESSED],
        ),
        True,
        False,
        "2/2 replicas available",
        id="deployment-rolled-out",
    ),
    pytest.param(
        _deployment(
            replicas=2,
            updatedReplicas=2,
            readyReplicas=1,
            availableReplicas=1,
            unavailableReplicas=1,
            conditions=[UNAVAILABLE, UPDATING],
        ),
        False,
        False,
        "1/2 replicas available",
        id="deployment-scaling-up",
    ),
    pytest.param(
        _deployment(
            replicas=3,
            updatedReplicas=2,
            readyReplicas=3,
            availableReplicas=3,
            conditions=[AVAILABLE, UPDATING],
        ),
        False,
        False,
        "1 old replicas pending termination",
        id="deployment-old-replicas-left",
    ),
    pytest.param(
        _deployment(
            replicas=3,
            updatedReplicas=1,
            readyReplicas=2,
            availableReplicas=2,
            unavailableReplicas=1,
            conditions=[AVAILABLE, UPDATING],
        ),
        False,
        False,
        "1/2 replicas updated",
        id="deployment-rolling-out",
    ),
    pytest.param(
        _deployment(
            replicas=2,
            updatedReplicas=2,
            readyReplicas=2,
            availableReplicas=2,
            conditions=[AVAILABLE, UPDATING],
        ),
        False,
        False,
        "rollout not finished",
        id="deployment-counts-met-before-controller-declares-progress",
    ),
    pytest.param(
        _deployment(
            replicas=3,
            updatedReplicas=1,
            readyReplicas=2,
            availableReplicas=2,
            unavailableReplicas=1,
            conditions=[
                AVAILABLE,
                _cond(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    'ReplicaSet "web-59d8c6d9f" has timed out progressing.',
                ),
            ],
        ),
        False,
        True,
        "progress deadline exceeded",
        id="deployment-progress-deadline-exceeded",
    ),
    pytest.param(
        _obj("apps/v1", "Deployment", spec=DEPLOYMENT_SPEC),
        False,
        False,
        "0/2 replicas updated",
        id="deployment-not-yet-seen-by-controller",
    ),
]

# -- StatefulSet, DaemonSet, ReplicaSet ------------------------------------

STS_SPEC = {
    "replicas": 3,
    "serviceName": "db",
    "podManagementPolicy": "OrderedReady",
    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
}


def _sts(spec: dict[str, Any] = STS_SPEC, **status: Any) -> dict[str, Any]:
    full = {
        "observedGeneration": 1,
        "replicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
        "currentReplicas": 3,
        "updatedReplicas": 3,
        "currentRevision": "db-5d8f9c7b6d",
        "updateRevision": "db-5d8f9c7b6d",
        "collisionCount": 0,
        **status,
    }
    return _obj("apps/v1", "StatefulSet", spec=spec, status=full)


def _ds(**status: Any) -> dict[str, Any]:
    full = {
        "observedGeneration": 1,
        "currentNumberScheduled": 3,
        "desiredNumberScheduled": 3,
        "numberAvailable": 3,
        "numberMisscheduled": 0,
        "numberReady": 3,
        "updatedNumberScheduled": 3,
        **status,
    }
    return _obj("apps/v1", "DaemonSet", spec={"selector": {"matchLabels": {"app": "agent"}}}, status=full)


def _rs(**status: Any) -> dict[str, Any]:
    full = {"observedGeneration": 1, "replicas": 2, "fullyLabeledReplicas": 2, **status}
    return _obj("apps/v1", "ReplicaSet", spec={"replicas": 2}, status=full)


WORKLOADS = [
    pytest.param(_sts(), True, False, "3/3 replicas ready", id="statefulset-ready"),
    pytest.param(
        _sts(readyReplicas=2, availableReplicas=2),
        False,
        False,
        "2/3 replicas ready",
        id="statefulset-pod-not-ready",
    ),
    pytest.param(
        _sts(currentReplicas=2, updatedReplicas=1, updateRevision="db-6f7d8b9c5"),
        False,
        False,
        "1/3 replicas updated",
        id="statefulset-rolling-update",
    ),
    pytest.param(
        _sts(updateRevision="db-6f7d8b9c5"),
        False,
        False,
        "rolling out revision db-6f7d8b9c5",
        id="statefulset-revision-not-yet-current",
    ),
    pytest.param(
        _sts(
            {**STS_SPEC, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}},
            currentReplicas=2,
            updatedReplicas=1,
            updateRevision="db-6f7d8b9c5",
        ),
        True,
        False,
        "3/3 replicas ready",
        id="statefulset-partitioned-canary-done",
    ),
    pytest.param(
        _sts(
            {**STS_SPEC, "updateStrategy": {"type": "OnDelete"}},
            currentReplicas=3,
            updatedReplicas=0,
            updateRevision="db-6f7d8b9c5",
        ),
        True,
        False,
        "OnDelete",
        id="statefulset-ondelete",
    ),
    pytest.param(_ds(), True, False, "3/3 pods available", id="daemonset-ready"),
    pytest.param(
        _ds(updatedNumberScheduled=1, numberAvailable=2, numberUnavailable=1),
        False,
        False,
        "1/3 pods updated",
        id="daemonset-rolling-update",
    ),
    pytest.param(
        _ds(numberReady=2, numberAvailable=2, numberUnavailable=1),
        False,
        False,
        "2/3 pods ready",
        id="daemonset-pod-not-ready",
    ),
    pytest.param(
        _obj(
            "apps/v1",
            "DaemonSet",
            status={
                "currentNumberScheduled": 0,
                "desiredNumberScheduled": 0,
                "numberMisscheduled": 0,
                "numberReady": 0,
            },
        ),
        False,
        False,
        "observe",
        id="daemonset-new-all-zeros",
    ),
    pytest.param(_rs(readyReplicas=2, availableReplicas=2), True, False, "2/2", id="replicaset-ready"),
    pytest.param(
        _rs(readyReplicas=1, availableReplicas=1), False, False, "1/2 replicas ready", id="replicaset-short"
    ),
    pytest.param(
        _rs(
            replicas=0,
            fullyLabeledReplicas=0,
            conditions=[
                _cond(
                    "ReplicaFailure",
                    "True",
                    "FailedCreate",
                    'pods "web-7c5dd-x2" is forbidden: exceeded quota: compute',
                )
            ],
        ),
        False,
        False,
        "exceeded quota",
        id="replicaset-replica-failure",
    ),
]

# -- Job, CronJob, Pod --------------------------------------------------------

JOB_SPEC = {
    "backoffLimit": 3,
    "completions": 1,
    "parallelism": 1,
    "template": {"spec": {"restartPolicy": "Never"}},
}


def _job(**status: Any) -> dict[str, Any]:
    return _obj(
        "batch/v1", "Job", spec=JOB_SPEC, status={"terminating": 0, "uncountedTerminatedPods": {}, **status}
    )


RUNNING_POD_CONDITIONS = [
    _cond("PodReadyToStartContainers", "True"),
    _cond("Initialized", "True"),
    _cond("Ready", "True"),
    _cond("ContainersReady", "True"),
    _cond("PodScheduled", "True"),
]
UNREADY_POD_CONDITIONS = [
    _cond("PodReadyToStartContainers", "True"),
    _cond("Initialized", "True"),
    _cond("Ready", "False", "ContainersNotReady", "containers with unready status: [web]"),
    _cond("ContainersReady", "False", "ContainersNotReady", "containers with unready status: [web]"),
    _cond("PodScheduled", "True"),
]


def _container(state: dict[str, Any], *, ready: bool = False, restarts: int = 0) -> dict[str, Any]:
    return {
        "name": "web",
        "image": "registry.local/web:1.4",
        "imageID": "",
        "containerID": "",
        "ready": ready,
        "started": ready,
        "restartCount": restarts,
        "lastState": {},
        "state": state,
    }


def _pod(
    phase: str, conditions: list[dict[str, Any]], *containers: dict[str, Any], **more: Any
) -> dict[str, Any]:
    status = {"phase": phase, "conditions": conditions, "qosClass": "BestEffort", "startTime": T0, **more}
    if containers:
        status["containerStatuses"] = list(containers)
    return _obj("v1", "Pod", spec={"containers": [{"name": "web"}]}, status=status)


JOBS_AND_PODS = [
    pytest.param(
        _job(
            startTime=T0,
            completionTime=T0,
            succeeded=1,
            ready=0,
            conditions=[_cond("SuccessCriteriaMet", "True", "CompletionsReached"), _cond("Complete", "True")],
        ),
        True,
        False,
        "1 succeeded",
        id="job-complete",
    ),
    pytest.param(_job(startTime=T0, active=1, ready=1), False, False, "running: 1 active", id="job-running"),
    pytest.param(_job(), False, False, "not started", id="job-not-started"),
    pytest.param(
        _job(
            startTime=T0,
            failed=4,
            ready=0,
            conditions=[
                _cond(
                    "FailureTarget",
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                ),
                _cond(
                    "Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
                ),
            ],
        ),
        False,
        True,
        "Job failed: BackoffLimitExceeded",
        id="job-failed",
    ),
    pytest.param(
        _job(startTime=T0, conditions=[_cond("Suspended", "True", "JobSuspended", "Job suspended")]),
        False,
        False,
        "suspended",
        id="job-suspended",
    ),
    pytest.param(
        _obj(
            "batch/v1",
            "CronJob",
            spec={"schedule": "*/5 * * * *"},
            status={"lastScheduleTime": T0, "lastSuccessfulTime": T0},
        ),
        True,
        False,
        "schedule",
        id="cronjob",
    ),
    pytest.param(
        _pod("Running", RUNNING_POD_CONDITIONS, _container({"running": {"startedAt": T0}}, ready=True)),
        True,
        False,
        "ready",
        id="pod-running-ready",
    ),
    pytest.param(
        _pod(
            "Pending",
            UNREADY_POD_CONDITIONS,
            _container(
                {
                    "waiting": {
                        "reason": "ImagePullBackOff",
                        "message": 'Back-off pulling image "registry.local/web:1.4"',
                    }
                }
            ),
        ),
        False,
        False,
        "container web: ImagePullBackOff",
        id="pod-image-pull-backoff",
    ),
    pytest.param(
        _pod(
            "Running",
            UNREADY_POD_CONDITIONS,
            _container(
                {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": "back-off 5m0s restarting failed container=web",
                    }
                },
                restarts=7,
            ),
        ),
        False,
        False,
        "CrashLoopBackOff",
        id="pod-crash-looping",
    ),
    pytest.param(
        _pod("Running", UNREADY_POD_CONDITIONS, _container({"running": {"startedAt": T0}})),
        False,
        False,
        "containers with unready status: [web]",
        id="pod-running-probe-failing",
    ),
    pytest.param(
        _pod(
            "Pending",
            [
                _cond(
                    "PodScheduled",
                    "False",
                    "Unschedulable",
                    "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available.",
                )
            ],
        ),
        False,
        False,
        "not scheduled: Unschedulable: 0/1 nodes are available",
        id="pod-unschedulable",
    ),
    pytest.param(
        _pod(
            "Succeeded",
            [_cond("Ready", "False", "PodCompleted")],
            _container({"terminated": {"exitCode": 0, "reason": "Completed"}}),
        ),
        True,
        False,
        "succeeded",
        id="pod-succeeded",
    ),
    pytest.param(
        _pod("Failed", [], reason="Evicted", message="The node was low on resource: memory."),
        False,
        True,
        "Pod failed: Evicted",
        id="pod-evicted",
    ),
    pytest.param(
        _pod(
            "Failed",
            [_cond("Ready", "False", "PodFailed")],
            _container({"terminated": {"exitCode": 1, "reason": "Error"}}),
        ),
        False,
        True,
        "Pod failed: container web: Error",
        id="pod-container-exited-with-error",
    ),
]

# -- PVC, Service, CRD, Namespace, others ----------------------------------------

LB_SPEC = {"type": "LoadBalancer", "clusterIP": "10.43.12.7", "ports": [{"port": 80, "protocol": "TCP"}]}
CRD_SPEC = {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"}, "scope": "Namespaced"}
NAMES_ACCEPTED = _cond("NamesAccepted", "True", "NoConflicts", "no conflicts found")


def _crd(*conditions: dict[str, Any]) -> dict[str, Any]:
    status = {"conditions": list(conditions), "acceptedNames": {"kind": "Widget", "plural": "widgets"}}
    return _obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", spec=CRD_SPEC, status=status)


def _custom(
    *conditions: dict[str, Any], api_version: str = "cert-manager.io/v1", generation: int = 1
) -> dict[str, Any]:
    status = {"conditions": list(conditions)}
    return _obj(
        api_version, "Certificate", spec={"secretName": "web-tls"}, status=status, generation=generation
    )


OTHERS = [
    pytest.param(
        _obj(
            "v1",
            "PersistentVolumeClaim",
            status={"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}},
        ),
        True,
        False,
        "Bound",
        id="pvc-bound",
    ),
    pytest.param(
        _obj("v1", "PersistentVolumeClaim", status={"phase": "Pending"}),
        False,
        False,
        "Pending",
        id="pvc-pending",
    ),
    pytest.param(
        _obj(
            "v1",
            "Service",
            spec={"type": "ClusterIP", "clusterIP": "10.43.0.10"},
            status={"loadBalancer": {}},
        ),
        True,
        False,
        "ClusterIP",
        id="service-clusterip",
    ),
    pytest.param(
        _obj("v1", "Service", spec=LB_SPEC, status={"loadBalancer": {}}),
        False,
        False,
        "waiting for a load balancer address",
        id="service-lb-pending",
    ),
    pytest.param(
        _obj(
            "v1",
            "Service",
            spec=LB_SPEC,
            status={"loadBalancer": {"ingress": [{"ip": "192.168.1.240", "ipMode": "VIP"}]}},
        ),
        True,
        False,
        "192.168.1.240",
        id="service-lb-has-address",
    ),
    pytest.param(
        _crd(
            NAMES_ACCEPTED,
            _cond("Established", "True", "InitialNamesAccepted", "the initial names have been accepted"),
        ),
        True,
        False,
        "established",
        id="crd-established",
    ),
    pytest.param(
        _crd(
            NAMES_ACCEPTED,
            _cond("Established", "False", "Installing", "the initial names have been accepted"),
        ),
        False,
        False,
        "not established yet: Installing",
        id="crd-installing",
    ),
    pytest.param(
        _crd(
            _cond("NamesAccepted", "False", "PluralConflict", '"widgets" is already in use'),
            _cond("Established", "False", "NotAccepted", "not all names are accepted"),
        ),
        False,
        True,
        "names not accepted: PluralConflict",
        id="crd-name-conflict",
    ),
    pytest.param(
        _obj("v1", "Namespace", status={"phase": "Active"}), True, False, "Active", id="namespace-active"
    ),
    pytest.param(
        _obj(
            "v1",
            "Namespace",
            status={
                "phase": "Terminating",
                "conditions": [_cond("NamespaceDeletionContentFailure", "False", "ContentDeleted")],
            },
        ),
        False,
        False,
        "terminating",
        id="namespace-terminating",
    ),
    pytest.param(_obj("v1", "ConfigMap"), True, False, "", id="configmap-no-status"),
    pytest.param(
        _custom(_cond("Ready", "True", "Ready", "Certificate is up to date and has not expired")),
        True,
        False,
        "",
        id="custom-ready-condition-true",
    ),
    pytest.param(
        _custom(
            _cond("Issuing", "True", "DoesNotExist", "Issuing certificate as Secret does not exist"),
            _cond("Ready", "False", "DoesNotExist", "Issuing certificate as Secret does not exist"),
        ),
        False,
        False,
        "not Ready: DoesNotExist: Issuing certificate as Secret does not exist",
        id="custom-ready-condition-false",
    ),
    pytest.param(
        _custom(
            _cond("Ready", "False", "InstallFailed", "install retries exhausted"),
            _cond("Stalled", "True", "RetriesExceeded", "Failed to install after 3 attempts"),
            api_version="helm.toolkit.fluxcd.io/v2",
        ),
        False,
        True,
        "stalled: RetriesExceeded",
        id="custom-stalled",
    ),
    pytest.param(
        _custom(
            _cond("Reconciling", "True", "Progressing", "Reconciliation in progress"),
            _cond("Ready", "Unknown", "Progressing", "Reconciliation in progress"),
            api_version="kustomize.toolkit.fluxcd.io/v1",
        ),
        False,
        False,
        "reconciling: Progressing",
        id="custom-reconciling",
    ),
    pytest.param(
        _obj("example.com/v1", "Deployment", spec={"replicas": 5}),
        True,
        False,
        "",
        id="custom-kind-named-like-a-builtin-has-no-builtin-rule",
    ),
]

# -- bad data -----------------------------------------------------------------

MALFORMED = [
    pytest.param(
        _obj("apps/v1", "Deployment", spec={"replicas": "2"}, status={"replicas": 2}),
        False,
        False,
        "malformed spec.replicas: expected a 64-bit integer, got '2'",
        id="deployment-replicas-as-string",
    ),
    pytest.param(
        _obj("apps/v1", "StatefulSet", spec={"replicas": True}, status={}),
        False,
        False,
        "spec.replicas",
        id="statefulset-replicas-as-bool",
    ),
    pytest.param(
        _obj("v1", "ConfigMap", generation=10**5000, status={"observedGeneration": 1}),
        False,
        False,
        "metadata.generation: expected a 64-bit integer, got an int",
        id="generation-too-large-to-format",
    ),
    pytest.param(
        _obj("v1", "Pod", status="Running"), False, False, "malformed status", id="pod-status-a-string"
    ),
    pytest.param(
        _obj("v1", "Pod", status={"phase": ["Running"]}), False, False, "status.phase", id="pod-phase-a-list"
    ),
    pytest.param(
        _obj("batch/v1", "Job", status={"conditions": "Complete", "startTime": T0, "active": 1}),
        False,
        False,
        "running",
        id="job-conditions-not-a-list",
    ),
    pytest.param(
        {"apiVersion": "v1", "kind": "Service", "metadata": "web"},
        False,
        False,
        "metadata",
        id="metadata-a-string",
    ),
    pytest.param(
        _obj("example.com/v1", "Widget", status="active"),
        True,
        False,
        "",
        id="custom-resource-free-form-status",
    ),
]


@pytest.mark.parametrize(
    ("obj", "ready", "failed", "message"), DEPLOYMENTS + WORKLOADS + JOBS_AND_PODS + OTHERS + MALFORMED
)
def test_assesses_each_kind_like_kstatus(
    obj: dict[str, Any], ready: bool, failed: bool, message: str
) -> None:
    result = readiness.assess(obj)
    assert (result.ready, result.failed) == (ready, failed), result.message
    assert message in result.message
    if not ready:
        assert result.message.strip(), "a not-ready object must say why"


def test_waits_for_the_controller_to_observe_the_latest_generation() -> None:
    rolled_out = _deployment(
        replicas=2,
        updatedReplicas=2,
        readyReplicas=2,
        availableReplicas=2,
        conditions=[AVAILABLE, PROGRESSED],
    )
    assert readiness.assess(rolled_out).ready
    rolled_out["metadata"]["generation"] = 3
    assert readiness.assess(rolled_out) == readiness.Readiness(
        ready=False, message="waiting for the controller to observe generation 3"
    )
    custom = _custom(_cond("Ready", "True"), api_version="example.com/v1", generation=2)
    custom["status"]["observedGeneration"] = 1
    assert readiness.assess(custom) == readiness.Readiness(
        ready=False, message="waiting for the controller to observe generation 2"
    )
    custom["status"]["observedGeneration"] = 2
    assert readiness.assess(custom).ready


def test_a_stale_failure_does_not_count_before_the_new_generation_is_observed() -> None:
    stale = _job(
        startTime=T0,
        observedGeneration=1,
        conditions=[_cond("Failed", "True", "BackoffLimitExceeded")],
    )
    stale["metadata"]["generation"] = 2
    assert readiness.assess(stale).failed is False


def test_an_object_being_deleted_is_not_ready_whatever_its_status() -> None:
    ready_pod = _pod(
        "Running", RUNNING_POD_CONDITIONS, _container({"running": {"startedAt": T0}}, ready=True)
    )
    for obj in (ready_pod, _obj("v1", "ConfigMap"), _obj("v1", "Namespace", status={"phase": "Active"})):
        obj["metadata"] |= {"deletionTimestamp": T0, "deletionGracePeriodSeconds": 30}
        assert readiness.assess(obj) == readiness.Readiness(ready=False, message="being deleted")


def test_messages_stay_on_one_short_line() -> None:
    long = "line one\nline two " + "x" * 500
    result = readiness.assess(_custom(_cond("Ready", "False", "Failing", long)))
    assert "\n" not in result.message
    assert len(result.message) <= readiness.MESSAGE_LIMIT


# -- never raises -------------------------------------------------------------

FIELDS = [
    "metadata",
    "spec",
    "status",
    "generation",
    "deletionTimestamp",
    "observedGeneration",
    "replicas",
    "updatedReplicas",
    "availableReplicas",
    "readyReplicas",
    "currentReplicas",
    "updateStrategy",
    "rollingUpdate",
    "partition",
    "type",
    "conditions",
    "status",
    "reason",
    "message",
    "phase",
    "containerStatuses",
    "initContainerStatuses",
    "state",
    "waiting",
    "terminated",
    "name",
    "loadBalancer",
    "ingress",
    "ip",
    "desiredNumberScheduled",
    "numberReady",
    "startTime",
    "active",
]
KINDS = [
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "ReplicaSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("v1", "Pod"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Service"),
    ("v1", "Namespace"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("example.com/v1", "Widget"),
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["True", "False", "Running", "LoadBalancer", "OnDelete", "Complete", "Ready"])
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=4), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    body=st.dictionaries(st.sampled_from(["metadata", "spec", "status"]), JSONISH, max_size=3),
)
def test_never_raises_on_arbitrary_input(kind: tuple[str, str], body: dict[str, Any]) -> None:
    result = readiness.assess({"apiVersion": kind[0], "kind": kind[1], **body})
    assert isinstance(result, readiness.Readiness)
    assert not (result.ready and result.failed)
    if not result.ready:
        assert result.message


@settings(max_examples=200, deadline=None)
@given(obj=st.dictionaries(st.sampled_from(["apiVersion", "kind", *FIELDS]), JSONISH, max_size=6))
def test_never_raises_without_a_recognisable_kind(obj: dict[str, Any]) -> None:
    result = readiness.assess(obj)
    assert not (result.ready and result.failed)
