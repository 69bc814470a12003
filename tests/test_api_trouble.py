"""Fault matrix row 7, Kubernetes API trouble: 500s, requests that hang past the client's
timeout, and a slow API, on the fake API server, with the agent on a real Mosquitto.

What is pinned: the agent retries with backoff (one request per attempt, spaced by the
delays its Backoff chose), the retained status that the controller and dashboards read
says ErrApplied with the API's own message within a bounded time, a hung request costs
one request timeout and never the worker, writes that land after the client gave up do
no harm, and the bundle is Ready on the latest generation once the API is healthy.
tests/test_agent.py pins the in-process retry loop without a broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from edge_agent import applying, errors
from edge_agent.agent import Agent
from edge_agent.backoff import Backoff
from edge_agent.store import Store
from tests import fleet as fleets
from tests import recovery, waiting
from tests.fakekube import Exchange, FakeCluster, Fault
from tests.test_agent import KEY, NAMESPACE, _config_map
from wire import agent_config, envelopes, manifests, status, topics, urls

T = topics.Topics()
API_500S = "Kubernetes API 500s"
API_HANGS = "Kubernetes API hangs past the request timeout"
API_SLOW = "Kubernetes API slow"
# What the API says while it fails: the status must carry these words, not a generic line.
ETCD_DOWN = "etcdserver: leader changed"
# The client's request timeout in these tests: (connect, read) seconds, far below the product's.
SHORT_TIMEOUT = (1.0, 0.5)
# Longer than SHORT_TIMEOUT, short enough that the late answers land while the test runs.
HANG = 2.5
# How late the slow API answers every request: slow, but well within the request timeout.
SLOW = 0.1
# Generous deadlines for outcomes (a loaded 2-core machine), never the expected time.
DEADLINE = 15.0


# -- parts shared with tests/test_disk_trouble.py ------------------------------------------------


def sealed(group: str, generation: int, *objects: dict[str, Any], bundle: str = "app") -> bytes:
    variant = manifests.Variant("shop", objects, {})
    target = manifests.Target("all", variant.deployment_id, cluster_selector=manifests.ClusterSelector())
    manifest = manifests.Manifest(
        manifests.Kind.BUNDLE, bundle, group, generation, 1.0, (target,), (variant,)
    )
    return envelopes.seal(manifest, KEY, version=2)


async def publish(url: urls.BrokerUrl, topic: str, payload: bytes) -> None:
    """Publish retained, as the controller publishes a bundle."""
    async with asyncio.timeout(10), aiomqtt.Client(url.host, url.port) as client:
        await client.publish(topic, payload, qos=1, retain=True)


@dataclass
class Seen:
    """The cluster's retained status and presence as a dashboard sees them: read from the broker."""

    documents: list[status.StatusDocument] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)  # time.monotonic() of each document
    presence: list[status.Presence] = field(default_factory=list)

    def since(self, moment: float) -> list[status.StatusDocument]:
        """The documents that arrived after `moment` (time.monotonic())."""
        return [d for d, at in zip(self.documents, self.arrived, strict=True) if at > moment]

    @property
    def latest(self) -> status.StatusDocument | None:
        return self.documents[-1] if self.documents else None

    def bundle(self, name: str) -> status.BundleStatus | None:
        latest = self.latest
        return latest["bundles"].get(name) if latest else None

    def shows(self, name: str, state: str, generation: int, *words: str) -> bool:
        """Whether the latest document shows bundle `name` in `state` at `generation`, saying `words`."""
        found = self.bundle(name)
        return (
            found is not None
            and found["state"] == state
            and found["generation"] == generation
            and all(word in found["message"] for word in words)
        )

    def ready_on(self, name: str, generation: int) -> bool:
        """Ready on `generation`, running the variant that generation selects."""
        found = self.bundle(name)
        return (
            self.shows(name, "Ready", generation)
            and found is not None
            and found["applied_deployment_id"] == found["deployment_id"]
        )


@asynccontextmanager
async def watching(url: urls.BrokerUrl, group: str, cluster: str) -> AsyncIterator[Seen]:
    seen = Seen()
    status_topic, presence_topic = T.status(group, cluster), T.presence(group, cluster)
    subscribed = asyncio.Event()

    async def read() -> None:
        async with aiomqtt.Client(url.host, url.port) as client:
            await client.subscribe(status_topic, qos=1)
            await client.subscribe(presence_topic, qos=1)
            subscribed.set()
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                if message.topic.value == status_topic:
                    seen.documents.append(status.decode_status(payload))
                    seen.arrived.append(time.monotonic())
                else:
                    seen.presence.append(status.decode_presence(payload))

    task = asyncio.ensure_future(read())
    try:
        async with asyncio.timeout(10):
            await asyncio.wait(
                [task, asyncio.ensure_future(subscribed.wait())], return_when="FIRST_COMPLETED"
            )
        if task.done():
            task.result()  # the subscriber failed: say why
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def config(url: urls.BrokerUrl, group: str) -> agent_config.AgentConfig:
    return agent_config.AgentConfig(
        "pi",
        group,
        str(url),
        (KEY.verify_key.to_pem().decode(),),
        **fleets.FAST,  # type: ignore[arg-type]
    )


