"""The controller's running half: read the fleet off the broker, publish its readiness.

Subscribes, for every group in the registry, to the group's bundle, status and
presence topics. Bundle messages are the controller's own signed manifests,
read back and verified, so readiness is counted against exactly what agents
see. Status and presence feed the table (controller.readiness_table); bad
documents are counted and ignored, never fatal. Summaries are recomputed at
most every `summary_interval` while anything changes, published retained when
their content changed, and all re-published as a heartbeat.

The same session answers join requests (controller.registering) and, every
`security_interval`, finishes what the CLI decided (approvals, denials,
revocations) and pushes rights changes to the broker.

A restarted controller rebuilds the same table, because every input it reads
is retained. After each subscription it checks that the broker still holds
every group's bundles as the state says, and puts back what is missing
(controller.restoring). The registry (SQLite) is re-read every `registry_interval`, so
groups and clusters added by the CLI are picked up without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from controller import keystore, publishing, readiness_table, registering, restoring, security
from controller.identities import Identities
from controller.state import State
from wire import envelopes, keys, status, topics, urls
from wire import errors as wire_errors

log = logging.getLogger(__name__)


# What the controller reads, it reads at QoS 0. Its session is clean, so QoS 1 would
# keep nothing across a reconnect (retained copies do that), and a QoS 1 subscriber
# that falls behind a burst loses messages: Mosquitto holds at most
# max_queued_messages (1,000 by default) beyond 20 in flight and drops the rest. When
# 5,000 clusters came online at once, the controller never heard of 1,600 of them.
# Mosquitto 2.0.11 buffers QoS 0 deliveries to a connected client instead (newer
# releases may count them too: docs/operations.md says what to configure).
INBOUND_QOS = 0

# Retained summaries from before a restart that are not this controller's (yet) are
# remembered, so stale ones get cleared. A fleet has far fewer bundles and groups than
# this; past it, they are someone's flood of summary topics and are counted as ignored.
MAX_FOREIGN_SUMMARIES = 10_000

# The envelope formats agents of this build read: most clusters say so, and only the
# others are held in memory (Aggregator._formats_known).
_READ_HERE = frozenset(envelopes.SUPPORTED_VERSIONS)


@dataclass(frozen=True)
class Settings:
    # Readiness moves in seconds; twice a second keeps dashboards live without
    # recomputing the fleet for every one of thousands of status messages.
    summary_interval: float = 0.5
    # CLI changes to groups and clusters show up within this.
    registry_interval: float = 5.0
    # Unchanged summaries are re-published this often, so a dashboard sees a fresh timestamp.
    heartbeat: float = 60.0
    # Approvals, denials and revocations made with the CLI take effect within this.
    security_interval: float = 1.0
    # Reconnect waits grow from 1 s to 30 s: the controller is one process, not a fleet.
    reconnect_initial: float = 1.0
    reconnect_maximum: float = 30.0


@dataclass
class Aggregator:
    state_dir: Path
    url: urls.BrokerUrl
    space: topics.Topics = field(default_factory=topics.Topics)
    settings: Settings = field(default_factory=Settings)
    broker_security: security.BrokerSecurity = field(default_factory=security.Unenforced)
    clock: Callable[[], float] = time.time
    table: readiness_table.Table = field(default_factory=readiness_table.Table)
    # topic -> fingerprint of the content last published there (without `ts`). Not the content
    # itself: a group's document holds a row per cluster, 19 MB for all groups at 100,000.
    published: dict[str, bytes] = field(default_factory=dict)
    # Retained summaries read that this controller has not published (from before a restart):
    # cleared unless it publishes them again (at most MAX_FOREIGN_SUMMARIES).
    stale: set[str] = field(default_factory=set)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _groups: dict[str, str] = field(default_factory=dict)  # name -> topic root
    _trusted: keys.Keyring = field(default_factory=dict)
    registrar: registering.Registrar | None = None
    # Envelope formats, per registered (topic root, cluster), as the registry has them, kept
    # only where they are not what this build reads (None: never heard); and what accepted
    # statuses said since, to record at the next registry refresh.
    _formats_known: dict[tuple[str, str], frozenset[int] | None] = field(default_factory=dict)
    _formats_heard: dict[tuple[str, str], frozenset[int]] = field(default_factory=dict)
    # (topic root, bundle) -> generation of the envelope last read on that topic (controller.restoring).
    bundles_seen: dict[tuple[str, str], int] = field(default_factory=dict)
    restored: int = 0  # envelopes published again because the broker did not hold them
    checks: int = 0  # checks of the retained bundles done
    sessions: int = 0  # broker connections made
    # This session's markers (controller.restoring), where they go, and those back unchecked.
    _markers: restoring.Markers = field(default_factory=restoring.Markers)
    _sync_topic: str = ""
    _returned: asyncio.Queue[frozenset[str]] = field(default_factory=asyncio.Queue)
    _unrestorable: set[tuple[str, str, int]] = field(default_factory=set)  # warned about once

    # -- inputs ----------------------------------------------------------------------------

    def refresh_registry(self, state: State) -> set[str]:
        """Record what agents said they read, re-read groups and clusters; return new topic roots."""
        if self._formats_heard:
            names = {root: name for name, root in self._groups.items()}
            state.record_envelope_formats(
                {
                    (names[root], cluster): formats
                    for (root, cluster), formats in self._formats_heard.items()
                    if root in names  # a group deleted meanwhile has nothing to record
                }
            )
            self._formats_heard = {}
        groups = {g.name: g.topic_root for g in state.groups()}
        roots = set(groups.values())
        known = [c for c in state.clusters() if c.group in groups]
        self._formats_known = {
            (groups[c.group], c.name): c.envelope_formats
            for c in known
            if c.envelope_formats != _READ_HERE and not c.revoked
        }
        clusters = [(groups[c.group], c.name, c.labels) for c in known if not c.revoked]
        revoked = {(groups[c.group], c.name) for c in known if c.revoked}
        new = roots - set(self._groups.values())
        self._groups = groups
        self.table.register(roots, clusters, revoked)
        self._changed.set()
        return new

    def handle(self, topic: str, payload: bytes) -> None:
        """Feed one message to the table; anything malformed is counted and dropped."""
        now = self.clock()
        try:
            address = self.space.parse(topic)
            if address.kind in (topics.Kind.SUMMARY_BUNDLE, topics.Kind.SUMMARY_GROUP):
                # Retained summaries from before a restart: known now, so stale ones get cleared.
                if payload and topic not in self.published and topic not in self.stale:
                    if len(self.stale) >= MAX_FOREIGN_SUMMARIES:
                        self.table.ignored += 1
                        return
                    self.stale.add(topic)
                    self._changed.set()
                return
            if address.group is None or address.name is None or address.group not in self._groups.values():
                return
            if address.kind is topics.Kind.BUNDLE:
                key = (address.group, address.name)
                if not payload:
                    self.bundles_seen.pop(key, None)  # cleared: restore it
                    return
                manifest = envelopes.verify(
                    payload, trusted=self._trusted, group=address.group, bundle=address.name
                )
                self.bundles_seen[key] = manifest.generation
                changed = self.table.manifest(address.group, manifest)
            elif address.kind is topics.Kind.STATUS:
                document = status.decode_status(payload)
                changed = self.table.status(address.group, address.name, document, now)
                if changed:
                    self._note_formats(address.group, address.name, document)
            elif address.kind is topics.Kind.PRESENCE:
                changed = self.table.presence(
                    address.group, address.name, status.decode_presence(payload), now
                )
            else:
                return
        except wire_errors.WireError as exc:
            self.table.ignored += 1
            log.debug("ignored message on %s: %s", topic[:200], exc)
            return
        except Exception:  # anything a client sends must never stop the controller
            self.table.ignored += 1
            log.exception("ignored message on %s that broke its handler", topic[:200])
            return
        if changed:
            self._changed.set()

    def _note_formats(self, root: str, cluster: str, document: status.StatusDocument) -> None:
        """Queue a change of the envelope formats a cluster reads for the registry
        (`edgefleet apply` seals each group in the newest format all its clusters read).

        Only for a status the table accepted. A cluster the table does not know as
        registered yet (it joined since the last refresh) is always queued: what the
        registry holds for it is unknown here, and its first status must not be lost."""
        key = (root, cluster)
        formats = status.envelope_formats(document)
        if formats == _READ_HERE:
            formats = _READ_HERE  # one shared set, not one per cluster queued
        seen = self.table.clusters.get(key)
        if seen is not None and seen.registered and formats == self._formats_known.get(key, _READ_HERE):
            return
        self._formats_heard[key] = formats
        if formats == _READ_HERE:
            self._formats_known.pop(key, None)
        else:
            self._formats_known[key] = formats

    # -- outputs -----------------------------------------------------------------------------

    def summaries(self) -> dict[str, Mapping[str, Any] | None]:
        """topic -> summary document to publish retained (None clears a retained summary)."""
        computed = readiness_table.summarize(self.table, self._groups.values(), self.clock())
        out: dict[str, Mapping[str, Any] | None] = {
            self.space.summary(): {**computed.fleet, "ignored": self.table.ignored}
        }
        for name, bundle_doc in computed.bundles.items():
            out[self.space.summary_bundle(name)] = bundle_doc
        for root, group_doc in computed.groups.items():
            out[self.space.summary_group(root)] = group_doc
        for topic in (*self.published, *self.stale):
            if topic not in out:
                out[topic] = None
        return out

    async def _publish(self, mqtt: aiomqtt.Client, *, everything: bool) -> None:
        for topic, document in self.summaries().items():
            if document is None:
                if not everything and topic in self.stale:
                    continue  # someone else's: cleared with the heartbeat
                await mqtt.publish(topic, b"", qos=1, retain=True)
                self.published.pop(topic, None)
                self.stale.discard(topic)
                continue
            # What changed is the content; `ts` changes every time and is not content.
            content, payload = _encode_stamped(document)
            fingerprint = hashlib.blake2b(content, digest_size=16).digest()
            if not everything and self.published.get(topic) == fingerprint:
                continue
            await mqtt.publish(topic, payload, qos=1, retain=True)
            self.published[topic] = fingerprint
            self.stale.discard(topic)

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Aggregate until cancelled, reconnecting to the broker as needed."""
        key = keystore.load(self.state_dir)
        self._trusted = keys.keyring([key.verify_key])
        state = State.open(self.state_dir)
        self.registrar = registering.Registrar(
            Identities(state), key, self.broker_security, self.space, clock=self.clock
        )
        attempt = 0
        try:
            while True:
                try:
                    await self._session(state)
                except aiomqtt.MqttError as exc:
                    delay = random.uniform(
                        0, min(self.settings.reconnect_maximum, self.settings.reconnect_initial * 2**attempt)
                    )
                    attempt += 1
                    log.warning("broker %s: %s; reconnecting in %.1fs", self.url, exc, delay)
                    await asyncio.sleep(delay)
        finally:
            state.close()

    async def _session(self, state: State) -> None:
        presence = self.space.controller()
        will = aiomqtt.Will(presence, _controller_presence(False), qos=1, retain=True)
        identifier = f"edgefleet-controller-{random.getrandbits(32):08x}"
        self._sync_topic = self.space.controller_sync(identifier)
        # A new session checks afresh: what its subscriptions deliver is what the broker holds,
        # and markers of the last session, answered or not, say nothing about this one.
        self._markers, self._returned = restoring.Markers(), asyncio.Queue()
        self.bundles_seen.clear()
        async with publishing.client(self.url, identifier=identifier, will=will, intake=self._intake) as mqtt:
            self.sessions += 1
            await mqtt.subscribe(self._sync_topic, qos=INBOUND_QOS)
            await mqtt.publish(presence, _controller_presence(True), qos=1, retain=True)
            await mqtt.subscribe(f"{self.space.prefix}/summary/#", qos=INBOUND_QOS)
            await mqtt.subscribe(self.space.register_filter(), qos=INBOUND_QOS)
            subscribed: set[str] = set()
            tasks = [
                asyncio.create_task(self._registry_loop(state, mqtt, subscribed)),
                asyncio.create_task(self._publish_loop(mqtt)),
                asyncio.create_task(self._security_loop(state, mqtt)),
                asyncio.create_task(self._restore_loop(state, mqtt, self._returned)),
            ]
            requests: set[asyncio.Task[None]] = set()
            try:
                async for message in mqtt.messages:  # join requests only: _intake handles the rest
                    payload = message.payload if isinstance(message.payload, bytes) else b""
                    client_id = self._join_request(message.topic.value)
                    if client_id is None:
                        continue
                    task = asyncio.create_task(self._answer(client_id, payload, mqtt))
                    requests.add(task)
                    task.add_done_callback(requests.discard)
            except asyncio.CancelledError:
                # A clean stop discards the will: say offline ourselves.
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2):
                        await mqtt.publish(presence, _controller_presence(False), qos=1, retain=True)
                raise
            finally:
                await _stop([*tasks, *requests])

    def _intake(self, topic: str, payload: bytes) -> bool:
        """Handle a fleet message (bundle, status, presence, summary) as the client reads
        it; leave join requests (False) to the session's `client.messages` loop.

        Iterating `client.messages` costs a task and an asyncio.wait per message: about
        two thirds of the controller's CPU per status message when it read 10,000 at once
        (docs/benchmarks.md, "Status ingest"). `handle` is synchronous and never raises,
        so it can run inside the client's read callback, on this event loop."""
        if topic == self._sync_topic:
            self._marker_returned(payload)
            return True
        if self._join_request(topic) is not None:
            return False
        self.handle(topic, payload)
        return True

    def _join_request(self, topic: str) -> str | None:
        """The client id of a join request on `topic`, or None for any other topic."""
        if not topic.startswith(f"{self.space.prefix}/register/"):
            return None
        try:
            address = self.space.parse(topic)
        except wire_errors.WireError:
            return None
        return address.name if address.kind is topics.Kind.REGISTER else None

    async def _answer(self, client_id: str, payload: bytes, mqtt: aiomqtt.Client) -> None:
        assert self.registrar is not None
        try:
            await self.registrar.handle(client_id, payload, _replies(mqtt))
        except Exception:  # one bad request (or a broker hiccup) must not stop the controller
            log.exception("join request from %s not answered; the agent will ask again", client_id)

    async def _security_loop(self, state: State, mqtt: aiomqtt.Client) -> None:
        assert self.registrar is not None

        async def clear(root: str, name: str) -> None:
            for topic in (self.space.status(root, name), self.space.presence(root, name)):
                await mqtt.publish(topic, b"", qos=1, retain=True)
            self.refresh_registry(state)

        while True:
            try:
                await self.registrar.sweep(_replies(mqtt), clear)
            except Exception:  # the next sweep retries whatever did not happen
                log.exception("registration sweep failed; retrying")
            await asyncio.sleep(self.settings.security_interval)

    async def _subscribe(self, mqtt: aiomqtt.Client, roots: set[str], subscribed: set[str]) -> None:
        for root in sorted(roots - subscribed):
            for kind in ("bundles", "status", "presence"):
                await mqtt.subscribe(f"{root}/{kind}/+", qos=INBOUND_QOS)
            subscribed.add(root)

    # -- restoring retained bundles (controller.restoring) -------------------------------------

    async def _send_marker(self, mqtt: aiomqtt.Client, subscribed: set[str]) -> None:
        """Send ourselves a marker: when it is back, the retained bundles of `subscribed` are in."""
        if self._markers.unanswered == restoring.MARKERS_KEPT - 1:
            log.warning("markers sent to %s do not come back: bundles go unchecked", self._sync_topic)
        await mqtt.publish(self._sync_topic, self._markers.send(subscribed), qos=0)

    def _marker_returned(self, payload: bytes) -> None:
        roots = self._markers.returned(payload)
        if roots:
            while not self._returned.empty():  # this one covers any not checked yet
                self._returned.get_nowait()
            self._returned.put_nowait(roots)

    async def _restore_loop(
        self, state: State, mqtt: aiomqtt.Client, returned: asyncio.Queue[frozenset[str]]
    ) -> None:
        while True:
            checked = await returned.get()
            try:
                await self._restore(state, mqtt, checked)
                self.checks += 1
            except aiomqtt.MqttError as exc:
                log.warning("restoring retained bundles failed (%s); the next check retries", exc)
            except Exception:  # the next check retries whatever did not happen
                log.exception("restoring retained bundles failed; the next check retries")

    async def _restore(self, state: State, mqtt: aiomqtt.Client, checked: frozenset[str]) -> None:
        sealed = state.all_deliveries()
        for row in restoring.unrestorable(sealed, self.bundles_seen, checked):
            if (row.bundle, row.group, row.generation) not in self._unrestorable:
                self._unrestorable.add((row.bundle, row.group, row.generation))
                log.error(
                    "the broker no longer holds %s generation %d for group %s, and this controller "
                    "keeps no copy (delivered by an earlier version): run 'edgefleet apply' "
                    "(or 'edgefleet bundle delete' for a deleted bundle) again",
                    row.bundle,
                    row.generation,
                    row.group,
                )
        for item in restoring.restorations(sealed, self.bundles_seen, checked):
            payload = restoring.envelope(item, state.envelopes(item.bundle, item.group))
            if payload is None:
                continue
            # Seen as sent, not only once read back: a broker that drops what it acknowledged
            # gets it again next session, not every registry interval. Set before sending, so
            # whatever is read on the topic meanwhile (our copy, or another) counts last.
            self.bundles_seen[(item.topic_root, item.bundle)] = item.generation
            await mqtt.publish(self.space.bundle(item.topic_root, item.bundle), payload, qos=1, retain=True)
            self.restored += 1
            if item.pending:
                state.acknowledge(item.bundle, item.group, item.generation, payload)
                log.warning(
                    "%s generation %d for group %s was committed but never reached the broker; sent it",
                    item.bundle,
                    item.generation,
                    item.group,
                )
            else:
                log.warning(
                    "the broker no longer held %s generation %d for group %s; published it again",
                    item.bundle,
                    item.generation,
                    item.group,
                )

    async def _registry_loop(self, state: State, mqtt: aiomqtt.Client, subscribed: set[str]) -> None:
        while True:
            try:
                self.refresh_registry(state)
                await self._subscribe(mqtt, set(self._groups.values()), subscribed)
                await self._send_marker(mqtt, subscribed)
            except aiomqtt.MqttError as exc:
                log.warning("subscribing failed (%s); retrying", exc)
            except Exception:  # a registry read must not end the loop for good
                log.exception("cannot refresh the registry; retrying")
            await asyncio.sleep(self.settings.registry_interval)

    async def _publish_loop(self, mqtt: aiomqtt.Client) -> None:
        last_full = 0.0
        while True:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.heartbeat):
                    await self._changed.wait()
            self._changed.clear()
            now = time.monotonic()
            everything = now - last_full >= self.settings.heartbeat
            began = time.thread_time()  # this thread: a reading thread does not count
            try:
                await self._publish(mqtt, everything=everything)
            except aiomqtt.MqttError as exc:
                log.warning("summaries not published (%s); retrying", exc)
                self._changed.set()
            except Exception:  # a bad summary must not end publishing for good
                log.exception("cannot publish summaries; retrying")
                self._changed.set()
            else:
                if everything:
                    last_full = now
            # Rest at least as long as the cycle worked, so summaries never take more than
            # half the loop's core from reading statuses: at 100,000 clusters one cycle
            # costs over a second (docs/benchmarks.md, "Status ingest").
            await asyncio.sleep(max(self.settings.summary_interval, time.thread_time() - began))


