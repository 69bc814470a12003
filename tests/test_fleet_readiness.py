"""Status, presence and fleet readiness end to end, on each real broker: agents on
fake Kubernetes APIs report, the controller aggregates, summaries land retained."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
import pytest
from kubernetes import client as k8s

from controller import aggregating, keystore
from controller import cli as controller_cli
from controller.state import Cluster, Group, State
from tests import fleet as fleets
from tests import mqtt
from tests.fakekube import FakeCluster
from wire import status, summaries, topics, urls

NS = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"
CONFIG = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {mode: fast}\n"
DEPLOYMENT = (
    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n"
    "spec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n"
    "  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx}]}\n"
)


def _bundle(tmp_path: Path, fleet_yaml: str, *documents: str, name: str = "web") -> Path:
    root = tmp_path / "bundles" / name
    root.mkdir(parents=True, exist_ok=True)
    (root / "fleet.yaml").write_text(fleet_yaml)
    (root / "objects.yaml").write_text("---\n".join(documents))
    return root


def _space(topic_root: str) -> topics.Topics:
    return topics.Topics("f" + topic_root.split("/")[0][1:])


async def _summary(fleet: fleets.Fleet, bundle: str, **expected: object) -> summaries.BundleSummary:
    """Wait until the bundle summary shows `expected`; return it."""
    found: dict[str, summaries.BundleSummary] = {}

    async def matches() -> bool:
        found["doc"] = await fleet.bundle_summary(bundle)
        return all(found["doc"].get(k) == v for k, v in expected.items())

    deadline = time.monotonic() + 30
    while not await _try(matches):
        assert time.monotonic() < deadline, (
            f"summary of {bundle} never showed {expected}; last {found.get('doc')}"
        )
    return found["doc"]


async def _group_summary(url: urls.BrokerUrl, topic: str, **expected: object) -> summaries.GroupSummary:
    """Wait until the retained group summary on `topic` shows `expected`; return it."""
    found: dict[str, summaries.GroupSummary] = {}

    async def matches() -> bool:
        found["doc"] = summaries.decode_group((await mqtt.retained(url, topic, expect=1))[topic])
        return all(found["doc"].get(k) == v for k, v in expected.items())

    deadline = time.monotonic() + 30
    while not await _try(matches):
        assert time.monotonic() < deadline, f"{topic} never showed {expected}; last {found.get('doc')}"
    return found["doc"]


async def _try(check: object) -> bool:
    try:
        return await check()  # type: ignore[operator,no-any-return]
    except (TimeoutError, aiomqtt.MqttError, KeyError):
        return False


async def test_exact_counts_on_three_of_six_clusters_survive_a_controller_restart(
    broker_url: urls.BrokerUrl, topic_root: str, tmp_path: Path
) -> None:
    west, east = f"{topic_root}/west", f"{topic_root}/east"
    tag = uuid.uuid4().hex[:4]
    devices = {f"w{i}-{tag}": (west, {"tier": "web" if i < 2 else "db"}) for i in range(3)}
    devices |= {f"e{i}-{tag}": (east, {"tier": "web" if i < 1 else "db"}) for i in range(3)}
    space = _space(topic_root)
    async with fleets.fleet_of(broker_url, tmp_path, {west: {}, east: {}}, devices, space=space) as fleet:
        fleet.start_controller()
        for device in fleet.devices.values():
            fleet.start(device)
        await fleet.apply(
            _bundle(tmp_path, "targets: [{clusterSelector: {matchLabels: {tier: web}}}]\n", NS, CONFIG)
        )
        before = await _summary(fleet, "web", desired=3, ready=3)
        assert (before["offline"], before["state"], before["states"]) == (0, "Ready", {"Ready": 3})
        # The group summary goes out after the bundle's, in the same round: wait for it too.
        group_topic = space.summary_group(west)
        west_doc = await _group_summary(broker_url, group_topic, ready=2)
        assert (west_doc["clusters"], west_doc["desired"], west_doc["ready"]) == (3, 2, 2)
        rows = {row["name"]: row for row in west_doc["cluster_rows"]}
        assert rows[f"w2-{tag}"]["desired"] == 0 and rows[f"w0-{tag}"]["online"] is True

        await fleet.stop_controller()
        fleet.start_controller()  # a new table, from retained messages only
        assert fleet.aggregator is not None
        await fleet.until(
            lambda: fleet.aggregator.table.ignored == 0 and len(fleet.aggregator.table.held) == 2,
            "the new controller to read both manifests",
        )  # type: ignore[union-attr]
        after = await _summary(fleet, "web", desired=3, ready=3)
        assert {k: v for k, v in after.items() if k != "ts"} == {k: v for k, v in before.items() if k != "ts"}


async def test_unready_invalid_and_modified_objects_show_as_fleet_names_them(
    broker_url: urls.BrokerUrl, topic_root: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:4]
    slow, bad = f"slow-{tag}", f"bad-{tag}"
    devices = {slow: (topic_root, {"role": "slow"}), bad: (topic_root, {"role": "bad"})}
    space = _space(topic_root)
    async with fleets.fleet_of(broker_url, tmp_path, {topic_root: {}}, devices, space=space) as fleet:
        fleet.devices[slow].cluster.keep_failing("Deployment", "shop", "web", message="image pull failed")
        fleet.start_controller()
        for device in fleet.devices.values():
            fleet.start(device)
        invalid = DEPLOYMENT.replace("  selector: {matchLabels: {app: web}}\n", "")
        bundle = _bundle(
            tmp_path,
            "targetCustomizations: [{name: broken, clusterSelector: {matchLabels: {role: bad}}, yaml: {overlays: [broken]}}]\n",
            NS,
            CONFIG,
            DEPLOYMENT,
        )
        (bundle / "overlays/broken").mkdir(parents=True)
        (bundle / "overlays/broken/objects.yaml").write_text("---\n".join([NS, CONFIG, invalid]))
        await fleet.apply(bundle)
        summary = await _summary(
            fleet, "web", desired=2, ready=0, state="ErrApplied", states={"ErrApplied": 1, "NotReady": 1}
        )
        assert f"ErrApplied: 1 ({topic_root}/{bad})" in summary["message"]
        assert f"NotReady: 1 ({topic_root}/{slow})" in summary["message"]
        cells = {entry["cluster"]: entry for entry in summary["non_ready"]}
        assert "422" in cells[bad]["message"] and "selector" in cells[bad]["message"]
        slow_agent = fleet.devices[slow].agent
        assert slow_agent is not None
        [not_ready] = slow_agent.statuses["web"]["non_ready"]
        assert (not_ready["kind"], not_ready["name"]) == ("Deployment", "web")


async def test_a_settled_agent_looks_again_within_seconds_when_a_new_rollout_is_not_ready(
    broker_url: urls.BrokerUrl, topic_root: str, tmp_path: Path
) -> None:
    # Observation every 60 s, as on a quiet device: the rollout must not wait for that tick.
    tag = uuid.uuid4().hex[:4]
    name = f"quiet-{tag}"
    space = _space(topic_root)
    async with fleets.fleet_of(
        broker_url, tmp_path, {topic_root: {}}, {name: (topic_root, {})}, space=space
    ) as fleet:
        fleet.timing = {**fleets.FAST, "observe_interval": 60.0}
        device = fleet.devices[name]
        agent = fleet.start(device)
        await fleet.apply(_bundle(tmp_path, "{}\n", NS, CONFIG))
        await fleet.until(lambda: agent.statuses.get("web", {}).get("state") == "Ready", "the first bundle")
        device.cluster.set_ready_delay(3.0)  # the new Deployment's pods take a moment
        await fleet.apply(_bundle(tmp_path, "{}\n", NS, CONFIG, DEPLOYMENT))
        await fleet.until(
            lambda: agent.statuses["web"]["generation"] == 2 and agent.statuses["web"]["state"] == "NotReady",
            "the new generation to be applied and not ready yet",
        )
        await fleet.until(
            lambda: agent.statuses["web"]["state"] == "Ready",
            "the agent to look again and find it Ready",
            timeout=15,
        )


async def test_a_burst_beyond_the_brokers_queue_reaches_a_busy_controller(
    mosquitto_url: urls.BrokerUrl, topic_root: str, tmp_path: Path
) -> None:
    # Mosquitto queues at most 1,000 QoS 1 messages per client by default: a burst of
    # 3,000 status documents while the controller is busy must still all arrive. (Only
    # Mosquitto: it runs in its own process, so this test can hold the controller's loop.)
    broker_url = mosquitto_url
    burst = 3000
    space = _space(topic_root)
    gate, first = threading.Event(), threading.Event()
    async with fleets.fleet_of(broker_url, tmp_path, {topic_root: {}}, {}, space=space) as fleet:
        aggregator = fleet.start_controller()
        await fleet.until(
            lambda: topic_root in aggregator._groups.values(), "the controller to know the group"
        )
        # Subscribed for sure: a probe status (retained) reaches the table.
        probe = _status_of("probe", topic_root)
        async with aiomqtt.Client(broker_url.host, broker_url.port) as client:
            await client.publish(space.status(topic_root, "probe"), probe, qos=1, retain=True)
        await fleet.until(lambda: (topic_root, "probe") in aggregator.table.clusters, "the probe status")
        handle = aggregator.handle

        def busy(topic: str, payload: bytes) -> None:
            if "/status/" in topic and not first.is_set():
                first.set()
                gate.wait(timeout=60)  # the controller is stuck while the burst goes out
            handle(topic, payload)

        aggregator.handle = busy  # type: ignore[method-assign]
        sent = await asyncio.to_thread(_publish_statuses, broker_url, space, topic_root, burst, first, gate)
        assert sent == burst
        await fleet.until(
            lambda: len(aggregator.table.clusters) == burst + 1,
            f"all {burst} clusters in the table",
            timeout=60,
        )


def _publish_statuses(
    url: urls.BrokerUrl,
    space: topics.Topics,
    root: str,
    count: int,
    first: threading.Event,
    gate: threading.Event,
) -> int:
    """Publish `count` status documents (QoS 1, acknowledged), then open `gate`."""
    publisher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"burst-{uuid.uuid4().hex[:8]}")
    publisher.connect(url.host, url.port)
    publisher.loop_start()
    try:
        sent = []
        for index in range(count):
            name = f"c{index:05d}"
            document = _status_of(name, root)
            sent.append(publisher.publish(space.status(root, name), document, qos=1))
            if index == 0:
                assert first.wait(timeout=30)  # the controller has taken the first one and is stuck
        for info in sent:
            info.wait_for_publish(timeout=30)
        return sum(1 for info in sent if info.is_published())
    finally:
        gate.set()
        publisher.loop_stop()
        publisher.disconnect()


async def test_drift_is_modified_then_corrected(
    broker_url: urls.BrokerUrl, topic_root: str, tmp_path: Path
) -> None:
    name = f"pi-{uuid.uuid4().hex[:4]}"
    space = _space(topic_root)
    async with fleets.fleet_of(
        broker_url, tmp_path, {topic_root: {}}, {name: (topic_root, {})}, space=space
    ) as fleet:
        device = fleet.devices[name]
        fleet.start_controller()
        agent = fleet.start(device)
        bundle = _bundle(tmp_path, "{}\n", NS, CONFIG)
        await fleet.apply(bundle)
        await _summary(fleet, "web", ready=1)
        core = k8s.CoreV1Api(device.cluster.api_client())
        core.patch_namespaced_config_map(
            "settings", "shop", {"data": {"mode": "slow"}}
        )  # behind the agent's back
        summary = await _summary(fleet, "web", state="Modified")
        assert f"Modified: 1 ({topic_root}/{name})" in summary["message"]
        [modified] = agent.statuses["web"]["modified"]
        assert (modified["name"], modified["message"]) == ("settings", "changed /data/mode")

        (bundle / "fleet.yaml").write_text("correctDrift: {enabled: true}\n")
        await fleet.apply(bundle)
        await _summary(fleet, "web", ready=1, state="Ready")
        core.patch_namespaced_config_map("settings", "shop", {"data": {"mode": "slower"}})
        await fleet.until(
            lambda: agent.statuses["web"]["message"].startswith("drift corrected"),
            "the agent to correct drift",
        )
        assert core.read_namespaced_config_map("settings", "shop").data == {"mode": "fast"}
        await _summary(fleet, "web", ready=1, state="Ready")


async def test_killed_agent_goes_offline_within_keepalive_and_comes_back(
    broker_url: urls.BrokerUrl, topic_root: str, tmp_path: Path
) -> None:
    name = f"pi-{uuid.uuid4().hex[:4]}"
    space = _space(topic_root)
    state_dir = tmp_path / "controller"
    async with fleets.fleet_of(broker_url, tmp_path, {topic_root: {}}, {}, space=space) as fleet:
        config = tmp_path / "agent.yaml"
        assert (
            controller_cli.main(
                [
                    "cluster",
                    "add",
                    name,
                    "--group",
                    topic_root,
                    "--broker",
                    str(broker_url),
                    "--config-out",
                    str(config),
                    "--state-dir",
                    str(state_dir),
                ]
            )
            == 0
        )
        text = config.read_text().replace("topic_prefix: fleet", f"topic_prefix: {space.prefix}")
        config.write_text(text + "keepalive: 2\nheartbeat: 1\n")
        fleet.start_controller()
        presence_topic = space.presence(topic_root, name)
        with FakeCluster() as cluster:
            kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
            argv = fleets.agent_process(config, tmp_path / "agent", kubeconfig)
            agent = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                first = await _presence(broker_url, presence_topic, online=True)
                agent.send_signal(signal.SIGKILL)
                agent.wait(timeout=10)
                killed = time.monotonic()
                gone = await _presence(broker_url, presence_topic, online=False)
                assert time.monotonic() - killed < 1.5 * 2
                assert gone["session"] == first["session"]
                await fleet.until(
                    lambda: _row_online(fleet, name) is False, "the controller to see it offline"
                )
                agent = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                back = await _presence(broker_url, presence_topic, online=True)
                assert back["session"] > first["session"]
                await fleet.until(lambda: _row_online(fleet, name) is True, "the controller to see it back")
            finally:
                agent.send_signal(signal.SIGTERM)
                agent.wait(timeout=20)
        goodbye = await _presence(broker_url, presence_topic, online=False)
        assert goodbye["session"] == back["session"]  # a clean stop says goodbye itself


def _row_online(fleet: fleets.Fleet, name: str) -> bool | None:
    assert fleet.aggregator is not None
    for seen in fleet.aggregator.table.clusters.values():
        if seen.name == name:
            return seen.online
    return None


async def _presence(url: urls.BrokerUrl, topic: str, *, online: bool) -> status.Presence:
    deadline = time.monotonic() + 20
    while True:
        try:
            held = await mqtt.retained(url, topic, expect=1, timeout=2)
            presence = status.decode_presence(held[topic])
            if presence["online"] is online:
                return presence
        except (TimeoutError, KeyError):
            pass
        assert time.monotonic() < deadline, f"{topic} never said online={online}"


async def test_every_fleet_topic_is_readable_json(
    broker_url: urls.BrokerUrl, topic_root: str, tmp_path: Path
) -> None:
    name = f"pi-{uuid.uuid4().hex[:4]}"
    space = _space(topic_root)
    async with fleets.fleet_of(
        broker_url, tmp_path, {topic_root: {}}, {name: (topic_root, {})}, space=space
    ) as fleet:
        fleet.start_controller()
        fleet.start(fleet.devices[name])
        await fleet.apply(_bundle(tmp_path, "{}\n", NS, CONFIG))
        await _summary(fleet, "web", ready=1)
        held = await mqtt.retained(broker_url, f"{space.prefix}/#", expect=4)
        held |= await mqtt.retained(broker_url, f"{topic_root}/+/+", expect=3)
        for topic, payload in held.items():
            if "/bundles/" in topic and not topic.startswith(space.prefix):
                continue  # signed envelopes are binary by design
            document = json.loads(payload)
            assert isinstance(document, dict), topic
        assert {
            space.summary(),
            space.summary_bundle("web"),
            space.summary_group(topic_root),
            space.controller(),
        } <= set(held)
        assert json.loads(held[space.status(topic_root, name)])["bundles"]["web"]["state"] == "Ready"


def test_group_summaries_count_each_bundle_apart() -> None:
    from controller import readiness_table
    from wire import manifests

    table = readiness_table.Table()
    table.register(["g"], [("g", "a", {}), ("g", "b", {})])
    for bundle in ("one", "two"):
        variant = manifests.Variant(
            "default", ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": bundle}},)
        )
        target = manifests.Target("all", variant.deployment_id, cluster_selector=manifests.ClusterSelector())
        table.manifest(
            "g", manifests.Manifest(manifests.Kind.BUNDLE, bundle, "g", 1, 1.0, (target,), (variant,))
        )
    computed = readiness_table.summarize(table, ["g"], 1.0)
    cells = computed.groups["g"]["bundles"]
    assert cells == {
        "one": {"desired": 2, "ready": 0, "state": "Pending"},
        "two": {"desired": 2, "ready": 0, "state": "Pending"},
    }


def test_a_restarted_controller_clears_summaries_of_bundles_gone_meanwhile(tmp_path: Path) -> None:
    space = topics.Topics()
    aggregator = aggregating.Aggregator(tmp_path, urls.BrokerUrl("127.0.0.1", 1), space)
    aggregator.handle(space.summary_bundle("deleted-while-down"), b'{"bundle": "deleted-while-down"}')
    out = aggregator.summaries()
    assert out[space.summary_bundle("deleted-while-down")] is None  # published empty: cleared
    assert out[space.summary()] is not None


def test_a_flood_of_foreign_summary_topics_is_remembered_only_up_to_a_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aggregating, "MAX_FOREIGN_SUMMARIES", 50)
    space = topics.Topics()
    aggregator = aggregating.Aggregator(tmp_path, urls.BrokerUrl("127.0.0.1", 1), space)
    for n in range(200):
        aggregator.handle(space.summary_bundle(f"flood-{n}"), b"{}")
    assert len(aggregator.stale) == 50 and aggregator.table.ignored == 150
    # Clearing one frees its place.
    aggregator.stale.discard(space.summary_bundle("flood-0"))
    aggregator.handle(space.summary_bundle("flood-200"), b"{}")
    assert space.summary_bundle("flood-200") in aggregator.stale and aggregator.table.ignored == 150


# -- which envelope formats each agent reads ------------------------------------------------


def _status_of(name: str, root: str = "edge/west", *, formats: list[int] | None = None, seq: int = 1) -> bytes:
    document: dict[str, object] = {
        "cluster": name,
        "group": root,
        "labels": {},
        "agent_version": "0.1.0",
        "session": 1,
        "seq": seq,
        "ts": 1.0,
        "node": {},
        "bundles": {},
    }
    if formats is not None:
        document["envelope_formats"] = formats
    return json.dumps(document).encode()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[State, aggregating.Aggregator]]:
    keystore.init(tmp_path)
    state = State.open(tmp_path)
    state.add_group(Group("west", "edge/west"))
    state.add_group(Group("east", "edge/east"))
    for name in ("new", "old", "quiet"):
        state.add_cluster(Cluster(name, "west"))
    aggregator = aggregating.Aggregator(tmp_path, urls.BrokerUrl("127.0.0.1", 1))
    aggregator.refresh_registry(state)
    yield state, aggregator
    state.close()


def _recorded(state: State) -> dict[str, frozenset[int] | None]:
    return {c.name: c.envelope_formats for c in state.clusters()}


def test_the_controller_records_which_envelope_formats_each_agent_reads(
    registry: tuple[State, aggregating.Aggregator],
) -> None:
    state, aggregator = registry
    space = topics.Topics()
    aggregator.handle(space.status("edge/west", "new"), _status_of("new", formats=[1, 2]))
    aggregator.handle(space.status("edge/west", "old"), _status_of("old"))  # from before format 2
    assert _recorded(state) == {"new": None, "old": None, "quiet": None}  # written at the refresh
    aggregator.refresh_registry(state)
    assert _recorded(state) == {"new": {1, 2}, "old": {1}, "quiet": None}


def test_the_first_status_of_a_cluster_that_joined_since_the_last_refresh_is_recorded(
    registry: tuple[State, aggregating.Aggregator],
) -> None:
    state, aggregator = registry
    state.add_cluster(Cluster("joined", "west"))  # the registrar's write; no refresh yet
    aggregator.handle(topics.Topics().status("edge/west", "joined"), _status_of("joined", formats=[1, 2]))
    aggregator.refresh_registry(state)
    assert _recorded(state)["joined"] == {1, 2}


def test_statuses_the_table_refuses_record_nothing(registry: tuple[State, aggregating.Aggregator]) -> None:
    state, aggregator = registry
    space = topics.Topics()
    aggregator.handle(space.status("edge/west", "new"), _status_of("new", formats=[1, 2], seq=10))
    aggregator.refresh_registry(state)
    aggregator.handle(space.status("edge/west", "new"), _status_of("new", formats=[1], seq=3))  # stale
    aggregator.handle(space.status("edge/east", "new"), _status_of("new", root="edge/east", formats=[1]))
    aggregator.handle(space.status("edge/west", "old"), _status_of("someone-else", formats=[1]))
    aggregator.refresh_registry(state)
    assert _recorded(state) == {"new": {1, 2}, "old": None, "quiet": None}


def test_unchanged_formats_are_not_written_again(
    registry: tuple[State, aggregating.Aggregator], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, aggregator = registry
    space = topics.Topics()
    aggregator.handle(space.status("edge/west", "new"), _status_of("new", formats=[1, 2]))
    aggregator.refresh_registry(state)
    writes: list[object] = []
    monkeypatch.setattr(state, "record_envelope_formats", writes.append)
    for seq in range(2, 50):
        aggregator.handle(space.status("edge/west", "new"), _status_of("new", formats=[1, 2], seq=seq))
        aggregator.refresh_registry(state)
    assert writes == []


def test_summaries_are_encoded_once_into_the_same_bytes(
    registry: tuple[State, aggregating.Aggregator],
) -> None:
    _, aggregator = registry
    space = topics.Topics()
    aggregator.handle(space.status("edge/west", "new"), _status_of("new", formats=[1, 2]))
    documents = [d for d in aggregator.summaries().values() if d is not None]
    assert {"ts", "cluster_rows"} <= set().union(*documents)  # fleet, group and bundle shapes
    for document in [*documents, {"ts": 1.5}, {"a": 1}, {"zz": 1, "ts": 2.0}]:
        content, payload = aggregating._encode_stamped(document)
        assert payload == aggregating._encode(document)
        assert content == aggregating._encode({k: v for k, v in document.items() if k != "ts"})
