"""Receiving bundles: subscribe to a group's bundle topics and verify each message.

Every message goes through `wire.envelopes.verify` before anything else sees
it; a message that fails is logged and handed on as a refusal (so status can
report it), never as a manifest. This module owns the subscription; applying
is someone else's job.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from edge_agent import connection
from wire import envelopes, errors, keys, manifests, topics, urls

log = logging.getLogger(__name__)

DEFAULT_TOPICS = topics.Topics()


@dataclass(frozen=True)
class Accepted:
    topic: str
    manifest: manifests.Manifest
    size: int


@dataclass(frozen=True)
class Refused:
    topic: str
    error: errors.WireError


Received = Accepted | Refused


def check(
    topic: str,
    payload: bytes,
    *,
    topic_space: topics.Topics,
    trusted: keys.Keyring,
    applied_generation: int = 0,
    group: str | None = None,
) -> Received:
    """Decide what one message on a bundle topic is: pure, so tests need no broker.

    With `group`, a message on another group's topic is refused even when it is
    valid: a broker that misdelivers must not make a device run another group's bundle.
    """
    try:
        address = topic_space.parse(topic)
        if address.kind is not topics.Kind.BUNDLE or address.group is None or address.name is None:
            raise errors.InvalidName(f"{topic!r} is not a bundle topic")
        if group is not None and address.group != group:
            raise errors.WrongBinding(f"{topic!r} belongs to group {address.group}, not to {group}")
        manifest = envelopes.verify(
            payload,
            trusted=trusted,
            group=address.group,
            bundle=address.name,
            applied_generation=applied_generation,
        )
    except errors.WireError as exc:
        # The topic is the sender's: a 64 KB one must not make a 64 KB log line per message.
        log.warning("refused message on %s: %s: %s", topic[:200], type(exc).__name__, exc)
        return Refused(topic, exc)
    return Accepted(topic, manifest, len(payload))


async def bundles(
    url: urls.BrokerUrl,
    *,
    group: str,
    trusted: keys.Keyring,
    topic_space: topics.Topics = DEFAULT_TOPICS,
    identifier: str | None = None,
) -> AsyncIterator[Received]:
    """Yield every retained and live message of `group`'s bundle topics, checked."""
    name = identifier or f"edgefleet-receiver-{uuid.uuid4().hex[:8]}"
    filters = [topic_space.bundles_filter(group)]
    async for topic, payload in connection.messages(url, filters, identifier=name):
        yield check(topic, payload, topic_space=topic_space, trusted=trusted)
