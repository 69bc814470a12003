"""Reading `fleet.yaml` (or `bundle.yaml`) into a typed bundle description.

Operators bring Rancher Fleet bundle directories unchanged, so the keys are
Fleet's. Each key has one of three statuses, and docs/bundles.md is the same
table for people:

- supported: read and acted on by rendering and targeting;
- kept: parsed, validated and carried for later stages (dependsOn, paused,
  keepResources, correctDrift, diff);
- warned: a real Fleet key that edgefleet does not implement yet; reading it
  produces a warning that names it, and it has no effect.

Any other key is an error naming the file, the key and the closest known key,
because a typo in a deployment descriptor must never be silently ignored.
Reading touches the descriptor and the `valuesFiles` it names (folded into
the values as Fleet's bundle reader does), nothing else.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller import errors, safeyaml, sandbox, values
from wire import errors as wire_errors
from wire import manifests, names

DESCRIPTOR_NAMES = ("fleet.yaml", "bundle.yaml")


class Status(enum.Enum):
    SUPPORTED = "supported"
    KEPT = "kept"
    WARNED = "warned"


S, K, W = Status.SUPPORTED, Status.KEPT, Status.WARNED

HELM_KEYS: dict[str, Status] = {
    "chart": S,
    "repo": S,
    "version": S,
    "releaseName": S,
    "values": S,
    "valuesFiles": S,
    "valuesFrom": W,
    "timeoutSeconds": W,
    "force": W,
    "takeOwnership": W,
    "maxHistory": W,
    "waitForJobs": W,
    "atomic": W,
    "disablePreProcess": W,
    "disableDNS": W,
    "skipSchemaValidation": W,
    "templateValues": W,
}
# Options that a target customization may override (Fleet's BundleDeploymentOptions).
OPTION_KEYS: dict[str, Status] = {
    "defaultNamespace": S,
    "namespace": S,
    "helm": S,
    "kustomize": S,
    "yaml": S,
    "keepResources": K,
    "correctDrift": K,
    "diff": K,
    "serviceAccount": W,
    "forceSyncGeneration": W,
    "ignore": W,
    "namespaceLabels": W,
    "namespaceAnnotations": W,
    "deleteCRDResources": W,
}
CRITERIA_KEYS: dict[str, Status] = {
    "name": S,
    "clusterName": S,
    "clusterSelector": S,
    "clusterGroup": S,
    "clusterGroupSelector": S,
}
TARGET_CUSTOMIZATION_KEYS: dict[str, Status] = {**CRITERIA_KEYS, "doNotDeploy": S, **OPTION_KEYS}
TOP_KEYS: dict[str, Status] = {
    "name": S,
    "labels": S,
    "targetCustomizations": S,
    "targets": S,
    "overrideTargets": S,
    "dependsOn": K,
    "paused": K,
    **OPTION_KEYS,
    "rolloutStrategy": W,
    "imageScans": W,
    "deleteNamespace": W,
    "overwrites": W,
}


@dataclass(frozen=True)
class HelmOptions:
    chart: str = ""
    repo: str = ""
    version: str = ""
    release_name: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)
    values_files: tuple[str, ...] = ()  # already folded into `values`; kept for display


@dataclass(frozen=True)
class Options:
    """How a bundle is rendered and applied; the base, or one customization's overrides."""

    default_namespace: str = ""
    namespace: str = ""
    helm: HelmOptions | None = None
    kustomize_dir: str | None = None
    overlays: tuple[str, ...] = ()
    keep_resources: bool = False
    correct_drift: Mapping[str, Any] | None = None
    diff: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Criteria:
    """Fleet's cluster criteria; group criteria are resolved by the controller."""

    cluster_name: str | None = None
    cluster_selector: manifests.ClusterSelector | None = None
    cluster_group: str | None = None
    cluster_group_selector: manifests.ClusterSelector | None = None

    @property
    def empty(self) -> bool:
        return (
            self.cluster_name is None
            and self.cluster_selector is None
            and self.cluster_group is None
            and self.cluster_group_selector is None
        )


