"""Reading what a broker holds, for assertions: a subscriber that collects retained messages."""

from __future__ import annotations

import asyncio

import aiomqtt

from wire import urls


async def retained(
    url: urls.BrokerUrl, topic_filter: str, *, expect: int, timeout: float = 10.0
) -> dict[str, bytes]:
    """Connect, subscribe, and return topic -> payload once `expect` retained messages arrived."""
    found: dict[str, bytes] = {}
    async with aiomqtt.Client(url.host, url.port, protocol=aiomqtt.ProtocolVersion.V311) as client:
        await client.subscribe(topic_filter, qos=1)
        async with asyncio.timeout(timeout):
            async for message in client.messages:
                payload = message.payload
                found[message.topic.value] = payload if isinstance(payload, bytes) else b""
                if len(found) >= expect:
                    return found
    return found
