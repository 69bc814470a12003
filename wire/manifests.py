"""The manifest: what one group is told to run for one bundle.

A manifest is the signed body of an envelope. It names its bundle and group
(the agent checks both against the topic it arrived on), carries a per-bundle
generation that only grows, the ordered targets and the rendered variants.

Targets are evaluated by the agent against its own labels, in order: the first
target whose criteria match decides; its `deployment_id` names the variant to
run, or is None for Fleet's `doNotDeploy`; a cluster that matches no target
runs nothing. Each variant is content-addressed: `deployment_id` is the
canonical digest of its namespace, objects and options, re-checked on receipt.

Two encodings, one per envelope format version (docs/protocol.md, "Manifest"):

- version 1 writes each variant's `deployment_id` and has targets name the
  variant by it;
- version 2 writes no ids: a target names its variant by position, the agent
  derives every id from the content, `issued_at` is whole seconds, and empty
  or nil fields are left out. About 100 bytes fewer per manifest, which
  matters most for the small ones.

Both decode to the same `Manifest`. Within one format version decoders ignore
map keys they do not know, so a field can be added without breaking agents in
the field; anything an older agent must not misread needs a new format version.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wire import canonical, errors, names

LABEL_OPERATORS = frozenset({"In", "NotIn", "Exists", "DoesNotExist"})


class Kind(enum.Enum):
    BUNDLE = "bundle"
    TOMBSTONE = "tombstone"


@dataclass(frozen=True)
class Requirement:
    """One `matchExpressions` entry of a Kubernetes label selector."""

    key: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterSelector:
    """A Kubernetes label selector over cluster labels; empty matches every cluster."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[Requirement, ...] = ()


@dataclass(frozen=True)
class Target:
    """Cluster criteria (ANDed; none given matches nothing) and what they get."""

    name: str
    deployment_id: str | None
    cluster_name: str | None = None
    cluster_selector: ClusterSelector | None = None


