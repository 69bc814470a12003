"""Join benchmark: how many agents per second the controller registers in a join storm.

Run with `PATH=.venv/bin:$PATH .venv/bin/python bench/join.py` (1,000 agents on
each broker; a few minutes). It prints plain-text tables; docs/benchmarks.md
records a run of them.

Why: a site that images a batch of devices with one join string sees them all
ask at once. Every approval is a SQLite transaction (cluster, credential,
join request, token use, queued broker change), a broker change carried to
the broker before the reply goes out (controller.registering), and a signed
reply sealed to the device's key. This measures how fast that goes, and what
it costs the controller.

For each broker (`--broker`):

- amqtt: the embedded broker served in this process with the registry's
  authority (`security.RegistryAuthority`), as `edgefleet server` and
  examples/demo.py run it; broker changes go through `security.Embedded`.
- mosquitto: Debian's Mosquitto as a subprocess with the dynamic-security
  plugin (`mosquitto_ctrl dynsec init`, `allow_anonymous false`), driven by
  `controller.dynsec` as `edgefleet controller` (server_cli.serve_external)
  does.

Either way the controller (`aggregating.Aggregator` and its `Registrar`) runs
in this process, with `Settings(security_interval=SECURITY_INTERVAL)` and the
other settings at their defaults, over plain TCP on a free 127.0.0.1 port (no
TLS: the figures leave out TLS handshakes). One auto-approving join token for
one group is issued and carried to the broker before the storm.

The joining agents run in other processes (`--drivers`, 2 by default): this
script run again with the hidden `--driver` option, so agents and controller
do not share an event loop, and the agents' own work (a paho client, an X25519
key, two fsync'd files per join) is spread over two loops. Each driver
imports, says it is ready, and then runs `edge_agent.joining.join` (the real
join code, with the device's default backoff) for its share of the
`--agents` names, the `--concurrency` joins in flight split between the
drivers, each agent with its own state directory. A join's latency is from
its `join()` call (after it got a slot) until `join()` returned with the
identity written; the wall time is from the first join's start to the last
join's end over all drivers (time.monotonic, one clock for all processes).

Costs: this process's CPU seconds (`resource.getrusage`, user + system) from
the moment the drivers are told to start until their results arrive (amqtt's
broker work counts here too), and the peak RSS of this process over the
storm (VmHWM, reset through /proc/self/clear_refs at the start, so a second
broker's peak does not include the first's; `ru_maxrss` cannot be reset).
Mosquitto's CPU is read from /proc/PID/stat; the drivers report their own.
"requests" counts the join requests the controller answered during the
storm: more than the agents when a reply took longer than an agent's 1 s wait
and it asked again; "late" counts those it answered after the storm (until
the checks ended), re-asks that were still queued.

Checked afterwards, and the run fails loudly otherwise (exit status 1, after
the tables): no join failed or was refused, the registry holds exactly
`--agents` clusters, no broker change is left queued, every joined identity's
password is the one the registry holds now ("passwords current", compared by
hash, no network), and `SPOT_CHECK` joined identities (a spread sample) each
log in with their own credentials and client id `edgefleet-agent-<name>`,
while one of them is refused under another client id.

On Mosquitto the bench also times one dynsec round trip that changes the
store (createRole + deleteRole, median of 5) before and after the storm, and
reports the size of dynamic-security.json after it: the plugin rewrites that
whole file after every command that changes it. `--nodelay` adds
`set_tcp_nodelay true` to Mosquitto's config (off by default in Mosquitto and
in docs/operations.md), to show what Nagle's algorithm costs each round trip.
`--profile N` runs cProfile over this process during the storm and prints the
top N functions by own time (profiling slows the controller, so its figures
are not the unprofiled ones).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import io
import json
import logging
import os
import platform
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Python puts bench/ first on sys.path, and bench/wire.py is there: without this,
# `import wire` would import that script instead of the package.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

import aiomqtt  # noqa: E402

from bench.processes import cpu_seconds as process_cpu  # noqa: E402
from bench.reporting import command_first_line, cpu_model, median, ms, p90, table  # noqa: E402
from broker import embedded  # noqa: E402
from controller import aggregating, dynsec, join_cli, keystore, login, security, tokens  # noqa: E402
from controller.identities import Identities, agent_client_id, controller_password  # noqa: E402
from controller.state import Group, State  # noqa: E402
from tests.brokers import DYNSEC_ADMIN, Mosquitto, dynsec_config, mosquitto_binary  # noqa: E402
from wire import topics, urls  # noqa: E402

GROUP = "bench/site"
NAME_PREFIX = "bench"
SECURITY_INTERVAL = 0.2
SETTINGS = aggregating.Settings(security_interval=SECURITY_INTERVAL)
SPOT_CHECK = 20
SETTLE_TIMEOUT = 30.0  # for the token's account to reach the broker, the controller to start
JOIN_TIMEOUT = 300.0  # for any one join, in the driver: beyond it the join counts as failed
STORM_TIMEOUT = 1800.0  # for the whole driver


# -- the driver: the joining agents, in their own process ---------------------------------------


async def drive(state_root: Path, indices: range, concurrency: int) -> dict[str, Any]:
    """Join agents `indices`, `concurrency` at a time, once told the join string on stdin."""
    from edge_agent import joining  # the driver needs only the agent's half

    complaints = Counting()
    logging.getLogger("edge_agent").addHandler(complaints)
    print("ready", flush=True)
    text = (await asyncio.to_thread(sys.stdin.readline)).strip()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    slots = asyncio.Semaphore(concurrency)
    # time.monotonic is CLOCK_MONOTONIC, one clock for every process: spans of drivers compare.
    spans: list[tuple[float, float]] = []
    failures: list[str] = []

    async def one(index: int) -> None:
        name = f"{NAME_PREFIX}-{index:05d}"
        async with slots:
            started = time.monotonic()
            try:
                async with asyncio.timeout(JOIN_TIMEOUT):
                    joined = await joining.join(text, name=name, state_dir=state_root / name)
                if joined.config.cluster != name:
                    raise RuntimeError(f"joined as {joined.config.cluster}")
            except Exception as exc:
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
                return
            spans.append((started, time.monotonic()))

    await asyncio.gather(*(one(i) for i in indices))
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "spans": spans,
        "failures": failures,
        "cpu": cpu_seconds(after) - cpu_seconds(usage),
        "warnings": complaints.count,
        "warning_lines": complaints.lines[:5],
    }


class Counting(logging.Handler):
    """Counts records at WARNING and above; keeps the first few."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.lines) < 20:
            self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


