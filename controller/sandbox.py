"""Keeping a bundle to its own files.

A bundle is operator input and may come from anywhere, so every path it names
is resolved here and must stay inside the bundle directory; every file is
read with a size cap; symlinks must point at files inside the bundle (links to
directories invite loops and are refused); unreadable files and directories
are errors, never silently skipped. Tools (Helm, Kustomize) run in a
temporary copy of the bundle made only from its own files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from controller import errors

# One input file (a manifest, a values file, rendered output): far above any
# real manifest (Kubernetes caps objects near 1.5 MiB), far below memory trouble.
MAX_FILE_BYTES = 32 * 1024 * 1024


def inside(root: Path, candidate: Path) -> bool:
    """Whether `candidate` (resolved) lies within `root` (resolved)."""
    try:
        candidate.resolve().relative_to(root.resolve())
    except (ValueError, RuntimeError, OSError):
        return False
    return True


def resolve_inside(root: Path, relative: str, *, what: str, source: str) -> Path:
    """`root / relative`, resolved; BundleError unless it is a usable path inside `root`."""
    try:
        path = (root / relative).resolve()
    except (ValueError, RuntimeError, OSError) as exc:
        raise errors.BundleError(f"{source}: {what} {relative!r} is not a usable path: {exc}") from exc
    if not inside(root, path):
        raise errors.BundleError(f"{source}: {what} {relative!r} points outside the bundle directory")
    return path


def _walk_error(source: str) -> object:
    def fail(exc: OSError) -> None:
        raise errors.BundleError(f"{source}: cannot read {exc.filename}: {exc.strerror}") from exc

    return fail


def files(root: Path, *, source: str) -> list[Path]:
    """Every regular file under `root` (links to files included), sorted; unreadable dirs are errors."""
    found: list[Path] = []
    for current, _dirs, names in os.walk(root, onerror=_walk_error(source)):  # type: ignore[arg-type]
        found.extend(Path(current) / name for name in names)
    return sorted(found)


def check_links(root: Path, *, source: str) -> None:
    """Refuse symlinks that dangle, loop, point outside the bundle, or point at directories."""
    for current, dirs, names in os.walk(root, onerror=_walk_error(source)):  # type: ignore[arg-type]
        for name in dirs + names:
            path = Path(current) / name
            if not path.is_symlink():
                continue
            where = path.relative_to(root)
            try:
                target = path.resolve(strict=True)
            except (RuntimeError, OSError) as exc:
                raise errors.BundleError(f"{source}: {where}: symlink does not resolve: {exc}") from exc
            if not inside(root, target):
                link = os.readlink(path)
                raise errors.BundleError(
                    f"{source}: {where}: symlink points outside the bundle directory ({link})"
                )
            if target.is_dir():
                raise errors.BundleError(f"{source}: {where}: symlinks to directories are not supported")


def read(path: Path, *, source: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of `path`, refusing files over `limit` before reading them."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                raise errors.BundleError(f"{source}: {size} bytes, over the {limit}-byte limit for one file")
            data = handle.read(limit + 1)
    except OSError as exc:
        raise errors.BundleError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise errors.BundleError(f"{source}: over the {limit}-byte limit for one file")
    return data


@contextmanager
def copy(root: Path, *, source: str) -> Iterator[Path]:
    """Yield a temporary copy of `root`, built only from the bundle's own files."""
    check_links(root, source=source)
    with tempfile.TemporaryDirectory(prefix="edgefleet-render-") as tmp:
        target = Path(tmp) / "bundle"
        try:
            shutil.copytree(root, target, symlinks=False)
        except (shutil.Error, OSError) as exc:
            raise errors.BundleError(f"{source}: cannot copy the bundle for rendering: {exc}") from exc
        yield target
