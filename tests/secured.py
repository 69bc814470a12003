"""A controller on a broker that enforces edgefleet's rights, over TLS, for security tests.

`secured_fleet("amqtt", ...)` runs the embedded broker with the registry's
authority and the development CA (controller.tlsca), as `edgefleet server
--tls` does; `secured_fleet("mosquitto", ...)` drives the session's secured
Mosquitto through its dynamic-security API, as `edgefleet controller` does.
Either way the controller runs in this process and joins are real.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiomqtt

from broker import embedded
from controller import aggregating, dynsec, join_cli, keystore, login, security, tlsca, tokens
from controller.identities import Identities, controller_password
from controller.state import Group, State
from edge_agent.backoff import Backoff
from tests import waiting
from wire import joining, keys, topics, urls

SETTINGS = aggregating.Settings(
    summary_interval=0.05, registry_interval=0.1, heartbeat=5.0, security_interval=0.1
)


def quick_backoff() -> Backoff:
    return Backoff(initial=0.05, maximum=0.5, rng=random.Random(0))


@dataclass
class Secured:
    kind: str
    url: urls.BrokerUrl  # what devices dial: TLS, no credentials
    controller_url: urls.BrokerUrl  # logged in as the controller
    state_dir: Path
    state: State
    registry: Identities
    key: keys.SigningKey
    group: str
    aggregator: aggregating.Aggregator
    ca_der: bytes
    space: topics.Topics = dataclasses.field(default_factory=topics.Topics)
    mosquitto_admin: urls.BrokerUrl | None = None  # the dynsec admin's login (Mosquitto only)

    def token(self, *, group: str | None = None, **options: object) -> tuple[tokens.Token, str]:
        token, join = join_cli.issue(
            self.registry,
            self.key,
            group=group or self.group,
            broker=self.url,
            ca_der=self.ca_der,
            **options,  # type: ignore[arg-type]
        )
        return token, join.encode()

    def join_string(self, token_id: str, secret: str, *, fingerprint: str | None = None) -> str:
        return joining.JoinString(
            broker=str(self.url),
            token_id=token_id,
            secret=secret,
            fingerprint=fingerprint or self.key.verify_key.fingerprint,
            ca_der=self.ca_der,
        ).encode()

    async def settled(self) -> None:
        """Until the controller has carried every registry change to the broker."""
        await waiting.until_async(
            lambda: not self.registry.changes(), timeout=15, what="broker changes applied"
        )

    def client(self, username: str | None, password: str | None, identifier: str) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.url.host,
            self.url.port,
            identifier=identifier,
            username=username,
            password=password,
            protocol=aiomqtt.ProtocolVersion.V311,
            tls_params=aiomqtt.TLSParameters(ca_certs=self.url.ca_file),
            clean_session=True,
        )

    def add_group(self, root: str) -> None:
        self.state.add_group(Group(root, root, {}))


@asynccontextmanager
async def _running(aggregator: aggregating.Aggregator) -> AsyncIterator[None]:
    task = asyncio.ensure_future(aggregator.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def secured_fleet(
    kind: str, workdir: Path, group: str, *, mosquitto_admin: urls.BrokerUrl | None = None
) -> AsyncIterator[Secured]:
    state_dir = workdir / "controller"
    key = keystore.init(state_dir)
    state = State.open(state_dir)
    state.add_group(Group(group, group, {}))
    registry = Identities(state)
    password = controller_password(state_dir)
    registry.ensure_controller(password)
    space = topics.Topics()
    try:
        if kind == "amqtt":
            files = tlsca.ensure(state_dir, ["127.0.0.1"])
            authority = security.RegistryAuthority(registry)
            async with embedded.serve(
                authority=authority, space=space, tls=embedded.Tls(files.cert, files.key)
            ) as endpoint:
                url = dataclasses.replace(endpoint.url, ca_file=str(files.ca))
                own = login.as_controller(url, state_dir)
                aggregator = aggregating.Aggregator(
                    state_dir, own, space, SETTINGS, broker_security=security.Embedded(endpoint.disconnect)
                )
                secured = Secured(
                    kind, url, own, state_dir, state, registry, key, group, aggregator, tlsca.der_of(files.ca)
                )
                async with _running(aggregator):
                    yield secured
        else:
            assert mosquitto_admin is not None
            async with dynsec.connect(mosquitto_admin, space, registry) as admin:
                await admin.prepare(password)
                url = dataclasses.replace(mosquitto_admin, username=None, password=None)
                own = login.as_controller(url, state_dir)
                aggregator = aggregating.Aggregator(state_dir, own, space, SETTINGS, broker_security=admin)
                assert url.ca_file is not None
                secured = Secured(
                    kind,
                    url,
                    own,
                    state_dir,
                    state,
                    registry,
                    key,
                    group,
                    aggregator,
                    tlsca.der_of(Path(url.ca_file)),
                    mosquitto_admin=mosquitto_admin,
                )
                async with _running(aggregator):
                    yield secured
    finally:
        state.close()
