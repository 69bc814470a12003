"""Making the broker enforce the registry: credentials in, revoked clients out.

The registry (controller.identities) decides who exists; a `BrokerSecurity`
carries each queued change to the broker:

- `Embedded`: the in-process amqtt broker reads credentials straight from the
  registry through `RegistryAuthority`, so an added credential works at once;
  a removal disconnects whoever is logged in with it.
- `controller.dynsec.Dynsec`: Mosquitto's dynamic-security plugin, driven over
  `$CONTROL/dynamic-security/v1`.
- `Unenforced`: a broker that enforces nothing (development against an open
  broker); changes are logged and dropped, and the controller says so loudly
  at start.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from controller import identities, tokens
from controller.identities import BrokerChange, ChangeAction, Identities
from wire import errors as wire_errors
from wire import names, registration, rights

log = logging.getLogger(__name__)


class BrokerSecurity(Protocol):
    async def apply(self, changes: Sequence[BrokerChange]) -> None:
        """Make the broker match `changes`, in order; raise SecurityError if it cannot."""


class Unenforced:
    async def apply(self, changes: Sequence[BrokerChange]) -> None:
        for change in changes:
            log.debug("broker enforces nothing; not applied: %s %s", change.action.value, change.username)


class Embedded:
    def __init__(self, disconnect: Callable[[str], Awaitable[int]]) -> None:
        self._disconnect = disconnect

    async def apply(self, changes: Sequence[BrokerChange]) -> None:
        for change in changes:
            if change.action is ChangeAction.REMOVE:
                closed = await self._disconnect(change.username)
                log.info("removed broker account %s (%d connection(s) closed)", change.username, closed)


class RegistryAuthority:
    """broker.auth.Authority over the registry: who is connecting, from its credentials.

    - the controller: its own password (identities.controller_password);
    - a bootstrap client: `join-<token id>` with the token secret, on a token
      not revoked (expiry and use counts are answered in the registration
      reply, where the agent can be told which it was); client id `join-...`;
    - a cluster: `cluster-<name>` with its password, connecting as
      `edgefleet-agent-<name>` only, so nobody can take over its session.
    """

    def __init__(self, registry: Identities) -> None:
        self._registry = registry

    def authenticate(
        self, username: str | None, password: str | None, client_id: str
    ) -> rights.Principal | None:
        if not username or password is None:
            return None
        token_id = registration.token_of(username)
        if token_id is not None:
            token = self._registry.token(token_id)
            if (
                token is None
                or token.revoked_at is not None
                or not tokens.secret_matches(password, token.secret_hash)
            ):
                return None
            try:
                names.cluster(client_id)
            except wire_errors.InvalidName:
                return None
            if not client_id.startswith(registration.BOOTSTRAP_PREFIX):
                return None
            return rights.Principal(rights.Role.BOOTSTRAP, username, client_id=client_id)
        credential = self._registry.credential(username)
        if credential is None or not tokens.secret_matches(password, credential.password_hash):
            return None
        if credential.role is rights.Role.CONTROLLER:
            return rights.Principal(rights.Role.CONTROLLER, username, client_id=client_id)
        if credential.cluster is None or client_id != identities.agent_client_id(credential.cluster):
            return None
        registered = self._registry.registered(credential.cluster)
        if registered is None or registered.revoked:
            return None
        root = self._registry.topic_root(registered.group)
        return rights.Principal(rights.Role.CLUSTER, username, client_id, credential.cluster, root)
