"""Status and presence documents: retained JSON that any dashboard can read.

JSON, not msgpack, because these are read by people's tools (MQTT Explorer,
Node-RED, Grafana) as much as by the controller. The shapes are TypedDicts
(docs/protocol.md, "Status"); `decode_*` validate what arrives, since any
cluster can write its own status topic and the controller must survive what
it finds there.

Bundle states and their ranking follow Rancher Fleet so its users read them
at once: when one summary must stand for many, the highest-ranked state wins.
"""

from __future__ import annotations

import enum
import json
from typing import Any, NotRequired, TypedDict

from wire import errors, limits


class State(enum.Enum):
    READY = "Ready"
    NOT_READY = "NotReady"
    PENDING = "Pending"
    OUT_OF_SYNC = "OutOfSync"
    MODIFIED = "Modified"
    WAIT_APPLIED = "WaitApplied"
    ERR_APPLIED = "ErrApplied"

    @property
    def rank(self) -> int:
        """Higher is worse: ErrApplied > WaitApplied > Modified > OutOfSync > Pending > NotReady > Ready."""
        return _RANK[self]


_RANK = {state: rank for rank, state in enumerate(State)}


def worst(states: list[State]) -> State:
    """The state that stands for several; Ready when there are none."""
    return max(states, key=lambda s: s.rank, default=State.READY)


class ObjectRef(TypedDict):
    api_version: str
    kind: str
    namespace: str
    name: str
    message: str


class BundleStatus(TypedDict):
    state: str
    generation: int
    deployment_id: str | None
    applied_deployment_id: str | None
    message: str
    non_ready: list[ObjectRef]
    modified: list[ObjectRef]


class NodeFacts(TypedDict):
    kubernetes_version: str
    platform: str
    ready: bool | None  # None: the agent may not read nodes


class StatusDocument(TypedDict):
    cluster: str
    group: str
    labels: dict[str, str]
    agent_version: str
    session: int
    seq: int
    ts: float
    node: NodeFacts
    bundles: dict[str, BundleStatus]
    # Envelope format versions the agent reads; absent from agents that read only 1.
    envelope_formats: NotRequired[list[int]]
    # Trouble of the agent itself rather than of one bundle (its state directory cannot be
    # written, ...), one line each; absent when there is none, and from agents that predate it.
    agent_errors: NotRequired[list[str]]


# At most this many format versions in a status (a real agent lists two or three).
MAX_FORMATS = 16
# At most this many agent errors, each at most this long: a line apiece for people, bounded.
MAX_AGENT_ERRORS = 10
MAX_AGENT_ERROR_CHARS = 500


class Presence(TypedDict):
    online: bool
    since: float
    session: int


def encode(document: StatusDocument | Presence) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def _load(payload: bytes, what: str) -> dict[str, Any]:
    if len(payload) > limits.MAX_STATUS_BYTES:
        raise errors.TooLarge(f"{what} is {len(payload)} bytes, over the {limits.MAX_STATUS_BYTES}-byte cap")
    try:
        value = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise errors.Malformed(f"{what} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise errors.Malformed(f"{what} is not a JSON object")
    return value


def _require(doc: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = doc.get(key)
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise errors.Malformed(f"{what}.{key} is missing or not {getattr(kind, '__name__', kind)}")
    return value


def decode_presence(payload: bytes) -> Presence:
    doc = _load(payload, "presence")
    since = _require(doc, "since", (int, float), "presence")
    try:
        since = float(since)
    except OverflowError as exc:
        raise errors.Malformed("presence.since is not a time") from exc
    return Presence(
        online=_require(doc, "online", bool, "presence"),
        since=since,
        session=_require(doc, "session", int, "presence"),
    )


def decode_status(payload: bytes) -> StatusDocument:
    """Validate the fields the controller relies on; unknown fields are ignored."""
    doc = _load(payload, "status")
    # The controller decodes every status message (tens of thousands a second after a
    # restart), so each check first compares exact types, which is all json.loads makes;
    # anything else goes to _require, which accepts subclasses and words the error.
    for key, kind, exact in _STATUS_FIELDS:
        if type(doc.get(key)) not in exact:
            _require(doc, key, kind, "status")
    # Values first, since a JSON object's keys are always strings; the full check words it.
    if not all(type(v) is str for v in doc["labels"].values()) and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in doc["labels"].items()
    ):
        raise errors.Malformed("status.labels must map strings to strings")
    for name, bundle in doc["bundles"].items():
        if type(bundle) is not dict or type(bundle.get("generation")) is not int:
            _check_bundle(name, bundle)
        state = bundle.get("state")
        if type(state) is not str or state not in _STATE_NAMES:
            _check_bundle(name, bundle)
    _check_formats(doc.get("envelope_formats", [1]))
    if "agent_errors" in doc:
        doc["agent_errors"] = _agent_errors(doc["agent_errors"])
    document: StatusDocument = doc  # type: ignore[assignment]  # validated above
    return document


def _check_formats(formats: object) -> None:
    if (
        type(formats) is not list
        or not 0 < len(formats) <= MAX_FORMATS
        or not all(type(v) is int and 0 < v < 2**16 for v in formats)
    ):
        raise errors.Malformed(f"status.envelope_formats must list 1 to {MAX_FORMATS} format versions")


def _agent_errors(problems: object) -> list[str]:
    """`agent_errors` as kept: a list of strings is required; beyond MAX_AGENT_ERRORS lines,
    or MAX_AGENT_ERROR_CHARS a line, it is cut rather than refused, so a later agent that
    says more still has the rest of its status read."""
    if type(problems) is not list or not all(type(p) is str for p in problems):
        raise errors.Malformed("status.agent_errors must be a list of strings")
    return [p[:MAX_AGENT_ERROR_CHARS] for p in problems[:MAX_AGENT_ERRORS]]


def envelope_formats(document: StatusDocument) -> frozenset[int]:
    """The envelope format versions a (decoded) status says its agent reads."""
    return frozenset(document.get("envelope_formats", (1,)))


def _check_bundle(name: str, bundle: Any) -> None:
    """Raise Malformed for what is wrong with one bundle's entry, checked in this order."""
    where = f"status.bundles[{name!r}]"
    if not isinstance(bundle, dict):
        raise errors.Malformed(f"{where} is not an object")
    state = _require(bundle, "state", str, where)
    if state not in _STATE_NAMES:
        raise errors.Malformed(f"{where}.state {state[:40]!r} is not a bundle state")
    _require(bundle, "generation", int, where)


_STATUS_FIELDS: tuple[tuple[str, type | tuple[type, ...], frozenset[type]], ...] = tuple(
    (key, kind, frozenset(kind if isinstance(kind, tuple) else (kind,)))
    for key, kind in (
        ("cluster", str),
        ("group", str),
        ("agent_version", str),
        ("session", int),
        ("seq", int),
        ("ts", (int, float)),
        ("labels", dict),
        ("node", dict),
        ("bundles", dict),
    )
)
_STATE_NAMES = frozenset(state.value for state in State)
