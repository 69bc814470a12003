"""Fleet's merge of a target customization over the base options (pure).

The rules are Fleet's (internal/options Merge), so a bundle renders the same
here as there: non-empty strings override; Helm values deep-merge (maps key by
key, anything else replaced); `yaml.overlays` and `diff.comparePatches`
append; booleans such as keepResources are ORed; `correctDrift` replaces.
Values files were folded into each side's values when the bundle was read
(controller.values), so a customization's files and inline values both land
on top of the base's.
"""

from __future__ import annotations

from controller import fleetyaml, values


def merge(base: fleetyaml.Options, custom: fleetyaml.Options) -> fleetyaml.Options:
    merged_helm = base.helm
    if custom.helm is not None:
        merged_helm = _merge_helm(base.helm or fleetyaml.HelmOptions(), custom.helm)
    diff = base.diff
    if custom.diff is not None:
        patches = [*(base.diff or {}).get("comparePatches", []), *custom.diff.get("comparePatches", [])]
        diff = {"comparePatches": patches}
    return fleetyaml.Options(
        default_namespace=custom.default_namespace or base.default_namespace,
        namespace=custom.namespace or base.namespace,
        helm=merged_helm,
        kustomize_dir=custom.kustomize_dir or base.kustomize_dir,
        overlays=(*base.overlays, *custom.overlays),
        keep_resources=base.keep_resources or custom.keep_resources,
        correct_drift=custom.correct_drift if custom.correct_drift is not None else base.correct_drift,
        diff=diff,
    )


def _merge_helm(base: fleetyaml.HelmOptions, custom: fleetyaml.HelmOptions) -> fleetyaml.HelmOptions:
    return fleetyaml.HelmOptions(
        chart=custom.chart or base.chart,
        repo=custom.repo or base.repo,
        version=custom.version or base.version,
        release_name=custom.release_name or base.release_name,
        values=values.deep_merge(base.values, custom.values),
        values_files=(*base.values_files, *custom.values_files),
    )
