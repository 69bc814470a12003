"""What the agent remembers across restarts, under its state directory.

    manifests/<bundle>.bin    the last verified envelope, exactly as received
    applied/<bundle>.json     generation, deployment id, inventory of applied objects

The envelope is kept rather than a decoded copy so that a restart verifies it
again against the trusted keys before trusting it. The inventory is what a
new generation prunes from; while an apply is under way it holds the union
of the old and new objects, so a crash mid-apply can never lose track of an
object the agent created. Every write is atomic (temp file, fsync, rename).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent import errors
from wire import errors as wire_errors
from wire import names


@dataclass(frozen=True, order=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


@dataclass(frozen=True)
class Applied:
    """The agent's record of one bundle on its cluster."""

    generation: int = 0
    deployment_id: str | None = None
    inventory: tuple[ObjectRef, ...] = ()
    keep_resources: bool = False
    complete: bool = True  # False while an apply or removal is under way


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        # Applied records as last read or written: the agent reads its own record on every
        # status change, and nothing but this store writes the directory.
        self._applied: dict[str, Applied] = {}
        # The event loop reads records while a worker thread saves them: without the lock a
        # read of the old file could land in the cache after the save of the new one.
        self._applied_lock = threading.Lock()
        self.session_read = 0  # the largest session number read from the directory
        try:
            for sub in ("manifests", "applied"):
                (root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise errors.StateError(f"cannot create state directory {root}: {exc.strerror}") from exc

    def _path(self, sub: str, bundle: str, suffix: str) -> Path:
        return self.root / sub / f"{names.bundle(bundle)}{suffix}"

    # -- manifests --------------------------------------------------------------

    def save_manifest(self, bundle: str, envelope: bytes) -> None:
        write_atomic(self._path("manifests", bundle, ".bin"), envelope)

    def manifests(self) -> dict[str, bytes]:
        found = {}
        for path in sorted((self.root / "manifests").glob("*.bin")):
            try:
                bundle = names.bundle(path.stem)
                found[bundle] = path.read_bytes()
            except (OSError, wire_errors.InvalidName):
                continue
        return found

    def forget_manifest(self, bundle: str) -> None:
        path = self._path("manifests", bundle, ".bin")
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise errors.StateError(f"cannot remove {path}: {exc.strerror}") from exc

    # -- applied records ---------------------------------------------------------

    def applied(self, bundle: str) -> Applied:
        with self._applied_lock:
            known = self._applied.get(bundle)
            if known is not None:
                return known
            path = self._path("applied", bundle, ".json")
            try:
                raw = json.loads(path.read_text())
            except FileNotFoundError:
                return Applied()
            except (OSError, ValueError) as exc:
                raise errors.StateError(f"cannot read {path}: {exc}") from exc
            record = self._applied[bundle] = _applied_from_json(raw, path)
            return record

    def save_applied(self, bundle: str, record: Applied) -> None:
        document = {
            "generation": record.generation,
            "deployment_id": record.deployment_id,
            "keep_resources": record.keep_resources,
            "complete": record.complete,
            "inventory": [ref.__dict__ for ref in record.inventory],
        }
        with self._applied_lock:
            self._applied.pop(bundle, None)  # if the write fails, the next read says why
            write_atomic(self._path("applied", bundle, ".json"), json.dumps(document).encode())
            self._applied[bundle] = record

    def next_session(self) -> int:
        """A number larger than any this agent used before: one per broker connection.

        Birth, will and status carry it, so a late will from an old connection can
        never mark a reconnected device offline (Sparkplug's bdSeq, persisted).
        Raises StateError when the number cannot be read or kept; the caller may
        still use `following_session` of its last one, in memory.
        """
        path = self.root / "session"
        try:
            current = int(path.read_text())
        except FileNotFoundError:
            current = 0
        except (OSError, ValueError) as exc:
            raise errors.StateError(f"cannot read {path}: {exc}") from exc
        # Read, if not kept: a caller that falls back to memory still outranks it (a device
        # without a clock that runs at boot may otherwise start below its last session).
        self.session_read = max(self.session_read, current)
        session = following_session(current, time.time())
        self.remember_session(session)
        return session

    def remember_session(self, session: int) -> None:
        """Keep `session` as the last one used (for one taken while the directory was unwritable)."""
        write_atomic(self.root / "session", str(session).encode())

    def bundles(self) -> list[str]:
        found = {p.stem for p in (self.root / "applied").glob("*.json")}
        found |= {p.stem for p in (self.root / "manifests").glob("*.bin")}
        return sorted(found)


def following_session(last: int, now: float) -> int:
    """The session after `last` at Unix time `now`: time-based (milliseconds), so an agent
    whose state directory was wiped, or could not be written, still outranks its past sessions."""
    return max(last + 1, int(now * 1000))


def _applied_from_json(raw: Any, path: Path) -> Applied:
    try:
        return Applied(
            generation=int(raw["generation"]),
            deployment_id=raw.get("deployment_id"),
            inventory=tuple(ObjectRef(**ref) for ref in raw.get("inventory", [])),
            keep_resources=bool(raw.get("keep_resources", False)),
            complete=bool(raw.get("complete", True)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise errors.StateError(f"{path} is not an applied record: {exc}") from exc


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` (mode 0600) so readers see the old file or the new one, never a mix."""
    # One temp file per writer: two threads saving the same file must not rename each other's.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
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
