"""Plain-manifest bundles: every YAML/JSON document under a directory.

Files are read in sorted path order so the rendered objects, and so the
deployment id, do not depend on the file system's listing order. `fleet.yaml`
and `bundle.yaml` describe the bundle and are not manifests; files that are
not YAML or JSON are ignored, as Fleet ignores them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from controller import errors

MANIFEST_SUFFIXES = frozenset({".yaml", ".yml", ".json"})
DESCRIPTOR_NAMES = frozenset({"fleet.yaml", "bundle.yaml"})


def load_objects(directory: Path) -> list[dict[str, Any]]:
    """Return the Kubernetes objects of a plain bundle, in a stable order."""
    if not directory.is_dir():
        raise errors.BundleError(f"{directory} is not a directory")
    objects: list[dict[str, Any]] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        if path.suffix not in MANIFEST_SUFFIXES or path.name in DESCRIPTOR_NAMES:
            continue
        objects.extend(_documents(path, directory))
    return objects


def _documents(path: Path, root: Path) -> list[dict[str, Any]]:
    where = path.relative_to(root)
    try:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.BundleError(f"{where}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise errors.BundleError(f"{where}: not valid YAML: {exc}") from exc
    objects = []
    for index, document in enumerate(documents):
        if document is None:
            continue
        if not isinstance(document, dict) or not {"apiVersion", "kind"} <= document.keys():
            raise errors.BundleError(f"{where}: document {index + 1} is not a Kubernetes object")
        if not isinstance(document.get("metadata"), dict) or not document["metadata"].get("name"):
            raise errors.BundleError(f"{where}: document {index + 1} has no metadata.name")
        objects.append(document)
    return objects
