"""Failure paths found by review, each pinned: hostile input never stops a component,
a failed apply stays failed, and nothing is deleted or forgotten by mistake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from controller import aggregating, readiness_table
from edge_agent import applying, drift, errors
from edge_agent.agent import Agent
from edge_agent.store import ObjectRef, Store
from tests import factories, waiting
from tests import fleet as fleets
from tests.fakekube import FakeCluster
from tests.test_agent import GROUP, KEY, NAMESPACE, T, _config_map, _sealed, _tombstone
from wire import agent_config, manifests, urls

CRD = factories.crd("Issuer", scope="Cluster")


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    with FakeCluster() as running:
        yield running


@pytest.fixture
async def agent(cluster: FakeCluster, tmp_path: Path) -> AsyncIterator[Agent]:
    config = agent_config.AgentConfig("pi", GROUP, "mqtt://127.0.0.1:1", (KEY.verify_key.to_pem().decode(),))
    applier = applying.KubeApplier(cluster.api_client(), discovery_cache=tmp_path / "discovery.json")
    running = Agent(config, Store(tmp_path / "agent"), applier, retry_backoff=fleets.fast_backoff)
    yield running
    await running.shutdown()


async def _settled(agent: Agent, generation: int) -> None:
    await waiting.until_async(
        lambda: agent.store.applied("app").generation >= generation and not agent.busy,
        timeout=15,
        what="settling",
    )


async def test_a_failed_apply_stays_err_applied_when_observed(agent: Agent) -> None:
    agent.receive(T.bundle(GROUP, "app"), _sealed(1, NAMESPACE, _config_map("a")))
    await _settled(agent, 1)
    broken = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {}}
    agent.receive(T.bundle(GROUP, "app"), _sealed(2, NAMESPACE, broken))
    await waiting.until_async(
        lambda: agent.statuses["app"]["state"] == "ErrApplied", timeout=15, what="ErrApplied"
    )
    await agent._observe("app")  # what the periodic observer does
    assert agent.statuses["app"]["state"] == "ErrApplied"
    assert agent.statuses["app"]["generation"] == 2


async def test_a_hostile_topic_never_reaches_the_state_store(agent: Agent) -> None:
    for topic in (f"{GROUP}/bundles/-bad", f"{GROUP}/bundles/$x", f"{GROUP}/bundles/{'x' * 300}"):
        assert type(agent.receive(topic, b"x").error).__name__ == "InvalidName"  # type: ignore[union-attr]
    assert agent.refused == 3


def test_controller_counts_and_survives_absurd_documents(tmp_path: Path) -> None:
    aggregator = aggregating.Aggregator(tmp_path, urls.BrokerUrl("127.0.0.1", 1))
    aggregator._groups = {"g": "g"}
    aggregator.handle("g/presence/ghost", b'{"online": true, "since": 1' + b"0" * 400 + b', "session": 1}')
    aggregator.handle("g/status/ghost", b"\xff" * 10)
    aggregator.handle("g/status/ghost", b"[" * 100_000)
    aggregator.handle("g/bundles/web", b"not an envelope")
    assert aggregator.table.ignored == 4


def test_a_replayed_old_tombstone_does_not_remove_a_live_bundle() -> None:
    table = readiness_table.Table()
    variant = manifests.Variant(
        "default", ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},)
    )
    target = manifests.Target("all", variant.deployment_id, cluster_selector=manifests.ClusterSelector())
    table.manifest("g", manifests.Manifest(manifests.Kind.BUNDLE, "web", "g", 5, 1.0, (target,), (variant,)))
    assert not table.manifest("g", manifests.tombstone(bundle="web", group="g", generation=3, issued_at=1.0))
    assert ("g", "web") in table.held


async def test_a_cluster_scoped_custom_resource_shipped_with_its_crd_is_kept(
    agent: Agent, cluster: FakeCluster
) -> None:
    issuer = {
        "apiVersion": "example.com/v1",
        "kind": "Issuer",
        "metadata": {"name": "letsencrypt"},
        "spec": {},
    }
    agent.receive(T.bundle(GROUP, "app"), _sealed(1, CRD, issuer))
    await _settled(agent, 1)
    assert cluster.get_object("example.com/v1", "Issuer", "", "letsencrypt") is not None
    assert not [p for m, p in cluster.requests if m == "DELETE"]


def test_removal_with_the_api_unreachable_fails_instead_of_forgetting(tmp_path: Path) -> None:
    with FakeCluster() as gone:
        client = gone.api_client()
    applier = applying.KubeApplier(client)
    with pytest.raises(errors.TransientApplyError):
        applier.remove("app", [ObjectRef("v1", "ConfigMap", "shop", "a")])


def test_secret_string_data_is_not_drift() -> None:
    desired = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "stringData": {"token": "hunter2"},
    }
    live = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"token": "aHVudGVyMg=="},
    }
    assert drift.differences(desired, live) == []
    assert drift.differences(desired, {**live, "data": {"token": "b3RoZXI="}}) == ["/data/token"]


def test_sessions_keep_growing_when_the_state_directory_is_wiped(tmp_path: Path) -> None:
    first = Store(tmp_path / "one").next_session()
    assert Store(tmp_path / "one").next_session() > first
    assert Store(tmp_path / "wiped").next_session() > first


async def test_a_removal_that_fails_is_reported(agent: Agent, cluster: FakeCluster) -> None:
    from tests.fakekube import Fault

    agent.receive(T.bundle(GROUP, "app"), _sealed(1, NAMESPACE, _config_map("a")))
    await _settled(agent, 1)
    cluster.inject(Fault.error(403, times=1000, method="DELETE"))
    agent.receive(T.bundle(GROUP, "app"), _tombstone(2))
    await waiting.until_async(
        lambda: agent.statuses.get("app", {}).get("state") == "ErrApplied",
        timeout=15,
        what="the failed removal",
    )
    assert "403" in agent.statuses["app"]["message"]
    assert agent.store.applied("app").inventory != ()  # nothing forgotten: a retry can finish the job