@asynccontextmanager
async def running(agent: Agent) -> AsyncIterator[Agent]:
    """`agent.run()` until the block ends: connected to the broker, as on a device."""
    task = asyncio.ensure_future(agent.run())
    try:
        yield agent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    await waiting.until_async(condition, timeout=timeout, what=what)


# -- this row -----------------------------------------------------------------------------------------


@dataclass
class RecordingBackoff(Backoff):
    """The product's Backoff, noting each ceiling and delay it hands out and each reset."""

    ceilings: list[float] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    resets: int = 0

    def next_delay(self) -> float:
        self.ceilings.append(min(self.maximum, self.initial * self.factor**self.attempts))
        delay = super().next_delay()
        self.delays.append(delay)
        return delay

    def reset(self) -> None:
        self.resets += 1
        super().reset()


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    with FakeCluster() as running_cluster:
        yield running_cluster


def _agent(
    url: urls.BrokerUrl,
    group: str,
    cluster: FakeCluster,
    state_dir: Path,
    *,
    backoffs: list[RecordingBackoff],
    request_timeout: float | tuple[float, float] = applying.REQUEST_TIMEOUT,
) -> Agent:
    def retry_backoff() -> RecordingBackoff:
        backoff = RecordingBackoff(initial=0.05, maximum=0.4, rng=random.Random(7))
        backoffs.append(backoff)
        return backoff

    applier = applying.KubeApplier(
        cluster.api_client(), discovery_cache=state_dir / "discovery.json", request_timeout=request_timeout
    )
    return Agent(
        config(url, group),
        Store(state_dir),
        applier,
        retry_backoff=retry_backoff,
        reconnect_backoff=fleets.fast_backoff,
    )


def _began(exchange: Exchange) -> float:
    return exchange.began


def _answered(cluster: FakeCluster, method: str, path_end: str = "") -> list[Exchange]:
    return [e for e in cluster.exchanges if e.method == method and e.path.endswith(path_end)]


async def test_api_500s_are_retried_with_backoff_reported_with_the_apis_message_and_recovered(
    mosquitto_url: urls.BrokerUrl, topic_root: str, cluster: FakeCluster, tmp_path: Path
) -> None:
    backoffs: list[RecordingBackoff] = []
    agent = _agent(mosquitto_url, topic_root, cluster, tmp_path / "agent", backoffs=backoffs)
    cluster.inject(Fault.error(500, times=100_000, method="PATCH", message=ETCD_DOWN))
    topic = T.bundle(topic_root, "app")
    async with watching(mosquitto_url, topic_root, "pi") as seen, running(agent):
        began = time.monotonic()
        await publish(mosquitto_url, topic, sealed(topic_root, 1, NAMESPACE, _config_map("a", v="1")))
        await until(
            lambda: seen.shows("app", "ErrApplied", 1, "500 InternalError", ETCD_DOWN, "(retrying)"),
            "ErrApplied with the API's message in the retained status",
        )
        recovery.record(
            API_500S, "time from a manifest to ErrApplied in the retained status", time.monotonic() - began
        )

        # Backoff: one worker, one schedule that grows to its cap and is not reset by failures.
        (backoff,) = backoffs
        await until(lambda: len(backoff.delays) >= 6, "six failed attempts")
        delays = list(backoff.delays)
        failed = _answered(cluster, "PATCH")
        assert backoff.ceilings[:6] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.4, 0.4])
        assert backoff.resets == 0
        # One request per attempt, and each attempt waited out the delay chosen before it.
        assert len(delays) <= len(failed) <= len(delays) + 1
        assert {e.code for e in failed} == {500}
        for before, after, delay in zip(failed, failed[1:], delays, strict=False):
            assert after.began - before.ended >= delay - 0.01

        # A newer generation arrives during the outage: it is the one reported and applied.
        await publish(mosquitto_url, topic, sealed(topic_root, 2, NAMESPACE, _config_map("a", v="2")))
        await until(lambda: seen.shows("app", "ErrApplied", 2, ETCD_DOWN), "generation 2 reported failing")
        assert cluster.objects(kind="ConfigMap") == []  # nothing half-applied while the API failed

        cluster.clear_faults()
        with recovery.timed(API_500S, "time from API healthy to Ready on the latest generation"):
            await until(lambda: seen.ready_on("app", 2), "Ready on generation 2")
    (config_map,) = cluster.objects(kind="ConfigMap")
    assert config_map["data"] == {"v": "2"}
    # Generation 1 was never applied: the retries skipped to the newest manifest.
    assert len([e for e in _answered(cluster, "PATCH", "/configmaps/a") if e.code < 300]) == 1
    assert backoff.resets >= 1 and backoff.attempts == 0


