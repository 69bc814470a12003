"""The most complete flow that exists, end to end on the embedded defaults.

    1. create a controller signing key in a state directory;
    2. start the embedded MQTT broker on a free loopback port;
    3. render the `hello-web` and `multi-region` bundles for two groups
       (`edge/us-west`, labelled region=us-west, and `edge/eu-central`), seal
       one manifest per group and bundle, and publish each retained; beside
       them, publish an envelope signed by a key nobody trusts;
    4. connect afterwards as the device `pi-sf-12` of `edge/us-west` would,
       receive every retained bundle message of its group, verify each, pick
       its own variant by its labels, and print what it would apply and what
       it refused.

Run it with `make demo`. Exits 0 only when every real bundle verified and
the forged one was refused.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from broker import embedded
from controller import bundles, errors, keystore, publishing, targeting
from edge_agent import receiving
from wire import envelopes, keys, manifests, selectors, topics

EXAMPLES = Path(__file__).resolve().parent
BUNDLES = ("hello-web", "multi-region")
GROUPS = (targeting.Group("edge/us-west", {"region": "us-west"}), targeting.Group("edge/eu-central"))
DEVICE = "pi-sf-12"
DEVICE_GROUP = "edge/us-west"
DEVICE_LABELS = {"env": "prod", "store": "sf-12"}
FORGED = "hello-web-forged"


def sealed_messages(
    key: keys.SigningKey, space: topics.Topics, out: Callable[[str], None]
) -> list[tuple[str, bytes]]:
    """Render each bundle for each group and seal what each group gets."""
    messages = []
    for name in BUNDLES:
        with bundles.open_bundle(EXAMPLES / name) as bundle:
            for group in GROUPS:
                plan = bundle.plan(group)
                if not plan.targets:
                    out(f"  {name} is not targeted at {group.name}")
                    continue
                manifest = plan.manifest(bundle.name, generation=1, issued_at=time.time())
                sealed = envelopes.seal(manifest, key)
                messages.append((space.bundle(group.name, bundle.name), sealed))
                out(
                    f"  {name} -> {group.name}: {len(plan.targets)} target(s), "
                    f"{len(plan.variants)} variant(s), {len(sealed)} bytes signed"
                )
    return messages


def forged_message(space: topics.Topics) -> tuple[str, bytes]:
    variant = manifests.Variant(
        "default", ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "evil"}},)
    )
    target = manifests.Target("all", variant.deployment_id, cluster_selector=manifests.ClusterSelector())
    manifest = manifests.Manifest(
        manifests.Kind.BUNDLE, FORGED, DEVICE_GROUP, 99, time.time(), (target,), (variant,)
    )
    return space.bundle(DEVICE_GROUP, FORGED), envelopes.seal(manifest, keys.SigningKey.generate())


def _describe(obj: Mapping[str, Any]) -> str:
    metadata = obj["metadata"]
    namespace = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{obj['kind']} {namespace}{metadata['name']}"


async def run(state_dir: Path, out: Callable[[str], None] = print) -> int:
    try:
        key = keystore.load(state_dir)
    except errors.StateError:
        key = keystore.init(state_dir)
    out(f"controller signing key {key.verify_key.fingerprint} ({keystore.private_path(state_dir)})")
    space = topics.Topics()
    out("rendering bundles per group:")
    messages = [*sealed_messages(key, space, out), forged_message(space)]

    async with embedded.serve() as endpoint:
        out(f"embedded broker listening on {endpoint.url}")
        await publishing.publish_retained(endpoint.url, messages)
        out(f"published {len(messages)} retained messages (one signed by an untrusted key)")
        expected = {topic for topic, _ in messages if topic.startswith(DEVICE_GROUP + "/")}
        out(f"device {DEVICE} ({DEVICE_LABELS}) connects afterwards to {space.bundles_filter(DEVICE_GROUP)}")
        trusted = keys.keyring([key.verify_key])
        received: dict[str, receiving.Received] = {}
        async with asyncio.timeout(20):
            async for item in receiving.bundles(endpoint.url, group=DEVICE_GROUP, trusted=trusted):
                received[item.topic] = item
                if set(received) == expected:
                    break

    ok = True
    for topic in sorted(received):
        item = received[topic]
        if isinstance(item, receiving.Refused):
            ok = ok and topic.endswith("/" + FORGED)
            out(f"REFUSED {topic}: {type(item.error).__name__}: {item.error}")
            continue
        manifest = item.manifest
        ok = ok and not topic.endswith("/" + FORGED)
        choice = selectors.select(manifest.targets, cluster=DEVICE, labels=DEVICE_LABELS)
        verified = f"VERIFIED {manifest.bundle} for {manifest.group}: generation {manifest.generation}"
        out(f"{verified}; {choice.reason}")
        if choice.deployment_id is not None:
            variant = manifest.variant(choice.deployment_id)
            out(f"  would apply {len(variant.objects)} objects (default namespace {variant.namespace}):")
            for obj in variant.objects:
                out(f"  - {_describe(obj)}")
    if not any(isinstance(i, receiving.Refused) for i in received.values()):
        ok = False
        out("FAILED: the forged envelope was not refused")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--state-dir", type=Path, help="controller state directory (default: a temporary one)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    # The demo prints its own account; library logs only when asked for (-v).
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.state_dir is not None:
        return asyncio.run(run(args.state_dir))
    with tempfile.TemporaryDirectory(prefix="edgefleet-demo-") as tmp:
        return asyncio.run(run(Path(tmp) / "state"))


if __name__ == "__main__":
    sys.exit(main())
