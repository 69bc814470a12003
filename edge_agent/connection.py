"""The agent's broker connection: dial out, announce, subscribe, reconnect forever.

The only place that reconnects. Devices sit behind NAT on links that drop, so
the agent only ever connects out, with a clean session: on every (re)connect
the broker hands over the *retained* message of each bundle topic, which is
the latest generation; whatever was published while the device was away is
never replayed one by one. Waits between attempts follow edge_agent.backoff.

Each connection attempt takes a new session number. The last will (sent by
the broker when the link dies without a goodbye) and the birth announcement
both carry it, so consumers can tell a late will of an old connection from
the death of the current one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import aiomqtt

from edge_agent.backoff import Backoff
from wire import agent_config, urls

log = logging.getLogger(__name__)

Will = Callable[[int], tuple[str, bytes]]
"""session -> (topic, payload) of the retained last will for that session."""

# A goodbye that cannot be sent within this is left to the broker's will.
GOODBYE_TIMEOUT = 2.0

OnConnect = Callable[[aiomqtt.Client, int], Awaitable[None]]
"""Called with the connected client and its session before messages flow."""


def client(
    url: urls.BrokerUrl,
    identifier: str,
    *,
    keepalive: int = agent_config.DEFAULT_KEEPALIVE,
    will: aiomqtt.Will | None = None,
) -> aiomqtt.Client:
    """An MQTT 3.1.1 clean-session client for `url` (its credentials and CA), as the agent dials."""
    return aiomqtt.Client(
        url.host,
        url.port,
        identifier=identifier,
        username=url.username,
        password=url.password,
        protocol=aiomqtt.ProtocolVersion.V311,
        tls_params=aiomqtt.TLSParameters(ca_certs=url.ca_file) if url.tls else None,
        keepalive=keepalive,
        clean_session=True,
        will=will,
    )


async def messages(
    url: urls.BrokerUrl,
    filters: Sequence[str],
    *,
    identifier: str,
    backoff: Backoff | None = None,
    keepalive: int = agent_config.DEFAULT_KEEPALIVE,
    next_session: Callable[[], int] | None = None,
    will: Will | None = None,
    on_connect: OnConnect | None = None,
    on_goodbye: OnConnect | None = None,
) -> AsyncIterator[tuple[str, bytes]]:
    """Yield (topic, payload) from `filters` across any number of reconnects."""
    backoff = backoff or Backoff()
    if next_session is None:
        counter = itertools.count(1)
        next_session = lambda: next(counter)  # noqa: E731
    while True:
        session = next_session()
        last_will = None
        if will is not None:
            topic, payload = will(session)
            last_will = aiomqtt.Will(topic, payload, qos=1, retain=True)
        try:
            async with client(url, identifier, keepalive=keepalive, will=last_will) as mqtt:
                for topic_filter in filters:
                    await mqtt.subscribe(topic_filter, qos=1)
                if on_connect is not None:
                    await on_connect(mqtt, session)
                log.info("connected to %s as %s (session %d)", url, identifier, session)
                backoff.reset()
                try:
                    async for message in mqtt.messages:
                        payload = message.payload
                        yield message.topic.value, payload if isinstance(payload, bytes) else b""
                except (asyncio.CancelledError, GeneratorExit):
                    if on_goodbye is not None:
                        # Say goodbye while the link is up, so nobody waits for the will.
                        with contextlib.suppress(Exception):
                            async with asyncio.timeout(GOODBYE_TIMEOUT):
                                await on_goodbye(mqtt, session)
                    raise
        except aiomqtt.MqttError as exc:
            delay = backoff.next_delay()
            if refused(exc):
                log.error(
                    "broker %s refuses %s's credentials (%s): revoked, or not registered on this broker; "
                    "trying again in %.1fs",
                    url,
                    url.username or "anonymous",
                    exc,
                    delay,
                )
            else:
                log.warning("broker %s: %s; reconnecting in %.1fs", url, exc, delay)
            await asyncio.sleep(delay)


# CONNACK codes of a broker that will not take these credentials (3.1.1: 4, 5; MQTT 5: 134, 135).
_REFUSED_CODES = {4, 5, 134, 135}


def refused(exc: aiomqtt.MqttError) -> bool:
    """Whether the broker turned these credentials away (retrying the same ones will not help)."""
    code = getattr(exc, "rc", None)
    return isinstance(exc, aiomqtt.MqttCodeError) and getattr(code, "value", code) in _REFUSED_CODES
