"""An in-process fleet for end-to-end tests: a controller (state, aggregator) and
agents, each agent on its own fake Kubernetes API server, all on a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller import aggregating, delivering, keystore
from controller.state import Cluster, Group, State
from edge_agent import applying
from edge_agent.agent import Agent
from edge_agent.backoff import Backoff
from edge_agent.store import Store
from tests import mqtt, waiting
from tests.fakekube import FakeCluster
from wire import agent_config, keys, summaries, topics, urls

T = topics.Topics()
# Fast clocks for tests: the product defaults are tens of seconds.
FAST = {"keepalive": 2, "heartbeat": 1.0, "observe_interval": 0.3}
FAST_SUMMARIES = aggregating.Settings(summary_interval=0.05, registry_interval=0.1, heartbeat=5.0)


def agent_process(config: Path, state_dir: Path, kubeconfig: Path) -> list[str]:
    """The command line of a real agent process, as a device runs it."""
    return [
        sys.executable,
        "-m",
        "edge_agent.cli",
        "run",
        "--config",
        str(config),
        "--state-dir",
        str(state_dir),
        "--kubeconfig",
        str(kubeconfig),
    ]


def fast_backoff() -> Backoff:
    """Retries within tens of milliseconds, so fault tests converge quickly."""
    return Backoff(initial=0.05, maximum=0.5, rng=random.Random(0))


@dataclass
class Device:
    name: str
    group: str
    labels: Mapping[str, str]
    cluster: FakeCluster
    state_dir: Path
    agent: Agent | None = None
    task: asyncio.Task[None] | None = None

    def names(self, kind: str) -> set[str]:
        return {o["metadata"]["name"] for o in self.cluster.objects(kind=kind)}

    def writes(self) -> int:
        return sum(1 for method, _ in self.cluster.requests if method in ("POST", "PUT", "PATCH", "DELETE"))


@dataclass
class Fleet:
    url: urls.BrokerUrl
    workdir: Path
    state: State
    key: keys.SigningKey
    space: topics.Topics = T
    devices: dict[str, Device] = field(default_factory=dict)
    timing: Mapping[str, float] = field(default_factory=lambda: FAST)  # the agents' clocks
    aggregator: aggregating.Aggregator | None = None
    _aggregating: asyncio.Task[None] | None = None

    @property
    def state_dir(self) -> Path:
        return self.workdir / "controller"

    def config(self, device: Device) -> agent_config.AgentConfig:
        return agent_config.AgentConfig(
            cluster=device.name,
            group=device.group,
            broker=str(self.url),
            trusted_keys=(self.key.verify_key.to_pem().decode(),),
            labels=dict(device.labels),
            topic_prefix=self.space.prefix,
            **self.timing,  # type: ignore[arg-type]
        )

    def start(self, device: Device) -> Agent:
        applier = applying.KubeApplier(
            device.cluster.api_client(), discovery_cache=device.state_dir / "discovery.json"
        )
        agent = Agent(
            self.config(device),
            Store(device.state_dir),
            applier,
            retry_backoff=fast_backoff,
            reconnect_backoff=fast_backoff,
        )
        device.agent = agent
        device.task = asyncio.ensure_future(agent.run())
        return agent

    async def stop(self, device: Device) -> None:
        if device.task is not None:
            device.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await device.task
        device.task = None

    def start_controller(self) -> aggregating.Aggregator:
        self.aggregator = aggregating.Aggregator(self.state_dir, self.url, self.space, FAST_SUMMARIES)
        self._aggregating = asyncio.ensure_future(self.aggregator.run())
        return self.aggregator

    async def stop_controller(self) -> None:
        if self._aggregating is not None:
            self._aggregating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._aggregating
        self._aggregating = None

    async def apply(self, directory: Path) -> delivering.Report:
        report = await delivering.apply(self.state, self.key, self.url, directory, self.space)
        assert report.ok, report.failed
        return report

    async def until(self, condition: Any, what: str, timeout: float = 30.0) -> None:
        await waiting.until_async(condition, timeout=timeout, what=what)

    async def bundle_summary(self, bundle: str) -> summaries.BundleSummary:
        topic = self.space.summary_bundle(bundle)
        held = await mqtt.retained(self.url, topic, expect=1)
        return summaries.decode_bundle(held[topic])


@asynccontextmanager
async def fleet_of(
    url: urls.BrokerUrl,
    workdir: Path,
    groups: Mapping[str, Mapping[str, str]],
    devices: Mapping[str, tuple[str, Mapping[str, str]]],
    *,
    space: topics.Topics = T,
) -> AsyncIterator[Fleet]:
    """`groups`: topic root -> group labels; `devices`: name -> (topic root, labels)."""
    key = keystore.init(workdir / "controller")
    state = State.open(workdir / "controller")
    for root, labels in groups.items():
        state.add_group(Group(root, root, dict(labels)))
    running = Fleet(url, workdir, state, key, space)
    with contextlib.ExitStack() as stack:
        for name, (root, labels) in devices.items():
            state.add_cluster(Cluster(name, root, dict(labels)))
            cluster = stack.enter_context(FakeCluster(ready_delay=0.0))
            running.devices[name] = Device(name, root, labels, cluster, workdir / name)
        try:
            yield running
        finally:
            for device in running.devices.values():
                await running.stop(device)
            await running.stop_controller()
            state.close()


@asynccontextmanager
async def fleet(
    url: urls.BrokerUrl, workdir: Path, group: str, devices: Mapping[str, Mapping[str, str]]
) -> AsyncIterator[Fleet]:
    """One group, several devices."""
    members = {name: (group, labels) for name, labels in devices.items()}
    async with fleet_of(url, workdir, {group: {}}, members) as running:
        yield running
