"""The controller's intake takes fleet messages off the socket before paho parses them
(controller.publishing._read_directly). That reaches under aiomqtt's public API: these
tests fail if aiomqtt or paho stop doing what it relies on, and pin that the
controller still counts bad input and answers join requests through that path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from paho.mqtt import client as paho

from controller import publishing
from tests import brokers, sockets, tlscerts, waiting
from tests import fleet as fleets
from wire import status, urls

# Enough retained messages that the broker sends them faster than one read each.
BURST = 2_000


@pytest.fixture(scope="module")
def tls_mosquitto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[urls.BrokerUrl]:
    """Mosquitto over TLS, anonymous: TLS sockets buffer too, and aiomqtt drains them."""
    workdir = tmp_path_factory.mktemp("tls-mosquitto")
    with brokers.mosquitto(workdir, tls=tlscerts.make(workdir / "tls")) as url:
        yield url


@pytest.fixture(params=["mosquitto", "amqtt", "tls_mosquitto"])
def any_broker_url(request: pytest.FixtureRequest) -> urls.BrokerUrl:
    url: urls.BrokerUrl = request.getfixturevalue(f"{request.param}_url")
    return url


async def test_aiomqtt_still_hands_paho_messages_and_sockets_to_the_callbacks_we_wrap() -> None:
    mqtt = aiomqtt.Client("127.0.0.1", 1)
    paho_client = mqtt._client
    assert isinstance(paho_client, paho.Client)
    assert paho_client.on_message == mqtt._on_message
    assert paho_client.on_socket_open == mqtt._on_socket_open

    wrapped = publishing.client(urls.BrokerUrl("127.0.0.1", 1), intake=lambda topic, payload: True)
    assert wrapped._client.on_message != wrapped._on_message
    assert wrapped._client.on_socket_open != wrapped._on_socket_open


async def test_intake_takes_a_retained_burst_as_read_and_leaves_the_rest_to_the_iterator(
    any_broker_url: urls.BrokerUrl, topic_root: str
) -> None:
    sent = [(f"{topic_root}/status/c{n:04d}", f"{n:04d}".encode() * 125) for n in range(BURST)]
    await _publish_retained(any_broker_url, sent)
    taken: list[tuple[str, bytes]] = []

    def intake(topic: str, payload: bytes) -> bool:
        if topic.endswith("/left"):
            return False
        taken.append((topic, payload))
        return True

    try:
        async with publishing.client(any_broker_url, intake=intake) as reader:
            await reader.subscribe(f"{topic_root}/status/+", qos=0)
            # If aiomqtt stopped draining what was read ahead, the last messages would wait
            # for the broker's next packet: none comes, and this times out.
            await waiting.until_async(lambda: len(taken) == BURST, timeout=30, what="the retained burst")
            assert sorted(taken) == sent
            sock = reader._client._sock
            assert isinstance(sock, publishing._ReadAhead)
            # paho reads through the wrapper (reads > 0): over TCP several packets per read;
            # over TLS one (a read returns one TLS record), where paho alone makes three.
            assert 0 < sock.reads < (BURST * 1.5 if any_broker_url.tls else BURST / 2)

            await reader.subscribe(f"{topic_root}/left", qos=0)
            await reader.publish(f"{topic_root}/left", b"queued", qos=1)
            async with asyncio.timeout(10):
                message = await anext(aiter(reader.messages))
            assert (message.topic.value, message.payload) == (f"{topic_root}/left", b"queued")
    finally:
        await _publish_retained(any_broker_url, [(t, b"") for t, _ in sent])


class _Pings(logging.Handler):
    """Counts the PINGRESPs paho logs, keeping no records (a stream logs thousands a second)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.answered = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "Received PINGRESP":
            self.answered += 1


