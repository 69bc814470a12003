"""Broker faults (docs/reliability.md, rows 1 and 2), on a Mosquitto of the test's own.

A restart with persistence in the middle of a rollout loses nothing; a restart
that lost the retained store gets every bundle (tombstones too) back from the
controller and every status back from its agent. In both, no cluster applies
anything twice for the same deployment id.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from controller import delivering
from edge_agent import agent as agents
from tests import brokers, mqtt, recovery, waiting
from tests import fleet as fleets
from tests.fakekube.faults import Fault
from wire import manifests

T = fleets.T


class _CountingApplier:
    """The agent's applier, counting each apply of a (bundle, deployment id)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.applied: collections.Counter[tuple[str, str]] = collections.Counter()

    def apply(self, bundle: str, variant: manifests.Variant) -> Any:
        self.applied[(bundle, variant.deployment_id)] += 1
        return self._inner.apply(bundle, variant)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _start(fleet: fleets.Fleet, device: fleets.Device) -> _CountingApplier:
    agent = fleet.start(device)
    counting = _CountingApplier(agent.applier)
    agent.applier = counting
    return counting


def _bundle(workdir: Path, name: str, value: str) -> Path:
    root = workdir / name
    root.mkdir(exist_ok=True)
    (root / "cm.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: default}}\ndata: {{v: '{value}'}}\n"
    )
    return root


def _agent(device: fleets.Device) -> agents.Agent:
    assert device.agent is not None
    return device.agent


def _on(devices: Iterable[fleets.Device], bundle: str, generation: int) -> bool:
    """Every device settled on `generation` of `bundle`."""
    return all(
        _agent(d).store.applied(bundle).generation == generation and not _agent(d).busy for d in devices
    )


def _value(device: fleets.Device, name: str) -> str | None:
    found = device.cluster.get_object("v1", "ConfigMap", "default", name)
    return None if found is None else found["data"]["v"]


async def _until_ready(fleet: fleets.Fleet, bundle: str, generation: int, clusters: int) -> None:
    """Until the retained summary of `bundle` says every cluster is ready on `generation`."""

    async def ready() -> bool:
        try:
            summary = await fleet.bundle_summary(bundle)
        except (TimeoutError, ValueError):
            return False
        return (summary["generation"], summary["desired"], summary["ready"]) == (
            generation,
            clusters,
            clusters,
        )

    await waiting.until_checked(ready, timeout=30, what=f"{clusters} clusters ready on {bundle} {generation}")


async def test_a_broker_restart_with_persistence_in_the_middle_of_a_rollout_loses_nothing(
    tmp_path: Path, topic_root: str
) -> None:
    west, east = f"{topic_root}/west", f"{topic_root}/east"
    devices = {"w1": (west, {}), "w2": (west, {}), "e1": (east, {})}
    with brokers.Mosquitto(tmp_path / "broker", persistence=True) as broker:
        async with fleets.fleet_of(broker.url, tmp_path, {west: {}, east: {}}, devices) as fleet:
            w1, w2, e1 = fleet.devices.values()
            counts = {d.name: _start(fleet, d) for d in (w1, w2, e1)}
            aggregator = fleet.start_controller()
            bundle = _bundle(tmp_path, "app", "1")
            first = await fleet.apply(bundle)
            await fleet.until(lambda: _on((w1, w2, e1), "app", 1), "generation 1 everywhere")
            await _until_ready(fleet, "app", 1, 3)

            # The rollout of generation 2: w2's API is slow, so it is still applying when
            # the broker goes down; e1 is switched off, so its status can only survive.
            w2.cluster.inject(Fault.slow(1.0, method="PATCH"))
            (bundle / "cm.yaml").write_text((bundle / "cm.yaml").read_text().replace("'1'", "'2'"))
            second = await fleet.apply(bundle)
            await fleet.until(lambda: _value(w1, "app") == "2", "w1 on generation 2")
            await fleet.stop(e1)
            e1_status = T.status(east, "e1")
            held_status = (await mqtt.retained(broker.url, e1_status, expect=1))[e1_status]
            sessions = aggregator.sessions
            broker.stop()
            broker.start()

            with recovery.timed("broker restart, persistence on", "restart to every cluster ready"):
                # The broker kept the retained bundles and statuses: nothing to restore.
                await fleet.until(lambda: aggregator.sessions > sessions, "the controller to reconnect")
                checks = aggregator.checks
                await fleet.until(lambda: aggregator.checks > checks, "a check in the new session")
                assert aggregator.restored == 0
                assert (await mqtt.retained(broker.url, e1_status, expect=1))[e1_status] == held_status
                fleet.start(e1)
                await fleet.until(lambda: _on((w1, w2, e1), "app", second.generation), "generation 2")
                await _until_ready(fleet, "app", second.generation or 0, 3)
            assert first.generation == 1 and second.generation == 2
            assert {_value(d, "app") for d in (w1, w2, e1)} == {"2"}
            assert aggregator.restored == 0
            for name, counting in counts.items():
                assert all(n == 1 for n in counting.applied.values()), (name, counting.applied)