@dataclass(frozen=True)
class TargetEntry:
    """A `targets` entry (where) or a `targetCustomizations` entry (how)."""

    name: str
    criteria: Criteria
    do_not_deploy: bool = False
    options: Options = field(default_factory=Options)


@dataclass(frozen=True)
class BundleSpec:
    name: str
    source: Path
    options: Options
    labels: Mapping[str, str] = field(default_factory=dict)
    targets: tuple[TargetEntry, ...] = ()
    customizations: tuple[TargetEntry, ...] = ()
    depends_on: tuple[Mapping[str, Any], ...] = ()
    paused: bool = False
    warnings: tuple[str, ...] = ()


def descriptor(directory: Path) -> Path | None:
    """The bundle's fleet.yaml (or bundle.yaml), if it has one."""
    for name in DESCRIPTOR_NAMES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def read(directory: Path) -> BundleSpec:
    """Read the bundle description of `directory`; plain bundles get an empty one."""
    if not directory.is_dir():
        raise errors.BundleError(f"{directory}: not a directory")
    directory = directory.resolve()
    sandbox.check_links(directory, source=str(directory))
    path = descriptor(directory)
    if path is None:
        return BundleSpec(name=_bundle_name(directory.name, directory), source=directory, options=Options())
    documents = safeyaml.load_file(path, source=str(path))
    if len(documents) > 1:
        raise errors.BundleError(f"{path}: holds {len(documents)} YAML documents, expected one")
    raw = documents[0] if documents else {}
    if raw is None:
        raw = {}
    return _Parser(path, directory).bundle(raw)


def _bundle_name(value: str, where: Path) -> str:
    try:
        return names.bundle(value)
    except wire_errors.InvalidName as exc:
        raise errors.BundleError(f"{where}: {exc}; set `name:` in fleet.yaml") from exc


