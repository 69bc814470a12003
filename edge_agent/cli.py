"""`edgefleet-agent`: the device's command line.

`verify` checks a captured message offline exactly as the agent would before
applying it, which is how an operator answers "why did the device refuse this?".
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import wire
from edge_agent import receiving
from wire import errors, keys, topics


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgefleet-agent", description="edgefleet device agent.")
    parser.add_argument("--version", action="version", version=f"edgefleet-agent {wire.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verify = commands.add_parser("verify", help="verify a captured bundle message as the agent would")
    verify.add_argument("message", type=Path, help="file holding the message payload")
    verify.add_argument("--topic", required=True, help="topic it arrived on, e.g. edge/us-west/bundles/web")
    verify.add_argument(
        "--trust",
        type=Path,
        action="append",
        required=True,
        help="trusted controller public key (PEM); repeat for several",
    )
    verify.add_argument("--topic-prefix", default="fleet", help="the deployment's controller topic prefix")
    verify.set_defaults(run=_verify)
    return parser


def _verify(args: argparse.Namespace) -> int:
    try:
        trusted = keys.keyring(keys.VerifyKey.from_pem(path.read_bytes()) for path in args.trust)
        payload = args.message.read_bytes()
    except OSError as exc:
        print(f"edgefleet-agent: error: {exc}", file=sys.stderr)
        return 1
    except errors.WireError as exc:
        print(f"edgefleet-agent: error: trusted key: {exc}", file=sys.stderr)
        return 1
    result = receiving.check(
        args.topic, payload, topic_space=topics.Topics(args.topic_prefix), trusted=trusted
    )
    if isinstance(result, receiving.Refused):
        print(f"refused: {type(result.error).__name__}: {result.error}", file=sys.stderr)
        return 1
    manifest = result.manifest
    print(
        f"verified {manifest.kind.value} {manifest.bundle} for group {manifest.group}, "
        f"generation {manifest.generation}, {len(manifest.variants)} variant(s)"
    )
    for variant in manifest.variants:
        print(
            f"  {variant.deployment_id[:12]}  namespace {variant.namespace}, {len(variant.objects)} objects"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
