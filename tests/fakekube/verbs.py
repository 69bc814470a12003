"""What each API verb does to the store, independent of HTTP.

Every write takes the same path, under the store lock: shape the candidate
object (system metadata from the live object, status isolation), default,
validate, bump generation when anything but metadata/status changed, account
field ownership, and commit unless nothing changed (a no-op write keeps its
resourceVersion, as on a real server). Create, replace, the three patch types,
server-side apply and the simulated controllers' status writes differ only in
how they build the candidate.
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from typing import Any

from tests.fakekube import (
    apply,
    defaulting,
    discovery,
    errors,
    fieldsets,
    managedfields,
    patching,
    selectors,
    shaping,
    validation,
)
from tests.fakekube import schema as schemas
from tests.fakekube.discovery import ResourceType
from tests.fakekube.store import Store

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)

NAMESPACE = discovery.BUILTINS[0]
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# Kinds whose storage answers DELETE with the object rather than a Status (ReturnDeletedObject).
_RETURNS_DELETED = ("Pod", "Service", "ServiceAccount", "Namespace", "CustomResourceDefinition")


@dataclass(frozen=True)
class Target:
    rtype: ResourceType
    namespace: str = ""
    name: str = ""
    subresource: str = ""


@dataclass(frozen=True)
class Options:
    manager: str = ""
    dry_run: bool = False
    force: bool | None = None


class Api:
    def __init__(self, store: Store, registry: discovery.Registry) -> None:
        self.store = store
        self.registry = registry
        for name in INITIAL_NAMESPACES:
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            self.create(Target(NAMESPACE), body, Options(manager="k3s"))

    # -- reading --------------------------------------------------------------

    def _live(self, target: Target) -> Obj:
        live = self.store.peek(target.rtype, target.namespace, target.name)
        if live is None:
            raise errors.not_found(plural=target.rtype.plural, group=target.rtype.group, name=target.name)
        return live

    def get(self, target: Target) -> Obj:
        with self.store.lock:
            return shaping.out(target.rtype, self._live(target))

    def list(
        self,
        target: Target,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
    ) -> Obj:
        rtype = target.rtype
        labels = selectors.parse_labels(label_selector) if label_selector else []
        fields = selectors.parse_fields(field_selector, rtype.kind) if field_selector else []
        start = ("", "")
        if continue_token:
            try:
                namespace, name = json.loads(base64.urlsafe_b64decode(continue_token))["start"]
                start = (str(namespace), str(name))
            except (ValueError, KeyError, TypeError) as exc:
                raise errors.bad_request("continue key is not valid: illegal base64 data") from exc
        with self.store.lock:
            revision = self.store.revision
            items = [
                obj
                for obj in self.store.items(rtype.group, rtype.kind, target.namespace or None)
                if selectors.matches(labels, obj["metadata"].get("labels"))
                and all(f.matches(obj) for f in fields)
                and self._position(obj) > start
            ]
            page = items[:limit] if limit > 0 else items
            result = [shaping.list_item(rtype, obj) for obj in page]
        meta: Obj = {"resourceVersion": revision}
        if limit > 0 and len(items) > limit:
            token = json.dumps({"start": self._position(page[-1]), "rv": revision}).encode()
            meta["continue"] = base64.urlsafe_b64encode(token).decode()
            meta["remainingItemCount"] = len(items) - limit
        return {
            "kind": f"{rtype.kind}List",
            "apiVersion": rtype.api_version,
            "metadata": meta,
            "items": result,
        }

    @staticmethod
    def _position(obj: Obj) -> tuple[str, str]:
        return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])

    def _admit(self, rtype: ResourceType, new: Obj, live: Obj | None) -> None:
        if rtype.builtin:
            defaulting.apply_defaults(rtype.kind, new, live)
        causes = validation.validate(rtype.kind if rtype.builtin else "", new, live)
        if causes:
            name = new["metadata"].get("name", "")
            raise errors.invalid(kind=rtype.kind, group=rtype.group, name=name, causes=causes)

    def _require_namespace(self, rtype: ResourceType, namespace: str, name: str) -> None:
        ns = self.store.peek(NAMESPACE, "", namespace)
        if ns is None:
            raise errors.not_found(plural="namespaces", group="", name=namespace)
        if ns["metadata"].get("deletionTimestamp"):
            message = (
                f'{rtype.plural} "{name}" is forbidden: unable to create new content in namespace '
                f"{namespace} because it is being terminated"
            )
            cause = errors.Cause(
                "NamespaceTerminating", f"namespace {namespace} is being terminated", "metadata.namespace"
            )
            raise errors.forbidden(message, plural=rtype.plural, group=rtype.group, name=name, causes=[cause])

    def _commit(
        self,
        rtype: ResourceType,
        live: Obj | None,
        new: Obj,
        *,
        write: managedfields.Write,
        dry_run: bool,
        applied: set[fieldsets.Path] | None = None,
        force: bool = True,
    ) -> Obj:
        meta = new["metadata"]
        if rtype.generation:
            if live is None:
                meta["generation"] = 1
            else:
                bump = shaping.generation_content(rtype, new) != shaping.generation_content(rtype, live)
                meta["generation"] = live["metadata"].get("generation", 1) + int(bump)
        entries = managedfields.decode(live) if live else []
        entries = managedfields.record(
            live or {},
            new,
            entries,
            write=write,
            schema=schemas.schema_for(rtype.kind, builtin=rtype.builtin),
            status_is_subresource=rtype.status,
            applied=applied,
            force=force,
        )
        meta.pop("managedFields", None)
        if entries:
            meta["managedFields"] = managedfields.encode(entries)
        if live is not None and shaping.same(live, new):
            return shaping.out(rtype, live)
        if dry_run:
            return shaping.out(rtype, new)
        finalized = rtype.kind != "Namespace" and not meta.get("finalizers")
        if live is not None and live["metadata"].get("deletionTimestamp") and finalized:
            self._remove(rtype, live)
            return shaping.out(rtype, new)
        stored = self.store.put(rtype, new)
        if rtype.builtin and rtype.kind == "CustomResourceDefinition":
            self._sync_crd(stored)
        return shaping.out(rtype, stored)

    def _sync_crd(self, crd: Obj) -> None:
        conditions = crd.get("status", {}).get("conditions") or []
        established = any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)
        if established and not crd["metadata"].get("deletionTimestamp"):
            self.registry.serve_crd(crd)
        else:
            self.registry.forget_crd(crd["metadata"]["name"])

    # -- writing ---------------------------------------------------------------

    def create(self, target: Target, body: Any, options: Options) -> Obj:
        rtype = target.rtype
        obj = shaping.normalize(self.registry, rtype, body)
        shaping.place(rtype, obj["metadata"], target.namespace)
        with self.store.lock:
            new = shaping.fresh(rtype, obj)
            self._admit(rtype, new, None)
            name = new["metadata"]["name"]
            if rtype.namespaced:
                self._require_namespace(rtype, target.namespace, name)
            existing = self.store.peek(rtype, target.namespace, name)
            if existing is not None:
                deleting = bool(existing["metadata"].get("deletionTimestamp"))
                raise errors.already_exists(
                    plural=rtype.plural, group=rtype.group, name=name, deleting=deleting
                )
            write = managedfields.Write(options.manager, managedfields.UPDATE, rtype.api_version, "")
            return self._commit(rtype, None, new, write=write, dry_run=options.dry_run)

    def replace(self, target: Target, body: Any, options: Options) -> Obj:
        rtype = target.rtype
        obj = shaping.normalize(self.registry, rtype, body)
        shaping.place(rtype, obj["metadata"], target.namespace, target.name)
        with self.store.lock:
            live = self._live(target)
            return self._update(target, live, obj, options)

    def _update(self, target: Target, live: Obj, obj: Obj, options: Options) -> Obj:
        rtype = target.rtype
        version = obj["metadata"].get("resourceVersion")
        if version and version != live["metadata"]["resourceVersion"]:
            raise errors.stale(plural=rtype.plural, group=rtype.group, name=target.name)
        new = shaping.carry(rtype, live, obj, target.subresource)
        self._admit(rtype, new, live)
        write = managedfields.Write(
            options.manager, managedfields.UPDATE, rtype.api_version, target.subresource
        )
        return self._commit(rtype, live, new, write=write, dry_run=options.dry_run)

    def patch(self, target: Target, content_type: str, body: Any, options: Options) -> tuple[Obj, int]:
        if content_type == APPLY_PATCH:
            return self.apply(target, body, options)
        if options.force is not None:
            raise self._patch_options_invalid(
                "force", "FieldValueForbidden", "Forbidden: may not be specified for non-apply patch"
            )
        rtype = target.rtype
        if content_type == STRATEGIC_PATCH and not rtype.builtin:
            raise errors.unsupported_media_type([JSON_PATCH, MERGE_PATCH, APPLY_PATCH])
        with self.store.lock:
            live = self._live(target)
            doc = shaping.out(rtype, live)
            try:
                if content_type == JSON_PATCH:
                    patched = patching.json_patch(doc, body)
                elif content_type == MERGE_PATCH:
                    patched = patching.merge_patch(doc, body)
                else:
                    schema = schemas.schema_for(rtype.kind, builtin=True)
                    patched = patching.strategic_merge_patch(doc, body, schema)
            except patching.PatchError as exc:
                raise errors.unprocessable(str(exc)) from exc
            obj = shaping.normalize(self.registry, rtype, patched)
            shaping.place(rtype, obj["metadata"], target.namespace, target.name)
            return self._update(target, live, obj, options), 200

    @staticmethod
    def _patch_options_invalid(field: str, reason: str, message: str) -> errors.ApiError:
        cause = errors.Cause(reason, message, field)
        return errors.invalid(kind="PatchOptions", group="meta.k8s.io", name="", causes=[cause])

    def apply(self, target: Target, body: Any, options: Options) -> tuple[Obj, int]:
        rtype = target.rtype
        if not options.manager:
            raise self._patch_options_invalid(
                "fieldManager", "FieldValueRequired", "Required value: is required for apply patch"
            )
        if not isinstance(body, dict) or not body.get("apiVersion") or not body.get("kind"):
            have = body if isinstance(body, dict) else {}
            raise errors.bad_request(
                f"invalid object type: {have.get('apiVersion', '')}, Kind={have.get('kind', '')}"
            )
        config = apply.without_nulls(shaping.normalize(self.registry, rtype, body))
        meta = config["metadata"]
        meta.setdefault("name", target.name)
        shaping.place(rtype, meta, target.namespace, target.name)
        version = meta.pop("resourceVersion", None)
        meta.pop("managedFields", None)
        if target.subresource == "status":
            part = {
                "apiVersion": config["apiVersion"],
                "kind": config["kind"],
                "metadata": {},
                "status": config.get("status", {}),
            }
        else:
            part = {k: v for k, v in config.items() if not (rtype.status and k == "status")}
        schema = schemas.schema_for(rtype.kind, builtin=rtype.builtin)
        applied = managedfields.relevant(
            fieldsets.field_set(part, schema),
            subresource=target.subresource,
            status_is_subresource=rtype.status,
        )
        write = managedfields.Write(
            options.manager, managedfields.APPLY, rtype.api_version, target.subresource
        )
        with self.store.lock:
            live = self.store.peek(rtype, target.namespace, target.name)
            if live is None and target.subresource == "status":
                raise errors.not_found(plural=rtype.plural, group=rtype.group, name=target.name)
            if live is not None and version and version != live["metadata"]["resourceVersion"]:
                raise errors.stale(plural=rtype.plural, group=rtype.group, name=target.name)
            entries = managedfields.decode(live) if live else []
            me = write.entry((), "").key
            last = next((set(e.fields) for e in entries if e.key == me), set())
            owned = set(applied).union(*(e.fields for e in entries if e.key != me))
            merged = apply.merge(live or {"metadata": {}}, part, schema)
            apply.prune(merged, last_applied=last, owned=owned)
            force = bool(options.force)
            if live is None:
                new = shaping.fresh(rtype, merged)
                self._admit(rtype, new, None)
                if rtype.namespaced:
                    self._require_namespace(rtype, target.namespace, target.name)
                created = self._commit(
                    rtype, None, new, write=write, dry_run=options.dry_run, applied=applied, force=force
                )
                return created, 201
            new = shaping.carry(rtype, live, merged, target.subresource)
            self._admit(rtype, new, live)
            updated = self._commit(
                rtype, live, new, write=write, dry_run=options.dry_run, applied=applied, force=force
            )
            return updated, 200

    # -- deleting ---------------------------------------------------------------

    def delete(self, target: Target, body: Any, options: Options) -> Obj:
        rtype = target.rtype
        with self.store.lock:
            live = self._live(target)
            self._check_preconditions(target, live, body)
            if options.dry_run:
                return shaping.out(rtype, live)
            return self._delete(rtype, live)

    def _check_preconditions(self, target: Target, live: Obj, body: Any) -> None:
        preconditions = body.get("preconditions") if isinstance(body, dict) else None
        for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            want = (preconditions or {}).get(field)
            have = live["metadata"].get(field)
            if want and want != have:
                what = f"Precondition failed: {label} in precondition: {want}, {label} in object meta: {have}"
                raise errors.precondition_failed(
                    plural=target.rtype.plural, group=target.rtype.group, name=target.name, what=what
                )

    def _delete(self, rtype: ResourceType, live: Obj) -> Obj:
        meta = live["metadata"]
        if rtype.kind == "Namespace" and meta["name"] in PROTECTED_NAMESPACES:
            message = f'namespaces "{meta["name"]}" is forbidden: this namespace may not be deleted'
            raise errors.forbidden(message, plural="namespaces", group="", name=meta["name"])
        if rtype.kind == "Namespace" or meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return shaping.out(rtype, live)
            pending = copy.deepcopy(live)
            pending["metadata"]["deletionTimestamp"] = managedfields.now()
            pending["metadata"]["deletionGracePeriodSeconds"] = 0
            if rtype.generation:  # as the real BeforeDelete does
                pending["metadata"]["generation"] = meta.get("generation", 1) + 1
            if rtype.kind == "Namespace":
                pending["status"] = {"phase": "Terminating"}
            return shaping.out(rtype, self.store.put(rtype, pending))
        self._remove(rtype, live)
        if rtype.kind in _RETURNS_DELETED or not rtype.builtin:
            return shaping.out(rtype, live)
        details = {"name": meta["name"], "group": rtype.group, "kind": rtype.plural, "uid": meta["uid"]}
        if not rtype.group:
            del details["group"]
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    def _remove(self, rtype: ResourceType, live: Obj) -> None:
        meta = live["metadata"]
        self.store.drop(rtype, meta.get("namespace", ""), meta["name"])
        if rtype.builtin and rtype.kind == "CustomResourceDefinition":
            for served in discovery.crd_types(live)[:1]:  # any version will do: one stored object per name
                for obj in self.store.items(served.group, served.kind):
                    self.store.drop(served, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            self.registry.forget_crd(meta["name"])

    def delete_collection(
        self, target: Target, *, label_selector: str, field_selector: str, options: Options
    ) -> Obj:
        rtype = target.rtype
        with self.store.lock:
            listing = self.list(target, label_selector=label_selector, field_selector=field_selector)
            deleted = []
            for item in listing["items"]:
                live = self.store.peek(rtype, item["metadata"].get("namespace", ""), item["metadata"]["name"])
                if live is None:
                    continue
                if not options.dry_run:
                    self._delete(rtype, live)
                deleted.append(item)
        return {**listing, "items": deleted}

    # -- for the simulated controllers -----------------------------------------

    def controller_status(
        self, rtype: ResourceType, namespace: str, name: str, status: Obj, *, manager: str
    ) -> None:
        """Write `status` as a controller would (Update through /status)."""
        with self.store.lock:
            live = self.store.peek(rtype, namespace, name)
            if live is None:
                return
            new = copy.deepcopy(live)
            new["status"] = status
            write = managedfields.Write(manager, managedfields.UPDATE, rtype.api_version, "status")
            self._commit(rtype, live, new, write=write, dry_run=False)

    def finish_namespace(self, name: str) -> None:
        """The namespace controller's work: empty a terminating namespace, then remove it."""
        with self.store.lock:
            namespace = self.store.peek(NAMESPACE, "", name)
            if namespace is None or not namespace["metadata"].get("deletionTimestamp"):
                return
            for rtype, obj in self.store.in_namespace(name):
                self.store.drop(rtype, name, obj["metadata"]["name"])
            self.store.drop(NAMESPACE, "", name)
