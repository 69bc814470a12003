"""Joining a fleet: trade a join string for this cluster's own identity.

The agent logs in with the token's bootstrap account (it may only publish its
request and read its own reply), sends its name, labels, facts and a device
key, and waits. Nothing in a reply is believed before its signature checks
out against the controller fingerprint pinned in the join string; the grant
inside is sealed to the device key. On approval the identity (an agent
config with broker credentials and trusted keys) is written 0600 into the
state directory, where `edgefleet-agent run` finds it.

Retrying is safe: the device key is kept in the state directory, and the
controller answers a repeated request with the same key as it answered the
first (a lost reply, a restart while waiting for approval). A dropped link
while waiting reconnects and asks again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from edge_agent import connection, errors, store
from edge_agent.backoff import Backoff
from wire import agent_config, joining, registration, topics, urls
from wire import errors as wire_errors

log = logging.getLogger(__name__)

IDENTITY_FILE = "identity.yaml"
DEVICE_KEY_FILE = "device.key"
CA_FILE = "broker-ca.pem"
# A request is sent again while no answer comes (a controller starting or restarting
# misses it: requests are not retained): after 1 s, doubling up to this.
ASK_AGAIN = 30.0
FIRST_ASK_AGAIN = 1.0


class JoinRefused(errors.AgentError):
    """The controller (or the broker) will not let this device join; the message says why."""


class JoinDenied(JoinRefused):
    """An operator denied the request."""


@dataclass(frozen=True)
class Joined:
    config: agent_config.AgentConfig
    path: Path


def identity_path(state_dir: Path) -> Path:
    return state_dir / IDENTITY_FILE


def _device_key(state_dir: Path) -> x25519.X25519PrivateKey:
    path = state_dir / DEVICE_KEY_FILE
    try:
        return x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(path.read_text().strip()))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise errors.StateError(f"{path} is not a device key: {exc}") from exc
    key = x25519.X25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    store.write_atomic(path, raw.hex().encode())
    return key


def _public(key: x25519.X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _broker_url(join: joining.JoinString, state_dir: Path) -> urls.BrokerUrl:
    ca_file = None
    if join.ca_der is not None:
        pem = x509.load_der_x509_certificate(join.ca_der).public_bytes(serialization.Encoding.PEM)
        ca_file = str(state_dir / CA_FILE)
        store.write_atomic(Path(ca_file), pem)
    return urls.BrokerUrl.parse(join.broker, ca_file=ca_file)


def _bootstrap_login(url: urls.BrokerUrl, ticket: joining.JoinString) -> urls.BrokerUrl:
    """`url` logged in as the token's bootstrap account (the secret is its password)."""
    return dataclasses.replace(
        url, username=registration.bootstrap_username(ticket.token_id), password=ticket.secret
    )


async def join(
    text: str,
    *,
    name: str,
    state_dir: Path,
    labels: Mapping[str, str] | None = None,
    facts: Mapping[str, str] | None = None,
    backoff: Backoff | None = None,
    ask_again: float = ASK_AGAIN,
) -> Joined:
    """Register this device; return its identity once approved. Raises JoinRefused, JoinDenied."""
    try:
        ticket = joining.JoinString.parse(text)
    except wire_errors.WireError as exc:
        raise errors.ConfigError(str(exc)) from exc
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise errors.StateError(f"cannot create {state_dir}: {exc.strerror}") from exc
    key = _device_key(state_dir)
    url = _broker_url(ticket, state_dir)
    space = topics.Topics(ticket.topic_prefix)
    device_facts = {"architecture": platform.machine(), "os": platform.system().lower(), **(facts or {})}
    request = registration.Request(
        token_id=ticket.token_id,
        secret=ticket.secret,
        name=name,
        public_key=_public(key),
        labels=dict(labels or {}),
        facts=device_facts,
    )
    backoff = backoff or Backoff()
    while True:
        client_id = registration.bootstrap_client_id()
        try:
            grant = await _ask(url, ticket, client_id, request, key, space, ask_again)
        except aiomqtt.MqttCodeError as exc:
            if connection.refused(exc):
                raise JoinRefused(
                    f"the broker at {url} refused join token {ticket.token_id}: it is unknown, "
                    "revoked, expired or used up, or its secret is wrong (ask for a new join string)"
                ) from exc
            delay = backoff.next_delay()
            log.warning("broker %s: %s; asking again in %.1fs", url, exc, delay)
            await asyncio.sleep(delay)
            continue
        except aiomqtt.MqttError as exc:
            delay = backoff.next_delay()
            log.warning("broker %s: %s; asking again in %.1fs", url, exc, delay)
            await asyncio.sleep(delay)
            continue
        return _save(grant, ticket, url, space, state_dir)


async def _ask(
    url: urls.BrokerUrl,
    ticket: joining.JoinString,
    client_id: str,
    request: registration.Request,
    key: x25519.X25519PrivateKey,
    space: topics.Topics,
    ask_again: float,
) -> registration.Grant:
    async with connection.client(_bootstrap_login(url, ticket), client_id) as mqtt:
        await mqtt.subscribe(space.register_reply(client_id), qos=1)
        payload = registration.encode_request(request)
        await mqtt.publish(space.register(client_id), payload, qos=1)
        log.info("asked to join as %s; waiting for the controller", request.name)
        wait = min(FIRST_ASK_AGAIN, ask_again)
        while True:
            try:
                async with asyncio.timeout(wait):
                    message = await anext(mqtt.messages)
            except TimeoutError:
                await mqtt.publish(space.register(client_id), payload, qos=1)
                wait = min(wait * 2, ask_again)
                continue
            raw = message.payload if isinstance(message.payload, bytes) else b""
            try:
                reply = registration.open_reply(
                    raw, fingerprint=ticket.fingerprint, private_key=key, client_id=client_id
                )
            except wire_errors.UnknownKey as exc:
                raise JoinRefused(
                    f"refusing to register: the reply is not from the controller this join string "
                    f"names ({exc})"
                ) from exc
            except wire_errors.WireError as exc:
                # Not a reply to *this* request (or not genuine): nothing in it is used; keep waiting.
                log.warning("ignored a registration reply that does not verify: %s", exc)
                continue
            if reply.outcome is registration.Outcome.PENDING:
                log.info("%s", reply.message)
                continue
            if reply.outcome is registration.Outcome.DENIED:
                raise JoinDenied(reply.message)
            if reply.outcome is registration.Outcome.REFUSED or reply.grant is None:
                raise JoinRefused(reply.message)
            return reply.grant


def _save(
    grant: registration.Grant,
    ticket: joining.JoinString,
    url: urls.BrokerUrl,
    space: topics.Topics,
    state_dir: Path,
) -> Joined:
    config = agent_config.AgentConfig(
        cluster=grant.cluster,
        group=grant.group,
        broker=ticket.broker,
        trusted_keys=grant.trusted_keys,
        labels=dict(grant.labels),
        topic_prefix=space.prefix,
        state_dir=str(state_dir),
        ca_file=url.ca_file,
        username=grant.username,
        password=grant.password,
    )
    try:
        config.keyring()
    except wire_errors.WireError as exc:
        raise JoinRefused(f"the controller sent trusted keys that do not parse: {exc}") from exc
    path = identity_path(state_dir)
    text = yaml.safe_dump(agent_config.to_document(config), sort_keys=False)
    store.write_atomic(path, text.encode())
    log.info("joined as %s in %s; identity written to %s", grant.cluster, grant.group, path)
    return Joined(config, path)
