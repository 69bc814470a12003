"""What the running controller puts back on the broker (controller.restoring): decisions only."""

from __future__ import annotations

from pathlib import Path

from controller import aggregating, keystore, restoring
from controller.state import Delivery, DeliveryKind, Envelopes, Group, State
from wire import envelopes, keys, manifests, urls

ROOT = "edge/west"


def _row(
    generation: int = 3, *, acknowledged: bool = True, sealed: bool = True, held: int | None = 3
) -> Delivery:
    return Delivery(
        "app", "west", ROOT, DeliveryKind.MANIFEST, generation, "d", (), acknowledged, sealed, held
    )


def test_an_acknowledged_bundle_the_broker_lost_is_restored_at_its_generation() -> None:
    [restore] = restoring.restorations([_row()], {}, {ROOT})
    assert (restore.generation, restore.pending) == (3, False)


def test_a_bundle_the_broker_holds_at_its_generation_is_left_alone() -> None:
    assert restoring.restorations([_row()], {(ROOT, "app"): 3}, {ROOT}) == []


def test_an_older_envelope_seen_last_is_replaced() -> None:
    [restore] = restoring.restorations([_row()], {(ROOT, "app"): 2}, {ROOT})
    assert restore.generation == 3


def test_a_sealed_pending_delivery_is_sent_rather_than_the_older_one_held() -> None:
    row = _row(4, acknowledged=False, held=3)
    [restore] = restoring.restorations([row], {(ROOT, "app"): 3}, {ROOT})
    assert (restore.generation, restore.pending) == (4, True)


def test_a_pending_delivery_never_sealed_falls_back_to_what_was_held() -> None:
    row = _row(4, acknowledged=False, sealed=False, held=3)
    [restore] = restoring.restorations([row], {}, {ROOT})
    assert (restore.generation, restore.pending) == (3, False)
    assert restoring.restorations([row], {(ROOT, "app"): 3}, {ROOT}) == []


def test_nothing_is_decided_for_roots_not_checked_yet_or_without_envelopes() -> None:
    assert restoring.restorations([_row()], {}, set()) == []
    assert restoring.restorations([_row(sealed=False, held=None)], {}, {ROOT}) == []


def test_the_envelope_is_read_again_and_dropped_if_the_state_moved_on() -> None:
    held = restoring.Restore("app", "west", ROOT, 3, False)
    now = Envelopes(_row(), b"three", b"three")
    assert restoring.envelope(held, now) == b"three"
    # An apply committed and sealed generation 4 meanwhile: it is sent, not 3.
    assert restoring.envelope(held, Envelopes(_row(4, acknowledged=False, held=3), b"four", b"three")) is None
    pending = restoring.Restore("app", "west", ROOT, 4, True)
    assert restoring.envelope(pending, Envelopes(_row(4, acknowledged=False, held=3), b"four", b"three")) == (
        b"four"
    )
    # Acknowledged by the apply meanwhile, or replaced by generation 5: not ours to send.
    assert restoring.envelope(pending, Envelopes(_row(4, held=4), b"four", b"four")) is None
    assert (
        restoring.envelope(pending, Envelopes(_row(5, acknowledged=False, held=3), b"five", b"three")) is None
    )
    assert restoring.envelope(pending, None) is None


def test_a_held_envelope_is_still_sent_while_a_newer_generation_is_committed_but_not_sealed() -> None:
    held = restoring.Restore("app", "west", ROOT, 3, False)
    # apply committed 4 and has not sealed it yet: what the broker should hold is still 3.
    assert restoring.envelope(
        held, Envelopes(_row(4, acknowledged=False, sealed=False, held=3), None, b"three")
    ) == (b"three")


def test_deliveries_without_a_kept_envelope_are_named_when_the_broker_lost_them() -> None:
    old = _row(sealed=False, held=None)
    assert restoring.unrestorable([old], {}, {ROOT}) == [old]
    assert restoring.unrestorable([old], {(ROOT, "app"): 3}, {ROOT}) == []
    assert restoring.unrestorable([_row()], {}, {ROOT}) == []  # kept: restorations() has it


def test_a_returned_marker_names_the_roots_subscribed_before_it_and_covers_lost_ones() -> None:
    markers = restoring.Markers()
    first = markers.send({"a"})
    second = markers.send({"a", "b"})
    assert markers.unanswered == 2
    assert markers.returned(second) == {"a", "b"}
    assert markers.returned(first) is None and markers.unanswered == 0  # the first was lost: covered
    assert markers.returned(b"not a number") is None and markers.returned(b"99") is None


def test_markers_that_never_come_back_are_not_kept_forever() -> None:
    markers = restoring.Markers()
    for _ in range(100):
        markers.send({"a"})
    assert markers.unanswered == restoring.MARKERS_KEPT


class _Overwritten:
    """A client whose publish is followed, before it returns, by someone's older envelope."""

    def __init__(self, aggregator: aggregating.Aggregator, older: bytes) -> None:
        self.aggregator, self.older, self.sent = aggregator, older, []

    async def publish(self, topic: str, payload: bytes, **options: object) -> None:
        self.sent.append(payload)
        self.aggregator.handle(topic, self.older)


async def test_a_topic_written_while_its_bundle_is_restored_is_checked_again(tmp_path: Path) -> None:
    key = keystore.init(tmp_path)
    state = State.open(tmp_path)
    try:
        state.add_group(Group("west", ROOT))
        delivery = Delivery("app", "west", ROOT, DeliveryKind.TOMBSTONE, 0, "", (), False)
        generation = state.begin_generation("app", [delivery]).generation
        third = envelopes.seal(_tombstone(generation + 2), key, version=2)
        state.begin_generation("app", [delivery])
        state.begin_generation("app", [delivery])
        state.acknowledge("app", "west", generation + 2, third)
        aggregator = aggregating.Aggregator(tmp_path, urls.BrokerUrl("127.0.0.1", 1))
        aggregator.refresh_registry(state)
        aggregator._trusted = keys.keyring([key.verify_key])
        client = _Overwritten(aggregator, envelopes.seal(_tombstone(generation), key, version=2))
        await aggregator._restore(state, client, frozenset({ROOT}))  # type: ignore[arg-type]
        # The older one was read after ours went out: that is what the broker holds now.
        assert client.sent == [third] and aggregator.bundles_seen[(ROOT, "app")] == generation
        await aggregator._restore(state, client, frozenset({ROOT}))  # type: ignore[arg-type]
        assert client.sent == [third, third]
    finally:
        state.close()


def _tombstone(generation: int) -> manifests.Manifest:
    return manifests.tombstone(bundle="app", group=ROOT, generation=generation, issued_at=1.0)
