"""`edgefleet apply` and `edgefleet bundle delete`: from rendered plans to retained messages.

`decide` is pure: given each group's plan and what each group was last told,
it says which groups get a new manifest, which get a tombstone (they had the
bundle and are no longer targeted), which still wait for an acknowledged
delivery (sent again as they were), and which are unchanged. `apply` and
`delete` do the I/O around it: render everything first (a render error
publishes nothing), commit the intent (controller.state), then publish and
record each acknowledgement.

Each group's messages are sealed in the newest envelope format that every
cluster of the group reads (`envelope_format`): agents say which formats they
read in their status, and the running controller records it in the registry.
The format is part of what a group was told, so when the last old agent of a
group upgrades, the next apply sends the group its bundles again in the newer,
smaller format.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from controller import bundles, errors, publishing, targeting
from controller.state import BundleRecord, Cluster, Delivery, DeliveryKind, Group, State
from wire import canonical, envelopes, keys, manifests, topics, urls

log = logging.getLogger(__name__)

# What an agent that has not reported yet is assumed to read: every agent reads format 1.
ASSUMED_FORMATS = frozenset({1})


def envelope_format(clusters: Iterable[Cluster]) -> int:
    """The newest envelope format every cluster of a group reads (revoked ones aside).

    A cluster that has not said counts as reading format 1 only. A group with no
    clusters yet gets the newest: agents that join later are as new as this build,
    and an older one would refuse the envelope, report it, and get format 1 from the
    next apply."""
    readable = set(envelopes.SUPPORTED_VERSIONS)
    for cluster in clusters:
        if not cluster.revoked:
            readable &= cluster.envelope_formats or ASSUMED_FORMATS
    return max(readable, default=1)


def envelope_formats(state: State, groups: Iterable[str]) -> dict[str, int]:
    """`envelope_format` of each named group, from the registry."""
    members: dict[str, list[Cluster]] = {name: [] for name in groups}
    for cluster in state.clusters():
        if cluster.group in members:
            members[cluster.group].append(cluster)
    return {name: envelope_format(clusters) for name, clusters in members.items()}


def content_digest(plan: bundles.Plan, version: int = 1) -> str:
    """What a group's manifest says, without generation and time: equal digests, nothing to send.

    The envelope format counts: a group whose agents all read a newer one gets it."""
    wire = manifests.to_wire(plan.manifest("x", generation=1, issued_at=0.0))
    content = {"targets": wire["targets"], "variants": [v.deployment_id for v in plan.variants]}
    if version != 1:  # format 1 digests stay as they were before there was a choice
        content["envelope_format"] = version
    return canonical.digest(content)


@dataclass(frozen=True)
class Decision:
    publish: tuple[Delivery, ...] = ()  # new manifests and tombstones, at a new generation
    # Recorded but never acknowledged, or acknowledged without a kept envelope (so the
    # controller could not restore it): send again as recorded, at the same generation.
    resend: tuple[Delivery, ...] = ()
    unchanged: tuple[str, ...] = ()

    @property
    def nothing_to_do(self) -> bool:
        return not self.publish and not self.resend


def decide(
    bundle: str,
    plans: Mapping[str, bundles.Plan],
    groups: Mapping[str, Group],
    previous: Mapping[str, Delivery],
    formats: Mapping[str, int],
) -> Decision:
    """`formats`: each group's envelope format (`envelope_formats`; absent: 1)."""
    publish: list[Delivery] = []
    resend: list[Delivery] = []
    unchanged: list[str] = []
    for name, plan in sorted(plans.items()):
        before = previous.get(name)
        if plan.targets:
            digest = content_digest(plan, formats.get(name, 1))
            same = before is not None and before.kind is DeliveryKind.MANIFEST and before.digest == digest
            if same and before is not None and before.acknowledged and before.kept:
                unchanged.append(name)
            elif same and before is not None:
                resend.append(before)
            else:
                deployments = tuple(v.deployment_id for v in plan.variants)
                root = groups[name].topic_root
                publish.append(
                    Delivery(bundle, name, root, DeliveryKind.MANIFEST, 0, digest, deployments, False)
                )
        elif before is not None and before.kind is DeliveryKind.MANIFEST:
            publish.append(
                Delivery(bundle, name, before.topic_root, DeliveryKind.TOMBSTONE, 0, "", (), False)
            )
        elif before is not None and not (before.acknowledged and before.kept):
            resend.append(before)
    return Decision(tuple(publish), tuple(resend), tuple(unchanged))


@dataclass
class Report:
    bundle: str
    generation: int | None = None
    published: dict[str, str] = field(default_factory=dict)  # group -> "manifest N" / "tombstone N"
    sealed: dict[str, tuple[int, int]] = field(default_factory=dict)  # group -> (envelope format, bytes)
    failed: dict[str, str] = field(default_factory=dict)
    unchanged: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed


