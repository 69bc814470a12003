"""Hostile input at the controller's status intake (the reliability matrix's "hostile
input" row): whatever arrives on a status, presence or bundle topic, or on the socket
under them, `Aggregator.handle` never raises, counts every bad message in `ignored`,
keeps nothing of it, and still takes the next good status; and a flood of retained
statuses does not grow the controller's memory without bound."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller import aggregating, publishing, readiness_table
from tests import fleet as fleets
from tests import mqtt, sockets, waiting
from wire import errors, limits, manifests, status, topics, urls

GROUP = "edge/us-west"
CLUSTER = "pi"
SPACE = topics.Topics()
STATUS_TOPIC = SPACE.status(GROUP, CLUSTER)
PRESENCE_TOPIC = SPACE.presence(GROUP, CLUSTER)


def _document(seq: int = 1, *, cluster: str = CLUSTER, message: str = "up") -> dict[str, Any]:
    return {
        "cluster": cluster,
        "group": GROUP,
        "labels": {"env": "prod"},
        "agent_version": "0.1.0",
        "session": 1,
        "seq": seq,
        "ts": 1_700_000_000.0,
        "node": {"kubernetes_version": "v1.31.2+k3s1", "platform": "linux/arm64", "ready": True},
        "bundles": {
            "web": {
                "state": "Ready",
                "generation": 1,
                "deployment_id": "ab" * 32,
                "applied_deployment_id": "ab" * 32,
                "message": message,
                "non_ready": [],
                "modified": [],
            }
        },
    }


def _good(seq: int) -> bytes:
    return json.dumps(_document(seq)).encode()


class _Unexpected(logging.Handler):
    """Counts what `handle` logs as a message that broke its handler (an exception that is
    not a WireError): the fuzz targets fail on it, since a decoder should have refused the
    message. Keeps no records."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.last = self.format(record)


@contextlib.contextmanager
def _unexpected() -> Iterator[_Unexpected]:
    logger = logging.getLogger(aggregating.__name__)
    handler, propagate = _Unexpected(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False  # not to pytest's capture: fuzzing logs thousands
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _aggregator() -> aggregating.Aggregator:
    """A controller's aggregator with one registered group and cluster, which has reported once."""
    aggregator = aggregating.Aggregator(
        Path("/nonexistent"), urls.BrokerUrl("127.0.0.1", 1), clock=lambda: 2e9
    )
    aggregator._groups = {GROUP: GROUP}
    aggregator.table.register([GROUP], [(GROUP, CLUSTER, {"env": "prod"})])
    aggregator.handle(PRESENCE_TOPIC, status.encode(status.Presence(online=True, since=1.0, session=1)))
    aggregator.handle(STATUS_TOPIC, _good(1))
    assert aggregator.table.ignored == 0
    return aggregator


def _view(table: readiness_table.Table) -> object:
    """Everything summaries show of the table (timestamps fixed)."""
    computed = readiness_table.summarize(table, [GROUP], 0.0)
    clusters = {
        key: (s.session, s.seq, s.reported, s.online, s.last_seen, s.labels)
        for key, s in table.clusters.items()
    }
    return computed, clusters


def _takes_a_good_status_afterwards(aggregator: aggregating.Aggregator, seq: int = 10**6) -> None:
    """A good status from the newest session an agent can have outranks whatever was taken."""
    ignored = aggregator.table.ignored
    aggregator.handle(
        STATUS_TOPIC, json.dumps({**_document(seq), "session": readiness_table.MAX_COUNTER}).encode()
    )
    seen = aggregator.table.clusters[(GROUP, CLUSTER)]
    assert (seen.seq, aggregator.table.ignored) == (seq, ignored)


# -- hostile topics --------------------------------------------------------------------------

_TRICKY_LEVELS = [
    "", "+", "#", "..", ".", "/", "//", "pi/", "/pi", "pi/extra", "pi\x00", "p\x00i", "\x00",
    "-pi", "pi-", "$pi", "$SYS", "pi+", "pi#", "p+i", "p#i", "x" * 64, "x" * 65_536, "pi\n", "pi ",
    " pi", "\uff50\uff49", "pi\u200b", "pi\ud800", "\ufeffpi", "../pi", "pi/..", "%2e%2e", "pi\\..", "*",
]  # fmt: skip
_TRICKY_TOPICS = [
    "", "/", "#", "+", "+/status/pi", f"{GROUP}/+/pi", f"{GROUP}/#", f"{GROUP}/status/#",
    f"{GROUP}//status/pi", f"/{GROUP}/status/pi", f"{GROUP}/status/pi/", f"{GROUP}/status//pi",
    f"{GROUP}/../{GROUP}/status/pi", f"../{GROUP}/status/pi", f"{GROUP}/status/../status/pi",
    f"$SYS/{GROUP}/status/pi", f"{GROUP}\x00/status/pi", "fleet/status/pi", "fleet/edge/status/pi",
    "fleet/summary/groups/", "fleet/summary/groups//x", "fleet/summary/bundles/+", "fleet/register/+/reply/x",
    "fleet", "fleet/", "fleet/../edge/us-west/status/pi", f"{'a/' * 20}status/pi", f"{'g' * 200}/status/pi",
]  # fmt: skip

_levels = st.one_of(st.sampled_from(_TRICKY_LEVELS), st.text(max_size=70))
_groups = st.one_of(
    st.sampled_from([GROUP, "", "edge", "edge/", "/edge/us-west", "edge//us-west", "fleet", "+", "#", ".."]),
    st.text(max_size=20),
)
_kinds = st.sampled_from(["status", "presence", "bundles", "summary", "register", "Status", "status/", ""])
hostile_topics = st.one_of(
    st.sampled_from(_TRICKY_TOPICS),
    st.builds(lambda g, k, n: f"{g}/{k}/{n}", _groups, _kinds, _levels),
    st.text(max_size=100),
)


def _expected_ignored(topic: str) -> int:
    """1 where the controller must count a good status of `pi` arriving on `topic`."""
    if topic == STATUS_TOPIC:
        return 0
    try:
        address = SPACE.parse(topic)
    except errors.WireError:
        return 1
    # The controller's own topics, and groups it does not serve, are not fleet input.
    return 1 if address.group == GROUP and address.name is not None else 0


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=hostile_topics, payload=st.sampled_from([_good(2), _good(0)]))
def test_hostile_topics_are_counted_and_never_enter_the_table(topic: str, payload: bytes) -> None:
    aggregator = _aggregator()
    before = _view(aggregator.table)
    with _unexpected() as unexpected:
        aggregator.handle(topic, payload)
    assert unexpected.count == 0, unexpected.last
    assert aggregator.table.ignored == _expected_ignored(topic)
    if topic != STATUS_TOPIC:
        assert _view(aggregator.table) == before
    _takes_a_good_status_afterwards(aggregator)


