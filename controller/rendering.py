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
    directory = (root / (options.kustomize_dir or ".")).resolve()
    if not sandbox.inside(root, directory):
        raise errors.BundleError(
            f"{source}: kustomize.dir {options.kustomize_dir!r} points outside the bundle directory"
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
    helm_output = None
    if is_helm(spec, options):
        helm_options = options.helm or fleetyaml.HelmOptions()
        chart = helm.chart_path(helm_options, root, cache, source=source)
        helm_output = helm.render(
            chart,
            values=helm_options.values,
            release=helm_options.release_name or spec.name,
            namespace=namespace,
            source=source,
        )
    directory = kustomize_dir(spec, options, source=source)
    if directory is not None:
        kustomize.check(root, directory, source=source)
        with sandbox.copy(root, source=source) as copy:
            inner = copy / directory.relative_to(root)
            if helm_output is not None:
                kustomize.add_helm_output(inner, helm_output)
            output = kustomize.build(
                inner, source=f"{source}: {directory.relative_to(root).as_posix() or '.'}"
            )
        objects = plain.documents_to_objects(output, source=f"{source}: kustomize output")
    elif helm_output is not None:
        objects = [
            o
            for o in plain.documents_to_objects(helm_output, source=f"{source}: helm output")
            if not helm.is_test_hook(o)
        ]
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
