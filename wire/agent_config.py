"""The agent's configuration document: written by the controller, read on the device.

`edgefleet-agent join` writes it into the agent's state directory from the
controller's sealed registration grant (`edgefleet cluster add` writes one for
a cluster set up by hand), and `edgefleet-agent run` reads it, so its shape is
part of the contract between the two sides: the agent's name, group, labels,
broker and broker credentials, and the controller keys it trusts. It holds a
password, so it is written 0600. Pure: the caller does the file I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wire import errors, keys, names, urls

VERSION = 1

# Seconds between MQTT keepalives: the broker declares a silent device offline
# (publishing its will) after 1.5x this, so it bounds how stale "online" can be.
DEFAULT_KEEPALIVE = 30
# Seconds between status heartbeats: a dashboard sees a fresh timestamp this often.
DEFAULT_HEARTBEAT = 60.0
# Seconds between readiness and drift checks of applied bundles (faster while not ready).
DEFAULT_OBSERVE_INTERVAL = 30.0


@dataclass(frozen=True)
class AgentConfig:
    cluster: str
    group: str  # the group's topic root
    broker: str
    trusted_keys: tuple[str, ...]  # PEM public keys
    labels: Mapping[str, str] = field(default_factory=dict)
    topic_prefix: str = "fleet"
    state_dir: str | None = None
    ca_file: str | None = None  # CA of the broker's TLS certificate; None: the system's CAs
    username: str | None = None  # broker credentials issued at registration
    password: str | None = field(default=None, repr=False)
    keepalive: int = DEFAULT_KEEPALIVE
    heartbeat: float = DEFAULT_HEARTBEAT
    observe_interval: float = DEFAULT_OBSERVE_INTERVAL

    def keyring(self) -> keys.Keyring:
        return keys.keyring(keys.VerifyKey.from_pem(pem.encode()) for pem in self.trusted_keys)

    def broker_url(self) -> urls.BrokerUrl:
        url = urls.BrokerUrl.parse(self.broker, ca_file=self.ca_file)
        if self.username is None:
            return url
        return dataclasses.replace(url, username=self.username, password=self.password)


def to_document(config: AgentConfig) -> dict[str, Any]:
    document: dict[str, Any] = {
        "version": VERSION,
        "cluster": config.cluster,
        "group": config.group,
        "labels": dict(config.labels),
        "broker": config.broker,
        "topic_prefix": config.topic_prefix,
        "trusted_keys": list(config.trusted_keys),
    }
    if config.state_dir is not None:
        document["state_dir"] = config.state_dir
    for key in ("ca_file", "username", "password"):
        if getattr(config, key) is not None:
            document[key] = getattr(config, key)
    for key, default in (
        ("keepalive", DEFAULT_KEEPALIVE),
        ("heartbeat", DEFAULT_HEARTBEAT),
        ("observe_interval", DEFAULT_OBSERVE_INTERVAL),
    ):
        if getattr(config, key) != default:
            document[key] = getattr(config, key)
    return document


def from_document(document: object) -> AgentConfig:
    """Validate a parsed config document; raise a WireError that says what is wrong."""
    if not isinstance(document, Mapping):
        raise errors.Malformed("agent config must be a map")
    if document.get("version") != VERSION:
        raise errors.UnsupportedVersion(
            f"agent config version {document.get('version')!r}; this agent reads {VERSION}"
        )
    for key in ("cluster", "group", "broker"):
        if not isinstance(document.get(key), str) or not document[key]:
            raise errors.Malformed(f"agent config needs a string {key!r}")
    labels = document.get("labels") or {}
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise errors.Malformed("agent config 'labels' must map strings to strings")
    trusted = document.get("trusted_keys")
    if not isinstance(trusted, list) or not trusted or not all(isinstance(k, str) for k in trusted):
        raise errors.Malformed("agent config needs 'trusted_keys': a list of PEM public keys")
    prefix = document.get("topic_prefix", "fleet")
    optional = {key: document.get(key) for key in ("state_dir", "ca_file", "username", "password")}
    if not isinstance(prefix, str) or any(
        v is not None and not isinstance(v, str) for v in optional.values()
    ):
        raise errors.Malformed(
            "agent config 'topic_prefix', 'state_dir', 'ca_file', 'username' and 'password' must be strings"
        )
    timing = {}
    for key, default in (
        ("keepalive", DEFAULT_KEEPALIVE),
        ("heartbeat", DEFAULT_HEARTBEAT),
        ("observe_interval", DEFAULT_OBSERVE_INTERVAL),
    ):
        value = document.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise errors.Malformed(f"agent config {key!r} must be a positive number of seconds")
        timing[key] = value
    config = AgentConfig(
        cluster=names.cluster(document["cluster"]),
        group=names.group(document["group"]),
        broker=document["broker"],
        trusted_keys=tuple(trusted),
        labels=dict(labels),
        topic_prefix=prefix,
        state_dir=optional["state_dir"],
        ca_file=optional["ca_file"],
        username=optional["username"],
        password=optional["password"],
        keepalive=int(timing["keepalive"]),
        heartbeat=float(timing["heartbeat"]),
        observe_interval=float(timing["observe_interval"]),
    )
    config.broker_url()
    config.keyring()
    return config
