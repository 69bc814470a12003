"""The agent's broker connection: dial out, subscribe, and reconnect forever.

The only place that reconnects. Devices sit behind NAT on links that drop, so
the agent only ever connects out, with a clean session: on every (re)connect
the broker hands over the *retained* message of each bundle topic, which is
the latest generation; whatever was published while the device was away is
never replayed one by one. Waits between attempts follow edge_agent.backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

import aiomqtt

from edge_agent.backoff import Backoff
from wire import urls

log = logging.getLogger(__name__)

# Seconds between MQTT keepalives: a dead link is noticed within ~1.5x this.
KEEPALIVE = 30


async def messages(
    url: urls.BrokerUrl,
    filters: Sequence[str],
    *,
    identifier: str,
    backoff: Backoff | None = None,
) -> AsyncIterator[tuple[str, bytes]]:
    """Yield (topic, payload) from `filters` across any number of reconnects."""
    backoff = backoff or Backoff()
    while True:
        try:
            async with aiomqtt.Client(
                url.host,
                url.port,
                identifier=identifier,
                username=url.username,
                password=url.password,
                protocol=aiomqtt.ProtocolVersion.V311,
                tls_params=aiomqtt.TLSParameters(ca_certs=url.ca_file) if url.tls else None,
                keepalive=KEEPALIVE,
                clean_session=True,
            ) as client:
                for topic_filter in filters:
                    await client.subscribe(topic_filter, qos=1)
                log.info("connected to %s as %s, subscribed to %s", url, identifier, ", ".join(filters))
                backoff.reset()
                async for message in client.messages:
                    payload = message.payload
                    yield message.topic.value, payload if isinstance(payload, bytes) else b""
        except aiomqtt.MqttError as exc:
            delay = backoff.next_delay()
            log.warning("broker %s: %s; reconnecting in %.1fs", url, exc, delay)
            await asyncio.sleep(delay)
