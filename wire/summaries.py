"""Fleet readiness documents: what the controller publishes for dashboards and the CLI.

Retained JSON on `<prefix>/summary` (the fleet), `<prefix>/summary/bundles/<bundle>`
and `<prefix>/summary/groups/<group>`. Every count is over the clusters that
*should* run something (desired):

- `ready`: online, running the desired deployment, and Ready;
- `offline`: the device's presence says offline (its last state is kept, but
  it is never counted as ready: Fleet hides offline clusters inside Ready,
  we do not);
- `revoked` (group: names, fleet: a count): clusters whose registration was
  revoked; they count nowhere else;
- `states`: how many desired clusters are in each bundle state (offline ones
  included, by their last report; `Pending` when a cluster never reported
  the bundle, `OutOfSync` when it reports an older deployment);
- `state`: the worst of those states (Fleet's ranking), Ready when all are;
- `message`: Fleet-style, e.g. `Modified: 1 (edge/us-west/pi-03); Offline: 1 (edge/us-east/pi-07)`.

Decoders are lenient in what they ignore and strict in what they use, like
the status decoders: consumers on other machines read these.
"""

from __future__ import annotations

import json
from typing import Any, NotRequired, TypedDict

from wire import errors, limits


class NonReady(TypedDict):
    cluster: str
    group: str
    state: str
    message: str


class Counts(TypedDict):
    desired: int
    ready: int
    offline: int
    states: dict[str, int]
    state: str
    message: str


class BundleSummary(Counts):
    bundle: str
    generation: int
    non_ready: list[NonReady]
    ts: float


class ClusterRow(TypedDict):
    name: str
    group: str
    labels: dict[str, str]
    online: bool | None  # None: never heard from
    last_seen: float | None
    agent_version: str | None
    desired: int  # bundles this cluster should run
    ready: int
    state: str
    # The agent's own trouble, as its status said (wire.status); both absent when there is none:
    # how many lines, and the first, cut to ROW_ERROR_CHARS (the status has them all).
    agent_errors: NotRequired[int]
    agent_error: NotRequired[str]


# A group summary holds a row per cluster: a whole fleet with a full disk must not make it
# several times larger (a status may carry 10 lines of 500 characters), so rows say how
# many and show the first line, this long at most.
ROW_ERROR_CHARS = 200


class BundleCell(TypedDict):
    desired: int
    ready: int
    state: str


class GroupSummary(Counts):
    group: str
    clusters: int
    online: int
    bundles: dict[str, BundleCell]
    cluster_rows: list[ClusterRow]
    revoked: list[str]  # revoked clusters of the group (at most MAX_NON_READY names); never counted
    ts: float


class FleetSummary(Counts):
    clusters: int
    online: int
    bundles: int
    bundles_ready: int
    groups: int
    revoked: int  # clusters revoked, fleet-wide; counted nowhere else
    ts: float


# Names listed per state in a message; the counts stay exact.
MESSAGE_NAMES = 3
# Non-ready clusters listed per bundle summary (a 10,000-cluster outage stays a small message).
MAX_NON_READY = 20
# Summaries are bigger than one status (a group lists its clusters): 8 MiB holds ~40,000 rows
# (about half as many if every row carries an agent error).
MAX_SUMMARY_BYTES = 8 * 1024 * 1024


def encode(document: BundleSummary | GroupSummary | FleetSummary) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def _load(payload: bytes, what: str, required: tuple[str, ...]) -> dict[str, Any]:
    if len(payload) > max(MAX_SUMMARY_BYTES, limits.MAX_STATUS_BYTES):
        raise errors.TooLarge(f"{what} is {len(payload)} bytes")
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise errors.Malformed(f"{what} is not JSON: {exc}") from exc
    if not isinstance(document, dict) or any(key not in document for key in required):
        raise errors.Malformed(f"{what} lacks {', '.join(k for k in required if k not in (document or {}))}")
    for key in ("desired", "ready", "offline"):
        if not isinstance(document.get(key), int) or isinstance(document.get(key), bool):
            raise errors.Malformed(f"{what}.{key} is not a count")
    return document


_COUNTS = ("desired", "ready", "offline", "states", "state", "message")


def decode_bundle(payload: bytes) -> BundleSummary:
    document: BundleSummary = _load(payload, "bundle summary", ("bundle", *_COUNTS))  # type: ignore[assignment]
    return document


def decode_group(payload: bytes) -> GroupSummary:
    document: GroupSummary = _load(payload, "group summary", ("group", "cluster_rows", *_COUNTS))  # type: ignore[assignment]
    return document


def decode_fleet(payload: bytes) -> FleetSummary:
    document: FleetSummary = _load(payload, "fleet summary", ("clusters", *_COUNTS))  # type: ignore[assignment]
    return document