# -- hostile payloads ------------------------------------------------------------------------

# JSON a serializer never writes but a parser may meet: numbers past a float or past
# Python's 4,300-digit int conversion limit, NaN and Infinity (which json.loads reads),
# escapes of lone surrogates and NUL, bytes that are not UTF-8, nesting past the
# recursion limit, strings past the size cap, duplicate keys.
_RAW = [
    b"1" + b"0" * 400, b"1" + b"0" * 5_000, b"-" + b"9" * 4_300, b"1e400", b"-1e400", b"1e-400",
    b"NaN", b"Infinity", b"-Infinity", b"-0", b"0.0", b"1.5", b"2e9", b'"\\ud800"', b'"\\u0000"',
    b'"\xff\xfe"', b'"\xed\xa0\x80"', b'"\xc0\xaf"', b"[" * 100_000, b"[" * 50_000 + b"]" * 50_000,
    b'{"a":' * 30_000 + b"1" + b"}" * 30_000, b"[" * 900 + b"]" * 900, b'"' + b"x" * 300_000 + b'"',
    b"null", b"true", b"false", b"{}", b"[]", b'""', b'"Ready"', b'"ErrApplied"', b'{"web": 1}',
    b'{"state": "Ready", "generation": 1, "state": "Sleeping"}', b"[1, 2", b"}", b"\x00", b"",
]  # fmt: skip

_odd_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_fragments = st.one_of(
    st.sampled_from(_RAW), _odd_json.map(lambda v: json.dumps(v).encode()), st.binary(max_size=40)
)
_PATHS = [
    *[(key,) for key in [*status.StatusDocument.__annotations__, "extra"]],
    ("labels", "env"), ("labels", ""), ("node", "ready"), ("bundles", "web"), ("bundles", ""),
    ("bundles", "x" * 1000),
    *[("bundles", "web", key) for key in ("state", "generation", "deployment_id", "message", "non_ready")],
]  # fmt: skip