def cpu_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


# -- this process: helpers ------------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False if not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.02)


@contextmanager
def mosquitto(workdir: Path, *, nodelay: bool) -> Iterator[tuple[urls.BrokerUrl, subprocess.Popen[bytes]]]:
    """Mosquitto with dynamic security, no anonymous clients, plain TCP; yields the admin's URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    extra, password = dynsec_config(workdir)
    extra += "set_tcp_nodelay true\n" if nodelay else ""
    with Mosquitto(workdir, extra_config=extra, anonymous=False) as running:
        assert running.process is not None
        yield dataclasses.replace(running.url, username=DYNSEC_ADMIN, password=password), running.process


# -- this process: the controller and the storm --------------------------------------------------


@dataclass
class Result:
    broker: str
    agents: int
    concurrency: int
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    refused: int = 0
    requests: int = 0
    late_requests: int = 0  # answered after the last agent had its identity (re-asks still queued)
    controller_cpu: float = 0.0
    peak_rss_kib: int = 0
    peak_reset: bool = False
    broker_cpu: float | None = None  # Mosquitto's, when it is a separate process
    driver_cpu: float = 0.0
    driver_warnings: int = 0
    driver_warning_lines: list[str] = field(default_factory=list)
    controller_complaints: list[str] = field(default_factory=list)
    controller_warnings: int = 0
    clusters: int = 0
    queued_changes: int = 0
    logins_ok: int = 0
    logins_tried: int = 0
    current: int = 0  # identities whose password is the registry's credential
    probe_before: float | None = None  # one dynsec round trip, before and after the storm (s)
    probe_after: float | None = None
    dynsec_bytes: int | None = None  # the dynamic-security store's size after the storm
    impostor_refused: bool = False
    profile: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass
class Controller:
    state_dir: Path
    state: State
    registry: Identities
    password: str
    space: topics.Topics


def new_controller(state_dir: Path) -> Controller:
    keystore.init(state_dir)
    state = State.open(state_dir)
    state.add_group(Group(GROUP, GROUP, {}))
    registry = Identities(state)
    password = controller_password(state_dir)
    registry.ensure_controller(password)
    return Controller(state_dir, state, registry, password, topics.Topics())


@asynccontextmanager
async def controller_on(
    kind: str, ctl: Controller, workdir: Path, *, nodelay: bool
) -> AsyncIterator[tuple[urls.BrokerUrl, aggregating.Aggregator, dynsec.Dynsec | None, int | None]]:
    """The broker and an Aggregator for it (not yet running).

    Yields the devices' URL, the aggregator, and for Mosquitto the dynsec session and the pid."""
    if kind == "amqtt":
        authority = security.RegistryAuthority(ctl.registry)
        async with embedded.serve(authority=authority, space=ctl.space) as endpoint:
            own = login.as_controller(endpoint.url, ctl.state_dir)
            aggregator = aggregating.Aggregator(
                ctl.state_dir,
                own,
                ctl.space,
                SETTINGS,
                broker_security=security.Embedded(endpoint.disconnect),
            )
            yield endpoint.url, aggregator, None, None
        return
    with mosquitto(workdir / "mosquitto", nodelay=nodelay) as (admin_url, process):
        async with dynsec.connect(admin_url, ctl.space, ctl.registry) as admin:
            await admin.prepare(ctl.password)
            url = dataclasses.replace(admin_url, username=None, password=None)
            own = login.as_controller(url, ctl.state_dir)
            aggregator = aggregating.Aggregator(
                ctl.state_dir, own, ctl.space, SETTINGS, broker_security=admin
            )
            yield url, aggregator, admin, process.pid


