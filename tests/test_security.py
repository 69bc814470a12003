"""Registration and broker security, on each real broker enforcing edgefleet's rights over TLS:
the embedded amqtt with the registry's authority, and Mosquitto with dynamic security."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from controller import delivering, dynsec, identities, tokens
from controller.identities import RequestStatus
from edge_agent import applying, joining
from edge_agent import cli as agent_cli
from edge_agent.agent import Agent
from edge_agent.store import Store
from tests import fleet as fleets
from tests import mqtt, waiting
from tests.fakekube import FakeCluster
from tests.secured import Secured, quick_backoff, secured_fleet
from wire import joining as join_strings
from wire import keys, registration, summaries

CONFIG = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: default}\ndata: {mode: fast}\n"
)


@pytest.fixture(params=["mosquitto", "amqtt"])
async def secured(request: pytest.FixtureRequest, tmp_path: Path, topic_root: str) -> AsyncIterator[Secured]:
    admin = request.getfixturevalue("secured_mosquitto_url") if request.param == "mosquitto" else None
    async with secured_fleet(request.param, tmp_path, topic_root, mosquitto_admin=admin) as running:
        yield running


def _name(prefix: str = "pi") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _join(secured: Secured, join: str, name: str, state_dir: Path) -> joining.Joined:
    await secured.settled()
    async with asyncio.timeout(30):
        return await joining.join(join, name=name, state_dir=state_dir, backoff=quick_backoff())


def _nothing_created(secured: Secured, name: str) -> None:
    assert secured.registry.registered(name) is None
    assert secured.registry.credential(identities.cluster_username(name)) is None


async def _refused_connect(secured: Secured, username: str, password: str | None, client_id: str) -> bool:
    try:
        async with secured.client(username, password, client_id):
            return False
    except aiomqtt.MqttError:
        return True


@contextlib.asynccontextmanager
async def _as_cluster(secured: Secured, joined: joining.Joined) -> AsyncIterator[aiomqtt.Client]:
    config = joined.config
    assert config.username is not None
    async with secured.client(
        config.username, config.password, identities.agent_client_id(config.cluster)
    ) as c:
        yield c


async def _drain(client: aiomqtt.Client, seconds: float) -> list[tuple[str, bytes]]:
    """What `client` receives within `seconds` (to show that nothing arrives, a window is needed)."""
    got: list[tuple[str, bytes]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for message in client.messages:
                got.append(
                    (message.topic.value, message.payload if isinstance(message.payload, bytes) else b"")
                )
    return got


# -- joining ---------------------------------------------------------------------------------------


async def test_token_join_run_apply_reaches_ready_over_tls(secured: Secured, tmp_path: Path) -> None:
    assert secured.url.tls
    _, join = secured.token(labels={"site": "lab"})
    name = _name()
    joined = await _join(secured, join, name, tmp_path / "device")
    assert joined.config.group == secured.group and joined.config.labels == {"site": "lab"}
    assert (joined.path.stat().st_mode & 0o777) == 0o600
    assert secured.registry.registered(name) is not None
    with FakeCluster(ready_delay=0.0) as cluster:
        # `edgefleet-agent run --state-dir` reads exactly this identity, and nothing else.
        config = dataclasses.replace(agent_cli.load_config(joined.path), **fleets.FAST)  # type: ignore[arg-type]
        agent = Agent(
            config,
            Store(tmp_path / "device"),
            applying.KubeApplier(cluster.api_client()),
            retry_backoff=quick_backoff,
            reconnect_backoff=quick_backoff,
        )
        running = asyncio.ensure_future(agent.run())
        try:
            bundle = tmp_path / "bundles" / "settings"
            bundle.mkdir(parents=True)
            (bundle / "fleet.yaml").write_text("")
            (bundle / "objects.yaml").write_text(CONFIG)
            report = await delivering.apply(
                secured.state, secured.key, secured.controller_url, bundle, secured.space
            )
            assert report.ok, report.failed
            await waiting.until_async(
                lambda: bool(cluster.objects(kind="ConfigMap")), timeout=30, what="the ConfigMap applied"
            )
            summary = await _bundle_summary(secured, "settings", ready=1)
            assert summary["desired"] == 1
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


async def _bundle_summary(secured: Secured, bundle: str, **expected: object) -> summaries.BundleSummary:
    topic = secured.space.summary_bundle(bundle)
    found: dict[str, summaries.BundleSummary] = {}

    async def matches() -> bool:
        held = await mqtt.retained(secured.controller_url, topic, expect=1)
        found["doc"] = summaries.decode_bundle(held[topic])
        return all(found["doc"].get(k) == v for k, v in expected.items())

    async with asyncio.timeout(30):
        while True:
            with contextlib.suppress(TimeoutError, KeyError):
                if await matches():
                    return found["doc"]


@pytest.mark.parametrize("how", ["expired", "revoked", "used up", "forged"])
async def test_bad_tokens_are_refused_clearly_and_create_nothing(
    secured: Secured, tmp_path: Path, how: str
) -> None:
    if how == "expired":
        _, join = secured.token(ttl=60.0, now=0.0)
    elif how == "used up":
        _, join = secured.token(max_uses=1)
        await _join(secured, join, _name(), tmp_path / "first")
    else:
        token, join = secured.token()
        if how == "revoked":
            secured.registry.revoke_token(token.id, 0.0)
        else:
            join = secured.join_string(token.id, tokens.new_secret())
    name = _name()
    with pytest.raises(joining.JoinRefused) as refused:
        await _join(secured, join, name, tmp_path / "device")
    assert how.split()[0] in str(refused.value) or (
        how == "forged" and "secret is wrong" in str(refused.value)
    )
    _nothing_created(secured, name)


async def test_a_taken_name_is_refused(secured: Secured, tmp_path: Path) -> None:
    _, join = secured.token()
    name = _name()
    await _join(secured, join, name, tmp_path / "first")
    with pytest.raises(joining.JoinRefused, match="taken"):
        await _join(secured, join, name, tmp_path / "impostor")
    # The first device asking again (a lost reply) is answered, not refused.
    again = await _join(secured, join, name, tmp_path / "first")
    assert again.config.cluster == name


async def test_join_refuses_a_controller_that_does_not_match_the_fingerprint(
    secured: Secured, tmp_path: Path
) -> None:
    other = keys.SigningKey.generate().verify_key.fingerprint
    # The real secret is needed to get a reply at all; only the pinned fingerprint differs.
    join = join_strings.JoinString.parse(secured.token()[1])
    pinned_elsewhere = dataclasses.replace(join, fingerprint=other).encode()
    name = _name()
    with pytest.raises(joining.JoinRefused, match="not from the controller"):
        await _join(secured, pinned_elsewhere, name, tmp_path / "device")
    assert not (tmp_path / "device" / joining.IDENTITY_FILE).exists()


async def test_manual_approval_holds_the_agent_until_approved(secured: Secured, tmp_path: Path) -> None:
    _, join = secured.token(approval=tokens.Approval.MANUAL)
    name = _name()
    waiting_join = asyncio.ensure_future(_join(secured, join, name, tmp_path / "device"))
    try:
        await waiting.until_async(
            lambda: secured.registry.request(name) is not None, timeout=20, what="the request to be held"
        )
        assert not waiting_join.done() and secured.registry.registered(name) is None
        secured.registry.decide(name, RequestStatus.APPROVED, 0.0)
        joined = await asyncio.wait_for(waiting_join, 20)
        assert joined.config.cluster == name
    finally:
        waiting_join.cancel()


async def test_deny_ends_the_join_cleanly(secured: Secured, tmp_path: Path) -> None:
    _, join = secured.token(approval=tokens.Approval.MANUAL)
    name = _name()
    waiting_join = asyncio.ensure_future(_join(secured, join, name, tmp_path / "device"))
    await waiting.until_async(lambda: secured.registry.request(name) is not None, timeout=20, what="held")
    secured.registry.decide(name, RequestStatus.DENIED, 0.0)
    with pytest.raises(joining.JoinDenied, match="denied"):
        await asyncio.wait_for(waiting_join, 20)
    _nothing_created(secured, name)


# -- enforcement --------------------------------------------------------------------------------


async def test_a_cluster_writes_only_its_own_topics_and_reads_only_its_group(
    secured: Secured, tmp_path: Path, topic_root: str
) -> None:
    other_group = topic_root.replace("/site", "/other")
    secured.add_group(other_group)
    _, join = secured.token()
    _, other_join = secured.token(group=other_group)
    me = await _join(secured, join, _name("me"), tmp_path / "me")
    neighbour = await _join(secured, join, _name("nb"), tmp_path / "nb")
    stranger = await _join(secured, other_join, _name("far"), tmp_path / "far")
    space, group = secured.space, secured.group
    async with secured.client(*_controller_login(secured), "observer") as observer:
        await observer.subscribe(f"{group}/#", qos=1)
        await observer.publish(space.bundle(other_group, "secret-app"), b"theirs", qos=1, retain=True)
        async with _as_cluster(secured, me) as client:
            refused = [
                await client.subscribe(f"{other_group}/bundles/+", qos=1),
                await client.subscribe("#", qos=1),
                await client.subscribe(f"{group}/status/+", qos=1),
            ]
            assert all(_refused(result) for result in refused)
            assert not _refused(await client.subscribe(space.bundles_filter(group), qos=1))
            await client.publish(space.status(group, neighbour.config.cluster), b"forged", qos=1)
            await client.publish(space.presence(group, neighbour.config.cluster), b"forged", qos=1)
            await client.publish(space.status(other_group, stranger.config.cluster), b"forged", qos=1)
            await client.publish(space.bundle(group, "evil"), b"forged", qos=1)
            await client.publish(space.status(group, me.config.cluster), b"mine", qos=1)
            seen = await _drain(observer, 1.0)
            received = await _drain(client, 0.3)
        assert [(t, p) for t, p in seen if p == b"forged"] == []
        assert (space.status(group, me.config.cluster), b"mine") in seen
        assert all(not topic.startswith(other_group) for topic, _ in received)


# A client that connects with a will and dies without DISCONNECT (os._exit), in its own process.
_DIES_ABRUPTLY = """
import asyncio, os, sys, aiomqtt
async def main(host, port, client_id, user, password, ca, topic):
    will = aiomqtt.Will(topic, b"will", qos=1)
    try:
        async with aiomqtt.Client(host, int(port), identifier=client_id, username=user, password=password,
                                  tls_params=aiomqtt.TLSParameters(ca_certs=ca), will=will):
            print("connected", flush=True)
            os._exit(0)
    except aiomqtt.MqttError as exc:
        print("refused", exc, flush=True)
