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
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass

from controller.state import Envelopes, Sealed


@dataclass(frozen=True)
class Restore:
    """One envelope to publish retained on a group's bundle topic."""

    bundle: str
    group: str
    topic_root: str
    generation: int
    pending: bool  # finishes an interrupted delivery: acknowledge it once the broker has it


def restorations(
    sealed: Iterable[Sealed], seen: Mapping[tuple[str, str], int], checked: Container[str]
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
