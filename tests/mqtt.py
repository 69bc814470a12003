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
    tls = aiomqtt.TLSParameters(ca_certs=url.ca_file) if url.tls else None
    async with asyncio.timeout(timeout):  # connecting included: a wedged broker must not hang a test
        async with aiomqtt.Client(
            url.host,
            url.port,
            username=url.username,
            password=url.password,
            protocol=aiomqtt.ProtocolVersion.V311,
            tls_params=tls,
        ) as client:
            await client.subscribe(topic_filter, qos=1)
            async for message in client.messages:
                payload = message.payload
                found[message.topic.value] = payload if isinstance(payload, bytes) else b""
                if len(found) >= expect:
                    return found
    return found
