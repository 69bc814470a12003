"""`edgefleet group|cluster|apply|bundle delete|bundle list`: the registry and publishing.

Each command opens the state directory, does one thing, and prints a short
account; failures are ControllerErrors (one line, exit status 1). `apply`
exits 1 when any group's publish was not acknowledged, saying which; running
it again finishes the job.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from controller import bundle_cli, delivering, errors, identities, keystore, login, tokens
from controller.state import Cluster, Group, State
from wire import agent_config, names, topics, urls
from wire import errors as wire_errors

BROKER_ENV = "EDGEFLEET_BROKER"
BROKER_CA_ENV = "EDGEFLEET_BROKER_CA"
DEFAULT_BROKER = "mqtt://127.0.0.1:1883"


def add_commands(commands: Any, add_state_dir: Any) -> None:
    group = commands.add_parser("group", help="cluster groups (each owns an MQTT topic root)")
    group_actions = group.add_subparsers(dest="group_command", required=True, metavar="ACTION")
    create = group_actions.add_parser("create", help="create a group")
    create.add_argument("name")
    create.add_argument("--label", action="append", default=[], help="k=v, repeatable")
    create.add_argument("--topic-root", help="MQTT topic root (default: the group's name)")
    create.set_defaults(run=_group_create)
    listing = group_actions.add_parser("list", help="list groups")
    listing.set_defaults(run=_group_list)
    remove = group_actions.add_parser("delete", help="delete an empty group")
    remove.add_argument("name")
    remove.set_defaults(run=_group_delete)

    cluster = commands.add_parser("cluster", help="clusters added by hand (most join with 'edgefleet token')")
    cluster_actions = cluster.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    add = cluster_actions.add_parser("add", help="record a cluster and write its agent config")
    add.add_argument("name")
    add.add_argument("--group", required=True)
    add.add_argument("--label", action="append", default=[], help="k=v, repeatable")
    add_broker(add)
    add.add_argument("--config-out", type=Path, help="agent config file to write (default: NAME.agent.yaml)")
    add.set_defaults(run=_cluster_add)
    clusters = cluster_actions.add_parser("list", help="list clusters")
    clusters.set_defaults(run=_cluster_list)

    apply = commands.add_parser("apply", help="render bundles and publish what changed to their groups")
    apply.add_argument("directories", nargs="+", type=Path, metavar="DIR")
    add_broker(apply)
    apply.set_defaults(run=_apply)

    for parser in (create, listing, remove, add, clusters, apply):
        add_state_dir(parser)


def add_bundle_commands(actions: Any, add_state_dir: Any) -> None:
    delete = actions.add_parser(
        "delete", help="publish a signed tombstone to every group that has the bundle"
    )
    delete.add_argument("name")
    add_broker(delete)
    delete.set_defaults(run=_bundle_delete)
    listing = actions.add_parser("list", help="list bundles with generations and groups")
    listing.set_defaults(run=_bundle_list)
    for parser in (delete, listing):
        add_state_dir(parser)


def add_broker(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        default=os.environ.get(BROKER_ENV, DEFAULT_BROKER),
        help=f"broker URL, mqtt:// or mqtts:// (default: ${BROKER_ENV} or {DEFAULT_BROKER})",
    )
    parser.add_argument(
        "--broker-ca",
        default=os.environ.get(BROKER_CA_ENV),
        help=f"CA file for an mqtts:// broker's certificate (default: ${BROKER_CA_ENV} or the system's CAs)",
    )


def _broker(args: argparse.Namespace) -> urls.BrokerUrl:
    try:
        url = urls.BrokerUrl.parse(args.broker, ca_file=args.broker_ca)
    except wire_errors.WireError as exc:
        raise errors.ControllerError(f"--broker: {exc}") from exc
    return login.login(url, getattr(args, "state_dir", None))


@contextmanager
def _state(args: argparse.Namespace) -> Iterator[State]:
    if args.state_dir is None:
        raise errors.StateError("no state directory: pass --state-dir or set EDGEFLEET_STATE_DIR")
    state = State.open(args.state_dir)
    try:
        yield state
    finally:
        state.close()


def parse_labels(items: list[str]) -> dict[str, str]:
    """Repeated `--label k=v` options as a map."""
    return bundle_cli.parse_labels(",".join(items), what="--label")


def _checked_group_name(name: str) -> str:
    try:
        return topics.Topics().group(name)
    except wire_errors.InvalidName as exc:
        raise errors.ControllerError(str(exc)) from exc


def _group_create(args: argparse.Namespace) -> None:
    name = _checked_group_name(args.name)
    root = _checked_group_name(args.topic_root or name)
    with _state(args) as state:
        state.add_group(Group(name, root, parse_labels(args.label)))
    print(f"group {name} created (topic root {root})")


def _group_list(args: argparse.Namespace) -> None:
    with _state(args) as state:
        groups, clusters = state.groups(), state.clusters()
    for group in groups:
        members = sum(1 for c in clusters if c.group == group.name)
        labels = ",".join(f"{k}={v}" for k, v in group.labels.items()) or "-"
        print(f"{group.name:<32} topic root {group.topic_root:<32} labels {labels:<30} {members} cluster(s)")


def _group_delete(args: argparse.Namespace) -> None:
    with _state(args) as state:
        state.delete_group(args.name)
    print(f"group {args.name} deleted")


def _cluster_add(args: argparse.Namespace) -> None:
    try:
        name = names.cluster(args.name)
    except wire_errors.InvalidName as exc:
        raise errors.ControllerError(str(exc)) from exc
    _broker(args)  # refuse a bad URL before recording anything
    password = tokens.new_secret()
    with _state(args) as state:
        key = keystore.load(args.state_dir)
        group = state.group(args.group)
        cluster = Cluster(name, group.name, parse_labels(args.label))
        state.add_cluster(cluster)
        identities.Identities(state).add_credential(name, password)
    config = agent_config.AgentConfig(
        cluster=name,
        group=group.topic_root,
        broker=args.broker,
        trusted_keys=(key.verify_key.to_pem().decode(),),
        labels=dict(cluster.labels),
        username=identities.cluster_username(name),
        password=password,
    )
    target = args.config_out or Path(f"{name}.agent.yaml")
    text = yaml.dump(agent_config.to_document(config), Dumper=_BlockDumper, sort_keys=False)
    try:
        keystore.write_atomic(target, text.encode(), mode=0o600)
    except errors.StateError as exc:
        raise errors.ControllerError(
            f"cluster {name} recorded, but its agent config was not written: {exc}"
        ) from exc
    print(f"cluster {name} added to {group.name}; agent config written to {target}")


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (PEM keys) as literal blocks, as people write them."""


_BlockDumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
    ),
)


def _cluster_list(args: argparse.Namespace) -> None:
    with _state(args) as state:
        clusters = state.clusters()
    for cluster in clusters:
        labels = ",".join(f"{k}={v}" for k, v in cluster.labels.items()) or "-"
        print(f"{cluster.name:<32} group {cluster.group:<32} labels {labels}")


def _print_report(report: delivering.Report) -> None:
    for warning in report.warnings:
        print(f"edgefleet: warning: {warning}", file=sys.stderr)
    if not report.published and not report.failed:
        print(f"{report.bundle}: unchanged, nothing published")
        return
    for group, what in sorted(report.published.items()):
        version, size = report.sealed[group]
        print(f"{report.bundle}: {group}: published {what} (envelope format {version}, {size:,} bytes)")
    for group in report.unchanged:
        print(f"{report.bundle}: {group}: unchanged")
    for group, why in sorted(report.failed.items()):
        print(f"{report.bundle}: {group}: FAILED: {why}", file=sys.stderr)


def _apply(args: argparse.Namespace) -> None:
    broker = _broker(args)
    failed: list[str] = []
    with _state(args) as state:
        key = keystore.load(args.state_dir)
        for directory in args.directories:
            report = asyncio.run(delivering.apply(state, key, broker, directory, topics.Topics()))
            _print_report(report)
            failed.extend(f"{report.bundle} in {group}" for group in report.failed)
    if failed:
        raise errors.PublishError(
            f"not acknowledged: {', '.join(failed)}; run the same apply again to finish"
        )


def _bundle_delete(args: argparse.Namespace) -> None:
    broker = _broker(args)
    with _state(args) as state:
        key = keystore.load(args.state_dir)
        report = asyncio.run(delivering.delete(state, key, broker, args.name, topics.Topics()))
    if not report.published and not report.failed:
        print(f"{args.name}: no group has it; nothing published")
        return
    _print_report(report)
    if report.failed:
        raise errors.PublishError(
            f"tombstone not acknowledged in {', '.join(sorted(report.failed))}; run it again"
        )


def _bundle_list(args: argparse.Namespace) -> None:
    with _state(args) as state:
        for record in state.bundles():
            deliveries = state.deliveries(record.name)
            live = sorted(g for g, d in deliveries.items() if d.kind.value == "manifest")
            pending = sorted(g for g, d in deliveries.items() if not d.acknowledged)
            status = "deleted" if record.deleted else f"groups {', '.join(live) or '-'}"
            extra = f" (pending: {', '.join(pending)})" if pending else ""
            print(f"{record.name:<32} generation {record.generation:<6} {status}{extra}")