def _message(
    delivery: Delivery,
    record: BundleRecord,
    plans: Mapping[str, bundles.Plan],
    key: keys.SigningKey,
    space: topics.Topics,
    formats: Mapping[str, int],
) -> tuple[str, bytes]:
    topic = space.bundle(delivery.topic_root, delivery.bundle)
    if delivery.kind is DeliveryKind.TOMBSTONE:
        manifest = manifests.tombstone(
            bundle=delivery.bundle,
            group=delivery.topic_root,
            generation=delivery.generation,
            issued_at=record.issued_at,
        )
    else:
        plan = plans[delivery.group]
        manifest = manifests.Manifest(
            manifests.Kind.BUNDLE,
            delivery.bundle,
            delivery.topic_root,
            delivery.generation,
            record.issued_at,
            plan.targets,
            plan.variants,
        )
    return topic, envelopes.seal(manifest, key, version=formats.get(delivery.group, 1))


async def _send(
    state: State, url: urls.BrokerUrl, report: Report, outgoing: list[tuple[Delivery, str, bytes]]
) -> None:
    for delivery, _, payload in outgoing:
        # Sealed before sent: a controller that outlives this process can finish the delivery.
        state.seal(delivery.bundle, delivery.group, delivery.generation, payload)
    try:
        async with publishing.connect(url) as publisher:
            for delivery, topic, payload in outgoing:
                try:
                    await publisher.publish(topic, payload)
                except errors.PublishError as exc:
                    report.failed[delivery.group] = str(exc)
                    continue
                state.acknowledge(delivery.bundle, delivery.group, delivery.generation, payload)
                report.published[delivery.group] = f"{delivery.kind.value} generation {delivery.generation}"
                report.sealed[delivery.group] = (envelopes.parse(payload).format_version, len(payload))
    except errors.PublishError as exc:
        # The connection itself failed: whatever was not acknowledged stays pending for a retry.
        for delivery, _, _ in outgoing:
            if delivery.group not in report.published:
                report.failed.setdefault(delivery.group, str(exc))


async def apply(
    state: State, key: keys.SigningKey, url: urls.BrokerUrl, directory: Path, space: topics.Topics
) -> Report:
    """Render `directory` for every group, publish what changed, tombstone what is no longer targeted."""
    groups = {g.name: g for g in state.groups()}
    if not groups:
        raise errors.ControllerError("no groups yet; create one with 'edgefleet group create NAME'")
    with bundles.open_bundle(directory) as bundle:
        plans = {name: bundle.plan(targeting.Group(name, g.labels)) for name, g in groups.items()}
        spec = bundle.spec
    report = Report(spec.name, warnings=spec.warnings)
    previous = state.deliveries(spec.name)
    formats = envelope_formats(state, groups)
    decision = decide(spec.name, plans, groups, previous, formats)
    report.unchanged = decision.unchanged
    if decision.nothing_to_do:
        return report
    outgoing = []
    if decision.publish:
        record = state.begin_generation(spec.name, list(decision.publish))
        report.generation = record.generation
        for delivery in decision.publish:
            delivery = dataclasses.replace(delivery, generation=record.generation)
            outgoing.append((delivery, *_message(delivery, record, plans, key, space, formats)))
    current = state.bundle(spec.name)
    assert current is not None
    for delivery in decision.resend:
        # Unacknowledged and unchanged: the same content at its recorded generation.
        record = BundleRecord(current.name, delivery.generation, current.issued_at, current.deleted)
        outgoing.append((delivery, *_message(delivery, record, plans, key, space, formats)))
    await _send(state, url, report, outgoing)
    return report


async def delete(
    state: State, key: keys.SigningKey, url: urls.BrokerUrl, name: str, space: topics.Topics
) -> Report:
    """Tombstone `name` in every group that has it (or may have it: unacknowledged deliveries too)."""
    record = state.bundle(name)
    if record is None:
        raise errors.ControllerError(f"no bundle {name!r}")
    previous = state.deliveries(name)
    # Tombstones too where they are not known to be on the broker, or not kept to restore.
    targets = [
        Delivery(name, d.group, d.topic_root, DeliveryKind.TOMBSTONE, 0, "", (), False)
        for d in previous.values()
        if d.kind is DeliveryKind.MANIFEST or not d.acknowledged or not d.kept
    ]
    report = Report(name)
    if not targets:
        return report
    record = state.begin_generation(name, targets, deleted=True)
    report.generation = record.generation
    formats = envelope_formats(state, (d.group for d in targets))
    outgoing = []
    for delivery in targets:
        delivery = dataclasses.replace(delivery, generation=record.generation)
        outgoing.append((delivery, *_message(delivery, record, {}, key, space, formats)))
    await _send(state, url, report, outgoing)
    return report
