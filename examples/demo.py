"""The most complete flow that exists, end to end on the embedded defaults.

    1. create a controller signing key in a state directory;
    2. start the embedded MQTT broker on a free loopback port;
    3. read the `hello-web` bundle, seal it for group `demo/site-1`, publish it
       retained (and, beside it, an envelope signed by a key nobody trusts);
    4. connect afterwards as a device would, receive both retained messages,
       verify each, and print what was verified and what was refused.

Run it with `make demo`. Exits 0 only when the real bundle verified and the
forged one was refused.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from broker import embedded
from controller import errors, keystore, plain, publishing
from edge_agent import receiving
from wire import envelopes, keys, manifests, topics

EXAMPLES = Path(__file__).resolve().parent
GROUP = "demo/site-1"
BUNDLE = "hello-web"
FORGED = "hello-web-forged"


def build_manifest(bundle_dir: Path, *, group: str, generation: int) -> manifests.Manifest:
    variant = manifests.Variant("default", tuple(plain.load_objects(bundle_dir)))
    everyone = manifests.Target("all", variant.deployment_id, cluster_selector=manifests.ClusterSelector())
    return manifests.Manifest(
        manifests.Kind.BUNDLE, bundle_dir.name, group, generation, time.time(), (everyone,), (variant,)
    )


def _describe(obj: dict[str, object]) -> str:
    metadata = obj["metadata"]
    assert isinstance(metadata, dict)
    namespace = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{obj['kind']} {namespace}{metadata['name']}"


async def run(state_dir: Path, out: Callable[[str], None] = print) -> int:
    try:
        key = keystore.load(state_dir)
    except errors.StateError:
        key = keystore.init(state_dir)
    out(f"controller signing key {key.verify_key.fingerprint} ({keystore.private_path(state_dir)})")
    space = topics.Topics()
    manifest = build_manifest(EXAMPLES / BUNDLE, group=GROUP, generation=1)
    sealed = envelopes.seal(manifest, key)
    yaml_bytes = sum(p.stat().st_size for p in (EXAMPLES / BUNDLE).glob("*.yaml"))
    forged = envelopes.seal(
        build_manifest(EXAMPLES / BUNDLE, group=GROUP, generation=1), keys.SigningKey.generate()
    )

    async with embedded.serve() as endpoint:
        out(f"embedded broker listening on {endpoint.url}")
        await publishing.publish_retained(
            endpoint.url, [(space.bundle(GROUP, BUNDLE), sealed), (space.bundle(GROUP, FORGED), forged)]
        )
        out(
            f"published {BUNDLE} generation 1 retained to {space.bundle(GROUP, BUNDLE)}: "
            f"{len(sealed)} bytes on the wire for {yaml_bytes} bytes of YAML"
        )
        out(f"published an envelope signed by an untrusted key to {space.bundle(GROUP, FORGED)}")

        out("a device connects afterwards and subscribes to " + space.bundles_filter(GROUP))
        trusted = keys.keyring([key.verify_key])
        received: dict[str, receiving.Received] = {}
        async with asyncio.timeout(20):
            async for item in receiving.bundles(endpoint.url, group=GROUP, trusted=trusted):
                received[item.topic] = item
                if len(received) == 2:
                    break

    ok = True
    good = received.get(space.bundle(GROUP, BUNDLE))
    if isinstance(good, receiving.Accepted):
        m = good.manifest
        [variant] = m.variants
        signer = key.verify_key.fingerprint
        out(f"VERIFIED {m.bundle} for {m.group}: generation {m.generation}, signed by {signer}")
        out(f"  deployment {variant.deployment_id[:16]}… (re-hashed on receipt), ns {variant.namespace}")
        for obj in variant.objects:
            out(f"  - {_describe(dict(obj))}")
    else:
        ok = False
        out(f"FAILED: {BUNDLE} was not verified: {good}")
    bad = received.get(space.bundle(GROUP, FORGED))
    if isinstance(bad, receiving.Refused):
        out(f"REFUSED {FORGED}: {type(bad.error).__name__}: {bad.error}")
    else:
        ok = False
        out(f"FAILED: the forged envelope was not refused: {bad}")
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
