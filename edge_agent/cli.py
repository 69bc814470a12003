"""`edgefleet-agent`: the device's command line.

`join` registers the device with a join string and writes its identity into
the state directory; `run` is the agent itself (with that identity, or a
config from `edgefleet cluster add`). `verify` checks a captured message
offline exactly as the agent would before applying it, which is how an
operator answers "why did the device refuse this?".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

import wire
from edge_agent import errors as agent_errors
from edge_agent import joining, receiving
from edge_agent.agent import Agent
from edge_agent.store import Store
from wire import agent_config, errors, keys, names, topics

# Where a device keeps its state unless told otherwise (a packaged agent's home).
DEFAULT_STATE_DIR = Path("/var/lib/edgefleet-agent")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgefleet-agent", description="edgefleet device agent.")
    parser.add_argument("--version", action="version", version=f"edgefleet-agent {wire.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    join = commands.add_parser("join", help="register with a join string; then 'run' needs no config")
    join.add_argument("join_string", metavar="JOIN-STRING", help="from 'edgefleet token create'")
    join.add_argument("--name", required=True, help="this cluster's name, unique in the fleet")
    join.add_argument("--label", action="append", default=[], help="k=v to ask for, repeatable")
    join.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help=f"default {DEFAULT_STATE_DIR}"
    )
    cluster = join.add_mutually_exclusive_group()
    cluster.add_argument(
        "--kubeconfig", type=Path, help="local cluster, to report its Kubernetes version with the request"
    )
    cluster.add_argument("--in-cluster", action="store_true", help="the same, with the pod's service account")
    join.add_argument("-v", "--verbose", action="store_true")
    join.set_defaults(run=_join)
    run = commands.add_parser("run", help="run the agent: receive, verify and apply bundles")
    run.add_argument(
        "--config", type=Path, help="agent config (default: the identity 'join' wrote in --state-dir)"
    )
    run.add_argument(
        "--state-dir",
        type=Path,
        help=f"where the agent keeps its state (default: from the config, or {DEFAULT_STATE_DIR})",
    )
    where = run.add_mutually_exclusive_group()
    where.add_argument(
        "--kubeconfig", type=Path, help="kubeconfig of the local cluster (default: ~/.kube/config)"
    )
    where.add_argument("--in-cluster", action="store_true", help="use the pod's service account")
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(run=_run)
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


def load_config(path: Path) -> agent_config.AgentConfig:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise agent_errors.ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise agent_errors.ConfigError(f"{path} is not valid YAML: {exc}") from exc
    try:
        return agent_config.from_document(document)
    except errors.WireError as exc:
        raise agent_errors.ConfigError(f"{path}: {exc}") from exc


def build_agent(args: argparse.Namespace) -> Agent:
    from edge_agent import applying  # the kubernetes client loads only for `run`

    if args.config is None:
        identity = joining.identity_path(args.state_dir or DEFAULT_STATE_DIR)
        if not identity.exists():
            raise agent_errors.ConfigError(
                f"no identity at {identity}: run 'edgefleet-agent join JOIN-STRING --name NAME' first "
                "(or pass --config)"
            )
        config = load_config(identity)
    else:
        config = load_config(args.config)
    state_dir = args.state_dir or (Path(config.state_dir) if config.state_dir else None)
    if state_dir is None:
        raise agent_errors.ConfigError("no state directory: pass --state-dir or set state_dir in the config")
    client = applying.api_client(kubeconfig=args.kubeconfig, in_cluster=args.in_cluster)
    applier = applying.KubeApplier(client, discovery_cache=state_dir / "discovery.json")
    return Agent(config, Store(state_dir), applier)


async def _serve(agent: Agent) -> None:
    task = asyncio.ensure_future(agent.run())
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _run(args: argparse.Namespace) -> int:
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.getLogger("edge_agent").setLevel(level)
    logging.getLogger("wire").setLevel(level)
    try:
        agent = build_agent(args)
    except agent_errors.AgentError as exc:
        print(f"edgefleet-agent: error: {exc}", file=sys.stderr)
        return 1
    asyncio.run(_serve(agent))
    return 0


def _labels(items: list[str]) -> dict[str, str]:
    labels = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise agent_errors.ConfigError(f"--label {item!r} is not key=value")
        labels[key] = value
    return labels


def _cluster_facts(args: argparse.Namespace) -> dict[str, str]:
    """The local cluster's Kubernetes version and platform, when told where it is; {} if unreadable."""
    if args.kubeconfig is None and not args.in_cluster:
        return {}
    from edge_agent import applying  # the kubernetes client loads only when asked

    try:
        client = applying.api_client(kubeconfig=args.kubeconfig, in_cluster=args.in_cluster)
        facts = applying.KubeApplier(client).facts()
    except agent_errors.AgentError as exc:
        logging.getLogger(__name__).warning("joining without cluster facts: %s", exc)
        return {}
    found = {"kubernetes_version": facts["kubernetes_version"], "platform": facts["platform"]}
    return {key: value for key, value in found.items() if value}


def _join(args: argparse.Namespace) -> int:
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.getLogger("edge_agent").setLevel(level)
    try:
        names.cluster(args.name)
        joined = asyncio.run(
            joining.join(
                args.join_string,
                name=args.name,
                state_dir=args.state_dir,
                labels=_labels(args.label),
                facts=_cluster_facts(args),
            )
        )
    except errors.InvalidName as exc:
        print(f"edgefleet-agent: error: --name: {exc}", file=sys.stderr)
        return 1
    except joining.JoinDenied as exc:
        print(f"edgefleet-agent: join denied: {exc}", file=sys.stderr)
        return 3
    except agent_errors.AgentError as exc:
        print(f"edgefleet-agent: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgefleet-agent: join interrupted; run it again to keep waiting", file=sys.stderr)
        return 130
    config = joined.config
    print(f"joined as {config.cluster} in group {config.group}; identity in {joined.path}")
    print(f"start the agent with: edgefleet-agent run --state-dir {args.state_dir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
