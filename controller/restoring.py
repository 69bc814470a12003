"""Keeping every group's retained bundles what the state says they are.

Agents read bundles only from the broker's retained copies, so a copy that is
missing or older than the state leaves a group behind. Two things cause it:
- an `edgefleet apply` that stopped (killed, or its broker went away) after it
  committed and sealed a generation but before the broker acknowledged it;
- a broker that lost its retained store (restarted without persistence, or
  killed before it saved).

The running controller already reads every retained bundle of its groups (it
counts readiness against them), so it can tell. After subscribing it sends
itself a marker through the broker; once the marker is back, every retained
message the broker had for those subscriptions has arrived before it (both
Mosquitto and amqtt deliver a subscription's retained messages before they
route the client's next publish), and whatever is still missing or older than
the state is not on the broker. `restorations` decides what to send: the
envelope sealed for a pending delivery, or else the one the broker last
acknowledged, byte for byte (nothing is rendered or signed again). Agents
that already run that generation keep it (same deployment id): restoring
never makes a cluster apply anything twice.

A marker goes out every registry interval, so a retained bundle cleared or
overwritten by someone else is put back too. The last generation *seen* on a
topic counts, not the highest: if an older envelope ever lands after a newer
one (a restore racing a concurrent `apply`), the next check sends the newer.
What the controller restores counts as seen as it is sent (anything read on
the topic meanwhile counts after it), so a broker that acknowledges and then
drops a message (a right it lacks) gets it again only in the next session,
not every few seconds.

The marker's promise holds for one broker process (Mosquitto, amqtt): an
MQTT cluster that replicates retained messages between its nodes later may
not have them all when the marker returns, and then gets a harmless extra
copy of what it already held.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass

from controller.state import Delivery, Envelopes

# Markers remembered unanswered: one goes out every registry interval, and one that comes
# back covers those before it. More than this unanswered means the broker does not route
# them back (a right it lacks); older ones are forgotten rather than kept forever.
MARKERS_KEPT = 8


class Markers:
    """The markers one controller session sends itself, and the topic roots each covers."""

    def __init__(self) -> None:
        self._sent: dict[int, frozenset[str]] = {}
        self._number = 0

    def send(self, roots: Iterable[str]) -> bytes:
        """The payload of the next marker, which covers `roots` (subscribed before it goes out)."""
        self._number += 1
        self._sent[self._number] = frozenset(roots)
        for old in [n for n in self._sent if n <= self._number - MARKERS_KEPT]:
            del self._sent[old]
        return str(self._number).encode()

    def returned(self, payload: bytes) -> frozenset[str] | None:
        """The roots whose retained bundles are all in now that `payload` is back (None: not ours)."""
        try:
            number = int(payload)
        except ValueError:
            return None
        roots = self._sent.pop(number, None)
        for older in [n for n in self._sent if n < number]:
            del self._sent[older]  # lost on the way (QoS 0): this one covers them
        return roots

    @property
    def unanswered(self) -> int:
        return len(self._sent)


@dataclass(frozen=True)
class Restore:
    """One envelope to publish retained on a group's bundle topic."""

    bundle: str
    group: str
    topic_root: str
    generation: int
    pending: bool  # finishes an interrupted delivery: acknowledge it once the broker has it


def restorations(
    sealed: Iterable[Delivery], seen: Mapping[tuple[str, str], int], checked: Container[str]
) -> list[Restore]:
    """What the broker should hold and does not, for the topic roots in `checked`.

    `seen`: (topic root, bundle) -> generation of the envelope last read there (a
    cleared topic is absent)."""
    out = []
    for row in sealed:
        if row.topic_root not in checked:
            continue
        if not row.acknowledged and row.sealed:
            want = Restore(row.bundle, row.group, row.topic_root, row.generation, True)
        elif row.held_generation is not None:
            want = Restore(row.bundle, row.group, row.topic_root, row.held_generation, False)
        else:
            continue  # never acknowledged nor sealed (or kept by an older version): `apply` resends it
        if seen.get((row.topic_root, row.bundle), 0) < want.generation:
            out.append(want)
    return out


def unrestorable(
    sealed: Iterable[Delivery], seen: Mapping[tuple[str, str], int], checked: Container[str]
) -> list[Delivery]:
    """Deliveries the broker no longer holds that no kept envelope can restore: acknowledged
    by a version that did not keep envelopes (`edgefleet apply` or `bundle delete` sends them
    again, and keeps them from then on)."""
    return [
        row
        for row in sealed
        if row.topic_root in checked
        and row.acknowledged
        and row.held_generation is None
        and seen.get((row.topic_root, row.bundle), 0) < row.generation
    ]


def envelope(restore: Restore, current: Envelopes | None) -> bytes | None:
    """The envelope to send for `restore`, read from the state just before sending; None
    when the state no longer wants it (an `apply` committed a newer generation meanwhile
    and sends that one itself, or the next check will)."""
    if current is None:
        return None
    row = current.row
    if restore.pending:
        wanted = not row.acknowledged and row.generation == restore.generation
        return current.payload if wanted else None
    if row.held_generation != restore.generation or (not row.acknowledged and row.sealed):
        return None
    return current.held_payload