async def storm(kind: str, workdir: Path, args: argparse.Namespace) -> Result:
    result = Result(kind, args.agents, args.concurrency)
    ctl = new_controller(workdir / "controller")
    complaints = Counting()
    logging.getLogger().addHandler(complaints)
    try:
        async with controller_on(kind, ctl, workdir, nodelay=args.nodelay) as (
            url,
            aggregator,
            admin,
            broker_pid,
        ):
            running = asyncio.ensure_future(aggregator.run())
            try:
                key = keystore.load(ctl.state_dir)
                _, join = join_cli.issue(ctl.registry, key, group=GROUP, broker=url)
                # The token's account is on the broker once the controller's sweep emptied the queue.
                await until(lambda: not ctl.registry.changes(), SETTLE_TIMEOUT, "the token's broker account")
                await until(lambda: aggregator.registrar is not None, SETTLE_TIMEOUT, "the registrar")
                registrar = aggregator.registrar
                assert registrar is not None
                answered = count_requests(registrar)
                if admin is not None:
                    result.probe_before = await probe(admin)
                await run_driver(result, join.encode(), workdir / "agents", args, broker_pid)
                result.requests = answered()
                result.refused = registrar.refused
                # Nothing should be left queued; give the sweep a moment if something is.
                with contextlib.suppress(RuntimeError):
                    await until(lambda: not ctl.registry.changes(), 5.0, "queued broker changes")
                await verify(result, ctl, url, workdir / "agents")
                if admin is not None:
                    result.probe_after = await probe(admin)
                    result.dynsec_bytes = (workdir / "mosquitto" / "dynamic-security.json").stat().st_size
                result.late_requests = answered() - result.requests
            finally:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
    finally:
        logging.getLogger().removeHandler(complaints)
        ctl.state.close()
    result.controller_complaints = complaints.lines
    result.controller_warnings = complaints.count
    if result.failures:
        result.problems.append(f"{len(result.failures)} join(s) failed, e.g. {result.failures[:3]}")
    if result.refused:
        result.problems.append(f"the controller refused {result.refused} join request(s)")
    if result.clusters != args.agents:
        result.problems.append(f"the registry holds {result.clusters} clusters, not {args.agents}")
    if result.queued_changes:
        result.problems.append(f"{result.queued_changes} broker change(s) left queued")
    if result.current != args.agents:
        result.problems.append(
            f"only {result.current} of {args.agents} joined identities hold the registry's password"
        )
    if result.logins_ok != result.logins_tried:
        result.problems.append(f"only {result.logins_ok} of {result.logins_tried} sampled identities log in")
    if not result.impostor_refused:
        result.problems.append("a cluster's credentials were accepted under another client id")
    return result


