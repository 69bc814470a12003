"""`edgefleet server` (embedded broker + controller) and `edgefleet controller` (external broker).

Both run the aggregator (controller.aggregating), which also answers join
requests, until SIGTERM or Ctrl-C. The server is the embedded default for
development and small fleets: one process, the amqtt broker listening where
`--listen` says, admitting only the registry's credentials (with `--tls`, on
mqtts:// with a development CA from controller.tlsca). The controller drives
an external Mosquitto's dynamic security with the admin account in
`--broker`, or, with `--security none`, trusts a broker that enforces nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from controller import aggregating, dynsec, errors, keystore, login, security, tlsca
from controller.identities import Identities, controller_password
from controller.state import State
from wire import errors as wire_errors
from wire import topics, urls

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:1883"


def add_commands(
    commands: Any,
    add_state_dir: Callable[[argparse.ArgumentParser], None],
    add_broker: Callable[[argparse.ArgumentParser], None],
) -> None:
    server = commands.add_parser("server", help="run the embedded broker and the controller in one process")
    server.add_argument(
        "--listen", default=DEFAULT_LISTEN, help=f"host:port to listen on (default {DEFAULT_LISTEN})"
    )
    server.add_argument(
        "--tls", action="store_true", help="listen with mqtts:// (a development CA in <state-dir>/tls)"
    )
    server.set_defaults(run=_server)
    controller = commands.add_parser("controller", help="run the controller against an external broker")
    add_broker(controller)
    controller.add_argument(
        "--security",
        choices=("dynsec", "none"),
        default="dynsec",
        help="dynsec: manage Mosquitto's dynamic security with the admin account in --broker "
        "(default); none: the broker enforces nothing (development only)",
    )
    controller.set_defaults(run=_controller)
    simulate = commands.add_parser(
        "simulate", help="SIMULATION: run N simulated agents (real agent code, in-memory clusters)"
    )
    add_broker(simulate)
    simulate.add_argument("--clusters", type=int, required=True)
    simulate.add_argument(
        "--groups", default="", help="topic roots to spread the clusters over, comma-separated"
    )
    simulate.add_argument(
        "--join",
        action="append",
        default=[],
        help="join string from 'edgefleet token create' (repeat per group): clusters register first",
    )
    simulate.add_argument("--labels", default="", help="labels every simulated cluster has, k=v,...")
    simulate.add_argument(
        "--vary", action="append", default=[], help="k=v1,v2: label values cycled over clusters"
    )
    simulate.add_argument("--ready-delay", type=float, default=0.5)
    simulate.add_argument("--fail-fraction", type=float, default=0.0)
    add_state_dir(simulate)
    simulate.set_defaults(run=_simulate)
    for parser in (server, controller):
        add_state_dir(parser)
        parser.add_argument(
            "--summary-interval",
            type=float,
            default=aggregating.Settings.summary_interval,
            help="seconds between summary updates while the fleet changes",
        )


def _settings(args: argparse.Namespace) -> aggregating.Settings:
    return aggregating.Settings(summary_interval=args.summary_interval)


def _checked(args: argparse.Namespace) -> None:
    if args.state_dir is None:
        raise errors.StateError("no state directory: pass --state-dir or set EDGEFLEET_STATE_DIR")
    keystore.load(args.state_dir)  # fail now, with the key's own message, not inside the loop


async def _until_stopped(work: Awaitable[None]) -> None:
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def serve_embedded(args: argparse.Namespace) -> None:
    from broker import embedded  # the broker extra is only needed here

    host, _, port = args.listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    tls = None
    if getattr(args, "tls", False):
        files = tlsca.ensure(args.state_dir, [host])
        tls = embedded.Tls(files.cert, files.key)
    state = State.open(args.state_dir)
    registry = Identities(state)
    password = controller_password(args.state_dir)
    registry.ensure_controller(password)
    try:
        async with embedded.serve(
            host, int(port), authority=security.RegistryAuthority(registry), space=topics.Topics(), tls=tls
        ) as endpoint:
            url = login.as_controller(endpoint.url, args.state_dir)
            if tls is not None:
                url = dataclasses.replace(url, ca_file=str(tlsca.ca_path(args.state_dir)))
            print(
                f"edgefleet server: broker on {endpoint.url}, controller state in {args.state_dir}",
                flush=True,
            )
            aggregator = aggregating.Aggregator(
                args.state_dir,
                url,
                settings=_settings(args),
                broker_security=security.Embedded(endpoint.disconnect),
            )
            await aggregator.run()
    except (OSError, ValueError) as exc:
        raise errors.ControllerError(f"cannot listen on {args.listen}: {exc}") from exc
    finally:
        state.close()


def _server(args: argparse.Namespace) -> None:
    _checked(args)
    try:
        asyncio.run(_until_stopped(serve_embedded(args)))
    except ImportError as exc:
        raise errors.ControllerError(f"the embedded broker needs edgefleet[broker]: {exc}") from exc


def _simulate(args: argparse.Namespace) -> None:
    """Hand over to the agent package's simulator, in its own process image (the
    controller never imports agent code)."""
    _checked(args)
    argv = [
        sys.executable,
        "-m",
        "edge_agent.simulation",
        "--broker",
        args.broker,
        "--trust",
        str(keystore.public_path(args.state_dir)),
        "--clusters",
        str(args.clusters),
        "--labels",
        args.labels,
        "--ready-delay",
        str(args.ready_delay),
        "--fail-fraction",
        str(args.fail_fraction),
    ]
    for group in filter(None, args.groups.split(",")):
        argv += ["--group", group]
    for join in args.join:
        argv += ["--join", join]
    if not args.join and not args.groups:
        raise errors.ControllerError("give --join (from 'edgefleet token create') or --groups")
    for vary in args.vary:
        argv += ["--vary", vary]
    sys.stdout.flush()
    os.execv(sys.executable, argv)


def _controller(args: argparse.Namespace) -> None:
    _checked(args)
    try:
        url = urls.BrokerUrl.parse(args.broker, ca_file=args.broker_ca)
    except wire_errors.WireError as exc:
        raise errors.ControllerError(f"--broker: {exc}") from exc
    if args.security == "dynsec" and url.username is None:
        raise errors.ControllerError(
            "--security dynsec needs the dynamic-security admin account in --broker, "
            "e.g. mqtt://admin:PASSWORD@host:1883 (or --security none for a broker that enforces nothing)"
        )
    print(f"edgefleet controller: broker {url}, state in {args.state_dir}", file=sys.stderr, flush=True)
    asyncio.run(_until_stopped(serve_external(args, url)))


async def serve_external(args: argparse.Namespace, url: urls.BrokerUrl) -> None:
    settings = _settings(args)
    if args.security == "none":
        log.warning("--security none: the broker at %s enforces nothing; any client can do anything", url)
        await aggregating.Aggregator(
            args.state_dir, login.login(url, args.state_dir), settings=settings
        ).run()
        return
    state = State.open(args.state_dir)
    try:
        registry = Identities(state)
        password = controller_password(args.state_dir)
        registry.ensure_controller(password)
        async with dynsec.connect(url, topics.Topics(), registry) as admin:
            await admin.prepare(password)
            own = login.as_controller(dataclasses.replace(url, username=None, password=None), args.state_dir)
            aggregator = aggregating.Aggregator(args.state_dir, own, settings=settings, broker_security=admin)
            await aggregator.run()
    finally:
        state.close()
