"""The embedded amqtt broker: MQTT 3.1.1 over TCP, in the caller's event loop.

For development and small fleets, so `edgefleet server` works with nothing
else installed. Port 0 asks the OS for a free port; the bound address is
read back from the listening socket and returned, so tests and the demo never
race for a port.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker

from wire import urls

log = logging.getLogger(__name__)


class _Broker(Broker):  # type: ignore[misc]  # amqtt is untyped
    """amqtt's broker with one defect mended.

    amqtt 0.12 replays, to every client that connects, the retained messages
    matching *every other client's* subscriptions, iterating its subscription
    table while it awaits. Two consequences: a client receives retained
    messages it never subscribed to (a device would see other groups'
    topics), and a subscription made meanwhile crashes the new client's
    session handler ("dictionary changed size during iteration"), leaving a
    half-open connection. Here retained messages only go to a session that
    holds the subscription, and the replay no longer awaits, so neither
    happens.
    """

    async def _publish_retained_messages_for_subscription(self, subscription: Any, session: Any) -> None:
        subscribers = self._subscriptions.get(subscription[0], [])
        if not any(subscriber is session for subscriber, _ in subscribers):
            return
        await super()._publish_retained_messages_for_subscription(subscription, session)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @property
    def url(self) -> urls.BrokerUrl:
        return urls.BrokerUrl(self.host, self.port)


def _config(host: str, port: int) -> dict[str, object]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        # Anonymous until registration and ACLs land; no $SYS publisher, no packet log.
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


@asynccontextmanager
async def serve(host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[Endpoint]:
    """Run the broker until the block exits; yield where it listens."""
    broker = _Broker(_config(host, port))
    await broker.start()
    try:
        # amqtt keeps its asyncio servers private; this is the one place that reads them.
        server = broker._servers["default"].instance
        bound_host, bound_port = server.sockets[0].getsockname()[:2]
        endpoint = Endpoint(bound_host, bound_port)
        log.info("embedded broker listening on %s", endpoint.url)
        yield endpoint
    finally:
        await broker.shutdown()
