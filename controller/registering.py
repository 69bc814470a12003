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
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from controller import errors, identities, tokens
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
    if token is None or not tokens.secret_matches(request.secret, token.secret_hash):
        return Decision(Outcome.REFUSED, tokens.INVALID)
    # Asking again never needs a use left (it was counted the first time), but always
    # a token that still counts: a revoked or expired one ends every path here.
    if (lapsed := tokens.lapsed(token, now)) is not None:
        return Decision(Outcome.REFUSED, lapsed)
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
    if held is not None and held.status is not RequestStatus.DENIED:
        if held.public_key != request.public_key:
            return Decision(
                Outcome.REFUSED, f"the name {name!r} is taken (a join request for it waits for approval)"
            )
        if held.token_id != request.token_id:
            # The request was held (or approved) for one token's group: another token
            # must not move it, let alone into a group the operator never saw.
            return Decision(
                Outcome.REFUSED, f"a join request for {name!r} waits under another token; use that one"
            )
        if held.status is RequestStatus.PENDING:
            return Decision(Outcome.PENDING, _waiting(name))
        if held.status is RequestStatus.APPROVED:
            return Decision(Outcome.APPROVED, f"cluster {name!r} approved")
    if held is not None and held.public_key == request.public_key and held.status is RequestStatus.DENIED:
        return Decision(Outcome.DENIED, f"an operator denied the join request for {name!r}")
    if (why := tokens.refusal(token, request.secret, now)) is not None:
        return Decision(Outcome.REFUSED, why)  # used up
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
        self._names: dict[str, asyncio.Lock] = {}  # one decision at a time per cluster name

    @contextlib.asynccontextmanager
    async def _deciding(self, name: str) -> AsyncIterator[None]:
        """Serialise everything that decides about `name`: an answer, an operator's approval."""
        lock = self._names.setdefault(name, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._names.get(name) is lock:
                del self._names[name]

    async def flush(self) -> None:
        """Carry every queued broker change to the broker, oldest first, one at a time.

        A change that no longer matches the registry (an account added for a
        cluster or token revoked since) is dropped rather than applied; one
        that fails stays queued for the next flush and does not hold up the
        others (a revocation must not wait behind a failing addition)."""
        async with self._flushing:
            for change in self.registry.changes():
                if not self._still_wanted(change):
                    self.registry.change_done(change.seq)
                    continue
                try:
                    await self.security.apply([change])
                except errors.SecurityError as exc:
                    log.error(
                        "broker change %s %s not applied (retried later): %s",
                        change.action.value,
                        change.username,
                        exc,
                    )
                    continue
                self.registry.change_done(change.seq)

    def _still_wanted(self, change: identities.BrokerChange) -> bool:
        if change.action is identities.ChangeAction.REMOVE:
            return True
        if change.role is rights.Role.CLUSTER:
            registered = self.registry.registered(change.cluster or "")
            return registered is not None and not registered.revoked
        if change.role is rights.Role.BOOTSTRAP:
            token_id = registration.token_of(change.username)
            token = self.registry.token(token_id) if token_id is not None else None
            return token is not None and token.revoked_at is None
        return True

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
        async with self._deciding(request.name):
            reply = await self._answer(client_id, request, send)
        if reply is not None:
            sealed = registration.seal_reply(
                reply, key=self.key, client_id=client_id, recipient=request.public_key
            )
            await send(self.space.register_reply(client_id), sealed)

    async def _answer(
        self, client_id: str, request: registration.Request, send: Send
    ) -> registration.Reply | None:
        """Decide and act; return the reply to seal, or None when an approval was sent already."""
        stored = self.registry.request(request.name)
        registered = self.registry.registered(request.name)
        sent = self.registry.sent_reply(request.name, client_id)
        if (
            sent is not None
            and stored is not None
            and stored.public_key == request.public_key
            and registered is not None
            and not registered.revoked
        ):
            # Its approval crossed its repeated request: the same answer, not a new password
            # that would leave the device holding a stale one.
            await send(self.space.register_reply(client_id), sent)
            return None
        now = self.clock()
        token = self.registry.token(request.token_id)
        decision = decide(request, token=token, registered=registered, held=stored, now=now)
        if decision.outcome is Outcome.REFUSED:
            self.refused += 1
            log.info("join request %s from %s refused: %s", request.name, client_id, decision.message)
            return registration.Reply(decision.outcome, decision.message)
        if decision.outcome is Outcome.DENIED:
            return registration.Reply(decision.outcome, decision.message)
        assert token is not None  # decide refuses without one
        incoming = JoinRequest(
            name=request.name,
            client_id=client_id,
            token_id=request.token_id,
            group=token.group,
            public_key=request.public_key,
            status=RequestStatus.PENDING,
            received_at=now,
            labels={**token.labels, **request.labels},
            facts=request.facts,
        )
        if decision.outcome is Outcome.PENDING:
            self.registry.hold(incoming, consume=decision.consume)
            log.info("join request %s from %s held for approval", request.name, client_id)
            return registration.Reply(decision.outcome, decision.message)
        # An operator's approval stands for the request it saw, not for what this one asks.
        basis = stored if stored is not None and stored.status is RequestStatus.APPROVED else incoming
        try:
            await self._approve(
                dataclasses.replace(basis, client_id=client_id),
                consume=decision.consume,
                message=decision.message,
                send=send,
            )
        except errors.ControllerError as exc:  # revoked meanwhile
            self.refused += 1
            return registration.Reply(Outcome.REFUSED, str(exc))
        return None

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
        for approved in self.registry.requests(RequestStatus.APPROVED):
            async with self._deciding(approved.name):
                current = self.registry.request(approved.name)
                if current is None or current.status is not RequestStatus.APPROVED:
                    continue  # answered meanwhile
                try:
                    await self._approve(
                        current, consume=False, message=f"cluster {current.name!r} approved", send=send
                    )
                except errors.ControllerError as exc:
                    log.warning("approval of %s not completed: %s", current.name, exc)
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
            log.info("join token(s) expired: %s", ", ".join(retired))
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