def _with_holes(changes: list[tuple[tuple[str, ...], bytes | None]]) -> bytes:
    """A good status of `pi`, each path set to a raw JSON fragment (None: removed)."""
    document = _document(seq=5)
    holes = {}
    for path, fragment in changes:
        target: Any = document
        for key in path[:-1]:
            target = target.get(key) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if fragment is None:
            target.pop(path[-1], None)
        else:
            hole = target[path[-1]] = f"\x00hole{len(holes)}\x00"
            holes[json.dumps(hole).encode()] = fragment
    encoded = json.dumps(document).encode()
    for hole, fragment in holes.items():  # a hole overwritten by a later change is gone
        encoded = encoded.replace(hole, fragment)
    return encoded


def _mutated(source: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    data = bytearray(source)
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        del data[cut % len(data) :]
    return bytes(data)


hostile_payloads = st.one_of(
    st.lists(
        st.tuples(st.sampled_from(_PATHS), st.one_of(st.none(), _fragments)), min_size=1, max_size=4
    ).map(_with_holes),
    st.builds(
        _mutated,
        st.just(_good(5)),
        st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=6),
        st.one_of(st.none(), st.integers(min_value=0)),
    ),
    st.binary(max_size=200),
    st.integers(-64, 64).map(lambda pad: _good(5) + b" " * (limits.MAX_STATUS_BYTES - len(_good(5)) + pad)),
    st.sampled_from(_RAW),
)


def _acceptable(payload: bytes) -> bool:
    """Whether `pi` may take `payload` as its status: the oracle for the fuzz targets."""
    try:
        document = status.decode_status(payload)
        finite = math.isfinite(document["ts"])  # NaN and Infinity are not JSON a dashboard reads
    except (errors.WireError, OverflowError):
        return False
    counters = (document["session"], document["seq"])  # past 2**53, one would outrank the real agent
    return (
        finite
        and all(0 <= n <= 2**53 for n in counters)
        and (document["cluster"], document["group"]) == (CLUSTER, GROUP)
    )


def _feed(aggregator: aggregating.Aggregator, topic: str, payload: bytes) -> None:
    """Hand `payload` to the aggregator: it must not break its handler, must count it
    unless it is a status `pi` may send, and must keep nothing of what it counts."""
    before, ignored = _view(aggregator.table), aggregator.table.ignored
    with _unexpected() as unexpected:
        aggregator.handle(topic, payload)
    assert unexpected.count == 0, unexpected.last
    counted = aggregator.table.ignored - ignored
    if _acceptable(payload) if topic == STATUS_TOPIC else _is_presence(payload):
        assert counted == 0
    else:
        assert counted == 1
        assert _view(aggregator.table) == before


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payloads=st.lists(hostile_payloads, min_size=1, max_size=4),
    topic=st.sampled_from([STATUS_TOPIC, PRESENCE_TOPIC]),
)
def test_hostile_payloads_are_counted_and_never_enter_the_table(payloads: list[bytes], topic: str) -> None:
    aggregator = _aggregator()
    for payload in payloads:
        _feed(aggregator, topic, payload)
    _takes_a_good_status_afterwards(aggregator)


def test_every_odd_json_value_in_every_field_is_counted_or_taken() -> None:
    """The fuzz targets' cases that matter most, all of them: each raw fragment in each field."""
    for path in _PATHS:
        for fragment in [None, *_RAW]:
            aggregator = _aggregator()
            payload = _with_holes([(("seq",), b"5"), (path, fragment)])
            _feed(aggregator, STATUS_TOPIC, payload)
            _takes_a_good_status_afterwards(aggregator)


def _is_presence(payload: bytes) -> bool:
    """Whether `pi` may send `payload` as its presence."""
    try:
        presence = status.decode_presence(payload)
    except errors.WireError:
        return False
    return 0 <= presence["session"] <= 2**53


def test_statuses_with_times_json_cannot_carry_are_counted() -> None:
    aggregator = _aggregator()
    for raw in (b"NaN", b"Infinity", b"-Infinity", b"1e400", b"1" + b"0" * 400):
        aggregator.handle(STATUS_TOPIC, _with_holes([(("seq",), b"7"), (("ts",), raw)]))
    assert aggregator.table.ignored == 5
    assert aggregator.table.clusters[(GROUP, CLUSTER)].last_seen == 1_700_000_000.0
    json.dumps(aggregator.summaries(), allow_nan=False)  # every summary is still JSON