async def test_an_apply_while_the_broker_is_down_is_delivered_when_it_is_back(
    tmp_path: Path, topic_root: str
) -> None:
    group = f"{topic_root}/site"
    with brokers.Mosquitto(tmp_path / "broker", persistence=True) as broker:
        async with fleets.fleet_of(broker.url, tmp_path, {group: {}}, {"d1": (group, {})}) as fleet:
            [device] = fleet.devices.values()
            fleet.start(device)
            aggregator = fleet.start_controller()
            bundle = _bundle(tmp_path, "app", "1")
            await fleet.apply(bundle)
            await fleet.until(lambda: _value(device, "app") == "1", "generation 1")

            broker.stop()
            (bundle / "cm.yaml").write_text((bundle / "cm.yaml").read_text().replace("'1'", "'2'"))
            report = await delivering.apply(fleet.state, fleet.key, broker.url, bundle, T)
            assert not report.ok and report.generation == 2  # committed, sealed, not acknowledged
            assert not fleet.state.deliveries("app")[group].acknowledged
            broker.start()
            with recovery.timed("apply while the broker is down", "broker back to the cluster on it"):
                await fleet.until(lambda: _value(device, "app") == "2", "generation 2 without a new apply")
            await fleet.until(
                lambda: fleet.state.deliveries("app")[group].acknowledged, "the acknowledgement"
            )
            assert aggregator.restored >= 1


async def test_a_broker_that_lost_its_retained_store_gets_every_bundle_and_status_back(
    tmp_path: Path, topic_root: str
) -> None:
    west, east = f"{topic_root}/west", f"{topic_root}/east"
    devices = {"w1": (west, {}), "w2": (west, {}), "e1": (east, {})}
    with brokers.Mosquitto(tmp_path / "broker", persistence=False) as broker:
        async with fleets.fleet_of(broker.url, tmp_path, {west: {}, east: {}}, devices) as fleet:
            everyone = list(fleet.devices.values())
            counts = {d.name: _start(fleet, d) for d in everyone}
            aggregator = fleet.start_controller()
            app = await fleet.apply(_bundle(tmp_path, "app", "1"))
            await fleet.apply(_bundle(tmp_path, "gone", "1"))
            await fleet.until(lambda: all(_value(d, "gone") == "1" for d in everyone), "gone applied")
            removed = await delivering.delete(fleet.state, fleet.key, broker.url, "gone", T)
            assert removed.ok
            await fleet.until(lambda: _on(everyone, "gone", removed.generation or 0), "gone removed")
            await fleet.until(lambda: _on(everyone, "app", app.generation or 0), "app applied")
            await _until_ready(fleet, "app", 1, 3)
            expected = {
                T.bundle(row.topic_root, row.bundle): fleet.state.envelopes(row.bundle, row.group)
                for row in fleet.state.all_deliveries()
            }
            assert len(expected) == 4  # app and gone's tombstone, in each group
            restored = aggregator.restored

            broker.stop()
            broker.start()  # without persistence: an empty store

            with recovery.timed(
                "broker lost its retained store", "restart to bundles, statuses, summary back"
            ):
                await fleet.until(lambda: aggregator.restored >= restored + 4, "the controller to restore")
                held = await mqtt.retained(broker.url, f"{topic_root}/+/bundles/+", expect=4)
                statuses = await mqtt.retained(broker.url, f"{topic_root}/+/status/+", expect=3)
                await _until_ready(fleet, "app", 1, 3)
            # Byte for byte what the broker acknowledged before: same generations, same signatures.
            assert held == {topic: e.held_payload for topic, e in expected.items() if e is not None}
            assert set(statuses) == {T.status(d.group, d.name) for d in everyone}
            for name, counting in counts.items():
                assert all(n == 1 for n in counting.applied.values()), (name, counting.applied)
            assert all(_value(d, "app") == "1" and _value(d, "gone") is None for d in everyone)