asyncio.run(main(*sys.argv[1:]))
"""


async def _die_with_will(secured: Secured, joined: joining.Joined, topic: str) -> str:
    config = joined.config
    assert config.username is not None and config.password is not None and secured.url.ca_file is not None
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _DIES_ABRUPTLY,
        secured.url.host,
        str(secured.url.port),
        identities.agent_client_id(config.cluster),
        config.username,
        config.password,
        secured.url.ca_file,
        topic,
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    return output.decode()


async def test_a_cluster_cannot_leave_a_will_on_another_clusters_presence(
    secured: Secured, tmp_path: Path
) -> None:
    _, join = secured.token()
    me = await _join(secured, join, _name("me"), tmp_path / "me")
    own = secured.space.presence(secured.group, me.config.cluster)
    victim = secured.space.presence(secured.group, _name("victim"))
    async with secured.client(*_controller_login(secured), "observer") as observer:
        await observer.subscribe(own, qos=1)
        await observer.subscribe(victim, qos=1)
        # Control: a will on its own presence topic is what dying abruptly publishes.
        assert "connected" in await _die_with_will(secured, me, own)
        async with asyncio.timeout(10):
            first = await anext(observer.messages)
        assert (first.topic.value, first.payload) == (own, b"will")
        # Refused at connect (embedded), or connected and the will dropped (Mosquitto checks it on send).
        await _die_with_will(secured, me, victim)
        assert await _drain(observer, 3.0) == []


async def test_a_bootstrap_client_cannot_read_another_clients_reply(secured: Secured, tmp_path: Path) -> None:
    token, join = secured.token()
    secret = join_strings.JoinString.parse(join).secret
    await secured.settled()
    space = secured.space
    async with secured.client(
        registration.bootstrap_username(token.id), secret, registration.bootstrap_client_id()
    ) as spy:
        assert _refused(await spy.subscribe(space.register_reply_filter(), qos=1))
        assert _refused(await spy.subscribe(f"{space.prefix}/register/#", qos=1))
        assert _refused(await spy.subscribe(f"{space.prefix}/#", qos=1))
        await _join(secured, join, _name(), tmp_path / "device")
        assert await _drain(spy, 0.5) == []
    # And the token's account takes only the token's secret.
    assert await _refused_connect(secured, registration.bootstrap_username(token.id), "wrong", "join-x")


async def test_a_revoked_cluster_is_disconnected_cannot_reconnect_and_shows_as_revoked(
    secured: Secured, tmp_path: Path
) -> None:
    _, join = secured.token()
    name = _name()
    joined = await _join(secured, join, name, tmp_path / "device")
    config = joined.config
    async with _as_cluster(secured, joined) as client:
        await client.publish(secured.space.status(secured.group, name), b"{}", qos=1, retain=True)
        secured.registry.revoke_cluster(name, 0.0)
        await secured.settled()
        with pytest.raises(aiomqtt.MqttError):
            async with asyncio.timeout(10):
                async for _ in client.messages:
                    pass
    assert config.username is not None
    assert await _refused_connect(secured, config.username, config.password, identities.agent_client_id(name))
    topic = secured.space.summary_group(secured.group)

    async def revoked_in_summary() -> bool:
        held = await mqtt.retained(secured.controller_url, topic, expect=1)
        document = summaries.decode_group(held[topic])
        return name in document["revoked"] and all(r["name"] != name for r in document["cluster_rows"])

    async with asyncio.timeout(20):
        while not await revoked_in_summary():
            pass
    async with secured.client(*_controller_login(secured), "checker") as checker:
        await checker.subscribe(secured.space.status(secured.group, name), qos=1)
        assert [payload for _, payload in await _drain(checker, 0.5) if payload] == []  # status cleared


def _controller_login(secured: Secured) -> tuple[str, str]:
    assert secured.controller_url.username and secured.controller_url.password
    return secured.controller_url.username, secured.controller_url.password


def _refused(result: object) -> bool:
    codes = result if isinstance(result, list) else [result]
    return all(getattr(code, "value", code) >= 0x80 for code in codes)


@pytest.mark.parametrize("clean_session", [True, False])
async def test_a_stranger_using_a_clusters_client_id_neither_silences_nor_impersonates_it(
    secured: Secured, tmp_path: Path, clean_session: bool
) -> None:
    _, join = secured.token()
    me = await _join(secured, join, _name("me"), tmp_path / "me")
    client_id = identities.agent_client_id(me.config.cluster)
    forged_topic = secured.space.summary()
    async with _as_cluster(secured, me) as victim:
        await victim.subscribe(secured.space.bundles_filter(secured.group), qos=1)
        stranger = aiomqtt.Client(
            secured.url.host,
            secured.url.port,
            identifier=client_id,
            username=me.config.username,
            password="not-the-password",
            clean_session=clean_session,
            tls_params=aiomqtt.TLSParameters(ca_certs=secured.url.ca_file),
            will=aiomqtt.Will(forged_topic, b"FORGED", qos=1, retain=True),
        )
        with pytest.raises(aiomqtt.MqttError):
            async with stranger:
                pass
        async with secured.client(*_controller_login(secured), "publisher") as controller:
            await controller.publish(secured.space.bundle(secured.group, "after"), b"still-here", qos=1)
            received = await _drain(victim, 1.0)
            assert (secured.space.bundle(secured.group, "after"), b"still-here") in received
            await controller.subscribe(forged_topic, qos=1)
            assert all(payload != b"FORGED" for _, payload in await _drain(controller, 0.5))


@pytest.mark.parametrize("secured", ["mosquitto"], indirect=True)  # the embedded broker has no admin link
async def test_dynamic_security_survives_losing_its_admin_connection(
    secured: Secured, tmp_path: Path
) -> None:
    admin = secured.aggregator.broker_security
    assert isinstance(admin, dynsec.Dynsec)
    _, join = secured.token()
    name = _name()
    joined = await _join(secured, join, name, tmp_path / "device")
    old = admin._mqtt
    assert old is not None and secured.mosquitto_admin is not None
    takeover = secured.mosquitto_admin
    async with aiomqtt.Client(  # the same client id takes the admin's session over, as a restart drops it
        takeover.host,
        takeover.port,
        identifier=old.identifier,
        username=takeover.username,
        password=takeover.password,
        tls_params=aiomqtt.TLSParameters(ca_certs=takeover.ca_file),
    ):
        pass
    secured.registry.revoke_cluster(name, 0.0)
    await secured.settled()
    assert joined.config.username is not None
    assert await _refused_connect(
        secured, joined.config.username, joined.config.password, identities.agent_client_id(name)
    )