def _replies(mqtt: aiomqtt.Client) -> registering.Send:
    """Registration replies: QoS 1, not retained (only the asking client reads them, once)."""

    async def send(topic: str, reply: bytes) -> None:
        await mqtt.publish(topic, reply, qos=1)

    return send


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel `tasks` and wait for them, cancelling again any that carried on.

    Python 3.11's asyncio.wait_for (which aiomqtt uses for every acknowledgement)
    swallows a cancellation that arrives as its awaitable completes; the task
    then runs on, and a single cancel would leave this waiting forever."""
    while pending := [task for task in tasks if not task.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=1.0)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.debug("stopped task had failed: %r", task.exception())


def _controller_presence(online: bool) -> bytes:
    return status.encode(status.Presence(online=online, since=time.time(), session=0))


def _encode(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def _encode_stamped(document: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """(the document without `ts`, the document) as sorted compact JSON, encoded once.

    `ts` sorts after every key a summary has, so it goes on the end of the content;
    encoding twice took a third of a summary cycle at 100,000 clusters."""
    content = _encode({k: v for k, v in document.items() if k != "ts"})
    if "ts" not in document:
        return content, content
    if any(key > "ts" for key in document):  # not a summary's shape: encode it whole
        return content, _encode(document)
    stamp = b'"ts":' + json.dumps(document["ts"]).encode() + b"}"
    return content, (content[:-1] + (b"," if len(content) > 2 else b"") + stamp)
