"""amqtt plugins that make the embedded broker enforce edgefleet's rights.

`Authenticator` asks an `Authority` (the controller's credential store,
handed in by whoever starts the broker) who a connecting client is, and
refuses anyone it does not know. `allowed` then permits each publish,
subscribe and delivery only as wire.rights says for that principal; the
broker (broker.embedded) calls it directly rather than through amqtt's topic
plugins, because it must not yield to the event loop (see there).

One gap of amqtt is closed here: it publishes a client's last will without
checking the will's topic, so a client could otherwise leave a will on
another cluster's presence topic. The will topic is checked at connect and a
client whose will it may not publish is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from amqtt.contexts import Action as AmqttAction
from amqtt.plugins.base import BaseAuthPlugin

from wire import rights, topics

log = logging.getLogger(__name__)

_PRINCIPAL = "edgefleet_principal"  # attribute set on an amqtt Session once authenticated
_ACTIONS = {
    AmqttAction.PUBLISH: rights.Action.PUBLISH,
    AmqttAction.SUBSCRIBE: rights.Action.SUBSCRIBE,
    AmqttAction.RECEIVE: rights.Action.RECEIVE,
}


class Authority(Protocol):
    """Who a client is, from the credentials it presents; None refuses it."""

    def authenticate(
        self, username: str | None, password: str | None, client_id: str
    ) -> rights.Principal | None: ...


def principal_of(session: Any) -> rights.Principal | None:
    found = getattr(session, _PRINCIPAL, None)
    return found if isinstance(found, rights.Principal) else None


class Authenticator(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    @dataclass
    class Config:
        authority: Any = None
        space: Any = None

    async def authenticate(self, *, session: Any) -> bool:
        if principal_of(session) is not None:
            return True  # already authenticated for this very CONNECT (broker.embedded)
        authority: Authority = self.config.authority
        space: topics.Topics = self.config.space
        password = session.password
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        try:
            principal = authority.authenticate(session.username, password, session.client_id or "")
        except Exception:  # a failing store refuses the client; it must not take the broker down
            log.exception("cannot authenticate %s", session.client_id)
            return False
        if principal is None:
            log.info("refused client %s (user %s)", session.client_id, session.username)
            return False
        if session.will_flag and not rights.allows(
            principal, rights.Action.PUBLISH, session.will_topic or "", space
        ):
            log.info("refused client %s: may not leave a will on %s", session.client_id, session.will_topic)
            return False
        setattr(session, _PRINCIPAL, principal)
        return True


def allowed(session: Any, topic: str | None, action: AmqttAction, space: topics.Topics) -> bool:
    """Whether the client of `session` may do `action` on `topic`; never awaits."""
    principal = principal_of(session)
    if principal is None or topic is None or action not in _ACTIONS:
        return False
    verdict = rights.allows(principal, _ACTIONS[action], topic, space)
    if not verdict and action is not AmqttAction.RECEIVE:
        log.info("denied %s %s on %s", principal.username, action, topic[:200])
    return verdict
