"""The controller's signing key on disk.

`<state-dir>/signing-key.pem` holds the Ed25519 private key, mode 0600, written
atomically (temp file, fsync, rename) so a crash never leaves half a key.
Replacing it orphans every agent that pins the old key, so `init` refuses to
overwrite unless forced. The public half sits beside it for distribution.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from controller import errors
from wire import errors as wire_errors
from wire import keys

log = logging.getLogger(__name__)

PRIVATE_NAME = "signing-key.pem"
PUBLIC_NAME = "signing-key.pub.pem"


def private_path(state_dir: Path) -> Path:
    return state_dir / PRIVATE_NAME


def public_path(state_dir: Path) -> Path:
    return state_dir / PUBLIC_NAME


def init(state_dir: Path, *, force: bool = False) -> keys.SigningKey:
    """Create the signing key in `state_dir`; refuse to replace one unless `force`."""
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise errors.StateError(f"cannot create state directory {state_dir}: {exc.strerror}") from exc
    target = private_path(state_dir)
    if target.exists() and not force:
        raise errors.KeyExists(
            f"{target} already exists; agents trust it. Use --force to replace it (they must re-join)"
        )
    key = keys.SigningKey.generate()
    write_atomic(target, key.to_pem(), mode=0o600)
    write_atomic(public_path(state_dir), key.verify_key.to_pem(), mode=0o644)
    log.info("created signing key %s in %s", key.verify_key.fingerprint, state_dir)
    return key


def load(state_dir: Path) -> keys.SigningKey:
    target = private_path(state_dir)
    try:
        pem = target.read_bytes()
    except FileNotFoundError:
        raise errors.StateError(f"no signing key at {target}; run 'edgefleet keys init' first") from None
    except OSError as exc:
        raise errors.StateError(f"cannot read {target}: {exc.strerror}") from exc
    try:
        return keys.SigningKey.from_pem(pem)
    except wire_errors.BadKey as exc:
        raise errors.StateError(f"{target}: {exc}") from exc


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.write(fd, data)
            os.fchmod(fd, mode)  # os.open filtered the mode through the umask; set it exactly
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise errors.StateError(f"cannot write {path}: {exc.strerror}") from exc
