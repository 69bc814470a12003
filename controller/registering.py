"""Registration: answer join requests, finish operators' decisions, push rights to the broker.

`decide` is the whole policy, pure: given a request, its token, and what the
registry already holds under that name, it returns the outcome. A device that
asks again with the same key (its reply was lost, it restarted while
waiting) gets the same answer again rather than a refusal, so joining is
safe to retry; a different device asking for a taken name is refused.

`Registrar` does the I/O, in the controller's process:

- `handle` answers one request: an approval creates the cluster and its
  credential, pushes the credential to the broker *before* replying (so the
  agent can log in the moment it reads the reply), and sends the grant
  sealed to the agent's key;
- `sweep`, every `interval`, picks up what the CLI wrote to the registry:
  approvals and denials of held requests, revocations, expired or used-up
  tokens, and any broker change not yet applied (a controller that was down
  catches up here).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from controller import identities, tokens
from controller.identities import Identities, JoinRequest, RequestStatus
from controller.security import BrokerSecurity
from wire import errors as wire_errors
from wire import keys, registration, rights, topics

log = logging.getLogger(__name__)

Outcome = registration.Outcome
Send = Callable[[str, bytes], Awaitable[None]]
"""(topic, payload): publish one reply (QoS 1, not retained)."""

# Requests answered at once; more wait, so a join storm cannot swamp SQLite or the broker.
CONCURRENT_REQUESTS = 32


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    message: str
    consume: bool = False  # counts as one use of the token


def decide(
    request: registration.Request,
    *,
    token: tokens.Token | None,
    registered: identities.Registered | None,
    held: JoinRequest | None,
    now: float,
) -> Decision:
    name = request.name
    why = tokens.refusal(token, request.secret, now)
    if token is None or not tokens.secret_matches(request.secret, token.secret_hash):
        return Decision(Outcome.REFUSED, why or "the join token is not valid")
    if registered is not None:
        if registered.revoked:
            return Decision(Outcome.REFUSED, f"cluster {name!r} was revoked; join under another name")
        if registered.public_key != request.public_key:
            return Decision(
                Outcome.REFUSED, f"the name {name!r} is taken in this fleet; choose another --name"
            )
        if registered.group != token.group:
            return Decision(Outcome.REFUSED, f"cluster {name!r} is registered in group {registered.group!r}")
        return Decision(Outcome.APPROVED, f"cluster {name!r} registered again (same device key)")
    if held is not None and held.status is not RequestStatus.DENIED and held.public_key != request.public_key:
        return Decision(
            Outcome.REFUSED, f"the name {name!r} is taken (a join request for it waits for approval)"
        )
    if held is not None and held.public_key == request.public_key:
        if held.status is RequestStatus.DENIED:
            return Decision(Outcome.DENIED, f"an operator denied the join request for {name!r}")
        if held.status is RequestStatus.PENDING:
            return Decision(Outcome.PENDING, _waiting(name))
        if held.status is RequestStatus.APPROVED:
            return Decision(Outcome.APPROVED, f"cluster {name!r} approved")
    if why is not None:
        return Decision(Outcome.REFUSED, why)
    if token.approval is tokens.Approval.MANUAL:
        return Decision(Outcome.PENDING, _waiting(name), consume=True)
    return Decision(Outcome.APPROVED, f"cluster {name!r} registered", consume=True)


def _waiting(name: str) -> str:
    return f"waiting for an operator: edgefleet clusters approve {name} (or deny {name})"


class Registrar:
    def __init__(
        self,
        registry: Identities,
        key: keys.SigningKey,
        security: BrokerSecurity,
        space: topics.Topics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.key = key
        self.security = security
        self.space = space
        self.clock = clock
        self.refused = 0
        self._flushing = asyncio.Lock()
        self._slots = asyncio.Semaphore(CONCURRENT_REQUESTS)
        self._told: set[tuple[str, RequestStatus]] = set()  # (name, status) already sent to the agent
        self._answering: set[str] = set()  # client ids whose request is being answered

    async def flush(self) -> None:
        """Apply every queued broker change, oldest first; leave any that fail queued."""
        async with self._flushing:
            changes = self.registry.changes()
            if not changes:
                return
            await self.security.apply(changes)
            for change in changes:
                self.registry.change_done(change.seq)

    async def handle(self, client_id: str, payload: bytes, send: Send) -> None:
        if client_id in self._answering:
            return  # the same client asking again while its first request is answered: one answer
        self._answering.add(client_id)
        try:
            async with self._slots:
                await self._handle(client_id, payload, send)
        finally:
            self._answering.discard(client_id)

    async def _handle(self, client_id: str, payload: bytes, send: Send) -> None:
        try:
            request = registration.decode_request(payload)
        except wire_errors.WireError as exc:
            # Without a well-formed key there is nothing to bind or seal a reply to.
            self.refused += 1
            log.info("unreadable join request from %s: %s", client_id, exc)
            return
        sent = self.registry.sent_reply(request.name, client_id)
        held_before = self.registry.request(request.name)
        if sent is not None and held_before is not None and held_before.public_key == request.public_key:
            # Its approval crossed its repeated request: the same answer, not a new password
            # that would leave the device holding a stale one.
            await send(self.space.register_reply(client_id), sent)
            return
        now = self.clock()
        token = self.registry.token(request.token_id)
        decision = decide(
            request,
            token=token,
            registered=self.registry.registered(request.name),
            held=self.registry.request(request.name),
            now=now,
        )
        held = JoinRequest(
            name=request.name,
            client_id=client_id,
            token_id=request.token_id,
            group=token.group if token is not None else "",
            public_key=request.public_key,
            status=RequestStatus.PENDING,
            received_at=now,
            labels={**(token.labels if token else {}), **request.labels},
            facts=request.facts,
        )
        if decision.outcome is Outcome.REFUSED:
            self.refused += 1
            log.info("join request %s from %s refused: %s", request.name, client_id, decision.message)
            reply = registration.Reply(decision.outcome, decision.message)
        elif decision.outcome is Outcome.PENDING:
            self.registry.hold(held, consume=decision.consume)
            log.info("join request %s from %s held for approval", request.name, client_id)
            reply = registration.Reply(decision.outcome, decision.message)
        elif decision.outcome is Outcome.DENIED:
            reply = registration.Reply(decision.outcome, decision.message)
        else:
            await self._approve(held, consume=decision.consume, message=decision.message, send=send)
            return
        await send(
            self.space.register_reply(client_id),
            registration.seal_reply(reply, key=self.key, client_id=client_id, recipient=request.public_key),
        )

    async def _approve(self, request: JoinRequest, *, consume: bool, message: str, send: Send) -> None:
        """Register `request`, make the broker know the credential, then send the sealed grant."""
        password = tokens.new_secret()
        self.registry.register(request, password, consume=consume)
        await self.flush()  # the broker knows the credential before the agent learns it
        log.info("cluster %s registered in %s", request.name, request.group)
        grant = registration.Grant(
            cluster=request.name,
            group=self.registry.topic_root(request.group),
            labels=dict(request.labels),
            username=identities.cluster_username(request.name),
            password=password,
            trusted_keys=(self.key.verify_key.to_pem().decode(),),
        )
        sealed = registration.seal_reply(
            registration.Reply(Outcome.APPROVED, message, grant),
            key=self.key,
            client_id=request.client_id,
            recipient=request.public_key,
        )
        self.registry.save_reply(request.name, request.client_id, sealed)
        await send(self.space.register_reply(request.client_id), sealed)

    async def sweep(self, send: Send, clear: Callable[[str, str], Awaitable[None]]) -> None:
        """Finish what the CLI decided; `clear(root, name)` empties a revoked cluster's retained topics."""
        for request in self.registry.requests(RequestStatus.APPROVED):
            await self._approve(
                request, consume=False, message=f"cluster {request.name!r} approved", send=send
            )
        for request in self.registry.requests(RequestStatus.DENIED):
            if (request.name, RequestStatus.DENIED) in self._told:
                continue
            reply = registration.Reply(
                Outcome.DENIED, f"an operator denied the join request for {request.name!r}"
            )
            await send(
                self.space.register_reply(request.client_id),
                registration.seal_reply(
                    reply, key=self.key, client_id=request.client_id, recipient=request.public_key
                ),
            )
            self._told.add((request.name, RequestStatus.DENIED))
        retired = self.registry.retire_tokens(self.clock())
        if retired:
            log.info("join token(s) expired or used up: %s", ", ".join(retired))
        removals = [
            c
            for c in self.registry.changes()
            if c.action is identities.ChangeAction.REMOVE and c.role is rights.Role.CLUSTER and c.cluster
        ]
        await self.flush()
        for change in removals:
            registered = self.registry.registered(change.cluster or "")
            if registered is not None:
                await clear(self.registry.topic_root(registered.group), registered.name)
                log.info("cluster %s revoked: disconnected, credentials and status removed", registered.name)