@pytest.fixture
def pings() -> Iterator[_Pings]:
    logger = logging.getLogger("mqtt")  # aiomqtt's logger, which paho logs to
    handler, level, propagate = _Pings(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    # Not on to pytest's log capture, which would keep every record of the stream:
    # gigabytes, and minutes of CPU, at the rate the stream goes.
    logger.propagate = False
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate


async def test_pings_are_answered_while_the_intake_takes_a_stream_of_messages(
    tmp_path: Path, topic_root: str, pings: _Pings
) -> None:
    # A broker of its own: the shared one may still be busy with earlier tests' clients.
    with brokers.mosquitto(tmp_path) as mosquitto_url:
        await _pings_answered(mosquitto_url, topic_root, pings)


async def _pings_answered(mosquitto_url: urls.BrokerUrl, topic_root: str, pings: _Pings) -> None:
    taken = 0

    def intake(topic: str, payload: bytes) -> bool:
        nonlocal taken
        taken += 1
        return True

    # A 1 s keepalive: paho pings each second, and drops the connection if no answer comes.
    reader = aiomqtt.Client(mosquitto_url.host, mosquitto_url.port, keepalive=1)
    publishing._read_directly(reader, intake)

    async with reader, publishing.client(mosquitto_url) as writer:
        await reader.subscribe(f"{topic_root}/status/+", qos=0)

        stop = asyncio.Event()

        async def stream() -> None:
            while not stop.is_set():
                await writer.publish(f"{topic_root}/status/pi", b"{}", qos=1)

        # Stopped by an event, not cancelled: Python 3.11's wait_for, under aiomqtt's
        # publish, can swallow a cancellation and leave the stream running for good.
        streaming = asyncio.create_task(stream())
        try:
            await waiting.until_async(lambda: pings.answered >= 3, timeout=15, what="three answered pings")
        finally:
            stop.set()
            await asyncio.wait_for(streaming, timeout=15)
        assert taken > 0
        await reader.publish(f"{topic_root}/still-connected", b"", qos=1)


async def _publish_retained(url: urls.BrokerUrl, messages: list[tuple[str, bytes]]) -> None:
    """Publish retained at QoS 1, publishing.PENDING_WARNING at a time."""
    async with publishing.client(url) as writer:
        for at in range(0, len(messages), publishing.PENDING_WARNING):
            chunk = messages[at : at + publishing.PENDING_WARNING]
            await asyncio.gather(*(writer.publish(t, p, qos=1, retain=True) for t, p in chunk))


async def test_controller_counts_bad_input_it_reads_and_still_takes_join_requests(
    mosquitto_url: urls.BrokerUrl, tmp_path: Path, topic_root: str
) -> None:
    async with fleets.fleet(mosquitto_url, tmp_path, topic_root, {"pi": {}}) as fleet:
        aggregator = fleet.start_controller()
        space = fleet.space
        async with publishing.client(mosquitto_url) as writer:
            online = status.Presence(online=True, since=1.0, session=1)
            await writer.publish(space.presence(topic_root, "pi"), status.encode(online), qos=1, retain=True)
            # Presence is subscribed last of a group's topics: once it is read, all are.
            await waiting.until_async(
                lambda: (
                    (topic_root, "pi") in aggregator.table.clusters
                    and aggregator.table.clusters[(topic_root, "pi")].online is True
                ),
                timeout=15,
                what="the retained presence",
            )
            bad = [
                (space.status(topic_root, "pi"), b"\xff not json"),
                (f"{topic_root}/status/-bad-name", b"{}"),
                (space.presence(topic_root, "pi"), b'{"online": "yes"}'),
            ]
            for topic, payload in bad:
                await writer.publish(topic, payload, qos=1)
            await writer.publish(space.register("pi-join"), b"not a join request", qos=1)
            await waiting.until_async(
                lambda: aggregator.table.ignored == len(bad), timeout=15, what="bad input counted"
            )
            # The join request went to the registrar (through client.messages), which refused it.
            await waiting.until_async(
                lambda: aggregator.registrar is not None and aggregator.registrar.refused == 1,
                timeout=15,
                what="the join request",
            )
            await writer.publish(space.presence(topic_root, "pi"), b"", qos=1, retain=True)


def _publish(topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> bytes:
    name = topic.encode()
    mid = b"\x00\x07" if qos else b""
    return sockets.packet(0x30 | qos << 1 | retain, len(name).to_bytes(2, "big") + name + mid + payload)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 512, 1 << 20])
def test_read_ahead_takes_qos0_publishes_and_gives_paho_everything_else_byte_for_byte(chunk: int) -> None:
    taken = [
        _publish("g/status/a", b'{"seq": 1}'),
        _publish("g/status/b", b"x" * 20_000, retain=True),  # a 3-byte remaining length
        _publish("g/presence/a", b""),
    ]
    for_paho = [
        b"\x20\x02\x00\x00",  # CONNACK
        b"\x90\x03\x00\x01\x00",  # SUBACK
        _publish("fleet/register/pi", b"join"),  # declined by the intake
        _publish("g/status/c", b"{}", qos=1),  # QoS 1: paho acknowledges it
        b"\xd0\x00",  # PINGRESP
    ]
    stream = for_paho[0] + taken[0] + for_paho[1] + taken[1] + for_paho[2] + for_paho[3]
    stream += taken[2] + for_paho[4]
    seen: list[tuple[str, bytes]] = []

    def intake(topic: str, payload: bytes) -> bool:
        seen.append((topic, payload))
        return "/register/" not in topic

    sock = sockets.ChunkedSocket(stream, chunk)
    wrapper = publishing._ReadAhead(sock, intake)
    read = bytearray()
    while sock.chunks or wrapper.pending():
        with contextlib.suppress(BlockingIOError):
            read += wrapper.recv(5)  # paho's reads are small
    assert bytes(read) == b"".join(for_paho)
    assert seen == [
        ("g/status/a", b'{"seq": 1}'),
        ("g/status/b", b"x" * 20_000),
        ("fleet/register/pi", b"join"),
        ("g/presence/a", b""),
    ]


def test_read_ahead_hands_what_is_not_mqtt_to_paho_to_refuse() -> None:
    garbage = b"\x30\xff\xff\xff\xff\x01rest"  # a remaining length of five bytes
    wrapper = publishing._ReadAhead(sockets.ChunkedSocket(garbage, 1 << 20), lambda topic, payload: True)
    assert wrapper.recv(1 << 20) == garbage


def test_read_ahead_survives_an_intake_that_raises() -> None:
    def intake(topic: str, payload: bytes) -> bool:
        raise RuntimeError("bug")

    stream = _publish("g/status/a", b"{}") + b"\xd0\x00"
    wrapper = publishing._ReadAhead(sockets.ChunkedSocket(stream, 1 << 20), intake)
    assert wrapper.recv(1 << 20) == b"\xd0\x00"
