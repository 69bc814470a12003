"""The validation the fake performs: a deliberate, documented subset.

Each rule copies a real one, with the real field paths and messages, so code
that reports 422s can be tested. Exactly these are checked (422 Invalid):

- metadata.name: required on create (unless generateName); an RFC 1123
  subdomain (a DNS label for Namespace and Service); for a CRD it must be
  `<spec.names.plural>.<spec.group>`.
- metadata.labels: valid qualified-name keys and label values.
- ConfigMap data/binaryData and Secret data keys: `[-._a-zA-Z0-9]+`; Secret
  data values valid base64 (400 in the real decoder; 422 here).
- Pod specs (Pod and every template): at least one container; each container
  has a name (unique) and an image.
- Deployment/StatefulSet/DaemonSet/ReplicaSet/Job with a template:
  spec.selector present and non-empty, and it selects the template labels.
- Job (and CronJob jobTemplate) pod restartPolicy is OnFailure or Never.
- Service (except ExternalName): at least one port, ports 1-65535.
- CRD: group, names.plural, names.kind, scope Namespaced|Cluster, at least one
  version, exactly one storage version.
- Updates: selector immutable (Deployment, StatefulSet, DaemonSet, ReplicaSet,
  Job), Job spec.template immutable, StatefulSet spec immutable except
  replicas/template/updateStrategy/persistentVolumeClaimRetentionPolicy/
  minReadySeconds/ordinals, CRD spec.scope immutable, Service clusterIP
  immutable, PVC spec immutable except resources.requests.

No OpenAPI schema validation is done, for built-ins or for custom resources.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from tests.fakekube import selectors
from tests.fakekube.errors import Cause

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_SUBDOMAIN_HELP = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation "
    "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_HELP = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")
_STS_MUTABLE = {
    "replicas",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
    "ordinals",
}


def _required(field: str) -> Cause:
    return Cause("FieldValueRequired", "Required value", field)


def _invalid(field: str, value: Any, why: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {json.dumps(value)}: {why}", field)


def _immutable(field: str, value: Any) -> Cause:
    return _invalid(field, value, "field is immutable")


def validate(kind: str, obj: dict[str, Any], live: dict[str, Any] | None) -> list[Cause]:
    """Problems with `obj` (to be stored); `live` is the stored object on updates."""
    causes = _metadata(kind, obj)
    raw_spec = obj.get("spec")
    spec: dict[str, Any] = raw_spec if isinstance(raw_spec, dict) else {}
    if kind in ("ConfigMap", "Secret"):
        causes += _data(kind, obj)
    elif kind == "Pod":
        causes += _pod_spec(spec, "spec")
    elif kind in _WORKLOADS:
        causes += _workload(kind, spec)
    elif kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        causes += _job_pod(job, "spec.jobTemplate.spec.template")
        causes += _pod_spec(
            (job.get("template") or {}).get("spec") or {}, "spec.jobTemplate.spec.template.spec"
        )
    elif kind == "Service" and spec.get("type") != "ExternalName":
        causes += _service(spec)
    elif kind == "CustomResourceDefinition":
        causes += _crd(obj, spec)
    if live is not None:
        causes += _immutability(kind, spec, live.get("spec") or {})
    return causes


def _metadata(kind: str, obj: dict[str, Any]) -> list[Cause]:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    out = []
    if not name:
        out.append(
            Cause("FieldValueRequired", "Required value: name or generateName is required", "metadata.name")
        )
    elif kind in ("Namespace", "Service"):
        if not _LABEL.match(name) or len(name) > 63:
            out.append(_invalid("metadata.name", name, _LABEL_HELP))
    elif not _SUBDOMAIN.match(name) or len(name) > 253:
        out.append(_invalid("metadata.name", name, _SUBDOMAIN_HELP))
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        return [*out, _invalid("metadata.labels", labels, "must be a map of strings")]
    for key, value in labels.items():
        problem = selectors.label_problem(key, value)
        if problem:
            out.append(_invalid("metadata.labels", *problem))
    return out


def _data(kind: str, obj: dict[str, Any]) -> list[Cause]:
    out = []
    for field in ("data", "binaryData"):
        values = obj.get(field) or {}
        for key, value in values.items():
            if not _DATA_KEY.match(key):
                why = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
                out.append(_invalid(f"{field}[{key}]", key, why))
            elif kind == "Secret" or field == "binaryData":
                try:
                    base64.b64decode(str(value), validate=True)
                except binascii.Error:
                    out.append(
                        _invalid(f"{field}[{key}]", "<secret contents redacted>", "illegal base64 data")
                    )
    return out


def _pod_spec(spec: dict[str, Any], at: str) -> list[Cause]:
    containers = spec.get("containers") or []
    if not containers:
        return [_required(f"{at}.containers")]
    out = []
    seen = set()
    for index, container in enumerate(containers):
        where = f"{at}.containers[{index}]"
        if not isinstance(container, dict):
            out.append(_invalid(where, container, "must be an object"))
            continue
        name = container.get("name")
        if not name:
            out.append(_required(f"{where}.name"))
        elif name in seen:
            out.append(Cause("FieldValueDuplicate", f"Duplicate value: {json.dumps(name)}", f"{where}.name"))
        seen.add(name)
        if not container.get("image"):
            out.append(_required(f"{where}.image"))
    return out


def _job_pod(spec: dict[str, Any], at: str) -> list[Cause]:
    policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
    if policy in ("OnFailure", "Never"):
        return []
    message = f'Unsupported value: {json.dumps(policy)}: supported values: "OnFailure", "Never"'
    return [Cause("FieldValueNotSupported", message, f"{at}.spec.restartPolicy")]


def _workload(kind: str, spec: dict[str, Any]) -> list[Cause]:
    template = spec.get("template") or {}
    out = _pod_spec(template.get("spec") or {}, "spec.template.spec")
    if kind == "Job":
        out += _job_pod(spec, "spec.template")
    selector = spec.get("selector")
    if not selector:
        return [*out, _required("spec.selector")]
    try:
        requirements = selectors.from_label_selector(selector)
    except ValueError as exc:
        return [*out, _invalid("spec.selector", selector, str(exc))]
    if not requirements:
        return [*out, _invalid("spec.selector", selector, "empty selector is invalid for deployment")]
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not selectors.matches(requirements, labels):
        out.append(
            _invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")
        )
    return out


def _service(spec: dict[str, Any]) -> list[Cause]:
    ports = spec.get("ports") or []
    if not ports:
        return [_required("spec.ports")]
    out = []
    for index, port in enumerate(ports):
        number = port.get("port") if isinstance(port, dict) else None
        if not isinstance(number, int) or not 0 < number < 65536:
            out.append(
                _invalid(f"spec.ports[{index}].port", number, "must be between 1 and 65535, inclusive")
            )
    return out


def _crd(obj: dict[str, Any], spec: dict[str, Any]) -> list[Cause]:
    names = spec.get("names") or {}
    out = [_required(f"spec.{field}") for field in ("group",) if not spec.get(field)]
    out += [_required(f"spec.names.{field}") for field in ("plural", "kind") if not names.get(field)]
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        message = (
            f'Unsupported value: {json.dumps(spec.get("scope"))}: supported values: "Cluster", "Namespaced"'
        )
        out.append(Cause("FieldValueNotSupported", message, "spec.scope"))
    versions = spec.get("versions") or []
    if not versions:
        out.append(_required("spec.versions"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        out.append(
            _invalid(
                "spec.versions",
                [v.get("name") for v in versions],
                "must have exactly one version marked as storage version",
            )
        )
    name = (obj.get("metadata") or {}).get("name")
    expected = f"{names.get('plural')}.{spec.get('group')}"
    if name and names.get("plural") and spec.get("group") and name != expected:
        out.append(_invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    return out


def _immutability(kind: str, spec: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    out = []
    if kind in _WORKLOADS and spec.get("selector") != old.get("selector"):
        out.append(_immutable("spec.selector", spec.get("selector")))
    if kind == "Job" and spec.get("template") != old.get("template"):
        out.append(_immutable("spec.template", spec.get("template")))
    if kind == "StatefulSet":
        changed = {k for k in set(spec) | set(old) if spec.get(k) != old.get(k)} - _STS_MUTABLE
        if changed - {"selector"}:
            message = (
                "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
            )
            out.append(Cause("FieldValueForbidden", message, "spec"))
    if kind == "CustomResourceDefinition" and spec.get("scope") != old.get("scope"):
        out.append(_immutable("spec.scope", spec.get("scope")))
    if kind == "Service" and old.get("clusterIP") and spec.get("clusterIP") != old.get("clusterIP"):
        out.append(_immutable("spec.clusterIPs[0]", spec.get("clusterIP")))
    if kind == "PersistentVolumeClaim":
        strip = {**spec, "resources": {**(spec.get("resources") or {}), "requests": None}}
        strip_old = {**old, "resources": {**(old.get("resources") or {}), "requests": None}}
        if strip != strip_old:
            message = "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
            out.append(Cause("FieldValueForbidden", message, "spec"))
    return out
