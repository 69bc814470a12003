"""An agent process killed during an apply (docs/reliability.md, row 4).

SIGKILL, not a clean stop, at points read off its state (while one object
keeps failing after others were applied; once an apply is under way; once one
new object is in; as soon as it runs). The objects each generation keeps
are picked by a seeded random choice. After each
restart the agent finishes or redoes the apply from what it persisted: its
inventory is exactly what it applied, what the new generation dropped is
pruned, and an object it does not own is never touched.
"""

from __future__ import annotations

import functools
import random
import signal
from pathlib import Path

import kubernetes.client

from controller import cli as controller_cli
from controller import delivering, keystore
from controller.state import State
from edge_agent.store import ObjectRef, Store
from tests import fleet as fleets
from tests import processes, recovery, waiting
from tests.fakekube import FakeCluster, Fault
from wire import topics, urls

NAMESPACE = "shop"


def _bundle(directory: Path, generation: str, names: list[str]) -> Path:
    directory.mkdir(exist_ok=True)
    for old in directory.glob("*.yaml"):
        old.unlink()
    (directory / "namespace.yaml").write_text(
        f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n"
    )
    for name in names:
        (directory / f"{name}.yaml").write_text(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {NAMESPACE}}}\n"
            f"data: {{generation: '{generation}'}}\n"
        )
    return directory


def _config_maps(cluster: FakeCluster) -> dict[str, dict[str, str]]:
    """name -> (generation in data, owner label) of every ConfigMap in the bundle's namespace."""
    return {
        o["metadata"]["name"]: {
            "generation": (o.get("data") or {}).get("generation", ""),
            "owner": (o["metadata"].get("labels") or {}).get("edgefleet.io/bundle", ""),
        }
        for o in cluster.objects(kind="ConfigMap")
        if o["metadata"].get("namespace") == NAMESPACE
    }


def _consistent(cluster: FakeCluster, state_dir: Path, generation: int, names: set[str]) -> bool:
    record = Store(state_dir).applied("app")
    live = _config_maps(cluster)
    ours = {name for name, found in live.items() if found["owner"] == "app"}
    inventory = {ref.name for ref in record.inventory if ref.kind == "ConfigMap"}
    return (
        record.complete
        and record.generation == generation
        and ours == inventory == names
        and all(live[name]["generation"] == str(generation) for name in names)
    )


async def test_an_agent_killed_during_apply_finishes_it_from_its_persisted_state(
    mosquitto_url: urls.BrokerUrl, topic_root: str, tmp_path: Path
) -> None:
    state_dir, agent_dir = tmp_path / "controller", tmp_path / "agent"
    config = tmp_path / "pi.agent.yaml"
    keystore.init(state_dir)
    base = ["--state-dir", str(state_dir)]
    assert controller_cli.main(["group", "create", topic_root, *base]) == 0
    add = ["cluster", "add", "pi", "--group", topic_root, "--broker", str(mosquitto_url), "--config-out"]
    assert controller_cli.main([*add, str(config), *base]) == 0
    state = State.open(state_dir)
    key = keystore.load(state_dir)
    space = topics.Topics()
    bundle = tmp_path / "app"
    log = tmp_path / "agent.log"

    async def apply(generation: int, names: list[str]) -> None:
        report = await delivering.apply(
            state, key, mosquitto_url, _bundle(bundle, str(generation), names), space
        )
        assert report.ok and report.generation == generation

    try:
        with FakeCluster() as cluster:
            argv = fleets.agent_process(config, agent_dir, cluster.write_kubeconfig(tmp_path / "kubeconfig"))
            core = kubernetes.client.CoreV1Api(cluster.api_client())
            with processes.running(argv, log):
                await apply(1, ["a", "b", "old"])
                await waiting.until_async(
                    lambda: _consistent(cluster, agent_dir, 1, {"a", "b", "old"}),
                    timeout=30,
                    what="generation 1",
                )
            # Someone else's object in the same namespace, with a name the bundle never uses.
            core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "mine"}, "data": {"k": "v"}})

            # Killed while `c` keeps failing: a and b are applied, `old` is not pruned yet.
            cluster.inject(Fault.error(500, times=10_000, method="PATCH", path_contains="configmaps/c"))
            await apply(2, ["a", "b", "c"])
            with processes.running(argv, log) as agent:
                await waiting.until_async(
                    lambda: _config_maps(cluster).get("b", {}).get("generation") == "2",
                    timeout=30,
                    what="part of generation 2 applied",
                )
                agent.send_signal(signal.SIGKILL)
            record = Store(agent_dir).applied("app")
            assert not record.complete
            assert {r.name for r in record.inventory} >= {"a", "b", "c", "old"}  # old and new, until done
            assert "old" in _config_maps(cluster)
            cluster.clear_faults()
            with (
                processes.running(argv, log),
                recovery.timed("agent killed during apply", "restart to the apply finished"),
            ):
                await waiting.until_async(
                    lambda: _consistent(cluster, agent_dir, 2, {"a", "b", "c"}),
                    timeout=30,
                    what="generation 2",
                )

            # Killed at other points of slow applies, generation after generation: as soon as
            # it runs, once its record says an apply is under way, once a new object is in.
            def started(generation: int) -> bool:
                return True

            def under_way(generation: int) -> bool:
                return not Store(agent_dir).applied("app").complete

            def one_object_in(generation: int) -> bool:
                return any(f["generation"] == str(generation) for f in _config_maps(cluster).values())

            rng = random.Random(4)
            names = ["a", "b", "c"]
            for generation, reached in ((3, under_way), (4, one_object_in), (5, started)):
                names = sorted(set(names) - {rng.choice(names)} | {f"n{generation}"})
                cluster.inject(Fault.slow(0.15, times=10_000, method="PATCH"))
                await apply(generation, names)
                with processes.running(argv, log) as agent:
                    await waiting.until_async(
                        functools.partial(reached, generation),
                        timeout=30,
                        interval=0.005,
                        what=reached.__name__,
                    )
                    agent.send_signal(signal.SIGKILL)
                    agent.wait(timeout=10)
                cluster.clear_faults()
                assert not _consistent(cluster, agent_dir, generation, set(names))  # killed before done
            with processes.running(argv, log):
                await waiting.until_async(
                    lambda: _consistent(cluster, agent_dir, 5, set(names)), timeout=30, what="generation 5"
                )
            live = _config_maps(cluster)
            assert live["mine"] == {"generation": "", "owner": ""}  # never touched
            assert set(live) == {*names, "mine"}
            refs = Store(agent_dir).applied("app").inventory
            assert ObjectRef("v1", "Namespace", "", NAMESPACE) in refs
    finally:
        state.close()
