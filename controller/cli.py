"""`edgefleet`: the operator's command line.

Parses arguments, configures logging, calls the function that does the work,
and turns a ControllerError into a one-line message and exit status 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import wire
from controller import bundle_cli, errors, fleet_cli, join_cli, keystore, server_cli, status_cli

log = logging.getLogger(__name__)

STATE_DIR_ENV = "EDGEFLEET_STATE_DIR"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgefleet", description="Manage fleets of edge Kubernetes clusters."
    )
    parser.add_argument("--version", action="version", version=f"edgefleet {wire.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keys_parser = commands.add_parser("keys", help="the controller's signing key")
    keys_commands = keys_parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    init = keys_commands.add_parser("init", help="create the signing key")
    _add_state_dir(init)
    init.add_argument("--force", action="store_true", help="replace an existing key (agents must re-join)")
    init.set_defaults(run=_keys_init)
    show = keys_commands.add_parser("show", help="print the signing key's fingerprint")
    _add_state_dir(show)
    show.set_defaults(run=_keys_show)

    bundle_actions = bundle_cli.add_commands(commands)
    fleet_cli.add_bundle_commands(bundle_actions, _add_state_dir)
    fleet_cli.add_commands(commands, _add_state_dir)
    server_cli.add_commands(commands, _add_state_dir, fleet_cli.add_broker)
    join_cli.add_commands(commands, _add_state_dir)
    status_parsers = status_cli.add_commands(commands, fleet_cli.add_broker)
    join_cli.add_cluster_actions(status_parsers["clusters"], _add_state_dir)
    return parser


def _add_state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=os.environ.get(STATE_DIR_ENV),
        help=f"controller state directory (default: ${STATE_DIR_ENV})",
    )


def _state_dir(args: argparse.Namespace) -> Path:
    if args.state_dir is None:
        raise errors.StateError(f"no state directory: pass --state-dir or set {STATE_DIR_ENV}")
    state_dir: Path = args.state_dir
    return state_dir


def _keys_init(args: argparse.Namespace) -> None:
    key = keystore.init(_state_dir(args), force=args.force)
    print(f"signing key {key.verify_key.fingerprint} written to {keystore.private_path(_state_dir(args))}")


def _keys_show(args: argparse.Namespace) -> None:
    key = keystore.load(_state_dir(args))
    print(key.verify_key.fingerprint)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # Our own packages say what they do; libraries (amqtt, transitions, paho) only warn.
    for package in ("controller", "broker", "wire"):
        logging.getLogger(package).setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        args.run(args)
    except errors.ControllerError as exc:
        print(f"edgefleet: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away; that is not a failure of ours.
        sys.stderr.close()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
