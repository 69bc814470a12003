"""mqtts:// end to end: the controller publishes and the agent receives over TLS,
trusting the broker's CA from its config; without that CA it does not connect."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import pytest

from controller import publishing
from edge_agent import receiving
from tests import brokers, factories, tlscerts, waiting
from wire import envelopes, keys, topics, urls

T = topics.Topics()


async def test_manifest_crosses_a_tls_broker(
    tmp_path: Path, topic_root: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = keys.SigningKey.generate()
    trusted = keys.keyring([key.verify_key])
    with brokers.mosquitto(tmp_path, tls=tlscerts.make(tmp_path / "tls")) as url:
        assert url.tls
        manifest = factories.manifest(group=topic_root, bundle="web")
        await publishing.publish_retained(url, [(T.bundle(topic_root, "web"), envelopes.seal(manifest, key, version=2))])
        async with asyncio.timeout(15):
            async for item in receiving.bundles(url, group=topic_root, trusted=trusted):
                assert isinstance(item, receiving.Accepted) and item.manifest == manifest
                break

        untrusting = urls.BrokerUrl(url.host, url.port, tls=True)  # the system CAs do not know ours
        caplog.set_level(logging.WARNING, logger="edge_agent.connection")
        listener = asyncio.ensure_future(
            anext(receiving.bundles(untrusting, group=topic_root, trusted=trusted))
        )
        try:
            await waiting.until_async(
                lambda: "certificate verify failed" in caplog.text,
                timeout=15,
                what="a TLS verification failure",
            )
            assert not listener.done()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
