"""`edgefleet apply` and `edgefleet bundle delete`: from rendered plans to retained messages.

`decide` is pure: given each group's plan and what each group was last told,
it says which groups get a new manifest, which get a tombstone (they had the
bundle and are no longer targeted), which still wait for an acknowledged
delivery (sent again as they were), and which are unchanged. `apply` and
`delete` do the I/O around it: render everything first (a render error
publishes nothing), commit the intent (controller.state), then publish and
record each acknowledgement.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from controller import bundles, errors, publishing, targeting
from controller.state import BundleRecord, Delivery, DeliveryKind, Group, State
from wire import canonical, envelopes, keys, manifests, topics, urls

log = logging.getLogger(__name__)


def content_digest(plan: bundles.Plan) -> str:
    """What a group's manifest says, without generation and time: equal digests, nothing to send."""
    wire = manifests.to_wire(plan.manifest("x", generation=1, issued_at=0.0))
    return canonical.digest(
        {"targets": wire["targets"], "variants": [v.deployment_id for v in plan.variants]}
    )


@dataclass(frozen=True)
class Decision:
    publish: tuple[Delivery, ...] = ()  # new manifests and tombstones, at a new generation
    resend: tuple[Delivery, ...] = ()  # recorded but never acknowledged: send again as recorded
    unchanged: tuple[str, ...] = ()

    @property
    def nothing_to_do(self) -> bool:
        return not self.publish and not self.resend


def decide(
    bundle: str,
    plans: Mapping[str, bundles.Plan],
    groups: Mapping[str, Group],
    previous: Mapping[str, Delivery],
) -> Decision:
    publish: list[Delivery] = []
    resend: list[Delivery] = []
    unchanged: list[str] = []
    for name, plan in sorted(plans.items()):
        before = previous.get(name)
        if plan.targets:
            digest = content_digest(plan)
            same = before is not None and before.kind is DeliveryKind.MANIFEST and before.digest == digest
            if same and before is not None and before.acknowledged:
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
        elif before is not None and not before.acknowledged:
            resend.append(before)
    return Decision(tuple(publish), tuple(resend), tuple(unchanged))


@dataclass
class Report:
    bundle: str
    generation: int | None = None
    published: dict[str, str] = field(default_factory=dict)  # group -> "manifest N" / "tombstone N"
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
    return topic, envelopes.seal(manifest, key)


async def _send(
    state: State, url: urls.BrokerUrl, report: Report, outgoing: list[tuple[Delivery, str, bytes]]
) -> None:
    try:
        async with publishing.connect(url) as publisher:
            for delivery, topic, payload in outgoing:
                try:
                    await publisher.publish(topic, payload)
                except errors.PublishError as exc:
                    report.failed[delivery.group] = str(exc)
                    continue
                state.acknowledge(delivery.bundle, delivery.group, delivery.generation)
                report.published[delivery.group] = f"{delivery.kind.value} generation {delivery.generation}"
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
    decision = decide(spec.name, plans, groups, previous)
    report.unchanged = decision.unchanged
    if decision.nothing_to_do:
        return report
    outgoing = []
    if decision.publish:
        record = state.begin_generation(spec.name, list(decision.publish))
        report.generation = record.generation
        for delivery in decision.publish:
            delivery = dataclasses.replace(delivery, generation=record.generation)
            outgoing.append((delivery, *_message(delivery, record, plans, key, space)))
    current = state.bundle(spec.name)
    assert current is not None
    for delivery in decision.resend:
        # Unacknowledged and unchanged: the same content at its recorded generation.
        record = BundleRecord(current.name, delivery.generation, current.issued_at, current.deleted)
        outgoing.append((delivery, *_message(delivery, record, plans, key, space)))
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
    targets = [
        Delivery(name, d.group, d.topic_root, DeliveryKind.TOMBSTONE, 0, "", (), False)
        for d in previous.values()
        if d.kind is DeliveryKind.MANIFEST or not d.acknowledged
    ]
    report = Report(name)
    if not targets:
        return report
    record = state.begin_generation(name, targets, deleted=True)
    report.generation = record.generation
    outgoing = []
    for delivery in targets:
        delivery = dataclasses.replace(delivery, generation=record.generation)
        outgoing.append((delivery, *_message(delivery, record, {}, key, space)))
    await _send(state, url, report, outgoing)
    return report
