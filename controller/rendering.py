"""Render one set of effective options of a bundle into one variant.

The style is decided as Fleet decides it (internal/bundlereader/style.go):
Helm when the options name a chart or the bundle has a Chart.yaml at its
root; Kustomize when the kustomize dir (default: the bundle root) holds a
kustomization; both together when both hold, the Helm output becoming the
kustomization's first resource; plain manifests with overlays otherwise.

What comes out is checked (every document a Kubernetes object with a name, no
object twice) and put in a canonical order, so the same content always has
the same deployment id whatever tool produced it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from controller import errors, fleetyaml, helm, kustomize, plain, sandbox
from wire import canonical, manifests

DEFAULT_NAMESPACE = "default"


def is_helm(spec: fleetyaml.BundleSpec, options: fleetyaml.Options) -> bool:
    chart_named = options.helm is not None and bool(options.helm.chart or options.helm.repo)
    return chart_named or (spec.source / "Chart.yaml").is_file()


def kustomize_dir(spec: fleetyaml.BundleSpec, options: fleetyaml.Options, *, source: str) -> Path | None:
    root = spec.source.resolve()
    directory = sandbox.resolve_inside(
        root, options.kustomize_dir or ".", what="kustomize.dir", source=source
    )
    if kustomize.kustomization_file(directory) is not None:
        return directory
    if options.kustomize_dir:
        raise errors.BundleError(
            f"{source}: kustomize.dir {options.kustomize_dir!r} holds no kustomization.yaml"
        )
    return None


def render(
    spec: fleetyaml.BundleSpec, options: fleetyaml.Options, *, target: str, cache: helm.ChartCache
) -> manifests.Variant:
    """The variant `options` produce; BundleError naming the bundle, target and file otherwise."""
    source = f"bundle {spec.name}, target {target}"
    root = spec.source.resolve()
    sandbox.check_links(root, source=source)
    namespace = options.namespace or options.default_namespace or DEFAULT_NAMESPACE
    helm_objects = None
    if is_helm(spec, options):
        helm_options = options.helm or fleetyaml.HelmOptions()
        chart = helm.chart_path(helm_options, root, cache, source=source)
        output = helm.render(
            chart,
            values=helm_options.values,
            release=helm_options.release_name or spec.name,
            namespace=namespace,
            source=source,
        )
        helm_objects = [
            o
            for o in plain.documents_to_objects(output, source=f"{source}: helm output")
            if not helm.is_test_hook(o)
        ]
    directory = kustomize_dir(spec, options, source=source)
    if directory is not None:
        kustomize.check(root, directory, source=source)
        where = f"{source}: {directory.relative_to(root).as_posix() or '.'}"
        with sandbox.copy(root, source=source) as copy:
            inner = copy / directory.relative_to(root)
            if helm_objects is not None:
                # JSON documents: YAML that kustomize reads exactly as written.
                stream = "\n---\n".join(json.dumps(o) for o in helm_objects)
                kustomize.add_helm_output(inner, stream, source=where)
            output = kustomize.build(inner, source=where)
        objects = plain.documents_to_objects(output, source=f"{source}: kustomize output")
    elif helm_objects is not None:
        objects = helm_objects
    else:
        objects = plain.load_objects(root, options.overlays, source=source)
    return manifests.Variant(
        namespace=namespace,
        objects=tuple(canonical.normalize(o) for o in ordered(objects, source=source)),
        options=variant_options(options),
    )


def _identity(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    group = str(obj["apiVersion"]).rpartition("/")[0]
    metadata = obj["metadata"]
    return (group, str(obj["kind"]), str(metadata.get("namespace") or ""), str(metadata["name"]))


def ordered(objects: list[dict[str, Any]], *, source: str) -> list[dict[str, Any]]:
    """Objects sorted by (group, kind, namespace, name); the same object twice is an error."""
    seen: dict[tuple[str, str, str, str], int] = {}
    for obj in objects:
        key = _identity(obj)
        if key in seen:
            group, kind, namespace, name = key
            where = f"{namespace}/{name}" if namespace else name
            raise errors.BundleError(f"{source}: {kind}{'.' + group if group else ''} {where} appears twice")
        seen[key] = 1
    return sorted(objects, key=_identity)


def variant_options(options: fleetyaml.Options) -> dict[str, Any]:
    """What the agent needs besides the objects; only what differs from the defaults."""
    result: dict[str, Any] = {}
    if options.namespace:
        result["targetNamespace"] = options.namespace
    if options.keep_resources:
        result["keepResources"] = True
    if options.correct_drift:
        result["correctDrift"] = dict(options.correct_drift)
    if options.diff and options.diff.get("comparePatches"):
        result["diff"] = dict(options.diff)
    return result
