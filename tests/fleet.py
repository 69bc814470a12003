"""An in-process fleet for end-to-end tests: a controller state and agents,
each agent on its own fake Kubernetes API server, all on a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller import delivering, keystore
from controller.state import Group, State
from edge_agent import applying
from edge_agent.agent import Agent
from edge_agent.backoff import Backoff
from edge_agent.store import Store
from tests import waiting
from tests.fakekube import FakeCluster
from wire import agent_config, keys, topics, urls

T = topics.Topics()


def fast_backoff() -> Backoff:
    """Retries within tens of milliseconds, so fault tests converge quickly."""
    return Backoff(initial=0.05, maximum=0.5, rng=random.Random(0))


@dataclass
class Device:
    name: str
    labels: Mapping[str, str]
    cluster: FakeCluster
    state_dir: Path
    agent: Agent | None = None
    task: asyncio.Task[None] | None = None

    def objects(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [o for o in self.cluster.objects(kind=kind) if o["kind"] != "Namespace" or kind == "Namespace"]

    def names(self, kind: str) -> set[str]:
        return {o["metadata"]["name"] for o in self.cluster.objects(kind=kind)}

    def writes(self) -> int:
        return sum(1 for method, _ in self.cluster.requests if method in ("POST", "PUT", "PATCH", "DELETE"))


@dataclass
class Fleet:
    url: urls.BrokerUrl
    group: str
    state: State
    key: keys.SigningKey
    devices: dict[str, Device] = field(default_factory=dict)

    def config(self, device: Device) -> agent_config.AgentConfig:
        return agent_config.AgentConfig(
            cluster=device.name,
            group=self.group,
            broker=str(self.url),
            trusted_keys=(self.key.verify_key.to_pem().decode(),),
            labels=dict(device.labels),
        )

    def start(self, device: Device) -> Agent:
        applier = applying.KubeApplier(
            device.cluster.api_client(), discovery_cache=device.state_dir / "discovery.json"
        )
        agent = Agent(self.config(device), Store(device.state_dir), applier, retry_backoff=fast_backoff)
        device.agent = agent
        device.task = asyncio.ensure_future(agent.run())
        return agent

    async def stop(self, device: Device) -> None:
        if device.task is not None:
            device.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await device.task
        device.task = None

    async def apply(self, directory: Path) -> delivering.Report:
        report = await delivering.apply(self.state, self.key, self.url, directory, T)
        assert report.ok, report.failed
        return report

    async def until(self, condition: Any, what: str, timeout: float = 30.0) -> None:
        await waiting.until_async(condition, timeout=timeout, what=what)


@asynccontextmanager
async def fleet(
    url: urls.BrokerUrl, workdir: Path, group: str, devices: Mapping[str, Mapping[str, str]]
) -> AsyncIterator[Fleet]:
    key = keystore.init(workdir / "controller")
    state = State.open(workdir / "controller")
    state.add_group(Group(group, group))
    running = Fleet(url, group, state, key)
    with contextlib.ExitStack() as stack:
        for name, labels in devices.items():
            cluster = stack.enter_context(FakeCluster(ready_delay=0.0))
            running.devices[name] = Device(name, labels, cluster, workdir / name)
        try:
            yield running
        finally:
            for device in running.devices.values():
                await running.stop(device)
            state.close()
