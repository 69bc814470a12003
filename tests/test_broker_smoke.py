"""A signed envelope published retained through each real broker reaches a
subscriber that connects afterwards, and verifies there."""

from __future__ import annotations

import asyncio

from controller import publishing
from edge_agent import receiving
from tests import factories
from wire import envelopes, errors, keys, topics, urls

T = topics.Topics()


async def _first(
    url: urls.BrokerUrl, group: str, trusted: keys.Keyring, count: int = 1
) -> list[receiving.Received]:
    received: list[receiving.Received] = []
    async with asyncio.timeout(15):
        async for item in receiving.bundles(url, group=group, trusted=trusted):
            received.append(item)
            if len(received) == count:
                return received
    raise AssertionError("subscription ended early")


async def test_retained_envelope_reaches_late_subscriber_and_verifies(
    broker_url: urls.BrokerUrl, topic_root: str, signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    manifest = factories.manifest(group=topic_root, bundle="web")
    sealed = envelopes.seal(manifest, signing_key, version=2)
    await publishing.publish_retained(broker_url, [(T.bundle(topic_root, "web"), sealed)])

    [received] = await _first(broker_url, topic_root, trusted)

    assert isinstance(received, receiving.Accepted)
    assert received.manifest == manifest
    assert received.size == len(sealed)


async def test_forged_and_misrouted_envelopes_are_refused_by_the_subscriber(
    broker_url: urls.BrokerUrl, topic_root: str, signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    forger = keys.SigningKey.generate()
    forged = envelopes.seal(factories.manifest(group=topic_root, bundle="forged"), forger, version=2)
    misrouted = envelopes.seal(factories.manifest(group=topic_root, bundle="db"), signing_key, version=2)
    await publishing.publish_retained(
        broker_url, [(T.bundle(topic_root, "forged"), forged), (T.bundle(topic_root, "web"), misrouted)]
    )

    received = await _first(broker_url, topic_root, trusted, count=2)

    refusals = {item.topic: type(item.error) for item in received if isinstance(item, receiving.Refused)}
    assert refusals == {
        T.bundle(topic_root, "forged"): errors.UnknownKey,
        T.bundle(topic_root, "web"): errors.WrongBinding,
    }


async def test_clients_get_only_the_retained_messages_they_subscribed_to(
    broker_url: urls.BrokerUrl, topic_root: str
) -> None:
    import aiomqtt

    await publishing.publish_retained(
        broker_url, [(f"{topic_root}/a/x", b"for a"), (f"{topic_root}/b/x", b"for b")]
    )
    async with aiomqtt.Client(broker_url.host, broker_url.port) as first:
        await first.subscribe(f"{topic_root}/a/+")
        async with asyncio.timeout(10):
            async for message in first.messages:
                assert message.topic.value == f"{topic_root}/a/x"
                break
        # A second client, subscribing to b only, while a's subscription is alive.
        async with aiomqtt.Client(broker_url.host, broker_url.port) as second:
            await second.subscribe(f"{topic_root}/b/+")
            async with asyncio.timeout(10):
                async for message in second.messages:
                    assert message.topic.value == f"{topic_root}/b/x", (
                        "delivered another client's subscription"
                    )
                    break


async def test_many_clients_connecting_at_once_all_get_their_retained_message(
    broker_url: urls.BrokerUrl, topic_root: str, signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    sealed = envelopes.seal(factories.manifest(group=topic_root, bundle="web"), signing_key, version=2)
    await publishing.publish_retained(broker_url, [(T.bundle(topic_root, "web"), sealed)])
    results = await asyncio.gather(*(_first(broker_url, topic_root, trusted) for _ in range(12)))
    assert all(isinstance(item, receiving.Accepted) for [item] in results)
