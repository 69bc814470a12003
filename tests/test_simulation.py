"""The simulator: real agents over in-memory clusters, many on one loop, through the real
controller; `edgefleet simulate` starts it as its own process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from controller import keystore
from edge_agent import simulation
from tests import fleet as fleets
from tests import mqtt
from wire import manifests, summaries, urls

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_memory_cluster_makes_workloads_ready_after_the_delay_and_fails_on_request() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2},
    }
    variant = manifests.Variant("shop", (deployment,))
    cluster = simulation.MemoryCluster("sim-1", ready_delay=3600)
    [ref] = cluster.apply("b", variant)
    [seen] = cluster.observe("b", variant)
    assert ref.namespace == "shop" and seen.live is not None and seen.live["status"] == {}
    cluster.ready_delay = 0
    [seen] = cluster.observe("b", variant)
    assert seen.live is not None and seen.live["status"]["availableReplicas"] == 2
    cluster.remove("b", [ref])
    assert cluster.observe("b", variant)[0].live is None
    assert simulation._fails("x", 1.0) and not simulation._fails("x", 0.0)


def test_plan_spreads_clusters_over_groups_and_label_values() -> None:
    plan = simulation.Plan(6, ("g/a", "g/b", "g/c"), {"site": "lab"}, ("env=prod,dev",), "pi")
    members = plan.members()
    assert [(n, g, labels["env"]) for n, g, labels in members] == [
        ("pi-00000", "g/a", "prod"),
        ("pi-00001", "g/b", "prod"),
        ("pi-00002", "g/c", "prod"),
        ("pi-00003", "g/a", "dev"),
        ("pi-00004", "g/b", "dev"),
        ("pi-00005", "g/c", "dev"),
    ]
    assert all(labels["site"] == "lab" and labels["simulated"] == "true" for _, _, labels in members)


async def test_simulated_fleet_converges_and_failing_clusters_show_err_applied(
    broker_url: urls.BrokerUrl, topic_root: str, tmp_path: Path
) -> None:
    space = fleets.topics.Topics("f" + topic_root.split("/")[0][1:])
    async with fleets.fleet_of(broker_url, tmp_path, {topic_root: {}}, {}, space=space) as fleet:
        fleet.start_controller()
        # A fixed prefix: which clusters fail is a hash of their names, and these names give 1 of 12.
        plan = simulation.Plan(12, (topic_root,), prefix="simfail")
        agents = simulation.agents(
            plan,
            broker=str(broker_url),
            trusted_pem=fleet.key.verify_key.to_pem().decode(),
            state_root=tmp_path / "sim",
            topic_prefix=space.prefix,
            fail_fraction=0.25,
            timing=fleets.FAST,
        )
        failing = sum(1 for agent in agents if agent.applier.failing)  # type: ignore[attr-defined]
        assert failing == 1
        running = fleets.asyncio.ensure_future(simulation.run(agents))
        try:
            await fleet.apply(EXAMPLES / "hello-web")
            topic = space.summary_bundle("hello-web")
            deadline = time.monotonic() + 30
            while True:
                try:
                    summary = summaries.decode_bundle(
                        (await mqtt.retained(broker_url, topic, expect=1, timeout=2))[topic]
                    )
                    if summary["states"] == {"ErrApplied": failing, "Ready": 12 - failing}:
                        break
                except (TimeoutError, KeyError):
                    pass
                assert time.monotonic() < deadline, "the simulated fleet never settled"
            assert (summary["desired"], summary["ready"]) == (12, 12 - failing)
            assert "simulated failure" in summary["non_ready"][0]["message"]
        finally:
            running.cancel()
            await fleets.asyncio.gather(running, return_exceptions=True)


def test_edgefleet_simulate_starts_the_simulator_process(
    tmp_path: Path, mosquitto_url: urls.BrokerUrl
) -> None:
    keystore.init(tmp_path / "controller")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controller.cli",
            "simulate",
            "--state-dir",
            str(tmp_path / "controller"),
            "--broker",
            str(mosquitto_url),
            "--clusters",
            "3",
            "--groups",
            "sim/a,sim/b",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("SIMULATION: 3 simulated agents")
    finally:
        process.terminate()
        process.wait(timeout=20)
