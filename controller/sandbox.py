"""A private copy of a bundle directory for tools to run in.

Helm and Kustomize read files by path, and a kustomization can name
`../../anything`. Rendering therefore happens in a temporary copy holding only
the bundle's own files: a reference that leaves the bundle finds nothing, and
a symlink that points outside the bundle is refused before anything runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from controller import errors


def inside(root: Path, candidate: Path) -> bool:
    """Whether `candidate` (resolved) lies within `root` (resolved)."""
    try:
        candidate.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def check_links(root: Path, *, source: str) -> None:
    """Refuse a bundle holding a symlink that resolves outside of it."""
    for current, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(current) / name
            if path.is_symlink() and not inside(root, path):
                link = os.readlink(path)
                where = path.relative_to(root)
                raise errors.BundleError(
                    f"{source}: {where}: symlink points outside the bundle directory ({link})"
                )


@contextmanager
def copy(root: Path, *, source: str) -> Iterator[Path]:
    """Yield a temporary copy of `root` (links inside the bundle are copied as files)."""
    check_links(root, source=source)
    with tempfile.TemporaryDirectory(prefix="edgefleet-render-") as tmp:
        target = Path(tmp) / "bundle"
        shutil.copytree(root, target, symlinks=False)
        yield target
