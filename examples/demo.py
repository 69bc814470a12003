"""The main flow end to end on the embedded defaults, with simulated clusters.

    1. a controller state in a temporary directory: signing key, and the seed
       topology: groups edge/us-west, edge/us-east and edge/onprem-arm64
       (each with a region label), so bundles land on topics such as
       edge/us-west/bundles/<bundle>;
    2. the embedded MQTT broker, admitting only the controller's registry,
       and the controller in this process;
    3. a join token per group, and two simulated clusters per group (env=prod
       and env=dev) that join with it: the real join protocol and the real
       agent code over in-memory clusters (edge_agent.simulation), labelled
       as a simulation in what it prints;
    4. every example bundle applied (signed, one retained manifest per group);
    5. wait until the fleet summary shows every desired deployment ready,
       then print `edgefleet status` and `edgefleet clusters` as read back
       from the broker, a forged envelope being refused by a device, and a
       device's credentials being refused a bundle topic by the broker.

Run it with `make demo`. Exits 0 only when the fleet converged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from broker import embedded
from controller import aggregating, delivering, join_cli, keystore, login, publishing, security, status_cli
from controller.identities import Identities, controller_password
from controller.state import Group, State
from edge_agent import simulation
from wire import envelopes, keys, manifests, topics, urls

EXAMPLES = Path(__file__).resolve().parent
BUNDLES = ("hello-web", "helm-app", "kustomize-app", "multi-region", "plain-overlays", "canary")
GROUPS = {
    "edge/us-west": {"region": "us-west"},
    "edge/us-east": {"region": "us-east"},
    "edge/onprem-arm64": {"region": "onprem", "arch": "arm64"},
}
CONVERGE_TIMEOUT = 60.0
# Demo pace: summaries four times a second, agents looking at their objects every half second.
SETTINGS = aggregating.Settings(summary_interval=0.25, registry_interval=1.0)
TIMING = {"heartbeat": 5.0, "observe_interval": 0.5}


async def _converged(url: object, space: topics.Topics, deadline: float) -> status_cli.Snapshot:
    while True:
        snapshot = status_cli.Snapshot(space)
        try:
            await status_cli.read(url, snapshot, timeout=2.0)  # type: ignore[arg-type]
        except Exception:  # nothing published yet
            snapshot = status_cli.Snapshot(space)
        fleet = snapshot.fleet
        documents = [*snapshot.bundles.values(), *snapshot.groups.values()]
        if (
            fleet is not None
            and fleet["desired"] > 0
            and all(doc["ready"] == doc["desired"] for doc in [fleet, *documents])
        ):
            return snapshot  # every summary read agrees, not just the first one updated
        if time.monotonic() > deadline:
            raise TimeoutError(f"the fleet did not converge within {CONVERGE_TIMEOUT:.0f}s: {fleet}")
        await asyncio.sleep(0.25)


async def _formats_heard(state: State, deadline: float, out: Callable[[str], None]) -> None:
    """Wait until the controller has recorded that every agent reads the newest envelope
    format, so apply seals the smaller one; after the deadline, apply seals what they read."""
    formats = delivering.envelope_formats(state, GROUPS)
    while any(version != envelopes.LATEST for version in formats.values()):
        if time.monotonic() > deadline:
            out(f"not every agent reported in time; envelope formats by group: {formats}")
            return
        await asyncio.sleep(0.1)
        formats = delivering.envelope_formats(state, GROUPS)
    out(f"every agent reported; bundles go out in envelope format {envelopes.LATEST} (docs/protocol.md)")


async def run(state_dir: Path, out: Callable[[str], None] = print) -> int:
    key = keystore.init(state_dir)
    state = State.open(state_dir)
    for name, labels in GROUPS.items():
        state.add_group(Group(name, name, labels))
    registry = Identities(state)
    registry.ensure_controller(controller_password(state_dir))
    space = topics.Topics()
    out(f"controller key {key.verify_key.fingerprint}; groups {', '.join(GROUPS)}")
    authority = security.RegistryAuthority(registry)
    async with embedded.serve(authority=authority, space=space) as endpoint:
        url = login.as_controller(endpoint.url, state_dir)
        out(f"embedded broker on {endpoint.url} (registered clients only); controller aggregating")
        aggregator = asyncio.ensure_future(
            aggregating.Aggregator(
                state_dir, url, space, SETTINGS, broker_security=security.Embedded(endpoint.disconnect)
            ).run()
        )
        joins = [
            join_cli.issue(registry, key, group=group, broker=endpoint.url)[1].encode() for group in GROUPS
        ]
        out(f"join tokens for {len(joins)} groups: $ edgefleet token create --group <group>")
        plan = simulation.Plan(
            clusters=2 * len(GROUPS), groups=tuple(GROUPS), vary=("env=prod,dev",), prefix="pi"
        )
        with tempfile.TemporaryDirectory(prefix="edgefleet-demo-agents-") as agents_dir:
            started = time.monotonic()
            simulated = await simulation.joined_agents(
                plan, joins, state_root=Path(agents_dir), ready_delay=0.5, timing=TIMING
            )
            banner = f"{simulation.BANNER}: {len(simulated)} simulated clusters"
            took = time.monotonic() - started
            out(f"{banner} joined in {took:.1f}s (real join and agent code, in-memory clusters)")
            fleet = asyncio.ensure_future(simulation.run(simulated))
            try:
                await _formats_heard(state, started + CONVERGE_TIMEOUT, out)
                for bundle in BUNDLES:
                    report = await delivering.apply(state, key, url, EXAMPLES / bundle, space)
                    groups = ", ".join(
                        f"{group} ({report.sealed[group][1]:,} B, format {report.sealed[group][0]})"
                        for group in sorted(report.published)
                    )
                    out(f"applied {bundle}: generation {report.generation} to {groups or 'no group'}")
                started = time.monotonic()
                try:
                    snapshot = await _converged(url, space, started + CONVERGE_TIMEOUT)
                except TimeoutError as exc:
                    out(f"FAILED: {exc}")
                    return 1
                out(f"converged in {time.monotonic() - started:.1f}s\n")
                now = time.time()
                for command in ("status", "clusters"):
                    out(f"$ edgefleet {command}")
                    for line in status_cli.render(snapshot, command=command, output="table", now=now):
                        out(line)
                    out("")
                await _forgery(simulated[0], url, space, out)
                await _trespass(simulated[1], url, space, out)
            finally:
                fleet.cancel()
                aggregator.cancel()
                await asyncio.gather(fleet, aggregator, return_exceptions=True)
                state.close()
    return 0


async def _trespass(
    agent: simulation.Agent, url: urls.BrokerUrl, space: topics.Topics, out: Callable[[str], None]
) -> None:
    """A device's own credentials try to publish a bundle and read another group: the broker says no."""
    config = agent.config
    topic = space.bundle(config.group, "trespass")
    other = next(group for group in GROUPS if group != config.group)
    async with publishing.client(url, identifier="edgefleet-demo-watcher") as watcher:
        await watcher.subscribe(topic, qos=1)
        # The device's credentials only work with its own client id (this takes its session over).
        device = publishing.client(config.broker_url(), identifier=f"edgefleet-agent-{config.cluster}")
        async with device as intruder:
            granted = await intruder.subscribe(space.bundles_filter(other), qos=1)
            await intruder.publish(topic, b"not a bundle", qos=1)
        arrived = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):  # a demo shows absence over a short window
                arrived.append(await anext(watcher.messages))
    code = granted[0].value if isinstance(granted, list) else granted
    refused_read = "refused" if code >= 0x80 else "ALLOWED"
    dropped = "dropped" if not arrived else "DELIVERED"
    out(f"{config.cluster}'s own credentials: publish on {topic} {dropped}; read {other} {refused_read}")


