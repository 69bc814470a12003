"""The controller killed (docs/reliability.md, row 3): during `edgefleet apply` and while
it aggregates. Real processes, SIGKILL, a Mosquitto of the test's own.

After any kill the generation counter never goes back, the broker never holds a
generation the state did not commit, no group is left without the latest
bundle, and a restarted controller publishes summaries that match the fleet.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from tests import brokers, mqtt, processes, recovery, waiting
from tests import fleet as fleets
from wire import envelopes, keys, summaries, urls

T = fleets.T


def _bundle(workdir: Path, value: str) -> Path:
    root = workdir / "app"
    root.mkdir(exist_ok=True)
    (root / "cm.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app, namespace: default}}\ndata: {{v: '{value}'}}\n"
    )
    return root


def _cli(fleet: fleets.Fleet, url: urls.BrokerUrl, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "controller.cli",
        *args,
        "--state-dir",
        str(fleet.state_dir),
        "--broker",
        str(url),
    ]


def _value(device: fleets.Device) -> str | None:
    found = device.cluster.get_object("v1", "ConfigMap", "default", "app")
    return None if found is None else found["data"]["v"]


async def _held(url: urls.BrokerUrl, roots: list[str], key: keys.SigningKey) -> dict[str, int]:
    """topic root -> generation of the retained `app` bundle there."""
    topics = {T.bundle(root, "app"): root for root in roots}
    found = await mqtt.retained(url, f"{roots[0].rsplit('/', 1)[0]}/+/bundles/app", expect=len(roots))
    trusted = keys.keyring([key.verify_key])
    return {topics[t]: envelopes.unseal(p, trusted=trusted).generation for t, p in found.items()}


async def test_an_apply_killed_at_any_point_never_sets_a_generation_back_or_leaves_a_group_behind(
    tmp_path: Path, topic_root: str
) -> None:
    west, east = f"{topic_root}/west", f"{topic_root}/east"
    devices = {"w1": (west, {}), "e1": (east, {})}
    with brokers.Mosquitto(tmp_path / "broker") as broker:
        async with fleets.fleet_of(broker.url, tmp_path, {west: {}, east: {}}, devices) as fleet:
            for device in fleet.devices.values():
                fleet.start(device)
            aggregator = fleet.start_controller()
            bundle = _bundle(tmp_path, "0")
            await fleet.apply(bundle)
            log = tmp_path / "apply.log"

            # Killed after committing and sealing, before the broker answered (it is frozen).
            assert broker.process is not None
            broker.process.send_signal(signal.SIGSTOP)
            _bundle(tmp_path, "1")
            try:
                with processes.running(_cli(fleet, broker.url, "apply", str(bundle)), log) as apply:
                    await waiting.until_async(
                        lambda: all(r.generation == 2 and r.sealed for r in fleet.state.all_deliveries()),
                        timeout=30,
                        what="the apply to commit and seal generation 2",
                    )
                    apply.send_signal(signal.SIGKILL)
            finally:
                broker.process.send_signal(signal.SIGCONT)
            with recovery.timed("apply killed before the broker answered", "to every group on it"):
                await fleet.until(
                    lambda: all(_value(d) == "1" for d in fleet.devices.values()),
                    "the controller to deliver it",
                )
            await fleet.until(lambda: aggregator.restored >= 2, "the controller to count both deliveries")

            # Killed at other points: as soon as it runs, once it committed, once the broker took
            # one group's: the counter only moves forward, the broker is never ahead of it.
            def generation() -> int:
                record = fleet.state.bundle("app")
                return record.generation if record is not None else 0

            def started(before: int) -> bool:
                return True

            def committed_it(before: int) -> bool:
                return generation() > before

            def one_group_has_it(before: int) -> bool:
                return any(r.acknowledged and r.generation > before for r in fleet.state.all_deliveries())

            committed = fleet.state.bundle("app")
            assert committed is not None
            hit = []
            for value, reached in (("2", started), ("3", committed_it), ("4", one_group_has_it)):
                _bundle(tmp_path, value)
                before = generation()
                with processes.running(_cli(fleet, broker.url, "apply", str(bundle)), log) as apply:
                    await waiting.until_async(
                        lambda: reached(before) or apply.poll() is not None,  # noqa: B023
                        timeout=30,
                        interval=0.005,
                        what=reached.__name__,
                    )
                    hit.append(apply.poll() is None)
                    apply.send_signal(signal.SIGKILL)
                    apply.wait(timeout=10)
                now = fleet.state.bundle("app")
                assert now is not None and now.generation >= committed.generation
                committed = now
                held = await _held(broker.url, [west, east], fleet.key)
                assert max(held.values()) <= committed.generation, (held, committed)

            assert hit[:2] == [True, True]  # the last point may pass as the apply exits

            # Whatever the kills left, one apply that completes (or the controller) brings
            # every group to the content of the last one.
            _bundle(tmp_path, "5")
            with processes.running(_cli(fleet, broker.url, "apply", str(bundle)), log) as apply:
                await fleet.until(lambda: apply.poll() is not None, "the last apply to finish")
            assert apply.returncode == 0, log.read_text()
            final = fleet.state.bundle("app")
            assert final is not None and final.generation >= committed.generation
            await fleet.until(
                lambda: all(_value(d) == "5" for d in fleet.devices.values()), "the last content"
            )
            await fleet.until(
                lambda: all(r.acknowledged for r in fleet.state.all_deliveries()), "every delivery acknowledged"
            )
            held = await _held(broker.url, [west, east], fleet.key)
            rows = {r.topic_root: r.generation for r in fleet.state.all_deliveries()}
            assert held == rows


async def _summaries_match(fleet: fleets.Fleet, url: urls.BrokerUrl, generation: int) -> bool:
    """Whether the retained summaries say what the agents themselves say."""
    try:
        bundle = await fleet.bundle_summary("app")
        fleet_doc = summaries.decode_fleet(
            (await mqtt.retained(url, T.summary(), expect=1, timeout=2))[T.summary()]
        )
    except (TimeoutError, ValueError):
        return False
    agents = [d.agent for d in fleet.devices.values()]
    ready = sum(1 for a in agents if a is not None and a.statuses.get("app", {}).get("state") == "Ready")
    return (
        bundle["generation"] == generation
        and (bundle["desired"], bundle["ready"]) == (len(agents), ready)
        and (fleet_doc["clusters"], fleet_doc["online"]) == (len(agents), len(agents))
        and ready == len(agents)
    )


async def test_a_controller_killed_while_it_aggregates_publishes_summaries_that_match_the_fleet_again(
    tmp_path: Path, topic_root: str
) -> None:
    west, east = f"{topic_root}/west", f"{topic_root}/east"
    devices = {"w1": (west, {}), "w2": (west, {}), "e1": (east, {})}
    with brokers.Mosquitto(tmp_path / "broker") as broker:
        async with fleets.fleet_of(broker.url, tmp_path, {west: {}, east: {}}, devices) as fleet:
            for device in fleet.devices.values():
                fleet.start(device)
            controller = [
                *_cli(fleet, broker.url, "controller"),
                "--security",
                "none",
                "--summary-interval",
                "0.05",
            ]
            log = tmp_path / "controller.log"
            bundle = _bundle(tmp_path, "1")
            with processes.running(controller, log) as running:
                first = await fleet.apply(bundle)
                await waiting.until_checked(
                    lambda: _summaries_match(fleet, broker.url, 1), timeout=30, what="the first summaries"
                )
                # Killed while the fleet moves to generation 2: statuses keep changing meanwhile.
                _bundle(tmp_path, "2")
                second = await fleet.apply(bundle)
                running.send_signal(signal.SIGKILL)
                running.wait(timeout=10)
            assert (first.generation, second.generation) == (1, 2)
            await fleet.until(lambda: all(_value(d) == "2" for d in fleet.devices.values()), "generation 2")
            restarted = recovery.timed(
                "controller killed while aggregating", "restart to summaries that match"
            )
            with processes.running(controller, log), restarted:
                await waiting.until_checked(
                    lambda: _summaries_match(fleet, broker.url, 2),
                    timeout=30,
                    what="summaries that match the fleet",
                )
