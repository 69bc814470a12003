"""Publishing retained messages and waiting for the broker to take them.

QoS 1 and retained: the broker acknowledges each message (aiomqtt's publish
returns after PUBACK), so the caller learns per topic whether it landed, and
an agent that connects later, or reconnects after a week offline, still gets
the latest one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import aiomqtt

from controller import errors
from wire import urls

log = logging.getLogger(__name__)

# How long one publish may wait for its PUBACK before it counts as failed.
PUBLISH_TIMEOUT = 10.0


# Publishes in flight on one connection before aiomqtt warns: the controller answers
# up to registering.CONCURRENT_REQUESTS joins at once, each with a publish.
PENDING_WARNING = 100


def client(
    url: urls.BrokerUrl,
    *,
    identifier: str | None = None,
    will: aiomqtt.Will | None = None,
    queue_type: type[asyncio.Queue[aiomqtt.Message]] | None = None,
) -> aiomqtt.Client:
    """A client for `url`; `queue_type` receives every incoming message (aiomqtt's hook)."""
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
        queue_type=queue_type,
    )
    mqtt.pending_calls_threshold = PENDING_WARNING
    return mqtt


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
