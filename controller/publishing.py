"""Publishing retained messages and waiting for the broker to take them.

QoS 1 and retained: the broker acknowledges each message (aiomqtt's publish
returns after PUBACK), so the caller learns per topic whether it landed, and
an agent that connects later, or reconnects after a week offline, still gets
the latest one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt
from paho.mqtt import client as paho

from controller import errors
from wire import urls

log = logging.getLogger(__name__)

# How long one publish may wait for its PUBACK before it counts as failed.
PUBLISH_TIMEOUT = 10.0


# Publishes in flight on one connection before aiomqtt warns: the controller answers
# up to registering.CONCURRENT_REQUESTS joins at once, each with a publish.
PENDING_WARNING = 100

# What the controller's client reads at once (see _read_directly): about a hundred status
# messages, so one system call and one event-loop turn serve them all.
READ_AHEAD = 64 * 1024

# Takes one incoming message (topic, payload) as it is read, on the client's event loop;
# returns False to leave it to `client.messages` instead.
Intake = Callable[[str, bytes], bool]


def client(
    url: urls.BrokerUrl,
    *,
    identifier: str | None = None,
    will: aiomqtt.Will | None = None,
    intake: Intake | None = None,
) -> aiomqtt.Client:
    """A client for `url`; `intake`, if given, sees every incoming message first (_read_directly)."""
    mqtt = aiomqtt.Client(
        url.host,
        url.port,
        identifier=identifier,
        username=url.username,
        password=url.password,
        protocol=aiomqtt.ProtocolVersion.V311,
        tls_params=aiomqtt.TLSParameters(ca_certs=url.ca_file) if url.tls else None,
        timeout=PUBLISH_TIMEOUT,
        will=will,
    )
    mqtt.pending_calls_threshold = PENDING_WARNING
    if intake is not None:
        _read_directly(mqtt, intake)
    return mqtt


def _read_directly(mqtt: aiomqtt.Client, intake: Intake) -> None:
    """Give `intake` each message as it is read, before paho spends anything on it.

    The controller reads every retained status at once after a restart, so what the
    client costs per message bounds how fast it catches up. Measured reading 20,000
    retained messages from Mosquitto with an intake that does nothing (docs/benchmarks.md,
    "Status ingest"), CPU per message: iterating `client.messages` 61 µs; aiomqtt's
    queue hook (an `aiomqtt.Message` and a validated `Topic` per message) 41-48 µs;
    paho's own `on_message` 34-39 µs, most of it paho's packet handling, three `recv`
    calls per packet and one event-loop turn per packet. So paho's socket is wrapped
    (_ReadAhead): it reads 64 KB at a time, splits off the QoS 0 PUBLISH packets
    (all the controller subscribes to) and gives them to `intake`; paho gets the rest
    (acknowledgements, pings, and what `intake` declines) unchanged and in order.
    End to end the controller's client part fell from 54 to about 12 µs a message.
    QoS 1 messages still come through paho, whose `on_message` we set too.

    Neither is aiomqtt's public API. What this relies on, pinned by
    tests/test_intake.py (which fails if either library changes it):
    - `mqtt._client` is the paho client, and its `on_message` is aiomqtt's, which
      wraps paho's message and queues it: we still call it for what `intake` leaves.
    - paho reads only through `_sock.recv`, and aiomqtt's reader calls paho's
      `loop_read` again while `_sock.pending()` is positive (it does so for TLS
      sockets, which buffer decrypted bytes the same way). Without that, packets
      read ahead for paho would wait for the next packet from the broker.
    - Keepalive still works: paho sends its pings when it has read nothing for the
      keepalive interval, and their answers (PINGRESP) go to paho.
    Over TLS a read returns one TLS record (one packet), so there the gain is smaller.
    aiomqtt applies `socket_options` (we set none) only to a plain socket, so it would
    skip them on this wrapper.
    """
    paho_client = mqtt._client
    queue = paho_client.on_message
    opened = paho_client.on_socket_open
    assert queue is not None and opened is not None, "aiomqtt sets both"

    def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            # MQTT requires UTF-8 topics and brokers refuse others; aiomqtt would raise
            # here and end the connection.
            log.warning("dropped a message whose topic is not UTF-8")
            return
        if not intake(topic, bytes(message.payload)):
            queue(client, userdata, message)

    def on_socket_open(client: paho.Client, userdata: Any, sock: paho.SocketLike) -> None:
        client._sock = _ReadAhead(sock, intake)
        opened(client, userdata, sock)

    paho_client.on_message = on_message
    paho_client.on_socket_open = on_socket_open


class _ReadAhead:
    """paho's socket: reads READ_AHEAD bytes at a time, gives QoS 0 PUBLISH packets to
    `intake` as it splits them off, and serves everything else to paho's small reads."""

    def __init__(self, sock: paho.SocketLike, intake: Intake) -> None:
        self._sock = sock
        self._intake = intake
        self._unsplit = bytearray()  # read, not yet a whole packet
        self._for_paho = bytearray()  # whole packets, in order, that paho is to read
        self.reads = 0  # recv calls on the socket itself (tests/test_intake.py counts them)

    def recv(self, size: int) -> bytes:
        if not self._for_paho:
            # Raises BlockingIOError (or ssl.SSLWantReadError) when nothing is there, as paho expects.
            data = self._sock.recv(READ_AHEAD)
            self.reads += 1
            if not data:
                return data  # the connection closed
            self._unsplit += data
            self._split()
            if not self._for_paho:
                # All taken (or a packet not read whole yet): nothing for paho this time.
                # The event loop calls again while the socket has more.
                raise BlockingIOError
        chunk = bytes(self._for_paho[:size])
        del self._for_paho[:size]  # cheap: a bytearray drops its head without moving the rest
        return chunk

    def _split(self) -> None:
        """Move every whole packet off `_unsplit`: to `intake` or to paho (MQTT 3.1.1 framing,
        as client() asks for; 5.0 would put properties between topic and payload)."""
        data, at, end = self._unsplit, 0, len(self._unsplit)
        while True:
            # Fixed header: type and flags, then the remaining length in 1-4 bytes of 7 bits.
            length, shift, cursor = 0, 0, at + 1
            while cursor < end and shift < 28:
                byte = data[cursor]
                cursor += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            else:
                if shift < 28:  # the length is not all read yet
                    break
                self._for_paho += data[at:]  # not MQTT: paho reports it and drops the connection
                at = end
                break
            packet_end = cursor + length
            if packet_end > end:
                break  # the rest of this packet is still on its way
            # PUBLISH (type 3) at QoS 0 (flag bits 1-2 clear): topic length, topic, payload.
            if data[at] & 0xF6 == 0x30 and length >= 2:
                topic_end = cursor + 2 + (data[cursor] << 8 | data[cursor + 1])
                if topic_end <= packet_end and self._took(
                    data[cursor + 2 : topic_end], data[topic_end:packet_end]
                ):
                    at = packet_end
                    continue
            self._for_paho += data[at:packet_end]
            at = packet_end
        del data[:at]

    def _took(self, topic: bytearray, payload: bytearray) -> bool:
        try:
            name = topic.decode()
        except UnicodeDecodeError:
            return False  # paho's, then: it drops the message (see on_message)
        try:
            return self._intake(name, bytes(payload))
        except Exception:  # raised through paho, it would end the connection
            log.exception("intake failed on a message on %s; dropped it", name[:200])
            return True

    def pending(self) -> int:
        """Bytes for paho not yet read; aiomqtt keeps paho reading while there are any."""
        inner = getattr(self._sock, "pending", None)
        return len(self._for_paho) + (inner() if inner is not None else 0)

    def send(self, buffer: bytes | bytearray) -> int:
        return self._sock.send(buffer)

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)


class Publisher:
    """One broker connection; `publish` raises PublishError for the message that failed."""

    def __init__(self, mqtt: aiomqtt.Client, url: urls.BrokerUrl) -> None:
        self._mqtt = mqtt
        self._url = url

    async def publish(self, topic: str, payload: bytes) -> None:
        try:
            await self._mqtt.publish(topic, payload, qos=1, retain=True)
        except aiomqtt.MqttError as exc:
            raise errors.PublishError(f"broker {self._url} did not acknowledge {topic}: {exc}") from exc
        log.info("published %d bytes retained to %s", len(payload), topic)


@asynccontextmanager
async def connect(url: urls.BrokerUrl) -> AsyncIterator[Publisher]:
    try:
        async with client(url) as mqtt:
            yield Publisher(mqtt, url)
    except aiomqtt.MqttError as exc:
        raise errors.PublishError(f"cannot reach broker {url}: {exc}") from exc


async def publish_retained(url: urls.BrokerUrl, messages: Iterable[tuple[str, bytes]]) -> None:
    """Publish each (topic, payload) retained at QoS 1; raise PublishError on the first failure."""
    async with connect(url) as publisher:
        for topic, payload in messages:
            await publisher.publish(topic, payload)