async def test_a_request_that_hangs_past_the_timeout_is_a_transient_failure_and_does_no_harm_late(
    mosquitto_url: urls.BrokerUrl, topic_root: str, cluster: FakeCluster, tmp_path: Path
) -> None:
    backoffs: list[RecordingBackoff] = []
    agent = _agent(
        mosquitto_url,
        topic_root,
        cluster,
        tmp_path / "agent",
        backoffs=backoffs,
        request_timeout=SHORT_TIMEOUT,
    )
    hangs = cluster.inject(Fault.slow(HANG, times=2, method="PATCH", path_contains="/configmaps/a"))
    async with watching(mosquitto_url, topic_root, "pi") as seen, running(agent):
        began = time.monotonic()
        await publish(
            mosquitto_url,
            T.bundle(topic_root, "app"),
            sealed(topic_root, 1, NAMESPACE, _config_map("a", v="1")),
        )
        await until(
            lambda: seen.shows("app", "ErrApplied", 1, "ConfigMap shop/a", "timed out", "(retrying)"),
            "ErrApplied naming the timeout",
        )
        recovery.record(
            API_HANGS,
            "time from a manifest to ErrApplied (timeout) in the retained status",
            time.monotonic() - began,
        )
        await until(lambda: seen.ready_on("app", 1), "Ready after the hangs")
        recovery.record(
            API_HANGS, "time from a manifest to Ready through two hung requests", time.monotonic() - began
        )
        # The worker moved on while the API still held the requests it gave up on.
        patches = [p for m, p in cluster.requests if m == "PATCH" and p.endswith("/configmaps/a")]
        assert hangs.remaining == 0 and len(patches) == 3
        assert len(backoffs[0].delays) == 2
        applied = cluster.get_object("v1", "ConfigMap", "shop", "a")
        assert applied is not None

        # The two late writes land: the same apply again, a no-op, and the status stays Ready.
        await until(
            lambda: len(_answered(cluster, "PATCH", "/configmaps/a")) == 3,
            "the late writes",
            timeout=HANG * 4,
        )
        # By the server's own clock: the third attempt was answered before either hung one.
        hung_first, hung_second, succeeded = sorted(_answered(cluster, "PATCH", "/configmaps/a"), key=_began)
        assert succeeded.ended < min(hung_first.ended, hung_second.ended)
        await agent._observe("app")  # what the periodic observer does, now that they are in
        looked = time.monotonic()
        await until(lambda: bool(seen.since(looked)), "a status after the late writes")
        assert seen.ready_on("app", 1)
    after = cluster.get_object("v1", "ConfigMap", "shop", "a")
    assert after is not None and after["data"] == {"v": "1"}
    assert after["metadata"]["resourceVersion"] == applied["metadata"]["resourceVersion"]
    managers = [entry["manager"] for entry in after["metadata"]["managedFields"]]
    assert managers == [applying.FIELD_MANAGER]
    assert not [m for m, _ in cluster.requests if m == "DELETE"]


async def test_a_slow_api_within_the_timeout_only_delays_ready(
    mosquitto_url: urls.BrokerUrl, topic_root: str, cluster: FakeCluster, tmp_path: Path
) -> None:
    backoffs: list[RecordingBackoff] = []
    agent = _agent(
        mosquitto_url, topic_root, cluster, tmp_path / "agent", backoffs=backoffs, request_timeout=2.0
    )
    cluster.inject(Fault.slow(SLOW, times=100_000))
    async with watching(mosquitto_url, topic_root, "pi") as seen, running(agent):
        with recovery.timed(API_SLOW, f"time from a manifest to Ready, every request {SLOW}s late"):
            await publish(
                mosquitto_url, T.bundle(topic_root, "app"), sealed(topic_root, 1, NAMESPACE, _config_map("a"))
            )
            await until(lambda: seen.ready_on("app", 1), "Ready on a slow API")
    states = {d["bundles"]["app"]["state"] for d in seen.documents if "app" in d["bundles"]}
    assert "ErrApplied" not in states  # slow is not failing: no retry, no error shown
    assert backoffs[0].delays == []


async def test_discovery_that_hangs_times_out_instead_of_holding_the_worker(cluster: FakeCluster) -> None:
    applier = applying.KubeApplier(cluster.api_client(), request_timeout=0.2)
    cluster.inject(Fault.slow(60, times=100_000, path_contains="/version"))
    variant = manifests.Variant("shop", (NAMESPACE, _config_map("a")))
    async with asyncio.timeout(DEADLINE):  # before the fix, the first call waited out the hang
        with pytest.raises(errors.TransientApplyError, match="timed out"):
            await asyncio.to_thread(applier.apply, "app", variant)
        with pytest.raises(errors.TransientApplyError, match="timed out"):
            await asyncio.to_thread(applier.facts)
    cluster.clear_faults()
    assert {r.name for r in await asyncio.to_thread(applier.apply, "app", variant)} == {"shop", "a"}
