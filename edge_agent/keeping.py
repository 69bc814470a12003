"""What the agent keeps in its state directory when the disk may refuse it.

A state directory that cannot be written (full, read-only) must never stop
the agent: a verified manifest the disk refused is kept in memory (a restart
then waits for the broker's copy), and a session number it refused is taken
from the clock, above the last one read, and kept in memory. Each refusal is
one line of the status document's `agent_errors` until a later attempt (one
with every status) saves it; the line goes once it is saved.

Applied records are not kept here: an apply whose record cannot be saved
fails, and its bundle shows ErrApplied with the reason (edge_agent.agent).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from edge_agent import errors
from edge_agent import store as stores

log = logging.getLogger(__name__)


class Keeping:
    """Saves through `store`; calls `changed` whenever the list of refusals changes."""

    def __init__(self, store: stores.Store, changed: Callable[[], None]) -> None:
        self._store = store
        self._changed = changed
        self._manifests: dict[str, bytes] = {}  # bundle -> envelope the disk refused
        self._session: int | None = None  # a session the disk refused
        self._refused: dict[str, str] = {}  # what -> why

    @property
    def refusals(self) -> list[str]:
        """One line per thing the disk refused, for `agent_errors`."""
        return [self._refused[what] for what in sorted(self._refused)]

    def manifest(self, bundle: str, payload: bytes) -> None:
        """Save the bundle's latest verified envelope; if the disk refuses, keep it for later."""
        self._manifests[bundle] = payload
        self._save_manifest(bundle)

    def next_session(self, current: int) -> int:
        """The store's next session; the clock's, kept in memory, when the store cannot keep one."""
        try:
            session = self._store.next_session()
        except errors.StateError as exc:
            session = stores.following_session(max(current, self._store.session_read), time.time())
            self._session = session
            self._trouble("session", f"session {session} kept in memory only: {exc}")
            return session
        self._session = None
        self._fine("session")
        return session

    def again(self) -> None:
        """Try once more to save what the disk refused before."""
        for bundle in list(self._manifests):
            self._save_manifest(bundle)
        if self._session is not None:
            try:
                self._store.remember_session(self._session)
            except errors.StateError as exc:
                self._trouble("session", f"session {self._session} kept in memory only: {exc}")
                return
            self._session = None
            self._fine("session")

    def _save_manifest(self, bundle: str) -> None:
        what = f"manifest of {bundle}"
        try:
            self._store.save_manifest(bundle, self._manifests[bundle])
        except errors.StateError as exc:
            self._trouble(what, f"{what} kept in memory only (a restart waits for the broker's copy): {exc}")
            return
        del self._manifests[bundle]
        self._fine(what)

    def _trouble(self, what: str, message: str) -> None:
        if what not in self._refused:
            log.error("%s", message)
        if self._refused.get(what) != message:
            self._refused[what] = message
            self._changed()

    def _fine(self, what: str) -> None:
        if self._refused.pop(what, None) is not None:
            log.info("state directory: %s saved now", what)
            self._changed()
