"""The agent: verified manifests in, applied bundles and their status out.

Messages from the broker are checked (wire verification order, then the
generation against what this agent already holds), stored, and handed to one
worker per bundle. A worker always works on the latest manifest of its
bundle: if newer ones arrive while it retries, it skips to the newest, so a
device that was offline through several updates applies only the last.
Cluster work runs in a thread, one step at a time, through the Applier seam
(edge_agent.applying in production, an in-memory cluster in the simulator).
Transient failures retry with backoff; permanent ones wait for a new
manifest. Nothing raised by a message or by the cluster stops the agent.

Every bundle has a status (edge_agent.reporting): WaitApplied when a
manifest arrives, ErrApplied when applying fails (kept, with the reason,
while retrying), then what observing its objects shows (NotReady,
Modified, Ready). Observation repeats (faster while
something is not ready) and finds drift; with correctDrift the agent
re-applies and says so. The status document is published retained on
change (coalesced) and as a heartbeat; presence is published on connect,
as a goodbye, and as the broker-held last will, all stamped with the
connection's session number.

A state directory that cannot be written (full, read-only) never stops the
agent: bundles whose records cannot be saved are ErrApplied and retried;
a manifest or session number it refuses is kept in memory (edge_agent.keeping)
and listed in the status document's `agent_errors` until it is saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

import aiomqtt

from edge_agent import connection, deciding, errors, keeping, receiving, reporting
from edge_agent.backoff import Backoff
from edge_agent.store import Applied, Store
from wire import agent_config, manifests, selectors, status, topics
from wire import errors as wire_errors

if TYPE_CHECKING:  # the kubernetes client loads only where a real cluster is used
    from edge_agent.applying import Applier

log = logging.getLogger(__name__)

# Status changes within this window go out as one document: an apply touches
# several states in a row, and a fleet must not storm the broker.
STATUS_COALESCE = 0.2
# While something is not ready, look again this often (capped by observe_interval).
NOT_READY_INTERVAL = 1.0
# States that need no prompt second look: the observer then waits observe_interval.
SETTLED = frozenset({status.State.READY, status.State.MODIFIED, status.State.ERR_APPLIED})

_T = TypeVar("_T")
_P = ParamSpec("_P")


class Offload(Protocol):
    """How the agent runs a blocking call (the Kubernetes API) off its event loop."""

    def __call__(
        self, func: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> Coroutine[Any, Any, _T]: ...


UNKNOWN_NODE = status.NodeFacts(kubernetes_version="", platform="", ready=None)


@dataclass
class _Work:
    manifest: manifests.Manifest
    topic: str  # the bundle's topic, which `receive` compares before the digest
    digest: bytes  # of the envelope of `manifest`, as received (an envelope may be 4 MiB)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    pending: bool = True  # the latest manifest has not been acted on yet
    failed: bool = False  # acting on the latest manifest failed: its status is ErrApplied


class Agent:
    def __init__(
        self,
        config: agent_config.AgentConfig,
        store: Store,
        applier: Applier,
        *,
        retry_backoff: Callable[[], Backoff] = Backoff,
        reconnect_backoff: Callable[[], Backoff] = Backoff,
        offload: Offload = asyncio.to_thread,
    ) -> None:
        self.config = config
        self._offload = offload
        self.store = store
        self.applier = applier
        self.topics = topics.Topics(config.topic_prefix)
        self.trusted = config.keyring()
        self._retry_backoff = retry_backoff
        self._reconnect_backoff = reconnect_backoff
        self._work: dict[str, _Work] = {}
        self._cluster_lock = threading.Lock()
        self.statuses: dict[str, status.BundleStatus] = {}
        self._running: dict[str, manifests.Variant] = {}  # bundle -> variant applied and observed
        self._status_changed = asyncio.Event()
        self._unsettled = asyncio.Event()  # a bundle left Ready/Modified/ErrApplied: look again soon
        self._client: aiomqtt.Client | None = None
        self._reconnected = asyncio.Event()  # a new connection replaced the one a publish went out on
        self._abandoned: set[asyncio.Future[None]] = set()  # publishes left to time out on dead links
        self.session = 0
        self._seq = 0
        # What the state directory did not take: kept in memory, saved again with every status.
        self.keeping = keeping.Keeping(store, self._status_changed.set)
        self._node = UNKNOWN_NODE
        self._helpers: list[asyncio.Task[None]] = []
        # Counters for status, tests and benchmarks.
        self.received = 0  # bundle messages checked
        self.refused = 0  # of those, refused

    # -- intake ---------------------------------------------------------------------

    def _held_generation(self, bundle: str) -> int:
        applied = self.store.applied(bundle).generation
        work = self._work.get(bundle)
        return max(applied, work.manifest.generation if work else 0)

    def _verified(self, topic: str, payload: bytes) -> receiving.Received:
        """The wire checks, this agent's group, and the generation it already holds."""
        bundle = topic.rsplit("/", 1)[-1]
        try:
            held = self._held_generation(bundle)
        except wire_errors.WireError:
            held = 0  # not a bundle name: receiving.check refuses the topic below
        except (errors.StateError, ValueError) as exc:
            log.error("cannot read state for %s: %s", topic[:200], exc)
            held = 0
        return receiving.check(
            topic,
            payload,
            topic_space=self.topics,
            trusted=self.trusted,
            applied_generation=held,
            group=self.config.group,
        )

    def receive(self, topic: str, payload: bytes) -> receiving.Received:
        """Check one message; keep and schedule it if it is a newer (or equal) verified manifest."""
        self.received += 1
        digest = _digest(payload)
        work = self._work.get(topic.rsplit("/", 1)[-1])
        if work is not None and not work.failed and work.digest == digest and topic == work.topic:
            # The envelope it verified and holds, again, on its topic: the broker's retained copy
            # on every reconnect, or one the controller put back. Nothing new: not verified again,
            # no write, no status churn. (After a failure it is acted on again: a reconnect retries.)
            return receiving.Accepted(topic, work.manifest, len(payload))
        result = self._verified(topic, payload)
        if isinstance(result, receiving.Accepted):
            self._accept(result.manifest, payload, digest)
        else:
            self.refused += 1
        return result

    @property
    def busy(self) -> bool:
        """Whether some bundle's latest manifest has not been acted on yet."""
        return any(work.pending for work in self._work.values())

    def _accept(
        self, manifest: manifests.Manifest, payload: bytes, digest: bytes, *, stored: bool = False
    ) -> None:
        """`stored`: the payload came from the store (a restart), so there is nothing to save."""
        if not stored:
            self.keeping.manifest(manifest.bundle, payload)
        work = self._work.get(manifest.bundle)
        if work is None:
            topic = self.topics.bundle(self.config.group, manifest.bundle)
            work = self._work[manifest.bundle] = _Work(manifest, topic, digest)
            work.task = asyncio.get_running_loop().create_task(self._worker(manifest.bundle, work))
        else:
            work.manifest, work.digest = manifest, digest
            work.pending = True
            work.changed.set()

    def restore(self) -> None:
        """Re-verify the manifests kept from before a restart; schedule them (unchanged ones are no-ops)."""
        for bundle, payload in self.store.manifests().items():
            result = self._verified(self.topics.bundle(self.config.group, bundle), payload)
            if isinstance(result, receiving.Accepted):
                self._accept(result.manifest, payload, _digest(payload), stored=True)
            else:
                log.warning("dropping stored manifest of %s: %s", bundle, result.error)
                try:
                    self.store.forget_manifest(bundle)
                except errors.StateError as exc:  # refused again at the next restart
                    log.error("%s", exc)

    # -- status -----------------------------------------------------------------------

    def _selection(self, manifest: manifests.Manifest) -> selectors.Selection:
        return selectors.select(manifest.targets, cluster=self.config.cluster, labels=self.config.labels)

    def _set_status(
        self, bundle: str, state: status.State, manifest: manifests.Manifest, **extra: object
    ) -> None:
        selection = self._selection(manifest)
        nothing_wanted = manifest.kind is manifests.Kind.TOMBSTONE or selection.deployment_id is None
        if nothing_wanted and state in (status.State.READY, status.State.WAIT_APPLIED):
            # Removed (or nothing to remove): the bundle leaves this cluster's status.
            if self.statuses.pop(bundle, None) is not None:
                self._status_changed.set()
            return
        try:
            applied = self.store.applied(bundle).deployment_id
        except errors.StateError:
            applied = None
        report = reporting.bundle_status(
            state,
            generation=manifest.generation,
            deployment_id=selection.deployment_id,
            applied_deployment_id=applied,
            **extra,  # type: ignore[arg-type]
        )
        if self.statuses.get(bundle) != report:
            self.statuses[bundle] = report
            self._status_changed.set()
        if state is status.State.NOT_READY:
            self._unsettled.set()  # WaitApplied needs no nudge: the worker looks once it has applied

    def status_document(self) -> status.StatusDocument:
        self._seq += 1
        return reporting.document(
            self.config,
            session=self.session,
            seq=self._seq,
            ts=time.time(),
            node=self._node,
            bundles=self.statuses,
            agent_errors=self.keeping.refusals,
        )

    # -- work -------------------------------------------------------------------------

    async def _worker(self, bundle: str, work: _Work) -> None:
        backoff = self._retry_backoff()
        retrying: manifests.Manifest | None = None  # the manifest whose last attempt failed transiently
        while True:
            work.changed.clear()
            manifest = work.manifest
            if manifest is not retrying:
                # A retry keeps showing ErrApplied and why: an attempt that hangs until the
                # request timeout must not hide the error behind "applying".
                self._set_status(bundle, status.State.WAIT_APPLIED, manifest, message="applying")
            work.failed = False
            try:
                running = await self._offload(self._execute, manifest)
                backoff.reset()
                await self._after(bundle, manifest, running)
            except (errors.PermanentApplyError, errors.ConfigError) as exc:
                log.error(
                    "%s generation %d: %s; waiting for a new manifest", bundle, manifest.generation, exc
                )
                work.failed = True
                self._set_status(bundle, status.State.ERR_APPLIED, manifest, message=str(exc))
            except Exception as exc:
                # Transient, or unforeseen: retrying with backoff is safe, giving up for good is not.
                delay = backoff.next_delay()
                if isinstance(exc, errors.AgentError):
                    log.warning(
                        "%s generation %d: %s; retrying in %.1fs", bundle, manifest.generation, exc, delay
                    )
                else:
                    log.exception(
                        "%s generation %d: unexpected failure; retrying in %.1fs",
                        bundle,
                        manifest.generation,
                        delay,
                    )
                work.failed = True
                retrying = manifest
                self._set_status(bundle, status.State.ERR_APPLIED, manifest, message=f"{exc} (retrying)")
                await _wait(work.changed, delay)
                continue
            retrying = None
            if work.manifest is manifest:
                work.pending = False
                await work.changed.wait()

    def _execute(self, manifest: manifests.Manifest) -> manifests.Variant | None:
        """Act on `manifest`; return the variant that now runs here (None: nothing of the bundle)."""
        with self._cluster_lock:
            bundle = manifest.bundle
            applied = self.store.applied(bundle)
            action = deciding.decide(
                manifest, cluster=self.config.cluster, labels=self.config.labels, applied=applied
            )
            if isinstance(action, deciding.Keep):
                log.info("%s generation %d: %s", bundle, manifest.generation, action.reason)
                if applied.generation != manifest.generation:  # a restart's replay writes nothing
                    self.store.save_applied(
                        bundle, dataclasses.replace(applied, generation=manifest.generation)
                    )
                selection = self._selection(manifest)
                variant = None
                if manifest.kind is manifests.Kind.BUNDLE and selection.deployment_id is not None:
                    variant = manifest.variant(selection.deployment_id)
                return variant
            if isinstance(action, deciding.Remove):
                self._remove(bundle, manifest.generation, applied, action.reason)
                return None
            self._apply(bundle, manifest.generation, applied, action)
            return action.variant

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
        # `planned` guessed "namespaced" for kinds whose CRD came with this variant; a guess
        # that turned out cluster-scoped names the same object as a new ref, not a stale one.
        cluster_scoped = {(r.api_version, r.kind, r.name) for r in refs if not r.namespace}
        stale = sorted(
            r for r in planned - set(refs) if (r.api_version, r.kind, r.name) not in cluster_scoped
        )
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

    async def _after(
        self, bundle: str, manifest: manifests.Manifest, running: manifests.Variant | None
    ) -> None:
        if running is None:
            self._running.pop(bundle, None)
            self._set_status(bundle, status.State.READY, manifest)
            return
        self._running[bundle] = running
        # Look at once: the worker still counts as acting on `manifest`, so say so. The apply
        # is done: a look that fails must not make it count as failed.
        try:
            await self._observe(bundle, acting_on=manifest)
        except Exception:
            log.exception("%s: the first look after applying failed; looking again shortly", bundle)
            self._unsettled.set()

    # -- observation and drift ------------------------------------------------------------

    def _check(self, bundle: str, variant: manifests.Variant) -> reporting.Health:
        with self._cluster_lock:
            found = reporting.health(self.applier.observe(bundle, variant))
            correct = (variant.options.get("correctDrift") or {}).get("enabled")
            if found.state is status.State.MODIFIED and correct:
                log.info("%s: correcting drift of %s", bundle, ", ".join(str(r) for r in found.drifted))
                self.applier.apply(bundle, variant)
                corrected = reporting.health(self.applier.observe(bundle, variant))
                note = f"drift corrected: re-applied after {found.message}"
                return dataclasses.replace(corrected, message=f"{note}; {corrected.message}".rstrip("; "))
            return found

    def _settled_on(
        self, bundle: str, variant: manifests.Variant, acting_on: manifests.Manifest | None = None
    ) -> _Work | None:
        """The bundle's work if its latest manifest was acted on without error and selects `variant`.

        `acting_on`: the worker that has just acted on this manifest asks; it counts as
        acted on as long as it is still the latest."""
        work = self._work.get(bundle)
        if work is None or work.failed or self._running.get(bundle) is not variant:
            return None
        if work.pending and (acting_on is None or work.manifest is not acting_on):
            return None
        return work if self._selection(work.manifest).deployment_id == variant.deployment_id else None

    async def _observe(self, bundle: str, acting_on: manifests.Manifest | None = None) -> None:
        variant = self._running.get(bundle)
        if variant is None or self._settled_on(bundle, variant, acting_on) is None:
            return
        try:
            found = await self._offload(self._check, bundle, variant)
        except errors.AgentError as exc:
            log.warning("%s: cannot observe: %s", bundle, exc)
            if acting_on is not None:
                self._unsettled.set()  # the observer looks again within NOT_READY_INTERVAL
            return
        work = self._settled_on(bundle, variant, acting_on)
        if work is None:
            return  # a new manifest arrived meanwhile: this observation is about the past
        self._set_status(
            bundle,
            found.state,
            work.manifest,
            message=found.message,
            non_ready=found.non_ready,
            modified=found.modified,
        )

    async def _observer(self) -> None:
        while True:
            settled = all(status.State(s["state"]) in SETTLED for s in self.statuses.values())
            interval = (
                self.config.observe_interval
                if settled
                else min(NOT_READY_INTERVAL, self.config.observe_interval)
            )
            # A bundle that stops being settled while we wait shortens the wait to NOT_READY_INTERVAL.
            self._unsettled.clear()
            await _wait(self._unsettled, interval)
            if self._unsettled.is_set():
                await asyncio.sleep(min(NOT_READY_INTERVAL, self.config.observe_interval))
            for bundle in list(self._running):
                try:
                    await self._observe(bundle)
                except Exception:  # one bundle's surprise must not end observation for all
                    log.exception("%s: observation failed", bundle)

    # -- broker -------------------------------------------------------------------------

    def _presence(self, online: bool) -> tuple[str, bytes]:
        topic = self.topics.presence(self.config.group, self.config.cluster)
        return topic, status.encode(status.Presence(online=online, since=time.time(), session=self.session))

    def _will(self, session: int) -> tuple[str, bytes]:
        self.session = session
        return self._presence(False)

    async def _connected(self, client: aiomqtt.Client, session: int) -> None:
        self._client, self.session, self._seq = client, session, 0
        self._reconnected.set()
        topic, payload = self._presence(True)
        await client.publish(topic, payload, qos=1, retain=True)
        self._status_changed.set()
        # Node facts need the Kubernetes API, which may be slow or down: never delay the birth for them.
        self._helpers.append(asyncio.get_running_loop().create_task(self._read_facts()))

    async def _read_facts(self) -> None:
        try:
            self._node = await self._offload(self.applier.facts)
        except Exception as exc:  # unknown facts are reported as unknown
            log.warning("cannot read node facts: %s", exc)
            return
        self._status_changed.set()

    async def _goodbye(self, client: aiomqtt.Client, session: int) -> None:
        topic, payload = self._presence(False)
        await client.publish(topic, payload, qos=1, retain=True)
        self._client = None

    async def _reporter(self) -> None:
        topic = self.topics.status(self.config.group, self.config.cluster)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.heartbeat):
                    await self._status_changed.wait()
            await asyncio.sleep(STATUS_COALESCE)
            self.keeping.again()
            self._status_changed.clear()
            client = self._client
            if client is None:
                continue
            self._reconnected.clear()
            publish = asyncio.ensure_future(
                client.publish(topic, status.encode(self.status_document()), qos=1, retain=True)
            )
            replaced = asyncio.ensure_future(self._reconnected.wait())
            abandoned = False
            try:
                await asyncio.wait((publish, replaced), return_when=asyncio.FIRST_COMPLETED)
            finally:
                replaced.cancel()
                if not publish.done():  # replaced by a new connection, or the reporter stops
                    self._abandon(publish)
                    abandoned = True
            if abandoned:
                # A publish on a dead link is acknowledged never and fails only at aiomqtt's
                # timeout (10 s): the new connection carries the status now, not then.
                self._status_changed.set()
                continue
            try:
                publish.result()
            except aiomqtt.MqttError as exc:
                log.info("status not published (%s); it goes out on reconnect", exc)
                self._status_changed.set()
                # A publish on a dead link fails only at its timeout, when a reconnect may
                # already have installed the next client: forget only the one that failed.
                if self._client is client:
                    self._client = None
            except Exception:  # publishing must outlive any one bad document
                log.exception("status not published")

    def _abandon(self, publish: asyncio.Future[None]) -> None:
        publish.cancel()
        self._abandoned.add(publish)
        publish.add_done_callback(self._abandoned.discard)
        publish.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved, not logged

    # -- running --------------------------------------------------------------------------

    async def run(self) -> None:
        """Restore, then process messages from the broker until cancelled."""
        self.restore()
        loop = asyncio.get_running_loop()
        self._helpers = [loop.create_task(self._reporter()), loop.create_task(self._observer())]
        url = self.config.broker_url()
        filters = [self.topics.bundles_filter(self.config.group)]
        identifier = f"edgefleet-agent-{self.config.cluster}"
        try:
            async for topic, payload in connection.messages(
                url,
                filters,
                identifier=identifier,
                backoff=self._reconnect_backoff(),
                keepalive=self.config.keepalive,
                next_session=lambda: self.keeping.next_session(self.session),
                will=self._will,
                on_connect=self._connected,
                on_goodbye=self._goodbye,
            ):
                self.receive(topic, payload)
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Stop every worker and helper and wait until no cluster work is in flight."""
        tasks: list[asyncio.Future[None]] = [w.task for w in self._work.values() if w.task is not None]
        tasks += [*self._helpers, *self._abandoned]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # The reporter, cancelled, abandons the publish it was waiting for: wait for that too.
        await asyncio.gather(*self._abandoned, return_exceptions=True)
        # A cancelled worker's thread finishes its current step; wait for it.
        await asyncio.to_thread(self._cluster_lock.acquire)
        self._cluster_lock.release()


def _digest(envelope: bytes) -> bytes:
    return hashlib.blake2b(envelope, digest_size=16).digest()


async def _wait(event: asyncio.Event, timeout: float) -> None:
    """Until `event` is set or `timeout` passes, whichever comes first."""
    # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