@pytest.mark.parametrize("size", [limits.MAX_STATUS_BYTES + 1, 64 * 1024 * 1024])
def test_oversized_payloads_are_refused_before_they_are_parsed(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    aggregator = _aggregator()
    parsed: list[int] = []
    loads = json.loads
    monkeypatch.setattr(
        status.json, "loads", lambda data, **kw: parsed.append(len(data)) or loads(data, **kw)
    )
    oversized = b"[" * size  # were it parsed: a RecursionError after the first thousand
    for topic in (STATUS_TOPIC, PRESENCE_TOPIC, SPACE.bundle(GROUP, "web")):
        aggregator.handle(topic, oversized)
    assert (parsed, aggregator.table.ignored) == ([], 3)
    _takes_a_good_status_afterwards(aggregator)


# -- the socket under the intake -------------------------------------------------------------


def _publish(topic: bytes, payload: bytes, *, flags: int = 0, topic_length: int | None = None) -> bytes:
    length = len(topic) if topic_length is None else topic_length
    mid = b"\x00\x07" if flags & 0x06 else b""
    return sockets.packet(0x30 | flags, length.to_bytes(2, "big") + topic + mid + payload)


def _drain(stream: bytes, sizes: list[int], intake: publishing.Intake) -> bytes:
    """What paho reads of `stream` through the wrapper; no error but BlockingIOError escapes."""
    sock = sockets.ChunkedSocket(stream, sizes)
    wrapper = publishing._ReadAhead(sock, intake)
    read = bytearray()
    while sock.chunks or wrapper.pending():
        with contextlib.suppress(BlockingIOError):
            read += wrapper.recv(7)
    return bytes(read)


_topic_bytes = st.one_of(
    st.sampled_from(
        [STATUS_TOPIC.encode(), b"", b"\xff\xfe", b"edge/\xc0\xaf/status/pi", b"a\x00b", b"\xed\xa0\x80"]
    ),
    st.text(max_size=30).map(str.encode),
    st.binary(max_size=30),
)
_packets = st.one_of(
    st.builds(_publish, _topic_bytes, st.binary(max_size=300), flags=st.sampled_from([0, 1, 2, 3, 4, 6, 8, 9])),
    # A topic length that runs past the packet's end.
    st.builds(lambda t, p, extra: _publish(t, p, topic_length=len(t) + len(p) + extra), _topic_bytes, st.binary(max_size=20), st.integers(1, 1000)),
    st.builds(sockets.packet, st.integers(0, 255), st.binary(max_size=50)),
    st.sampled_from([b"\x30\x00", b"\x30\x01\x00", b"\xd0\x00", b"\x20\x02\x00\x00"]),
)  # fmt: skip


def _taken_topic(packet: bytes) -> str | None:
    """The topic under which the wrapper gives `packet` (one whole packet) to the intake:
    a QoS 0 PUBLISH whose topic fits the packet and is UTF-8; None for any other packet."""
    cursor = 1
    while packet[cursor] & 0x80:
        cursor += 1
    cursor += 1
    if packet[0] & 0xF6 != 0x30 or len(packet) - cursor < 2:
        return None
    end = cursor + 2 + int.from_bytes(packet[cursor : cursor + 2], "big")
    if end > len(packet):
        return None
    try:
        return packet[cursor + 2 : end].decode()
    except UnicodeDecodeError:
        return None


@settings(max_examples=400, deadline=None)
@given(packets=st.lists(_packets, max_size=8), sizes=st.lists(st.integers(1, 400), max_size=12))
def test_read_ahead_splits_hostile_packets_exactly(packets: list[bytes], sizes: list[int]) -> None:
    """Whatever the packets, in whatever reads: the intake gets the QoS 0 publishes with
    UTF-8 topics, paho everything else (and what the intake declines) byte for byte, in order."""
    taken: list[str] = []

    def intake(topic: str, payload: bytes) -> bool:
        taken.append(topic)
        return "\x00" not in topic  # declined: left to paho

    topics_taken = [_taken_topic(p) for p in packets]
    for_paho = b"".join(p for p, t in zip(packets, topics_taken, strict=True) if t is None or "\x00" in t)
    assert _drain(b"".join(packets), sizes, intake) == for_paho
    assert taken == [t for t in topics_taken if t is not None]


@settings(max_examples=300, deadline=None)
@given(stream=st.binary(max_size=600), sizes=st.lists(st.integers(1, 100), max_size=10))
def test_read_ahead_never_raises_on_garbage(stream: bytes, sizes: list[int]) -> None:
    """Bytes that are not MQTT reach paho (which drops the connection) or wait for more;
    nothing is read twice and nothing raises into paho's loop."""
    read = _drain(stream, sizes, lambda topic, payload: True)
    assert len(read) <= len(stream)
    assert stream.endswith(read) or read in stream


def test_read_ahead_leaves_a_topic_that_is_not_utf8_to_paho() -> None:
    taken: list[str] = []
    packet = _publish(b"edge/\xff/status/pi", b"{}")
    read = _drain(packet + _publish(STATUS_TOPIC.encode(), b"{}"), [], lambda t, p: taken.append(t) is None)
    assert (read, taken) == (packet, [STATUS_TOPIC])


# -- floods ----------------------------------------------------------------------------------

FLOOD = 50_000


def _held(step: Callable[[int], None], steps: range, *, traced_from: int) -> int:
    """Bytes that the steps from `traced_from` on allocated and still hold after the last."""
    for n in steps[:traced_from]:
        step(n)
    tracemalloc.start()
    try:
        for n in steps[traced_from:]:
            step(n)
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


def test_a_flood_of_made_up_cluster_names_stops_growing_at_the_cap() -> None:
    """As on a broker with `--security none`: statuses and presence under 50,000 names
    nobody registered, in a registered group. The table keeps MAX_UNREGISTERED of them,
    counts the rest, and holds no more memory once it is full."""
    aggregator = _aggregator()
    cap = readiness_table.MAX_UNREGISTERED
    assert cap < FLOOD // 2
    online = status.encode(status.Presence(online=True, since=1.0, session=1))
    head, tail = json.dumps(_document(cluster="\x00")).encode().split(b'"\\u0000"')

    def step(n: int) -> None:
        name = f"ghost-{n}"
        aggregator.handle(SPACE.status(GROUP, name), head + json.dumps(name).encode() + tail)
        aggregator.handle(SPACE.presence(GROUP, name), online)

    held = _held(step, range(FLOOD), traced_from=FLOOD - 10_000)  # tracing costs 3x: the last 10,000
    table = aggregator.table
    assert (table.unregistered, len(table.clusters)) == (cap, cap + 1)
    assert table.ignored == 2 * (FLOOD - cap)
    assert held < 64 * 1024, f"10,000 names refused left {held} bytes behind"
    _takes_a_good_status_afterwards(aggregator)
    # Registering one of them makes room for another.
    table.register([GROUP], [(GROUP, CLUSTER, {}), (GROUP, "ghost-0", {})])
    assert table.unregistered == cap - 1
    aggregator.handle(SPACE.presence(GROUP, "newcomer"), online)
    assert ((GROUP, "newcomer") in table.clusters, table.unregistered) == (True, cap)


def _with_manifest(aggregator: aggregating.Aggregator) -> str:
    """Let the group hold bundle `web` for every cluster; return its deployment id."""
    variant = manifests.Variant(
        "default", ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},)
    )
    target = manifests.Target("all", variant.deployment_id, cluster_selector=manifests.ClusterSelector())
    aggregator.table.manifest(
        GROUP, manifests.Manifest(manifests.Kind.BUNDLE, "web", GROUP, 1, 0.0, (target,), (variant,))
    )
    return variant.deployment_id