@dataclass(frozen=True)
class Variant:
    """One rendered result of a bundle, addressed by the digest of its content."""

    namespace: str
    objects: tuple[Mapping[str, Any], ...]
    options: Mapping[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def deployment_id(self) -> str:
        return canonical.digest(
            {"namespace": self.namespace, "objects": list(self.objects), "options": dict(self.options)}
        )


@dataclass(frozen=True)
class Manifest:
    kind: Kind
    bundle: str
    group: str
    generation: int
    issued_at: float
    targets: tuple[Target, ...] = ()
    variants: tuple[Variant, ...] = ()

    def variant(self, deployment_id: str) -> Variant:
        for variant in self.variants:
            if variant.deployment_id == deployment_id:
                return variant
        raise KeyError(deployment_id)


def tombstone(*, bundle: str, group: str, generation: int, issued_at: float) -> Manifest:
    """A signed deletion: agents remove the bundle's objects."""
    return Manifest(Kind.TOMBSTONE, bundle, group, generation, issued_at)


# -- encoding ---------------------------------------------------------------

VERSIONS = frozenset({1, 2})


def to_wire(manifest: Manifest, version: int = 1) -> dict[str, Any]:
    """The manifest as the msgpack map of format `version`."""
    if version == 2:
        return _to_wire_v2(manifest)
    if version != 1:
        raise ValueError(f"no manifest encoding for format version {version}")
    return {
        "kind": manifest.kind.value,
        "bundle": manifest.bundle,
        "group": manifest.group,
        "generation": manifest.generation,
        "issued_at": manifest.issued_at,
        "targets": [_target_to_wire(t) for t in manifest.targets],
        "variants": [
            {
                "deployment_id": v.deployment_id,
                "namespace": v.namespace,
                "objects": list(v.objects),
                "options": dict(v.options),
            }
            for v in manifest.variants
        ],
    }


def _target_to_wire(target: Target) -> dict[str, Any]:
    selector = None
    if target.cluster_selector is not None:
        selector = {
            "matchLabels": dict(target.cluster_selector.match_labels),
            "matchExpressions": [
                {"key": r.key, "operator": r.operator, "values": list(r.values)}
                for r in target.cluster_selector.match_expressions
            ],
        }
    return {
        "name": target.name,
        "deployment_id": target.deployment_id,
        "cluster_name": target.cluster_name,
        "cluster_selector": selector,
    }


def _to_wire_v2(manifest: Manifest) -> dict[str, Any]:
    index = {v.deployment_id: i for i, v in reversed(list(enumerate(manifest.variants)))}
    out: dict[str, Any] = {
        "kind": manifest.kind.value,
        "bundle": manifest.bundle,
        "group": manifest.group,
        "generation": manifest.generation,
        "issued_at": int(manifest.issued_at),
    }
    targets = []
    for target in manifest.targets:
        t: dict[str, Any] = {"name": target.name}
        if target.deployment_id is not None:
            t["variant"] = index[target.deployment_id]
        if target.cluster_name is not None:
            t["cluster_name"] = target.cluster_name
        if target.cluster_selector is not None:
            t["cluster_selector"] = _selector_v2(target.cluster_selector)
        targets.append(t)
    if targets:
        out["targets"] = targets
    variants = []
    for variant in manifest.variants:
        v: dict[str, Any] = {"namespace": variant.namespace, "objects": list(variant.objects)}
        if variant.options:
            v["options"] = dict(variant.options)
        variants.append(v)
    if variants:
        out["variants"] = variants
    return out


def _selector_v2(selector: ClusterSelector) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if selector.match_labels:
        out["matchLabels"] = dict(selector.match_labels)
    if selector.match_expressions:
        out["matchExpressions"] = [
            {"key": r.key, "operator": r.operator, **({"values": list(r.values)} if r.values else {})}
            for r in selector.match_expressions
        ]
    return out


# -- decoding ---------------------------------------------------------------


def from_wire(raw: object, version: int = 1) -> Manifest:
    """Validate a decoded msgpack value of format `version`; return the manifest it describes."""
    if version == 2:
        return _from_wire_v2(raw)
    m = _map(raw, "manifest")
    kind, bundle, group, generation, issued_at = _header(m)
    variants = tuple(_variant(v, i) for i, v in enumerate(_list(m.get("variants", []), "variants")))
    targets = tuple(_target(t, i) for i, t in enumerate(_list(m.get("targets", []), "targets")))
    if kind is Kind.TOMBSTONE and (variants or targets):
        raise errors.Malformed("a tombstone carries no targets or variants")
    known = {v.deployment_id for v in variants}
    for target in targets:
        if target.deployment_id is not None and target.deployment_id not in known:
            raise errors.Malformed(
                f"target {target.name!r} names deployment {target.deployment_id[:12]} that the manifest lacks"
            )
    return Manifest(kind, bundle, group, generation, issued_at, targets, variants)


def _from_wire_v2(raw: object) -> Manifest:
    m = _map(raw, "manifest")
    kind, bundle, group, generation, issued_at = _header(m)
    variants = tuple(_variant_v2(v, i) for i, v in enumerate(_list(m.get("variants", []), "variants")))
    targets = tuple(_target(t, i, variants) for i, t in enumerate(_list(m.get("targets", []), "targets")))
    if kind is Kind.TOMBSTONE and (variants or targets):
        raise errors.Malformed("a tombstone carries no targets or variants")
    return Manifest(kind, bundle, group, generation, issued_at, targets, variants)


def _header(m: Mapping[str, Any]) -> tuple[Kind, str, str, int, float]:
    kind_value = _get(m, "kind", str, "manifest")
    try:
        kind = Kind(kind_value)
    except ValueError:
        raise errors.Malformed(f"manifest kind {kind_value!r} is not one of bundle, tombstone") from None
    bundle = _name(names.bundle, _get(m, "bundle", str, "manifest"))
    group = _name(names.group, _get(m, "group", str, "manifest"))
    generation = _get(m, "generation", int, "manifest")
    if generation < 1:
        raise errors.Malformed(f"manifest generation {generation} is not positive")
    issued_at = _get(m, "issued_at", (int, float), "manifest")
    return kind, bundle, group, generation, float(issued_at)


def _variant_v2(raw: object, index: int) -> Variant:
    where = f"variants[{index}]"
    v = _map(raw, where)
    objects = tuple(
        _object(o, f"{where}.objects[{i}]") for i, o in enumerate(_list(v.get("objects"), f"{where}.objects"))
    )
    options = _map(v.get("options", {}), f"{where}.options")
    return Variant(_get(v, "namespace", str, where), objects, canonical.normalize(options))


def _variant(raw: object, index: int) -> Variant:
    where = f"variants[{index}]"
    v = _map(raw, where)
    claimed = _get(v, "deployment_id", str, where)
    objects = tuple(
        _object(o, f"{where}.objects[{i}]") for i, o in enumerate(_list(v.get("objects"), f"{where}.objects"))
    )
    options = _map(v.get("options", {}), f"{where}.options")
    variant = Variant(_get(v, "namespace", str, where), objects, canonical.normalize(options))
    if variant.deployment_id != claimed:
        raise errors.IntegrityMismatch(
            f"{where} claims deployment {claimed[:12]} but its content hashes to {variant.deployment_id[:12]}"
        )
    return variant


def _object(raw: object, where: str) -> Mapping[str, Any]:
    obj = _map(raw, where)
    _get(obj, "apiVersion", str, where)
    _get(obj, "kind", str, where)
    metadata = _map(obj.get("metadata"), f"{where}.metadata")
    _get(metadata, "name", str, f"{where}.metadata")
    normalized: Mapping[str, Any] = canonical.normalize(obj)
    return normalized


def _target(raw: object, index: int, variants: tuple[Variant, ...] | None = None) -> Target:
    """A target of format 1 (`variants` None: it names its deployment id) or 2 (a variant index)."""
    where = f"targets[{index}]"
    t = _map(raw, where)
    if variants is None:
        deployment_id = t.get("deployment_id")
        if deployment_id is not None and not isinstance(deployment_id, str):
            raise errors.Malformed(f"{where}.deployment_id must be a string or nil")
    else:
        deployment_id = _variant_index(t.get("variant"), variants, where)
    cluster_name = t.get("cluster_name")
    if cluster_name is not None:
        if not isinstance(cluster_name, str):
            raise errors.Malformed(f"{where}.cluster_name must be a string or nil")
        cluster_name = _name(names.cluster, cluster_name)
    selector = t.get("cluster_selector")
    return Target(
        name=_get(t, "name", str, where),
        deployment_id=deployment_id,
        cluster_name=cluster_name,
        cluster_selector=None if selector is None else _selector(selector, f"{where}.cluster_selector"),
    )


def _variant_index(raw: object, variants: tuple[Variant, ...], where: str) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise errors.Malformed(f"{where}.variant must be an index or nil")
    if not 0 <= raw < len(variants):
        raise errors.Malformed(f"{where}.variant {raw} is not one of the manifest's {len(variants)} variants")
    return variants[raw].deployment_id


def _selector(raw: object, where: str) -> ClusterSelector:
    s = _map(raw, where)
    labels = _map(s.get("matchLabels", {}), f"{where}.matchLabels")
    for key, value in labels.items():
        if not isinstance(value, str):
            raise errors.Malformed(f"{where}.matchLabels[{key!r}] is not a string")
    requirements = []
    for i, r in enumerate(_list(s.get("matchExpressions", []), f"{where}.matchExpressions")):
        rw = f"{where}.matchExpressions[{i}]"
        req = _map(r, rw)
        operator = _get(req, "operator", str, rw)
        if operator not in LABEL_OPERATORS:
            raise errors.Malformed(f"{rw}.operator {operator!r} is not one of {sorted(LABEL_OPERATORS)}")
        values = _list(req.get("values", []), f"{rw}.values")
        if not all(isinstance(x, str) for x in values):
            raise errors.Malformed(f"{rw}.values must be strings")
        requirements.append(Requirement(_get(req, "key", str, rw), operator, tuple(values)))
    return ClusterSelector(dict(labels), tuple(requirements))


def _name(check: Any, value: str) -> str:
    try:
        checked: str = check(value)
    except errors.InvalidName as exc:
        raise errors.Malformed(str(exc)) from exc
    return checked


def _map(raw: object, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise errors.Malformed(f"{where} must be a map, got {type(raw).__name__}")
    return raw


def _list(raw: object, where: str) -> Sequence[Any]:
    if not isinstance(raw, (list, tuple)):
        raise errors.Malformed(f"{where} must be a list, got {type(raw).__name__}")
    return raw


def _get(m: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in m:
        raise errors.Malformed(f"{where} lacks {key!r}")
    value = m[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise errors.Malformed(f"{where}.{key} has the wrong type ({type(value).__name__})")
    return value