async def _forgery(
    agent: simulation.Agent, url: object, space: topics.Topics, out: Callable[[str], None]
) -> None:
    """Publish an envelope signed by a key nobody trusts; show the device refusing it."""
    group = agent.config.group
    variant = manifests.Variant(
        "default", ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "evil"}},)
    )
    target = manifests.Target("all", variant.deployment_id, cluster_selector=manifests.ClusterSelector())
    forged = manifests.Manifest(manifests.Kind.BUNDLE, "forged", group, 1, time.time(), (target,), (variant,))
    refused = agent.refused
    await publishing.publish_retained(
        url, [(space.bundle(group, "forged"), envelopes.seal(forged, keys.SigningKey.generate(), version=2))]
    )  # type: ignore[arg-type]
    deadline = time.monotonic() + 10
    while agent.refused == refused and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    verdict = "refused it (untrusted key)" if agent.refused > refused else "did NOT refuse it"
    out(f"a forged bundle on {space.bundle(group, 'forged')}: {agent.config.cluster} {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    # The demo prints its own account; library logs only when asked for (-v).
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with tempfile.TemporaryDirectory(prefix="edgefleet-demo-") as tmp:
        return asyncio.run(run(Path(tmp) / "controller"))


if __name__ == "__main__":
    sys.exit(main())
