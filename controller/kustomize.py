"""Kustomize through the real tool: `kubectl kustomize`, else `kustomize build`.

Runs in a sandbox copy of the bundle (controller.sandbox). Before running, the
kustomizations are read for references that leave the bundle or reach the
network, so the operator gets "points outside the bundle directory" rather
than a tool's file-not-found. As Fleet does, Helm output is handed to a
kustomization as the extra resource `fleet-manifests.yaml`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from controller import errors, safeyaml, sandbox, tools

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
HELM_OUTPUT_NAME = "fleet-manifests.yaml"

# A build of a large overlay takes well under a second; a minute means it hangs.
BUILD_TIMEOUT = 60.0

# Kustomization fields whose values name files or directories (lower-cased:
# kustomize reads field names without regard to case, and so does the check).
_PATH_LISTS = ("resources", "bases", "components", "crds", "patchesstrategicmerge", "configurations",
               "generators", "transformers", "validators")  # fmt: skip
_PATH_ITEMS = ("patches", "patchesjson6902", "replacements")
_GENERATORS = ("configmapgenerator", "secretgenerator")
_REFUSED = ("helmcharts", "helmchartinflationgenerator", "helmglobals")

# Kustomize fetches remote bases with git and plain URLs over HTTP. Bundles render
# offline: no git on PATH, and every proxy variable points at a closed port.
_OFFLINE_ENV = {"PATH": "", "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
                "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": "",
                "no_proxy": "", "GIT_ALLOW_PROTOCOL": "file", "HOME": "/nonexistent"}  # fmt: skip


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


def _lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def _references(kustomization: dict[str, Any], where: str) -> Iterator[str]:
    """Every path the kustomization names; anything that is not a string is refused."""

    def paths(items: Any, field: str) -> Iterator[str]:
        for item in items if isinstance(items, list) else [items]:
            if not isinstance(item, str):
                raise errors.BundleError(
                    f"{where}: {field} entries must be plain strings, got {item!r}"[:300]
                )
            yield item

    for key in _PATH_LISTS:
        if kustomization.get(key) is not None:
            yield from paths(kustomization[key], key)
    for key in _PATH_ITEMS:
        for item in kustomization.get(key) or []:
            if isinstance(item, dict) and item.get("path") is not None:
                yield from paths(item["path"], f"{key}.path")
    for key in _GENERATORS:
        for generator in kustomization.get(key) or []:
            if not isinstance(generator, dict):
                continue
            for field in ("files", "envs", "env"):
                if generator.get(field) is not None:
                    yield from (item.split("=", 1)[-1] for item in paths(generator[field], f"{key}.{field}"))
    openapi = kustomization.get("openapi")
    if isinstance(openapi, dict) and openapi.get("path") is not None:
        yield from paths(openapi["path"], "openapi.path")


def check(root: Path, directory: Path, *, source: str) -> None:
    """Refuse kustomizations (followed through local references) that leave `root` or go remote.

    Every reference must name a file or directory that exists inside the bundle:
    kustomize treats a name that does not exist locally as a remote location.
    """
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
        documents = safeyaml.load_file(path, source=where)
        if len(documents) != 1 or not isinstance(documents[0], dict):
            raise errors.BundleError(f"{where}: a kustomization is one map")
        kustomization = _lower_keys(documents[0])
        for key in _REFUSED:
            if key in kustomization:
                raise errors.BundleError(
                    f"{where}: kustomize's own helm support is off; use fleet.yaml's `helm`"
                )
        for reference in _references(kustomization, where):
            relative = (current.relative_to(root) / reference).as_posix()
            target = sandbox.resolve_inside(root, relative, what="reference", source=where)
            if not target.exists():
                raise errors.BundleError(
                    f"{where}: {reference!r} is not in the bundle (remote references are not supported)"
                )
            if target.is_dir():
                pending.append(target)


def add_helm_output(directory: Path, helm_output: str, *, source: str) -> None:
    """Make `helm_output` the first resource of the kustomization in `directory` (sandbox only).

    The kustomization's text is edited in place, not re-serialized, so every
    other value keeps the exact spelling kustomize (a YAML 1.2 reader) expects.
    """
    path = kustomization_file(directory)
    assert path is not None
    (directory / HELM_OUTPUT_NAME).write_text(helm_output, encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise errors.BundleError(f"{source}: {path.name} is not valid YAML: {exc}") from exc
    if not isinstance(root, yaml.MappingNode):
        raise errors.BundleError(f"{source}: {path.name} is not a map")
    entry = json.dumps(HELM_OUTPUT_NAME)
    for key, value in root.value:
        if not (isinstance(key, yaml.ScalarNode) and key.value.lower() == "resources"):
            continue
        if not isinstance(value, yaml.SequenceNode):
            raise errors.BundleError(f"{source}: {path.name}: resources must be a list")
        if value.flow_style or not value.value:
            # `resources: [a, b]` or `resources: []`: insert right after the bracket.
            at = text.index("[", value.start_mark.index) + 1
            text = text[:at] + entry + ("," if value.value else "") + text[at:]
        else:
            # Block style: repeat the first item's "  - " prefix on a line of our own above it.
            first = value.value[0].start_mark
            line_start = text.rfind("\n", 0, first.index) + 1
            prefix = text[line_start : first.index]
            if prefix.strip() != "-":
                raise errors.BundleError(f"{source}: {path.name}: write resources one per line ('- name')")
            text = text[:line_start] + prefix + entry + "\n" + text[line_start:]
        break
    else:
        text = text.rstrip("\n") + f"\nresources:\n- {entry}\n"
    path.write_text(text, encoding="utf-8")


def build(directory: Path, *, source: str) -> str:
    """Run the kustomize build of `directory` and return its YAML output."""
    return tools.run(
        [*command(), str(directory)],
        source=source,
        what="build the kustomization",
        timeout=BUILD_TIMEOUT,
        hide=str(directory.parent) + "/",
        env=_OFFLINE_ENV,
    )