def test_a_flood_on_one_status_topic_keeps_one_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every status of the flood is new (its sequence number grows) and says something new,
    and summaries are computed as it goes: the cluster keeps only the last status, the
    sharing pools start afresh when full, and long messages are never pooled at all."""
    monkeypatch.setattr(readiness_table, "MAX_POOLED", 1_000)  # the same mechanism, sooner
    aggregator = _aggregator()
    document = _document()
    document["bundles"]["web"]["deployment_id"] = _with_manifest(aggregator)

    def step(n: int, message: str) -> None:
        document["seq"], document["bundles"]["web"]["message"] = n + 2, message
        aggregator.handle(STATUS_TOPIC, json.dumps(document).encode())
        if n % 10 == 0:
            aggregator.summaries()

    # Short messages are pooled: two readings with the pools equally full (every 1,000 records).
    grown = [_held(lambda n: step(n, f"flood {n:08d}"), range(k * 1_000), traced_from=0) for k in (2, 4)]
    assert grown[1] - grown[0] < 64 * 1024, f"grew {grown[1] - grown[0]} bytes over 2,000 statuses"
    # Long ones are not: pinned in a pool, 400 of 100 KB would hold 40 MB after they were replaced.
    held = _held(lambda n: step(10**6 + n, f"{n:08d}" + "m" * 100_000), range(400), traced_from=0)
    assert held < 1024 * 1024, f"400 long messages left {held} bytes behind"
    table = aggregator.table
    assert (table.ignored, len(table.clusters)) == (0, 1)
    assert table.clusters[(GROUP, CLUSTER)].seq == 10**6 + 401
    _takes_a_good_status_afterwards(aggregator, seq=10**7)


# -- end to end --------------------------------------------------------------------------------


@pytest.mark.mosquitto
async def test_a_running_controller_counts_hostile_messages_and_keeps_serving(
    mosquitto_url: urls.BrokerUrl, tmp_path: Path, topic_root: str
) -> None:
    async with fleets.fleet(mosquitto_url, tmp_path, topic_root, {CLUSTER: {}}) as fleet:
        aggregator = fleet.start_controller()
        space = fleet.space
        good = dict(_document(1), group=topic_root)
        async with publishing.client(mosquitto_url) as writer:
            online = status.Presence(online=True, since=1.0, session=1)
            presence_topic = space.presence(topic_root, CLUSTER)
            await writer.publish(presence_topic, status.encode(online), qos=1, retain=True)
            await waiting.until_async(
                lambda: (
                    (topic_root, CLUSTER) in aggregator.table.clusters
                    and aggregator.table.clusters[(topic_root, CLUSTER)].online is True
                ),
                timeout=15,
                what="the controller reading the group",
            )
            status_topic = space.status(topic_root, CLUSTER)
            hostile = [
                (status_topic, b"\xff\xfe not UTF-8"),
                (status_topic, b"[" * 100_000),
                (status_topic, b" " * (limits.MAX_STATUS_BYTES + 1) + json.dumps(good).encode()),
                (status_topic, b"x" * (8 * 1024 * 1024)),
                (status_topic, json.dumps({**good, "seq": 2}).encode().replace(b'"seq": 2', b'"seq": 1' + b"0" * 5000)),
                (status_topic, json.dumps({**good, "seq": 2}).encode().replace(b"1700000000.0", b"NaN")),
                (status_topic, json.dumps({**good, "labels": [], "seq": 2}).encode()),
                (status_topic, json.dumps({**good, "cluster": "other", "seq": 2}).encode()),
                (f"{topic_root}/status/..", json.dumps(good).encode()),
                (f"{topic_root}/status/{'x' * 300}", json.dumps(good).encode()),
                (f"{topic_root}/status/-pi", json.dumps(good).encode()),
                (f"{topic_root}/status/\uff50\uff49", json.dumps(good).encode()),
                (f"{topic_root}/status/$pi", json.dumps(good).encode()),
                (f"{topic_root}/presence/{CLUSTER}", b'{"online": true, "since": 1' + b"0" * 400 + b', "session": 1}'),
                (f"{topic_root}/bundles/web", b"not an envelope"),
            ]  # fmt: skip
            for topic, payload in hostile:
                await writer.publish(topic, payload, qos=1)
            await waiting.until_async(
                lambda: aggregator.table.ignored == len(hostile),
                timeout=20,
                what="every hostile message counted",
            )
            await writer.publish(status_topic, json.dumps({**good, "seq": 3}).encode(), qos=1)
            await waiting.until_async(
                lambda: aggregator.table.clusters[(topic_root, CLUSTER)].seq == 3,
                timeout=15,
                what="the good status",
            )
            assert aggregator.table.ignored == len(hostile)

            # And it still publishes: the retained fleet summary comes to count them.
            async def counted() -> bool:
                return await _ignored_in_summary(mosquitto_url, space) == len(hostile)

            await waiting.until_checked(
                counted, timeout=15, what=f"the fleet summary to say ignored={len(hostile)}"
            )
            await writer.publish(presence_topic, b"", qos=1, retain=True)


async def _ignored_in_summary(url: urls.BrokerUrl, space: topics.Topics) -> int:
    held = await mqtt.retained(url, space.summary(), expect=1)
    counted: int = json.loads(held[space.summary()])["ignored"]
    return counted
