"""Plain-manifest bundles: YAML/JSON files, with Fleet's `yaml.overlays`.

Files are read in sorted path order so the rendered objects, and so the
deployment id, never depend on the file system's listing order. As in Fleet:
`fleet.yaml`/`bundle.yaml` are not manifests; files that are not YAML or JSON
are ignored; a subdirectory with its own fleet.yaml or Chart.yaml belongs to
another bundle or chart and is skipped; and `overlays/` holds overlays, not
manifests.

An overlay `overlays/<name>/<path>` replaces the base file `<path>`, and
`overlays/<name>/<dir>/<file>_patch.<ext>` patches the base `<dir>/<file>.<ext>`:
a list is an RFC 6902 JSON patch, a map a strategic merge patch (for
Kubernetes' own kinds; a merge patch for others), applied by Kustomize so the
merge keys are the real ones.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from controller import errors, fleetyaml, kustomize, safeyaml, sandbox

MANIFEST_SUFFIXES = frozenset({".yaml", ".yml", ".json"})
OVERLAYS_DIR = "overlays"
PATCH_MARK = "_patch."


def _owned_elsewhere(directory: Path, root: Path) -> bool:
    """A subdirectory that is its own bundle or chart."""
    if directory == root:
        return False
    return any((directory / name).is_file() for name in (*fleetyaml.DESCRIPTOR_NAMES, "Chart.yaml"))


def manifest_files(root: Path, *, source: str) -> dict[str, bytes]:
    """Relative path -> content of every manifest file of the bundle, overlays included."""
    found: dict[str, bytes] = {}
    for path in sandbox.files(root, source=source):
        relative_path = path.relative_to(root)
        if path.suffix not in MANIFEST_SUFFIXES or relative_path.as_posix() in fleetyaml.DESCRIPTOR_NAMES:
            continue
        if any(_owned_elsewhere(root / parent, root) for parent in relative_path.parents):
            continue
        found[relative_path.as_posix()] = sandbox.read(path, source=f"{source}: {relative_path}")
    return found


def apply_overlays(files: Mapping[str, bytes], overlays: tuple[str, ...], *, source: str) -> dict[str, bytes]:
    """Apply the named overlays in order; return the base files without `overlays/`."""
    result = {name: data for name, data in files.items() if not name.startswith(OVERLAYS_DIR + "/")}
    for overlay in overlays:
        prefix = f"{OVERLAYS_DIR}/{overlay}/"
        entries = sorted(name for name in files if name.startswith(prefix))
        if not entries:
            raise errors.BundleError(
                f"{source}: yaml.overlays names {overlay!r} but {prefix} holds no manifests"
            )
        for name in entries:
            relative = name[len(prefix) :]
            base_name = Path(relative).name
            if PATCH_MARK not in base_name:
                result[relative] = files[name]
                continue
            target = str(Path(relative).with_name(base_name.replace(PATCH_MARK, ".", 1)))
            if target not in result:
                raise errors.BundleError(f"{source}: {name} patches {target}, which the bundle does not have")
            result[target] = _patched(
                result[target], files[name], target=target, patch_name=name, source=source
            )
    return result


def _patched(base: bytes, patch: bytes, *, target: str, patch_name: str, source: str) -> bytes:
    objects = documents_to_objects(base, source=f"{source}: {target}")
    if len(objects) != 1:
        raise errors.BundleError(
            f"{source}: {patch_name} patches {target}, which must hold exactly one object"
        )
    [obj] = objects
    patch_documents = [d for d in safeyaml.load_all(patch, source=f"{source}: {patch_name}") if d is not None]
    if len(patch_documents) != 1:
        raise errors.BundleError(f"{source}: {patch_name} must hold exactly one patch")
    [patch_value] = patch_documents
    if isinstance(patch_value, dict) and not isinstance(patch_value.get("metadata", {}), dict):
        raise errors.BundleError(f"{source}: {patch_name}: metadata must be a map")
    patched = _kustomize_patch(obj, patch_value, source=f"{source}: {patch_name}")
    # JSON is YAML that every parser reads alike (no YAML 1.1 / 1.2 differences).
    return json.dumps(patched).encode()


def _kustomize_patch(obj: dict[str, Any], patch_value: Any, *, source: str) -> dict[str, Any]:
    metadata = obj.get("metadata") or {}
    api_version = str(obj.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    entry: dict[str, Any] = {"path": "patch.yaml"}
    if isinstance(patch_value, list):
        entry["target"] = {
            "group": group,
            "version": version,
            "kind": obj.get("kind"),
            "name": metadata.get("name"),
        }
        if metadata.get("namespace"):
            entry["target"]["namespace"] = metadata["namespace"]
    elif isinstance(patch_value, dict):
        # Fleet patches by file, so a patch may omit the object's identity; kustomize needs it.
        identity_metadata = {"name": metadata.get("name")}
        if metadata.get("namespace"):
            identity_metadata["namespace"] = metadata["namespace"]
        patch_value = {
            **patch_value,
            "apiVersion": api_version,
            "kind": obj.get("kind"),
            "metadata": {**(patch_value.get("metadata") or {}), **identity_metadata},
        }
    else:
        raise errors.BundleError(f"{source}: a patch is a map (strategic merge) or a list (JSON patch)")
    with tempfile.TemporaryDirectory(prefix="edgefleet-patch-") as tmp:
        directory = Path(tmp)
        (directory / "base.yaml").write_text(json.dumps(obj), encoding="utf-8")
        (directory / "patch.yaml").write_text(json.dumps(patch_value), encoding="utf-8")
        (directory / "kustomization.yaml").write_text(
            json.dumps({"resources": ["base.yaml"], "patches": [entry]}), encoding="utf-8"
        )
        output = kustomize.build(directory, source=source)
    patched = documents_to_objects(output, source=source)
    if len(patched) != 1:
        raise errors.BundleError(f"{source}: the patch must leave exactly one object, it left {len(patched)}")
    return patched[0]


def load_objects(
    root: Path, overlays: tuple[str, ...] = (), *, source: str | None = None
) -> list[dict[str, Any]]:
    """The Kubernetes objects of a plain bundle, overlays applied, in a stable order."""
    if not root.is_dir():
        raise errors.BundleError(f"{root} is not a directory")
    label = source or root.name
    files = apply_overlays(manifest_files(root, source=label), overlays, source=label)
    objects: list[dict[str, Any]] = []
    for name in sorted(files):
        objects.extend(documents_to_objects(files[name], source=f"{label}: {name}"))
    return objects


def documents_to_objects(data: bytes | str, *, source: str) -> list[dict[str, Any]]:
    """Kubernetes objects of a YAML stream; `List` kinds are expanded, empty documents skipped."""
    objects: list[dict[str, Any]] = []
    for index, document in enumerate(safeyaml.load_all(data, source=source)):
        if document is None:
            continue
        items = (
            document.get("items") if isinstance(document, dict) and document.get("kind") == "List" else None
        )
        for obj in items if isinstance(items, list) else [document]:
            if (
                not isinstance(obj, dict)
                or not isinstance(obj.get("apiVersion"), str)
                or not isinstance(obj.get("kind"), str)
            ):
                raise errors.BundleError(f"{source}: document {index + 1} is not a Kubernetes object")
            metadata = obj.get("metadata")
            if (
                not isinstance(metadata, dict)
                or not isinstance(metadata.get("name"), str)
                or not metadata["name"]
            ):
                raise errors.BundleError(
                    f"{source}: document {index + 1} ({obj['kind']}) has no metadata.name"
                )
            objects.append(obj)
    return objects
