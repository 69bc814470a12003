"""Kustomize through the real tool: `kubectl kustomize`, else `kustomize build`.

Runs in a sandbox copy of the bundle (controller.sandbox). Before running, the
kustomizations are read for references that leave the bundle or reach the
network, so the operator gets "points outside the bundle directory" rather
than a tool's file-not-found. As Fleet does, Helm output is handed to a
kustomization as the extra resource `fleet-manifests.yaml`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from controller import errors, safeyaml, tools

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
HELM_OUTPUT_NAME = "fleet-manifests.yaml"

# A build of a large overlay takes well under a second; a minute means it hangs.
BUILD_TIMEOUT = 60.0

# Kustomization fields whose values name files or directories.
_PATH_LISTS = (
    "resources",
    "bases",
    "components",
    "crds",
    "patchesStrategicMerge",
    "configurations",
    "generators",
    "transformers",
    "validators",
)
_PATH_ITEMS = ("patches", "patchesJson6902", "replacements")
_GENERATORS = ("configMapGenerator", "secretGenerator")
_REMOTE_MARKERS = ("://", "github.com/", "gitlab.com/", "bitbucket.org/", "git@", "git::")


def command() -> list[str]:
    kubectl = tools.which("kubectl")
    if kubectl:
        return [kubectl, "kustomize"]
    standalone = tools.which("kustomize")
    if standalone:
        return [standalone, "build"]
    raise errors.BundleError("Kustomize is needed but neither `kubectl` nor `kustomize` is on PATH")


def kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_NAMES:
        if (directory / name).is_file():
            return directory / name
    return None


def _references(kustomization: dict[str, Any]) -> Iterator[str]:
    for key in _PATH_LISTS:
        for item in kustomization.get(key) or []:
            if isinstance(item, str):
                yield item
    for key in _PATH_ITEMS:
        for item in kustomization.get(key) or []:
            if isinstance(item, dict) and isinstance(item.get("path"), str):
                yield item["path"]
    for key in _GENERATORS:
        for generator in kustomization.get(key) or []:
            if not isinstance(generator, dict):
                continue
            for field in ("files", "envs"):
                for item in generator.get(field) or []:
                    if isinstance(item, str):
                        yield item.split("=", 1)[-1]
            if isinstance(generator.get("env"), str):
                yield generator["env"]
    openapi = kustomization.get("openapi")
    if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
        yield openapi["path"]


def check(root: Path, directory: Path, *, source: str) -> None:
    """Refuse kustomizations (followed through local references) that leave `root` or go remote."""
    seen: set[Path] = set()
    pending = [directory]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        path = kustomization_file(current)
        if path is None:
            continue
        where = f"{source}: {path.relative_to(root)}"
        documents = safeyaml.load_all(path.read_bytes(), source=where)
        kustomization = documents[0] if documents and isinstance(documents[0], dict) else {}
        if kustomization.get("helmCharts") or kustomization.get("helmChartInflationGenerator"):
            raise errors.BundleError(
                f"{where}: kustomize's helmCharts are not supported; use fleet.yaml's `helm`"
            )
        for reference in _references(kustomization):
            if any(marker in reference for marker in _REMOTE_MARKERS):
                raise errors.BundleError(
                    f"{where}: remote reference {reference!r} is not supported; bundles render offline"
                )
            target = (current / reference).resolve()
            if not _within(root, target):
                raise errors.BundleError(f"{where}: {reference!r} points outside the bundle directory")
            if target.is_dir():
                pending.append(target)


def _within(root: Path, target: Path) -> bool:
    try:
        target.relative_to(root.resolve())
    except ValueError:
        return False
    return True


def add_helm_output(directory: Path, helm_output: str) -> None:
    """Make `helm_output` the first resource of the kustomization in `directory` (sandbox only)."""
    path = kustomization_file(directory)
    assert path is not None
    (directory / HELM_OUTPUT_NAME).write_text(helm_output, encoding="utf-8")
    kustomization = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    resources = list(kustomization.get("resources") or [])
    if HELM_OUTPUT_NAME not in resources:
        kustomization["resources"] = [HELM_OUTPUT_NAME, *resources]
    path.write_text(yaml.safe_dump(kustomization, sort_keys=False), encoding="utf-8")


def build(directory: Path, *, source: str) -> str:
    """Run the kustomize build of `directory` and return its YAML output."""
    return tools.run(
        [*command(), str(directory)],
        source=source,
        what="build the kustomization",
        timeout=BUILD_TIMEOUT,
        hide=str(directory.parent) + "/",
    )
