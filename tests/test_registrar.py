"""The Registrar against a real registry (SQLite), without a broker: what it sends and stores."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import x25519

from controller import identities, join_cli, keystore, registering, security, tokens
from controller.identities import Identities
from controller.state import Group, State
from wire import joining, registration, topics, urls

CLIENT = "join-" + "ab" * 16


def _setup(tmp_path: Path) -> tuple[registering.Registrar, Identities, joining.JoinString]:
    key = keystore.init(tmp_path / "controller")
    state = State.open(tmp_path / "controller")
    state.add_group(Group("edge/west", "edge/west", {}))
    registry = Identities(state)
    _, join = join_cli.issue(registry, key, group="edge/west", broker=urls.BrokerUrl("127.0.0.1", 1883))
    registrar = registering.Registrar(registry, key, security.Unenforced(), topics.Topics())
    return registrar, registry, join


def _token(
    tmp_path: Path,
    registry: Identities,
    *,
    group: str = "edge/west",
    approval: tokens.Approval = tokens.Approval.AUTO,
) -> joining.JoinString:
    """Another token of the same controller."""
    key = keystore.load(tmp_path / "controller")
    return join_cli.issue(registry, key, group=group, broker=urls.BrokerUrl("h", 1), approval=approval)[1]


def _request(join: joining.JoinString, device: x25519.X25519PrivateKey) -> bytes:
    return registration.encode_request(
        registration.Request(
            token_id=join.token_id,
            secret=join.secret,
            name="pi-1",
            public_key=device.public_key().public_bytes_raw(),
        )
    )


async def test_a_repeated_request_gets_the_same_approval_not_a_new_password(tmp_path: Path) -> None:
    registrar, registry, join = _setup(tmp_path)
    device = x25519.X25519PrivateKey.generate()
    sent: list[bytes] = []

    async def send(topic: str, payload: bytes) -> None:
        sent.append(payload)

    await registrar.handle(CLIENT, _request(join, device), send)
    await registrar.handle(CLIENT, _request(join, device), send)  # its first answer crossed this one
    assert len(sent) == 2 and sent[0] == sent[1]
    reply = registration.open_reply(
        sent[0], fingerprint=join.fingerprint, private_key=device, client_id=CLIENT
    )
    assert reply.grant is not None
    credential = registry.credential(identities.cluster_username("pi-1"))
    assert credential is not None and tokens.secret_matches(reply.grant.password, credential.password_hash)
    token = registry.token(join.token_id)
    assert token is not None and token.uses == 1


async def test_requests_of_one_client_arriving_together_are_answered_once(tmp_path: Path) -> None:
    registrar, registry, join = _setup(tmp_path)
    device = x25519.X25519PrivateKey.generate()
    sent: list[bytes] = []

    async def send(topic: str, payload: bytes) -> None:
        await asyncio.sleep(0)  # a publish yields: the others arrive while this one is answered
        sent.append(payload)

    await asyncio.gather(*(registrar.handle(CLIENT, _request(join, device), send) for _ in range(5)))
    assert len(sent) == 1
    reply = registration.open_reply(
        sent[0], fingerprint=join.fingerprint, private_key=device, client_id=CLIENT
    )
    credential = registry.credential(identities.cluster_username("pi-1"))
    assert reply.grant is not None and credential is not None
    assert tokens.secret_matches(reply.grant.password, credential.password_hash)


async def test_the_same_device_on_a_new_connection_gets_a_fresh_credential(tmp_path: Path) -> None:
    registrar, registry, join = _setup(tmp_path)
    device = x25519.X25519PrivateKey.generate()
    sent: list[tuple[str, bytes]] = []

    async def send(topic: str, payload: bytes) -> None:
        sent.append((topic, payload))

    await registrar.handle(CLIENT, _request(join, device), send)
    other = "join-" + "cd" * 16  # it restarted and lost the first answer
    await registrar.handle(other, _request(join, device), send)
    second = registration.open_reply(
        sent[1][1], fingerprint=join.fingerprint, private_key=device, client_id=other
    )
    credential = registry.credential(identities.cluster_username("pi-1"))
    assert second.grant is not None and credential is not None
    assert tokens.secret_matches(second.grant.password, credential.password_hash)


class _Recording:
    """A BrokerSecurity that records what reaches the broker, and can be held up."""

    def __init__(self) -> None:
        self.applied: list[tuple[str, str]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def apply(self, changes: Sequence[identities.BrokerChange]) -> None:
        await self.release.wait()
        self.applied += [(c.action.value, c.username) for c in changes]


async def test_an_approved_request_is_not_moved_by_a_request_with_another_token(tmp_path: Path) -> None:
    registrar, registry, join = _setup(tmp_path)
    registry.state.add_group(Group("secret", "secret", {}))
    manual = _token(tmp_path, registry, approval=tokens.Approval.MANUAL)
    other = _token(tmp_path, registry, group="secret")
    device = x25519.X25519PrivateKey.generate()
    sent: list[bytes] = []

    async def send(topic: str, payload: bytes) -> None:
        sent.append(payload)

    await registrar.handle(CLIENT, _request(manual, device), send)
    registry.decide("pi-1", identities.RequestStatus.APPROVED, 0.0)
    await registrar.handle(CLIENT, _request(other, device), send)
    refused = registration.open_reply(
        sent[-1], fingerprint=join.fingerprint, private_key=device, client_id=CLIENT
    )
    assert refused.outcome is registration.Outcome.REFUSED and "another token" in refused.message
    assert registry.registered("pi-1") is None


async def test_an_approval_and_a_repeated_request_together_give_one_password(tmp_path: Path) -> None:
    registrar, registry, join = _setup(tmp_path)
    manual = _token(tmp_path, registry, approval=tokens.Approval.MANUAL)
    slow = _Recording()
    registrar.security = slow
    device = x25519.X25519PrivateKey.generate()
    sent: list[bytes] = []

    async def send(topic: str, payload: bytes) -> None:
        sent.append(payload)

    async def clear(root: str, name: str) -> None:
        raise AssertionError("nothing is revoked here")

    await registrar.handle(CLIENT, _request(manual, device), send)  # held
    registry.decide("pi-1", identities.RequestStatus.APPROVED, 0.0)
    slow.release.clear()  # the broker is slow to take the new credential
    sweeping = asyncio.ensure_future(registrar.sweep(send, clear))
    await asyncio.sleep(0)
    asking = asyncio.ensure_future(registrar.handle(CLIENT, _request(manual, device), send))
    await asyncio.sleep(0)
    slow.release.set()
    await asyncio.gather(sweeping, asking)
    approvals = [
        registration.open_reply(p, fingerprint=join.fingerprint, private_key=device, client_id=CLIENT)
        for p in sent[1:]
    ]
    credential = registry.credential(identities.cluster_username("pi-1"))
    assert approvals and credential is not None
    assert all(
        a.grant is not None and tokens.secret_matches(a.grant.password, credential.password_hash)
        for a in approvals
    )


async def test_a_queued_account_for_a_cluster_revoked_since_never_reaches_the_broker(tmp_path: Path) -> None:
    registrar, registry, join = _setup(tmp_path)
    recording = _Recording()
    registrar.security = recording
    device = x25519.X25519PrivateKey.generate()
    recording.release.clear()

    async def send(topic: str, payload: bytes) -> None:
        pass

    joining_task = asyncio.ensure_future(registrar.handle(CLIENT, _request(join, device), send))
    await asyncio.sleep(0)
    registry.revoke_cluster("pi-1", 0.0)  # revoked while the broker was slow
    recording.release.set()
    await joining_task
    await registrar.flush()
    adds = [user for action, user in recording.applied if action == "add" and user == "cluster-pi-1"]
    assert adds == [] and ("remove", "cluster-pi-1") in recording.applied


async def test_an_approval_kept_for_a_revoked_cluster_is_not_sent_again(tmp_path: Path) -> None:
    registrar, registry, join = _setup(tmp_path)
    device = x25519.X25519PrivateKey.generate()
    sent: list[bytes] = []

    async def send(topic: str, payload: bytes) -> None:
        sent.append(payload)

    await registrar.handle(CLIENT, _request(join, device), send)
    registry.revoke_cluster("pi-1", 0.0)
    await registrar.handle(CLIENT, _request(join, device), send)
    last = registration.open_reply(
        sent[-1], fingerprint=join.fingerprint, private_key=device, client_id=CLIENT
    )
    assert last.outcome is registration.Outcome.REFUSED and "revoked" in last.message
