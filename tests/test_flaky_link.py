"""Fault matrix: a flaky link (docs/reliability.md).

The agent is a real process in a device namespace behind a NAT router
(tests.netns), with a keepalive of 2 s; Mosquitto listens on the host's end of
the router's WAN link and the controller's aggregator runs in this process.
First the device's link loses packets and is rate-limited (and delayed, where
the kernel has netem): a new generation still arrives and is reported Ready.
Then the link is cut for longer than the keepalive: the broker publishes the
agent's last will, so the retained presence and the controller's summaries
show the cluster offline. Three generations are published while it is away;
when the link returns the agent gets only the retained (latest) one, so its
Kubernetes API never sees the generations in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest
import yaml

from controller.state import Cluster
from tests import brokers, netns, recovery
from tests import fleet as fleets
from tests.fakekube import FakeCluster
from wire import agent_config, status, summaries, urls

log = logging.getLogger(__name__)

FAULT = "flaky link"
BUNDLE = "flaky"
# 15 % loss each way and 1 Mbit/s, 40 ms each way where netem exists: a poor mobile link.
LOSS = 0.15
DELAY_MS = 40
RATE = "1mbit"
# Generous deadlines: the figures that matter are recorded, not asserted (tests.recovery).
DEADLINE = 60.0


@pytest.fixture
def site() -> Iterator[netns.Site]:
    netns.skip_unless_namespaces()
    with netns.site() as built:
        yield built


class Retained:
    """The latest message on each topic under some filters, as a dashboard holds them."""

    def __init__(self) -> None:
        self.latest: dict[str, bytes] = {}

    async def follow(self, url: urls.BrokerUrl, filters: list[str]) -> None:
        async with aiomqtt.Client(url.host, url.port, protocol=aiomqtt.ProtocolVersion.V311) as client:
            for topic_filter in filters:
                await client.subscribe(topic_filter, qos=1)
            async for message in client.messages:
                payload = message.payload
                self.latest[message.topic.value] = payload if isinstance(payload, bytes) else b""


@contextlib.asynccontextmanager
async def following(url: urls.BrokerUrl, filters: list[str]) -> AsyncIterator[Retained]:
    held = Retained()
    task = asyncio.ensure_future(held.follow(url, filters))
    try:
        yield held
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _write_generation(bundle: Path, marker: int) -> None:
    """The bundle's content for one publish: a ConfigMap named after it, so the API's request
    log (method, path) shows which generation the agent applied."""
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "namespace.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: flaky}\n")
    (bundle / "marker.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: marker-{marker}, namespace: flaky}}\n"
        f"data: {{generation: '{marker}'}}\n"
    )


async def test_flaky_link_goes_offline_and_converges_on_the_latest_generation(
    site: netns.Site, tmp_path: Path, topic_root: str
) -> None:
    name = f"pi-flaky-{site.id}"
    (tmp_path / "broker").mkdir()
    bundle = tmp_path / "bundles" / BUNDLE
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(brokers.Mosquitto(tmp_path / "broker", host=site.host_ip))
        cluster = stack.enter_context(FakeCluster(listener=netns.socket_in(site.device)))
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        async with fleets.fleet_of(broker.url, tmp_path, {topic_root: {}}, {}) as fleet:
            fleet.state.add_cluster(Cluster(name, topic_root, {}))
            device = fleets.Device(name, topic_root, {}, cluster, tmp_path / name)
            config = tmp_path / "agent.yaml"
            config.write_text(yaml.safe_dump(agent_config.to_document(fleet.config(device))))
            fleet.start_controller()
            presence_topic = fleets.T.presence(topic_root, name)
            summary_topic = fleets.T.summary_bundle(BUNDLE)
            group_topic = fleets.T.summary_group(topic_root)
            status_topic = fleets.T.status(topic_root, name)
            watched = [presence_topic, summary_topic, group_topic, status_topic]
            async with following(broker.url, watched) as held:

                def online() -> bool | None:
                    payload = held.latest.get(presence_topic)
                    return status.decode_presence(payload)["online"] if payload else None

                def summary() -> summaries.BundleSummary | None:
                    payload = held.latest.get(summary_topic)
                    return summaries.decode_bundle(payload) if payload else None

                def group() -> summaries.GroupSummary | None:
                    payload = held.latest.get(group_topic)
                    return summaries.decode_group(payload) if payload else None

                def ready_on(generation: int) -> bool:
                    shown, raw = summary(), held.latest.get(status_topic)
                    if shown is None or raw is None or BUNDLE not in status.decode_status(raw)["bundles"]:
                        return False
                    reported = status.decode_status(raw)["bundles"][BUNDLE]
                    return (
                        shown["generation"] == generation
                        and shown["desired"] == shown["ready"] == 1
                        and shown["offline"] == 0
                        and reported["generation"] == generation
                        and reported["state"] == "Ready"
                    )

                def offline() -> bool:
                    shown, rows = summary(), group()
                    return (
                        online() is False
                        and shown is not None
                        and shown["offline"] == 1
                        and shown["ready"] == 0
                        and rows is not None
                        and rows["online"] == 0
                        and [row["online"] for row in rows["cluster_rows"]] == [False]
                    )

                async def publish(marker: int) -> None:
                    _write_generation(bundle, marker)
                    report = await fleet.apply(bundle)
                    assert report.generation == marker

                agent = stack.enter_context(
                    netns.process(
                        fleets.agent_process(config, device.state_dir, kubeconfig),
                        tmp_path / "agent.log",
                        namespace=site.device,
                    )
                )
                await publish(1)
                await fleet.until(lambda: ready_on(1), "generation 1 Ready", timeout=DEADLINE)

                # A lossy, slow link: slower, but the next generation arrives and is reported.
                impairment = site.impair(loss=LOSS, delay_ms=DELAY_MS, rate=RATE)
                log.info("impaired link: %s", impairment)
                delay = f", {impairment.delay_ms} ms delay" if impairment.delay_ms else ", no delay"
                lossy = f"{impairment.loss:.0%} loss, {impairment.rate}{delay} ({impairment.method})"
                with recovery.timed(f"{FAULT}: {lossy}", "time from publish to Ready on the new generation"):
                    await publish(2)
                    await fleet.until(lambda: ready_on(2), "generation 2 Ready over the lossy link", DEADLINE)
                await fleet.until(lambda: site.dropped() > 0, "the link to lose packets", timeout=DEADLINE)
                site.clear()

                # Cut for longer than the keepalive: the broker gives the agent's last will.
                site.cut()
                with recovery.timed(
                    f"{FAULT}: link cut", "time from cut to offline in the controller's summaries (will)"
                ):
                    await fleet.until(offline, "the cluster shown offline", timeout=DEADLINE)
                for marker in (3, 4, 5):
                    await publish(marker)
                site.restore()
                restored, seen = time.monotonic(), {}
                milestones = {
                    "time from link restored to back online (retained presence)": lambda: online() is True,
                    "time from link restored to the latest generation on the device's API": lambda: (
                        cluster.get_object("v1", "ConfigMap", "flaky", "marker-5") is not None
                    ),
                    "time from link restored to Ready on the latest generation in the controller's summary": (
                        lambda: ready_on(5)
                    ),
                }

                def converged() -> bool:
                    for what, holds in milestones.items():
                        if what not in seen and holds():
                            seen[what] = time.monotonic() - restored
                    return len(seen) == len(milestones)

                await fleet.until(converged, "Ready on generation 5 after the cut", timeout=DEADLINE)
                for what, seconds in seen.items():
                    recovery.record(f"{FAULT}: link cut", what, seconds)
                assert online() is True
                assert agent.poll() is None, (tmp_path / "agent.log").read_text()

    paths = [path for _, path in cluster.requests]
    assert any(path.endswith("/configmaps/marker-2") for path in paths)  # the log names what was applied
    skipped = [path for path in paths if "marker-3" in path or "marker-4" in path]
    assert skipped == [], "intermediate generations reached the device's API"
    assert {o["metadata"]["name"] for o in cluster.objects(kind="ConfigMap", namespace="flaky")} == {
        "marker-5"
    }
