"""The agent's handling of manifests against a Kubernetes API (tests.fakekube), fed
directly (the broker path is covered end to end): retries, permanent errors,
keepResources, ownership, restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent import applying, receiving
from edge_agent.agent import Agent
from edge_agent.store import Store
from tests import fleet as fleets
from tests import waiting
from tests.fakekube import FakeCluster, Fault
from wire import agent_config, envelopes, keys, manifests, topics

GROUP = "edge/site"
T = topics.Topics()
KEY = keys.SigningKey.generate()
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}


def _config_map(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": dict(data)}


def _sealed(generation: int, *objects: dict[str, Any], bundle: str = "app", **options: Any) -> bytes:
    variant = manifests.Variant("shop", objects, options)
    target = manifests.Target("all", variant.deployment_id, cluster_selector=manifests.ClusterSelector())
    manifest = manifests.Manifest(
        manifests.Kind.BUNDLE, bundle, GROUP, generation, 1.0, (target,), (variant,)
    )
    return envelopes.seal(manifest, KEY, version=2)


def _tombstone(generation: int, bundle: str = "app") -> bytes:
    return envelopes.seal(
        manifests.tombstone(bundle=bundle, group=GROUP, generation=generation, issued_at=1.0),
        KEY,
        version=2,
    )


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    with FakeCluster() as running:
        yield running


def _agent(cluster: FakeCluster, state_dir: Path) -> Agent:
    config = agent_config.AgentConfig("pi", GROUP, "mqtt://127.0.0.1:1", (KEY.verify_key.to_pem().decode(),))
    applier = applying.KubeApplier(cluster.api_client(), discovery_cache=state_dir / "discovery.json")
    return Agent(config, Store(state_dir), applier, retry_backoff=fleets.fast_backoff)


@pytest.fixture
async def agent(cluster: FakeCluster, tmp_path: Path) -> AsyncIterator[Agent]:
    running = _agent(cluster, tmp_path / "agent")
    yield running
    await running.shutdown()


async def _settled(agent: Agent, bundle: str, generation: int) -> None:
    await waiting.until_async(
        lambda: agent.store.applied(bundle).generation == generation and not agent.busy,
        timeout=15,
        what=f"{bundle} generation {generation} to be applied",
    )


def _names(cluster: FakeCluster) -> set[str]:
    return {o["metadata"]["name"] for o in cluster.objects(kind="ConfigMap")}


async def test_transient_failures_are_retried_until_the_api_recovers(
    agent: Agent, cluster: FakeCluster
) -> None:
    fault = cluster.inject(Fault.error(500, times=3, method="PATCH"))
    agent.receive(T.bundle(GROUP, "app"), _sealed(1, NAMESPACE, _config_map("a")))
    await _settled(agent, "app", 1)
    assert fault.remaining == 0 and _names(cluster) == {"a"}


async def test_a_permanent_error_waits_for_a_new_manifest(agent: Agent, cluster: FakeCluster) -> None:
    broken = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {}}
    agent.receive(T.bundle(GROUP, "app"), _sealed(1, NAMESPACE, broken))
    await waiting.until_async(lambda: not agent.busy, timeout=15, what="the agent to give up on generation 1")
    def patches() -> int:
        return sum(1 for method, path in cluster.requests if method == "PATCH" and "deployments" in path)

    assert patches() == 1  # not retried
    # The same envelope again (a reconnect's retained copy) is acted on again: one more try.
    agent.receive(T.bundle(GROUP, "app"), _sealed(1, NAMESPACE, broken))
    await waiting.until_async(lambda: patches() == 2 and not agent.busy, timeout=15, what="one more try")
    agent.receive(T.bundle(GROUP, "app"), _sealed(2, NAMESPACE, _config_map("fixed")))
    await _settled(agent, "app", 2)
    assert _names(cluster) == {"fixed"}


async def test_newer_manifests_overtake_a_retrying_one(agent: Agent, cluster: FakeCluster) -> None:
    cluster.inject(Fault.error(503, times=1000, method="PATCH", path_contains="configmaps/old"))
    agent.receive(T.bundle(GROUP, "app"), _sealed(1, NAMESPACE, _config_map("old")))
    await waiting.until_async(
        lambda: any("configmaps/old" in p for _, p in cluster.requests), timeout=10, what="the first attempt"
    )
    agent.receive(T.bundle(GROUP, "app"), _sealed(2, NAMESPACE, _config_map("new")))
    await _settled(agent, "app", 2)
    assert _names(cluster) == {"new"}


async def test_keep_resources_disables_pruning_and_removal(agent: Agent, cluster: FakeCluster) -> None:
    topic = T.bundle(GROUP, "app")
    agent.receive(topic, _sealed(1, NAMESPACE, _config_map("a"), _config_map("b"), keepResources=True))
    await _settled(agent, "app", 1)
    agent.receive(topic, _sealed(2, NAMESPACE, _config_map("a"), keepResources=True))
    await _settled(agent, "app", 2)
    assert _names(cluster) == {"a", "b"}
    agent.receive(topic, _tombstone(3))
    await _settled(agent, "app", 3)
    assert _names(cluster) == {"a", "b"}


async def test_a_tombstone_removes_only_what_is_still_ours(agent: Agent, cluster: FakeCluster) -> None:
    from kubernetes import client as k8s

    topic = T.bundle(GROUP, "app")
    core = k8s.CoreV1Api(cluster.api_client())
    # The namespace is not the bundle's: deleting a namespace deletes everything in it.
    core.create_namespace({"metadata": {"name": "shop"}})
    agent.receive(topic, _sealed(1, _config_map("a"), _config_map("adopted")))
    await _settled(agent, "app", 1)
    core.patch_namespaced_config_map(
        "adopted", "shop", {"metadata": {"labels": {"edgefleet.io/bundle": "someone-else"}}}
    )
    agent.receive(topic, _tombstone(2))
    await _settled(agent, "app", 2)
    assert _names(cluster) == {"adopted"}
    assert agent.store.applied("app").inventory == ()


async def test_an_interrupted_apply_is_finished_after_a_restart(cluster: FakeCluster, tmp_path: Path) -> None:
    first = _agent(cluster, tmp_path / "agent")
    cluster.inject(Fault.error(500, times=1000, method="PATCH", path_contains="configmaps/b"))
    first.receive(T.bundle(GROUP, "app"), _sealed(1, NAMESPACE, _config_map("a"), _config_map("b")))
    await waiting.until_async(lambda: "a" in _names(cluster), timeout=10, what="a partial apply")
    await first.shutdown()
    record = first.store.applied("app")
    assert not record.complete and {r.name for r in record.inventory} >= {"a", "b"}
    cluster.clear_faults()
    second = _agent(cluster, tmp_path / "agent")
    second.restore()
    await _settled(second, "app", 1)
    assert _names(cluster) == {"a", "b"} and second.store.applied("app").complete
    await second.shutdown()


async def test_ready_is_reported_once_the_apply_is_observed_not_an_interval_later(
    agent: Agent, cluster: FakeCluster
) -> None:
    # The product's observe_interval (30 s) is far beyond this deadline: only the look the
    # worker takes right after applying can make the bundle Ready in time.
    assert agent.config.observe_interval >= 30
    agent.receive(T.bundle(GROUP, "app"), _sealed(1, NAMESPACE, _config_map("a")))
    await waiting.until_async(
        lambda: agent.statuses.get("app", {}).get("state") == "Ready",
        timeout=10,
        what="the bundle to be reported Ready",
    )
    assert agent.statuses["app"]["generation"] == 1


async def test_the_same_envelope_again_is_taken_without_a_write_or_a_status_change(
    agent: Agent, cluster: FakeCluster
) -> None:
    # What a reconnect (the broker's retained copy) or a controller's restore delivers.
    topic, payload = T.bundle(GROUP, "app"), _sealed(1, NAMESPACE, _config_map("a"))
    agent.receive(topic, payload)
    await _settled(agent, "app", 1)
    await waiting.until_async(lambda: agent.statuses["app"]["state"] == "Ready", timeout=10, what="Ready")
    stored = agent.store.root / "manifests" / "app.bin"
    written, requests, status = stored.stat().st_mtime_ns, len(cluster.requests), agent.statuses["app"]
    assert isinstance(agent.receive(topic, payload), receiving.Accepted)
    assert not agent.busy and agent.received == 2 and agent.refused == 0
    assert stored.stat().st_mtime_ns == written and agent.statuses["app"] is status
    assert len(cluster.requests) == requests


async def test_bad_messages_never_stop_the_agent(agent: Agent, cluster: FakeCluster) -> None:
    topic = T.bundle(GROUP, "app")
    for payload in (b"", b"\x00" * 10, _sealed(1, _config_map("x"))[:-1], _sealed(1, bundle="other")):
        agent.receive(topic, payload)
    assert agent.refused == 4
    agent.receive(topic, _sealed(1, NAMESPACE, _config_map("fine")))
    await _settled(agent, "app", 1)
    assert _names(cluster) == {"fine"}


async def test_a_valid_manifest_on_another_groups_topic_is_refused(
    agent: Agent, cluster: FakeCluster
) -> None:
    variant = manifests.Variant("shop", (_config_map("x"),))
    target = manifests.Target("all", variant.deployment_id, cluster_selector=manifests.ClusterSelector())
    other = manifests.Manifest(manifests.Kind.BUNDLE, "app", "edge/elsewhere", 1, 1.0, (target,), (variant,))
    result = agent.receive(T.bundle("edge/elsewhere", "app"), envelopes.seal(other, KEY, version=2))
    assert agent.refused == 1 and "belongs to group edge/elsewhere" in str(getattr(result, "error", ""))
