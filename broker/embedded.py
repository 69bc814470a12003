"""The embedded amqtt broker: MQTT 3.1.1 over TCP or TLS, in the caller's event loop.

For development and small fleets, so `edgefleet server` works with nothing
else installed. Port 0 asks the OS for a free port; the bound address is
read back from the listening socket and returned, so tests and the demo never
race for a port.

Given an `Authority` it enforces edgefleet's rights (broker.auth): only known
clients connect, and each may only touch its own topics. Without one it is
open to anyone, which only tests of unrelated parts and loopback experiments
want.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from amqtt.errors import MQTTError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler

from broker import auth
from wire import topics, urls

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

    # Set by `serve` when an Authority is given: rights are checked then.
    _space: topics.Topics | None = None

    async def _initialize_client_session(
        self, reader: Any, writer: Any, remote_address: str, remote_port: int
    ) -> tuple[Any, Any]:
        """Authenticate a CONNECT before it may touch any session.

        amqtt looks the client id up first and only then authenticates: a
        clean-session CONNECT deletes the subscriptions of whoever holds that
        id, and a persistent one copies its will and username onto the
        connected session, which amqtt later publishes unchecked. Anyone who
        could reach the broker could silence or impersonate a cluster by its
        (public) name. Here a client is authenticated first, and a refused one
        gets its CONNACK and is closed without touching the session table.
        edgefleet's clients all use clean sessions; a persistent one is refused.
        """
        if self._space is None:
            opened: tuple[Any, Any] = await super()._initialize_client_session(
                reader, writer, remote_address, remote_port
            )
            return opened
        try:
            handler, session = await BrokerProtocolHandler.init_from_connect(
                reader, writer, self.plugins_manager
            )
        except MQTTError:
            await writer.close()
            raise
        if not session.client_id or not session.clean_session or not await self._authenticate(session, None):
            log.info("refused client %r from %s:%s", session.client_id, remote_address, remote_port)
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await writer.close()
            raise MQTTError(f"client {session.client_id!r} refused")
        await self._delete_session(session.client_id)  # an authenticated takeover, as MQTT says
        session.parent = 0
        return handler, session

    async def _topic_filtering(self, session: Any, topic: str, action: Any) -> bool:
        """edgefleet's rights, checked without awaiting anything.

        amqtt awaits this for every subscriber while it iterates its
        subscription table to broadcast a message; a check that yields lets a
        concurrent SUBSCRIBE change that table, and the broadcast fails
        ("dictionary changed size during iteration") and is lost."""
        if self._space is None:
            return True
        return auth.allowed(session, topic, action, self._space)

    async def disconnect(self, username: str) -> int:
        """Close every connection of `username`, without its will; return how many."""
        closed = 0
        for session, handler in list(self._sessions.values()):
            if session.username != username or handler is None or not session.transitions.is_connected():
                continue
            session.will_flag = False  # a revoked client leaves nothing behind
            await handler.stop()
            closed += 1
        return closed


@dataclass(frozen=True)
class Tls:
    """Server certificate and key (PEM files) for an mqtts:// listener."""

    certfile: Path
    keyfile: Path


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    tls: bool
    _broker: _Broker

    @property
    def url(self) -> urls.BrokerUrl:
        return urls.BrokerUrl(self.host, self.port, tls=self.tls)

    async def disconnect(self, username: str) -> int:
        """Disconnect every client that logged in as `username` (after its credential is gone)."""
        return await self._broker.disconnect(username)


def _config(
    host: str, port: int, authority: auth.Authority | None, space: topics.Topics, tls: Tls | None
) -> dict[str, object]:
    listener: dict[str, object] = {"type": "tcp", "bind": f"{host}:{port}"}
    if tls is not None:
        listener.update(ssl=True, certfile=str(tls.certfile), keyfile=str(tls.keyfile))
    plugins: dict[str, object]
    if authority is None:
        plugins = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
    else:
        plugins = {"broker.auth.Authenticator": {"authority": authority, "space": space}}
    # No $SYS publisher, no packet log: only the plugins above.
    return {"listeners": {"default": listener}, "plugins": plugins}


@asynccontextmanager
async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    authority: auth.Authority | None = None,
    space: topics.Topics | None = None,
    tls: Tls | None = None,
) -> AsyncIterator[Endpoint]:
    """Run the broker until the block exits; yield where it listens."""
    space = space or topics.Topics()
    broker = _Broker(_config(host, port, authority, space, tls))
    if authority is not None:
        broker._space = space
    await broker.start()
    try:
        # amqtt keeps its asyncio servers private; this is the one place that reads them.
        server = broker._servers["default"].instance
        bound_host, bound_port = server.sockets[0].getsockname()[:2]
        endpoint = Endpoint(bound_host, bound_port, tls is not None, broker)
        log.info(
            "embedded broker listening on %s (%s)",
            endpoint.url,
            "open to anyone" if authority is None else "edgefleet credentials and rights",
        )
        yield endpoint
    finally:
        await broker.shutdown()