class _Parser:
    def __init__(self, path: Path, directory: Path) -> None:
        self.path = path
        self.directory = directory
        self.warnings: list[str] = []

    def fail(self, where: str, message: str) -> errors.BundleError:
        return errors.BundleError(f"{self.path}: {where}: {message}")

    def check_keys(self, raw: Mapping[str, Any], known: Mapping[str, Status], where: str) -> None:
        for key in raw:
            status = known.get(key) if isinstance(key, str) else None
            if status is None:
                close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
                hint = (
                    f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(known))}"
                )
                raise self.fail(where, f"unknown key {key!r}{hint}")
            if status is Status.WARNED:
                self.warnings.append(
                    f"{self.path}: {where}.{key} is a Fleet key edgefleet does not support yet; ignored"
                )

    # -- typed getters -----------------------------------------------------

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(where, f"expected a map, got {type(value).__name__}")
        return value

    def seq(self, value: Any, where: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, got {type(value).__name__}")
        return value

    def string(self, value: Any, where: str) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.fail(where, f"expected a string, got {type(value).__name__}")
        return value

    def boolean(self, value: Any, where: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true or false, got {value!r}")
        return value

    def string_map(self, value: Any, where: str) -> dict[str, str]:
        result = {}
        for key, item in self.mapping(value, where).items():
            if not isinstance(item, str):
                # As Kubernetes does: `gpu: yes` is a boolean, not the label value "yes".
                raise self.fail(f"{where}.{key}", f"label values are strings; quote it ({key}: '{item}')")
            result[key] = item
        return result

    # -- structure ---------------------------------------------------------

    def bundle(self, raw: Any) -> BundleSpec:
        top = self.mapping(raw, "fleet.yaml")
        self.check_keys(top, TOP_KEYS, "fleet.yaml")
        name = self.string(top.get("name"), "name") or self.directory.name
        targets_key = "overrideTargets" if "overrideTargets" in top else "targets"
        if "overrideTargets" in top and "targets" in top:
            raise self.fail("fleet.yaml", "give `targets` or Fleet's `overrideTargets`, not both")
        targets = tuple(
            self.entry(item, f"{targets_key}[{i}]", CRITERIA_KEYS, default_name=f"{targets_key}[{i}]")
            for i, item in enumerate(self.seq(top.get(targets_key), targets_key))
        )
        customizations = tuple(
            self.entry(
                item, f"targetCustomizations[{i}]", TARGET_CUSTOMIZATION_KEYS, default_name=f"target{i:03d}"
            )
            for i, item in enumerate(self.seq(top.get("targetCustomizations"), "targetCustomizations"))
        )
        depends_on = []
        for i, item in enumerate(self.seq(top.get("dependsOn"), "dependsOn")):
            dep = self.mapping(item, f"dependsOn[{i}]")
            self.check_keys(dep, {"name": S, "selector": S, "acceptedStates": S}, f"dependsOn[{i}]")
            if not dep.get("name") and not dep.get("selector"):
                raise self.fail(f"dependsOn[{i}]", "must give `name` or `selector`")
            depends_on.append(dict(dep))
        options = self.options(top, "fleet.yaml")
        self._warn_unused_overlays(options, customizations)
        return BundleSpec(
            name=_bundle_name(name, self.path),
            source=self.directory,
            options=options,
            labels=self.string_map(top.get("labels"), "labels"),
            targets=targets,
            customizations=customizations,
            depends_on=tuple(depends_on),
            paused=self.boolean(top.get("paused"), "paused"),
            warnings=tuple(self.warnings),
        )

    def _warn_unused_overlays(self, base: Options, customizations: tuple[TargetEntry, ...]) -> None:
        """yaml.overlays only patch plain manifests; on a Helm or Kustomize bundle they do nothing."""
        root_chart = (self.directory / "Chart.yaml").is_file()
        for where, options in [
            ("fleet.yaml", base),
            *((f"targetCustomizations {e.name}", e.options) for e in customizations),
        ]:
            helm = options.helm or base.helm
            templated = (
                root_chart
                or bool(helm and (helm.chart or helm.repo))
                or bool(options.kustomize_dir or base.kustomize_dir)
            )
            if options.overlays and templated:
                self.warnings.append(
                    f"{self.path}: {where}: yaml.overlays only apply to plain manifests; this bundle renders "
                    "with Helm or Kustomize, so they have no effect"
                )

    def entry(self, raw: Any, where: str, known: Mapping[str, Status], *, default_name: str) -> TargetEntry:
        item = self.mapping(raw, where)
        self.check_keys(item, known, where)
        cluster_name = self.string(item.get("clusterName"), f"{where}.clusterName") or None
        if cluster_name is not None:
            try:
                names.cluster(cluster_name)
            except wire_errors.InvalidName as exc:
                raise self.fail(f"{where}.clusterName", str(exc)) from exc
        criteria = Criteria(
            cluster_name=cluster_name,
            cluster_selector=self.selector(item.get("clusterSelector"), f"{where}.clusterSelector"),
            cluster_group=self.string(item.get("clusterGroup"), f"{where}.clusterGroup") or None,
            cluster_group_selector=self.selector(
                item.get("clusterGroupSelector"), f"{where}.clusterGroupSelector"
            ),
        )
        return TargetEntry(
            name=self.string(item.get("name"), f"{where}.name") or default_name,
            criteria=criteria,
            do_not_deploy=self.boolean(item.get("doNotDeploy"), f"{where}.doNotDeploy"),
            options=self.options(item, where),
        )

    def selector(self, raw: Any, where: str) -> manifests.ClusterSelector | None:
        if raw is None:
            return None
        selector = self.mapping(raw, where)
        self.check_keys(selector, {"matchLabels": S, "matchExpressions": S}, where)
        requirements = []
        for i, item in enumerate(self.seq(selector.get("matchExpressions"), f"{where}.matchExpressions")):
            at = f"{where}.matchExpressions[{i}]"
            expression = self.mapping(item, at)
            self.check_keys(expression, {"key": S, "operator": S, "values": S}, at)
            key = self.string(expression.get("key"), f"{at}.key")
            operator = self.string(expression.get("operator"), f"{at}.operator")
            values = tuple(
                self.string(v, f"{at}.values") for v in self.seq(expression.get("values"), f"{at}.values")
            )
            if not key:
                raise self.fail(at, "`key` is required")
            if operator not in manifests.LABEL_OPERATORS:
                raise self.fail(
                    at, f"operator {operator!r} is not one of {', '.join(sorted(manifests.LABEL_OPERATORS))}"
                )
            if operator in ("In", "NotIn") and not values:
                raise self.fail(at, f"operator {operator} needs at least one value")
            if operator in ("Exists", "DoesNotExist") and values:
                raise self.fail(at, f"operator {operator} takes no values")
            requirements.append(manifests.Requirement(key, operator, values))
        return manifests.ClusterSelector(
            self.string_map(selector.get("matchLabels"), f"{where}.matchLabels"), tuple(requirements)
        )

    def options(self, raw: Mapping[str, Any], where: str) -> Options:
        helm = None
        if raw.get("helm") is not None:
            h = self.mapping(raw["helm"], f"{where}.helm")
            self.check_keys(h, HELM_KEYS, f"{where}.helm")
            files = tuple(
                self.string(v, f"{where}.helm.valuesFiles")
                for v in self.seq(h.get("valuesFiles"), f"{where}.helm.valuesFiles")
            )
            inline = dict(self.mapping(h.get("values"), f"{where}.helm.values"))
            helm = HelmOptions(
                chart=self.string(h.get("chart"), f"{where}.helm.chart"),
                repo=self.string(h.get("repo"), f"{where}.helm.repo"),
                version=self.string(h.get("version"), f"{where}.helm.version"),
                release_name=self.string(h.get("releaseName"), f"{where}.helm.releaseName"),
                values=values.with_files(self.directory, files, inline, source=f"{self.path}: {where}.helm"),
                values_files=files,
            )
        kustomize_dir = None
        if raw.get("kustomize") is not None:
            k = self.mapping(raw["kustomize"], f"{where}.kustomize")
            self.check_keys(k, {"dir": S}, f"{where}.kustomize")
            kustomize_dir = self.string(k.get("dir"), f"{where}.kustomize.dir") or None
        overlays: tuple[str, ...] = ()
        if raw.get("yaml") is not None:
            y = self.mapping(raw["yaml"], f"{where}.yaml")
            self.check_keys(y, {"overlays": S}, f"{where}.yaml")
            overlays = tuple(
                self.string(o, f"{where}.yaml.overlays")
                for o in self.seq(y.get("overlays"), f"{where}.yaml.overlays")
            )
        correct_drift = None
        if raw.get("correctDrift") is not None:
            c = self.mapping(raw["correctDrift"], f"{where}.correctDrift")
            self.check_keys(c, {"enabled": K, "force": K, "keepFailHistory": K}, f"{where}.correctDrift")
            correct_drift = {
                key: self.boolean(value, f"{where}.correctDrift.{key}") for key, value in c.items()
            }
        diff = None
        if raw.get("diff") is not None:
            d = self.mapping(raw["diff"], f"{where}.diff")
            self.check_keys(d, {"comparePatches": K}, f"{where}.diff")
            diff = {
                "comparePatches": [
                    dict(self.mapping(p, f"{where}.diff.comparePatches"))
                    for p in self.seq(d.get("comparePatches"), f"{where}.diff.comparePatches")
                ]
            }
        return Options(
            default_namespace=self.string(raw.get("defaultNamespace"), f"{where}.defaultNamespace"),
            namespace=self.string(raw.get("namespace"), f"{where}.namespace"),
            helm=helm,
            kustomize_dir=kustomize_dir,
            overlays=overlays,
            keep_resources=self.boolean(raw.get("keepResources"), f"{where}.keepResources"),
            correct_drift=correct_drift,
            diff=diff,
        )