def count_requests(registrar: Any) -> Any:
    """Count the join requests `registrar` answers (wraps its `handle`); returns the counter."""
    handle = registrar.handle
    seen = [0]

    async def counted(client_id: str, payload: bytes, send: Any) -> None:
        seen[0] += 1
        await handle(client_id, payload, send)

    registrar.handle = counted
    return lambda: seen[0]


async def run_driver(
    result: Result, join: str, state_root: Path, args: argparse.Namespace, broker_pid: int | None
) -> None:
    """Start the driver processes; once all are ready, start the storm and collect their reports."""
    drivers: list[asyncio.subprocess.Process] = []
    logs = []
    shares = [range(i, args.agents, args.drivers) for i in range(args.drivers)]
    for number, share in enumerate(shares):
        command = [sys.executable, str(Path(__file__).resolve()), "--driver", str(state_root)]
        command += ["--first", str(share.start), "--step", str(share.step), "--agents", str(args.agents)]
        command += ["--concurrency", str(-(-args.concurrency // args.drivers))]
        logs.append((state_root.parent / f"driver-{number}.log").open("wb"))
        drivers.append(
            await asyncio.create_subprocess_exec(
                *command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logs[-1]
            )
        )
    try:
        for driver in drivers:
            assert driver.stdout is not None
            ready = await asyncio.wait_for(driver.stdout.readline(), SETTLE_TIMEOUT)
            if ready.strip() != b"ready":
                raise RuntimeError(f"a driver did not start: {ready!r}; see {state_root.parent}/driver-*.log")
        profiler = cProfile.Profile() if args.profile else None
        result.peak_reset = reset_peak_rss()
        before = cpu_seconds(resource.getrusage(resource.RUSAGE_SELF))
        broker_before = process_cpu(broker_pid) if broker_pid else 0.0
        if profiler is not None:
            profiler.enable()
        for driver in drivers:
            assert driver.stdin is not None
            driver.stdin.write(join.encode() + b"\n")
            await driver.stdin.drain()
        lines = [
            await asyncio.wait_for(driver.stdout.readline(), STORM_TIMEOUT)
            for driver in drivers
            if driver.stdout is not None
        ]
        if profiler is not None:
            profiler.disable()
        result.controller_cpu = cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)) - before
        result.peak_rss_kib = peak_rss_kib()
        if broker_pid:
            result.broker_cpu = process_cpu(broker_pid) - broker_before
        if profiler is not None:
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(args.profile)
            result.profile = text.getvalue()
        if not all(lines):
            raise RuntimeError(f"a driver exited without results; see {state_root.parent}/driver-*.log")
        reports = [json.loads(line) for line in lines]
    finally:
        for driver in drivers:
            if driver.returncode is None:
                if driver.stdin is not None:
                    with contextlib.suppress(ProcessLookupError, BrokenPipeError):
                        driver.stdin.close()
                try:
                    await asyncio.wait_for(driver.wait(), 30)
                except TimeoutError:
                    driver.kill()
                    await driver.wait()
        for log_file in logs:
            log_file.close()
    spans = [span for report in reports for span in report["spans"]]
    result.latencies = [end - start for start, end in spans]
    result.wall = max(end for _, end in spans) - min(start for start, _ in spans) if spans else 0.0
    result.failures = [failure for report in reports for failure in report["failures"]]
    result.driver_cpu = sum(report["cpu"] for report in reports)
    result.driver_warnings = sum(report["warnings"] for report in reports)
    result.driver_warning_lines = [line for report in reports for line in report["warning_lines"]]


async def verify(result: Result, ctl: Controller, url: urls.BrokerUrl, state_root: Path) -> None:
    from edge_agent import cli as agent_cli
    from edge_agent import joining

    clusters = ctl.state.clusters()
    result.clusters = sum(1 for c in clusters if c.group == GROUP and not c.revoked)
    result.queued_changes = len(ctl.registry.changes())
    names = sorted(c.name for c in clusters)
    for name in names:
        path = joining.identity_path(state_root / name)
        if not path.exists():
            continue
        joined = agent_cli.load_config(path)
        credential = ctl.registry.credential(joined.username or "")
        if credential is not None and tokens.secret_matches(joined.password or "", credential.password_hash):
            result.current += 1
    step = max(1, len(names) // SPOT_CHECK)
    sample = names[::step][:SPOT_CHECK]
    result.logins_tried = len(sample)
    configs = [agent_cli.load_config(joining.identity_path(state_root / name)) for name in sample]
    for config in configs:
        if config.username is None or config.password is None:
            continue
        if await can_log_in(url, config.username, config.password, agent_client_id(config.cluster)):
            result.logins_ok += 1
    if configs:
        first = configs[0]
        impostor = agent_client_id(f"{first.cluster}-x")
        result.impostor_refused = not await can_log_in(url, first.username, first.password, impostor)


async def probe(admin: dynsec.Dynsec, runs: int = 5) -> float:
    """Median seconds of one dynsec round trip that changes the store (create and delete a role)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await admin.run(
            [
                {"command": "createRole", "rolename": "bench-probe"},
                {"command": "deleteRole", "rolename": "bench-probe"},
            ]
        )
        times.append(time.perf_counter() - started)
    return median(times)


async def can_log_in(url: urls.BrokerUrl, username: str | None, password: str | None, client_id: str) -> bool:
    client = aiomqtt.Client(
        url.host,
        url.port,
        identifier=client_id,
        username=username,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V311,
        clean_session=True,
        timeout=10,
    )
    try:
        async with client:
            return True
    except aiomqtt.MqttError:
        return False


# -- output ------------------------------------------------------------------------------------------


def header(args: argparse.Namespace, brokers: list[str]) -> None:
    print("Join benchmark (bench/join.py)")
    print(f"  date:      {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"  nproc:     {command_first_line(['nproc'])} (os.cpu_count() = {os.cpu_count()})")
    print(f"  CPU:       {cpu_model()} ({platform.machine()})")
    print(f"  Python:    {platform.python_implementation()} {platform.python_version()}")
    if "mosquitto" in brokers:
        nagle = "set_tcp_nodelay true" if args.nodelay else "set_tcp_nodelay false, its default"
        version = command_first_line([mosquitto_binary() or "mosquitto", "-h"])
        print(f"  mosquitto: {version} (dynamic security; {nagle})")
    print(
        f"  storm:     {args.agents} agents, {args.concurrency} joins in flight, one auto-approving token;"
        f" agents in {args.drivers} driver process(es)"
    )
    print("  transport: plain TCP on 127.0.0.1 (TLS off: no handshake cost included)")
    print(
        f"  settings:  aggregating.Settings(security_interval={SECURITY_INTERVAL}), other fields default;"
        " registering.CONCURRENT_REQUESTS = 32"
    )
    print(f"  load avg:  {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min) at start")
    print()


def report(results: list[Result]) -> None:
    print("a) Throughput and per-join latency (as the driver saw it; ms)")
    print()
    headers = ["broker", "agents", "in flight", "wall s", "joins/s", "p50", "p90", "max"]
    headers += ["requests", "late", "failed"]
    rows = []
    for r in results:
        lat = r.latencies or [0.0]
        joined = len(r.latencies)
        rows.append(
            [
                r.broker,
                str(r.agents),
                str(r.concurrency),
                f"{r.wall:.2f}",
                f"{joined / r.wall:.1f}" if r.wall else "-",
                ms(median(lat)),
                ms(p90(lat)),
                ms(max(lat)),
                str(r.requests),
                str(r.late_requests),
                str(len(r.failures) + r.refused),
            ]
        )
    print(table(headers, rows))
    print()
    print("b) CPU over the storm (s) and the controller's peak RSS (MiB)")
    print()
    headers = ["broker", "controller CPU", "CPU / wall", "ms / join", "mosquitto CPU", "driver CPU"]
    headers += ["peak RSS"]
    rows = []
    for r in results:
        rows.append(
            [
                r.broker,
                f"{r.controller_cpu:.2f}",
                f"{r.controller_cpu / r.wall:.0%}" if r.wall else "-",
                ms(r.controller_cpu / r.agents),
                f"{r.broker_cpu:.2f}" if r.broker_cpu is not None else "(in controller)",
                f"{r.driver_cpu:.2f}",
                f"{r.peak_rss_kib / 1024:.1f}" + ("" if r.peak_reset else " (since start)"),
            ]
        )
    print(table(headers, rows))
    print()
    print("c) Checks after the storm")
    print()
    headers = ["broker", "clusters", "queued changes", "passwords current", "logins ok", "impostor refused"]
    headers += ["warnings (ctl/drv)"]
    rows = [
        [
            r.broker,
            str(r.clusters),
            str(r.queued_changes),
            f"{r.current}/{r.agents}",
            f"{r.logins_ok}/{r.logins_tried}",
            "yes" if r.impostor_refused else "NO",
            f"{r.controller_warnings}/{r.driver_warnings}",
        ]
        for r in results
    ]
    print(table(headers, rows))
    for r in results:
        for line in [*r.controller_complaints[:5], *r.driver_warning_lines[:5]]:
            print(f"   {r.broker}: {line}")
    for r in results:
        if r.probe_before is not None and r.probe_after is not None:
            print(
                f"   {r.broker}: one dynsec round trip (createRole + deleteRole): {ms(r.probe_before)} ms"
                f" before the storm, {ms(r.probe_after)} ms after it"
                f" (dynamic-security.json {r.dynsec_bytes or 0:,} bytes)"
            )
    for r in results:
        if r.profile:
            print()
            print(f"d) Profile of this process over the {r.broker} storm (cProfile, by own time)")
            print(r.profile.rstrip())


async def main(args: argparse.Namespace) -> int:
    brokers = ["amqtt", "mosquitto"] if args.broker == "both" else [args.broker]
    header(args, brokers)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    results = []
    with tempfile.TemporaryDirectory(prefix="edgefleet-bench-join-") as tmp:
        for kind in brokers:
            started = time.perf_counter()
            results.append(await storm(kind, Path(tmp) / kind, args))
            print(f"{kind}: storm and checks took {time.perf_counter() - started:.1f} s", flush=True)
    print()
    report(results)
    print()
    print(f"load avg: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min) at end")
    problems = [f"{r.broker}: {p}" for r in results for p in r.problems]
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--broker", choices=("amqtt", "mosquitto", "both"), default="both")
    parser.add_argument("--agents", type=int, default=1000, help="agents that join (default 1000)")
    parser.add_argument("--concurrency", type=int, default=64, help="joins in flight at once (default 64)")
    parser.add_argument(
        "--nodelay",
        action="store_true",
        help="start Mosquitto with `set_tcp_nodelay true` (default: its default, Nagle on)",
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="cProfile this process; print the top N"
    )
    parser.add_argument(
        "--drivers", type=int, default=2, help="processes the agents are spread over (default 2)"
    )
    parser.add_argument("--driver", type=Path, help=argparse.SUPPRESS)  # state root: be agents...
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)  # ...first,
    parser.add_argument("--step", type=int, default=1, help=argparse.SUPPRESS)  # first+step, ...
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    if arguments.driver is not None:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        share = range(arguments.first, arguments.agents, arguments.step)
        outcome = asyncio.run(drive(arguments.driver, share, arguments.concurrency))
        print(json.dumps(outcome), flush=True)
        sys.exit(0)
    started = time.perf_counter()
    code = asyncio.run(main(arguments))
    print(f"total run time {time.perf_counter() - started:.0f} s")
    sys.exit(code)
