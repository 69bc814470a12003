"""Turning request bodies into candidate objects, and stored objects into responses.

The rules here are the real server's bookkeeping around a write: apiVersion
and kind come from the URL's resource; the namespace comes from the URL and a
different one in the body is a 400; the server owns uid, creationTimestamp,
generation, resourceVersion and managedFields; a kind with a status
subresource starts with an empty status, and its main resource and /status
each write only their own part.
"""

from __future__ import annotations

import copy
import random
import uuid
from typing import Any

from tests.fakekube import discovery, errors, managedfields
from tests.fakekube.discovery import ResourceType

Obj = dict[str, Any]

_SERVER_OWNED = (
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "resourceVersion",
    "managedFields",
)
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # what generateName suffixes are drawn from


def out(rtype: ResourceType, obj: Obj) -> Obj:
    """A response copy of a stored object, as the version `rtype` names."""
    body = {k: copy.deepcopy(v) for k, v in obj.items() if k not in ("apiVersion", "kind")}
    return {"apiVersion": rtype.api_version, "kind": rtype.kind, **body}


def list_item(rtype: ResourceType, obj: Obj) -> Obj:
    item = out(rtype, obj)
    if rtype.builtin:  # typed lists carry apiVersion/kind only on the list itself
        del item["apiVersion"], item["kind"]
    return item


def generation_content(rtype: ResourceType, obj: Obj) -> Obj:
    """What generation tracks: everything but metadata (and status when it is a subresource)."""
    skip = {"metadata", "status"} if rtype.status else {"metadata"}
    return {k: v for k, v in obj.items() if k not in skip}


def same(live: Obj, new: Obj) -> bool:
    """Whether a write would change nothing but managedFields timestamps (then it is not stored)."""

    def comparable(obj: Obj) -> Obj:
        meta = {
            **obj["metadata"],
            "managedFields": managedfields.without_time(obj["metadata"].get("managedFields") or []),
        }
        return {**obj, "metadata": meta}

    return comparable(live) == comparable(new)


def normalize(registry: discovery.Registry, rtype: ResourceType, body: Any) -> Obj:
    """A copy of a request body checked against, and completed from, the URL's resource."""
    if not isinstance(body, dict):
        raise errors.bad_request(f"the object provided is unrecognized (must be of type {rtype.kind})")
    obj = copy.deepcopy(body)
    version = obj.get("apiVersion") or rtype.api_version
    if not any(t.api_version == version for t in registry.versions_of(*rtype.group_kind)):
        raise errors.bad_request(
            f"the API version in the data ({version}) does not match the expected API version ({rtype.api_version})"
        )
    if obj.get("kind", rtype.kind) != rtype.kind:
        raise errors.bad_request(
            f"the kind in the data ({obj['kind']}) does not match the expected kind ({rtype.kind})"
        )
    obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
    if not isinstance(obj.setdefault("metadata", {}), dict):
        raise errors.bad_request("metadata must be an object")
    return obj


def place(rtype: ResourceType, meta: Obj, namespace: str, name: str | None = None) -> None:
    """Check the body's namespace and name against the URL's, defaulting the namespace."""
    if rtype.namespaced:
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)  # the real server clears it for cluster-scoped kinds
    if name is not None and meta.get("name", "") != name:
        raise errors.bad_request(
            f"the name of the object ({meta.get('name', '')}) does not match the name on the URL ({name})"
        )


def _initial_status(rtype: ResourceType, obj: Obj) -> Obj | None:
    if not rtype.builtin:
        return None  # custom resources with a status subresource start without one
    if rtype.kind == "Namespace":
        return {"phase": "Active"}
    if rtype.kind in ("Pod", "PersistentVolumeClaim"):
        return {"phase": "Pending"}
    if rtype.kind == "Service":
        return {"loadBalancer": {}}
    if rtype.kind == "CustomResourceDefinition":
        storage = [v.get("name") for v in obj.get("spec", {}).get("versions", []) if v.get("storage")]
        return {"acceptedNames": {"kind": "", "plural": ""}, "conditions": [], "storedVersions": storage}
    return {}


def fresh(rtype: ResourceType, obj: Obj) -> Obj:
    """`obj` as a new object: name generated if asked, server-owned metadata set, status reset."""
    new = copy.deepcopy(obj)
    meta = new["metadata"]
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_CHARS, k=5))
    for field in _SERVER_OWNED:
        meta.pop(field, None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = managedfields.now()
    if rtype.status:
        status = _initial_status(rtype, new)
        new.pop("status", None)
        if status is not None:
            new["status"] = status
    return new


def carry(rtype: ResourceType, live: Obj, obj: Obj, subresource: str) -> Obj:
    """`obj` as an update of `live`: server-owned metadata from live, status isolated by endpoint."""
    if subresource == "status":
        new = copy.deepcopy(live)
        if "status" in obj:
            new["status"] = copy.deepcopy(obj["status"])
        else:
            new.pop("status", None)
        return new
    new = copy.deepcopy(obj)
    meta = new["metadata"]
    for field in _SERVER_OWNED:
        if field in live["metadata"]:
            meta[field] = copy.deepcopy(live["metadata"][field])
        else:
            meta.pop(field, None)
    if rtype.status:
        if "status" in live:
            new["status"] = copy.deepcopy(live["status"])
        else:
            new.pop("status", None)
    return new
