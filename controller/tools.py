"""Running the external tools rendering needs (kubectl, kustomize, helm).

One place that finds a tool (on PATH, or beside this Python when a
virtualenv was not activated) and runs it with a deadline, turning every way
it can fail into a BundleError that names the bundle and target.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from controller import errors


def which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


def run(
    argv: list[str],
    *,
    source: str,
    what: str,
    timeout: float,
    hide: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run `argv`; return its standard output, or raise BundleError saying it could not `what`.

    `hide` is a path prefix removed from the tool's messages (a sandbox directory);
    `env` replaces the environment (to keep a tool offline).
    """
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, env=dict(env) if env else None
        )
    except subprocess.TimeoutExpired as exc:
        raise errors.BundleError(
            f"{source}: {Path(argv[0]).name} did not {what} within {timeout:.0f}s"
        ) from exc
    except OSError as exc:
        raise errors.BundleError(f"{source}: cannot run {argv[0]}: {exc.strerror}") from exc
    if result.returncode != 0:
        message = result.stderr.strip() or f"exit status {result.returncode}"
        if hide:
            message = message.replace(hide, "")
        raise errors.BundleError(f"{source}: {Path(argv[0]).name} could not {what}: {message}")
    return result.stdout
