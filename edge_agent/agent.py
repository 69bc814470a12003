"""The agent: verified manifests in, applied bundles out.

Messages from the broker are checked (wire verification order, then the
generation against what this agent already holds), stored, and handed to one
worker per bundle. A worker always works on the latest manifest of its
bundle: if newer ones arrive while it retries, it skips to the newest, so a
device that was offline through several updates applies only the last.
Cluster work runs in a thread, one bundle at a time, through the Applier
seam (edge_agent.applying in production). Transient failures retry with
backoff; permanent ones wait for a new manifest. Nothing raised by a message
or by the cluster stops the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edge_agent import connection, deciding, errors, receiving
from edge_agent.backoff import Backoff
from edge_agent.store import Applied, Store
from wire import agent_config, manifests, topics

if TYPE_CHECKING:  # the kubernetes client loads only where a real cluster is used
    from edge_agent.applying import Applier

log = logging.getLogger(__name__)


@dataclass
class _Work:
    manifest: manifests.Manifest
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    pending: bool = True  # the latest manifest has not been acted on yet


class Agent:
    def __init__(
        self,
        config: agent_config.AgentConfig,
        store: Store,
        applier: Applier,
        *,
        retry_backoff: Callable[[], Backoff] = Backoff,
    ) -> None:
        self.config = config
        self.store = store
        self.applier = applier
        self.topics = topics.Topics(config.topic_prefix)
        self.trusted = config.keyring()
        self._retry_backoff = retry_backoff
        self._work: dict[str, _Work] = {}
        self._cluster_lock = threading.Lock()
        # Counters for status, tests and benchmarks.
        self.received = 0  # bundle messages checked
        self.refused = 0  # of those, refused
        self.applied_count = 0  # completed applies and removals

    # -- intake ---------------------------------------------------------------------

    def _held_generation(self, bundle: str) -> int:
        applied = self.store.applied(bundle).generation
        work = self._work.get(bundle)
        return max(applied, work.manifest.generation if work else 0)

    def receive(self, topic: str, payload: bytes) -> receiving.Received:
        """Check one message; keep and schedule it if it is a newer (or equal) verified manifest."""
        bundle = topic.rsplit("/", 1)[-1]
        try:
            held = self._held_generation(bundle)
        except (errors.StateError, ValueError) as exc:
            log.error("cannot read state for %s: %s", topic, exc)
            held = 0
        result = receiving.check(
            topic, payload, topic_space=self.topics, trusted=self.trusted, applied_generation=held
        )
        self.received += 1
        if isinstance(result, receiving.Accepted):
            self._accept(result.manifest, payload)
        else:
            self.refused += 1
        return result

    @property
    def busy(self) -> bool:
        """Whether some bundle's latest manifest has not been acted on yet."""
        return any(work.pending for work in self._work.values())

    def _accept(self, manifest: manifests.Manifest, payload: bytes) -> None:
        try:
            self.store.save_manifest(manifest.bundle, payload)
        except errors.StateError as exc:
            log.error("%s: verified but not stored: %s", manifest.bundle, exc)
        work = self._work.get(manifest.bundle)
        if work is None:
            work = self._work[manifest.bundle] = _Work(manifest)
            work.task = asyncio.get_running_loop().create_task(self._worker(manifest.bundle, work))
        else:
            work.manifest = manifest
            work.pending = True
            work.changed.set()

    def restore(self) -> None:
        """Re-verify the manifests kept from before a restart; schedule them (unchanged ones are no-ops)."""
        for bundle, payload in self.store.manifests().items():
            topic = self.topics.bundle(self.config.group, bundle)
            try:
                applied_generation = self.store.applied(bundle).generation
            except errors.StateError as exc:
                log.error("%s: %s; treating it as never applied", bundle, exc)
                applied_generation = 0
            result = receiving.check(
                topic,
                payload,
                topic_space=self.topics,
                trusted=self.trusted,
                applied_generation=applied_generation,
            )
            if isinstance(result, receiving.Accepted):
                self._accept(result.manifest, payload)
            else:
                log.warning("dropping stored manifest of %s: %s", bundle, result.error)
                self.store.forget_manifest(bundle)

    # -- work -------------------------------------------------------------------------

    async def _worker(self, bundle: str, work: _Work) -> None:
        backoff = self._retry_backoff()
        while True:
            work.changed.clear()
            manifest = work.manifest
            try:
                await asyncio.to_thread(self._execute, manifest)
                backoff.reset()
            except errors.TransientApplyError as exc:
                delay = backoff.next_delay()
                log.warning(
                    "%s generation %d: %s; retrying in %.1fs", bundle, manifest.generation, exc, delay
                )
                await _wait(work.changed, delay)
                continue
            except errors.AgentError as exc:
                log.error(
                    "%s generation %d: %s; waiting for a new manifest", bundle, manifest.generation, exc
                )
            except Exception:  # a bug must not take the agent down with it
                log.exception("%s generation %d: unexpected failure", bundle, manifest.generation)
            if work.manifest is manifest:
                work.pending = False
                await work.changed.wait()

    def _execute(self, manifest: manifests.Manifest) -> None:
        with self._cluster_lock:
            bundle = manifest.bundle
            applied = self.store.applied(bundle)
            action = deciding.decide(
                manifest, cluster=self.config.cluster, labels=self.config.labels, applied=applied
            )
            if isinstance(action, deciding.Keep):
                log.info("%s generation %d: %s", bundle, manifest.generation, action.reason)
                self.store.save_applied(bundle, dataclasses.replace(applied, generation=manifest.generation))
                return
            if isinstance(action, deciding.Remove):
                self._remove(bundle, manifest.generation, applied, action.reason)
            else:
                self._apply(bundle, manifest.generation, applied, action)
            self.applied_count += 1

    def _apply(self, bundle: str, generation: int, applied: Applied, action: deciding.Apply) -> None:
        variant = action.variant
        log.info(
            "%s generation %d: applying %s (%s)",
            bundle,
            generation,
            variant.deployment_id[:12],
            action.reason,
        )
        keep = bool(variant.options.get("keepResources"))
        # Until the apply completes, the inventory covers old and new objects alike,
        # so a crash in between can never lose track of an object created here.
        planned = set(applied.inventory) | set(self.applier.refs(bundle, variant))
        self.store.save_applied(
            bundle, dataclasses.replace(applied, inventory=tuple(sorted(planned)), complete=False)
        )
        refs = self.applier.apply(bundle, variant)
        stale = sorted(planned - set(refs))
        if stale and not keep:
            self.applier.remove(bundle, stale)
        self.store.save_applied(
            bundle, Applied(generation, variant.deployment_id, tuple(sorted(refs)), keep_resources=keep)
        )

    def _remove(self, bundle: str, generation: int, applied: Applied, reason: str) -> None:
        log.info("%s generation %d: removing (%s)", bundle, generation, reason)
        self.store.save_applied(bundle, dataclasses.replace(applied, complete=False))
        if applied.keep_resources:
            log.info("%s: keepResources is set; leaving %d objects in place", bundle, len(applied.inventory))
        else:
            self.applier.remove(bundle, applied.inventory)
        self.store.save_applied(bundle, Applied(generation))

    # -- running --------------------------------------------------------------------------

    async def run(self) -> None:
        """Restore, then process messages from the broker until cancelled."""
        self.restore()
        url = self.config.broker_url()
        filters = [self.topics.bundles_filter(self.config.group)]
        identifier = f"edgefleet-agent-{self.config.cluster}"
        try:
            async for topic, payload in connection.messages(url, filters, identifier=identifier):
                self.receive(topic, payload)
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Stop every worker and wait until no cluster work is in flight."""
        tasks = [work.task for work in self._work.values() if work.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # A cancelled worker's thread finishes its current step; wait for it.
        await asyncio.to_thread(self._cluster_lock.acquire)
        self._cluster_lock.release()


async def _wait(event: asyncio.Event, timeout: float) -> None:
    """Until `event` is set or `timeout` passes, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
