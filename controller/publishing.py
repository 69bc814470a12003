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

# What paho asks the socket for at once when it reads ahead (see _read_directly): about
# a hundred status messages, so one system call and one event-loop turn serve them all.
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
    """Give `intake` each message from paho's own callback, with paho reading ahead.

    The controller reads every retained status at once after a restart, so what the
    client costs per message bounds how fast it catches up. Measured reading 20,000
    retained messages from Mosquitto with an intake that does nothing (docs/benchmarks.md,
    "Status ingest"), CPU per message: iterating `client.messages` 61 µs; aiomqtt's
    queue hook, which wraps each paho message in an `aiomqtt.Message` and validates
    its `Topic`, 41-48 µs; paho's own callback 34-39 µs, most of the rest being paho's
    three `recv` calls per packet (type byte, length, rest) and an event-loop turn per
    packet; paho's callback with paho reading from 64 KB read ahead, 21-23 µs.

    Neither is aiomqtt's public API. What this relies on, pinned by
    tests/test_intake.py (which fails if either library changes it):
    - `mqtt._client` is the paho client, and its `on_message` is aiomqtt's, which
      wraps paho's message and queues it: we still call it for what `intake` leaves.
    - paho reads only through `_sock.recv`, and aiomqtt's reader calls paho's
      `loop_read` again while `_sock.pending()` is positive (it does so for TLS
      sockets, which buffer decrypted bytes the same way). Without that, bytes
      read ahead would wait for the next packet from the broker.
    Over TLS a read returns one TLS record, so one packet: the gain there is one
    `recv` per packet instead of three. aiomqtt applies `socket_options` (we set
    none) only to a plain socket, so it would skip them on this wrapper.
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
        client._sock = _ReadAhead(sock)
        opened(client, userdata, sock)

    paho_client.on_message = on_message
    paho_client.on_socket_open = on_socket_open


class _ReadAhead:
    """A socket whose `recv` reads READ_AHEAD bytes and serves paho's small reads from them."""

    def __init__(self, sock: paho.SocketLike) -> None:
        self._sock = sock
        self._ahead = bytearray()
        self.reads = 0  # recv calls on the socket itself (tests/test_intake.py counts them)

    def recv(self, size: int) -> bytes:
        if not self._ahead:
            # Raises BlockingIOError (or ssl.SSLWantReadError) when nothing is there, as paho expects.
            data = self._sock.recv(READ_AHEAD)
            self.reads += 1
            if len(data) <= size:
                return data  # all of it, or b"" for a closed connection
            self._ahead += data
        chunk = bytes(self._ahead[:size])
        del self._ahead[:size]  # cheap: a bytearray drops its head without moving the rest
        return chunk

    def pending(self) -> int:
        """Bytes read and not yet taken; aiomqtt keeps paho reading while there are any."""
        inner = getattr(self._sock, "pending", None)
        return len(self._ahead) + (inner() if inner is not None else 0)

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
