"""Mosquitto's dynamic-security plugin, driven over `$CONTROL/dynamic-security/v1`.

The controller connects with the plugin's admin account (the user
`mosquitto_ctrl dynsec init` created), makes sure the edgefleet roles exist
and that its own account (`edgefleet-controller`, password in the state
directory) has the controller's rights, and then turns every
queued registry change into dynsec commands: a client per token (role
`edgefleet-bootstrap`) and, per cluster, a client bound to its one client id
with a role of its own. Deleting a client makes Mosquitto disconnect it.

The roles are wire.rights translated. Mosquitto 2.0's dynsec has no `%c`
substitution, so the bootstrap role grants `<prefix>/register/+` and
`<prefix>/register/+/reply` to every token holder and denies subscribing to
the wildcard filter itself: a client can only read a reply topic it can
name, and its name is an unguessable client id (wire.registration.bootstrap_client_id).
The reply is sealed to the asking agent's key besides.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt

from controller import errors, identities, publishing
from controller.identities import BrokerChange, ChangeAction
from wire import rights, topics, urls

log = logging.getLogger(__name__)

COMMAND_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = "$CONTROL/dynamic-security/v1/response"
CONTROLLER_ROLE = "edgefleet-controller"
BOOTSTRAP_ROLE = "edgefleet-bootstrap"
# A broker that has not answered within this does not run the plugin, or is unwell.
ANSWER_TIMEOUT = 10.0
# Errors that mean "already as wanted" for the commands that report them.
_BENIGN = {"deleteClient", "deleteRole"}


def cluster_role(name: str) -> str:
    return f"edgefleet-cluster-{name}"


def _acls(granted: rights.Rules, *, deny_literal: Sequence[str] = ()) -> list[dict[str, Any]]:
    acls: list[dict[str, Any]] = [
        {"acltype": "subscribeLiteral", "topic": topic, "allow": False, "priority": 10}
        for topic in deny_literal
    ]
    acls += [{"acltype": "publishClientSend", "topic": topic, "allow": True} for topic in granted.publish]
    for topic in granted.subscribe:
        acls.append({"acltype": "subscribePattern", "topic": topic, "allow": True})
        acls.append({"acltype": "publishClientReceive", "topic": topic, "allow": True})
    return acls


def role_commands(space: topics.Topics) -> list[dict[str, Any]]:
    """The shared roles: the controller's and the bootstrap clients'."""
    controller = rights.rules(rights.Principal(rights.Role.CONTROLLER, ""), space)
    bootstrap = rights.Rules(publish=(space.register_filter(),), subscribe=(space.register_reply_filter(),))
    return [
        {"command": "createRole", "rolename": CONTROLLER_ROLE, "acls": _acls(controller)},
        {
            "command": "createRole",
            "rolename": BOOTSTRAP_ROLE,
            "acls": _acls(bootstrap, deny_literal=(space.register_reply_filter(),)),
        },
    ]


def change_commands(change: BrokerChange, space: topics.Topics, root: str | None) -> list[dict[str, Any]]:
    """Dynsec commands that make the broker match one registry change."""
    user = change.username
    if change.role is rights.Role.CONTROLLER:
        return []  # Dynsec.prepare keeps the controller's account, without disconnecting it
    commands: list[dict[str, Any]] = [{"command": "deleteClient", "username": user}]
    if change.role is rights.Role.CLUSTER and change.cluster is not None:
        commands.append({"command": "deleteRole", "rolename": cluster_role(change.cluster)})
    if change.action is ChangeAction.REMOVE:
        return commands
    if change.role is rights.Role.BOOTSTRAP:
        roles = [BOOTSTRAP_ROLE]
        client: dict[str, Any] = {}
    elif change.role is rights.Role.CLUSTER and change.cluster is not None and root is not None:
        principal = rights.Principal(rights.Role.CLUSTER, user, name=change.cluster, root=root)
        role = cluster_role(change.cluster)
        commands.append(
            {"command": "createRole", "rolename": role, "acls": _acls(rights.rules(principal, space))}
        )
        roles = [role]
        client = {"clientid": identities.agent_client_id(change.cluster)}
    else:
        raise errors.SecurityError(f"cannot give {user} rights: cluster {change.cluster!r} has no group")
    commands.append(
        {
            "command": "createClient",
            "username": user,
            "password": change.password or "",
            "roles": [{"rolename": name} for name in roles],
            **client,
        }
    )
    return commands


class Dynsec:
    """The admin session with Mosquitto; `apply` is controller.security.BrokerSecurity.

    It connects when first needed and again after the connection is lost (a
    Mosquitto restart, a network blip): a command that fails raises
    SecurityError, its change stays queued, and the next one reconnects."""

    def __init__(self, url: urls.BrokerUrl, space: topics.Topics, registry: Any) -> None:
        self._url = url
        self._space = space
        self._registry = registry  # controller.identities.Identities: topic roots of groups
        self._lock = asyncio.Lock()
        self._waiting: dict[str, asyncio.Future[list[dict[str, Any]]]] = {}
        self._ids = itertools.count(1)
        self._session: contextlib.AsyncExitStack | None = None
        self._mqtt: aiomqtt.Client | None = None

    async def _connected(self) -> aiomqtt.Client:
        if self._mqtt is not None:
            return self._mqtt
        await self.close()  # what is left of a lost session
        session = contextlib.AsyncExitStack()
        try:
            mqtt = await session.enter_async_context(
                publishing.client(self._url, identifier=f"edgefleet-dynsec-{secrets.token_hex(4)}")
            )
            await mqtt.subscribe(RESPONSE_TOPIC, qos=1)
        except aiomqtt.MqttError as exc:
            await _quietly(session.aclose())
            raise errors.SecurityError(f"cannot log in to {self._url} for dynamic security: {exc}") from exc
        reader = asyncio.create_task(self._read(mqtt))
        session.push_async_callback(_cancelled, reader)
        self._session, self._mqtt = session, mqtt
        log.info("dynamic security: connected to %s", self._url)
        return mqtt

    async def close(self) -> None:
        session, self._session, self._mqtt = self._session, None, None
        if session is not None:
            await _quietly(session.aclose())

    async def _read(self, mqtt: aiomqtt.Client) -> None:
        try:
            async for message in mqtt.messages:
                try:
                    payload = message.payload if isinstance(message.payload, bytes) else b""
                    responses = json.loads(payload)["responses"]
                    key = responses[0].get("correlationData")
                except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                    log.warning("unreadable dynamic-security response: %r", message.payload)
                    continue
                waiter = self._waiting.pop(key, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(responses)
        except aiomqtt.MqttError as exc:
            log.warning(
                "dynamic security: connection to %s lost (%s); reconnecting on next use", self._url, exc
            )
            self._mqtt = None  # the next command opens a new session

    async def run(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send commands in one message; return the responses. Errors are the caller's to judge."""
        if not commands:
            return []
        mqtt = await self._connected()
        key = f"edgefleet-{next(self._ids)}"
        commands = [{**command, "correlationData": key} for command in commands]
        waiter: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._waiting[key] = waiter
        try:
            # QoS 0: the response is the acknowledgement. Waiting for a PUBACK as well costs
            # a delayed-ACK stall (about 40 ms) per command on Mosquitto's default sockets.
            await mqtt.publish(COMMAND_TOPIC, json.dumps({"commands": commands}).encode(), qos=0)
            async with asyncio.timeout(ANSWER_TIMEOUT):
                return await waiter
        except TimeoutError as exc:
            await self.close()
            raise errors.SecurityError(
                f"Mosquitto at {self._url} did not answer on {COMMAND_TOPIC} within {ANSWER_TIMEOUT:.0f}s: "
                "is the dynamic-security plugin loaded, and is this its admin account? "
                "(or run with --security none on a broker that enforces nothing)"
            ) from exc
        except aiomqtt.MqttError as exc:
            await self.close()
            raise errors.SecurityError(
                f"cannot reach the dynamic-security API at {self._url}: {exc}"
            ) from exc
        finally:
            self._waiting.pop(key, None)

    async def prepare(self, controller_password: str) -> None:
        """The shared roles, and the controller's own account with the controller role.

        The admin account is left as it is: it only manages dynamic security
        (and Mosquitto would disconnect it for changing its own roles)."""
        async with self._lock:
            await self.run(role_commands(self._space))  # "already exists" is fine
            answers = await self.run(
                [
                    {
                        "command": "createClient",
                        "username": identities.CONTROLLER_USERNAME,
                        "password": controller_password,
                        "roles": [{"rolename": CONTROLLER_ROLE}],
                    }
                ]
            )
            if answers and answers[0].get("error"):
                await self.run(
                    [
                        {
                            "command": "setClientPassword",
                            "username": identities.CONTROLLER_USERNAME,
                            "password": controller_password,
                        }
                    ]
                )
        log.info("dynamic security at %s: edgefleet roles ready", self._url)

    async def apply(self, changes: Sequence[BrokerChange]) -> None:
        commands: list[dict[str, Any]] = []
        for change in changes:
            root = None
            if (
                change.role is rights.Role.CLUSTER
                and change.cluster is not None
                and change.action is ChangeAction.ADD
            ):
                registered = self._registry.registered(change.cluster)
                root = self._registry.topic_root(registered.group) if registered is not None else None
            commands += change_commands(change, self._space, root)
        async with self._lock:
            answers = await self.run(commands)
        failed = [a for a in answers if a.get("error") and a.get("command") not in _BENIGN]
        if failed:
            raise errors.SecurityError(
                "dynamic security refused: "
                + "; ".join(f"{a.get('command')}: {a.get('error')}" for a in failed)
            )


@asynccontextmanager
async def connect(url: urls.BrokerUrl, space: topics.Topics, registry: Any) -> AsyncIterator[Dynsec]:
    """An admin session with the dynamic-security API for the duration of the block.

    Logs in at once, so a wrong account or an unreachable broker is an error
    at start; later losses of the connection are mended as it is used."""
    dynsec = Dynsec(url, space, registry)
    await dynsec._connected()
    try:
        yield dynsec
    finally:
        await dynsec.close()


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
        await task


async def _quietly(closing: Any) -> None:
    """Close what may already be broken; a failure to say goodbye is no news."""
    with contextlib.suppress(aiomqtt.MqttError, OSError):
        await closing
