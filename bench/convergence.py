"""Convergence at scale: from `edgefleet apply` to every simulated cluster Ready.

Run with `PATH=.venv/bin:$PATH .venv/bin/python bench/convergence.py`
(defaults: N = 1,000, 3,000, 5,000, 10,000 and 15,000 on Mosquitto, up to
5,000 on the embedded amqtt broker, which lost messages at 7,500 here;
`--sizes`, `--brokers`, `--amqtt-max`). It
prints one table, writes the figures to `--json` and, with `--plot`, a PNG
of convergence time against fleet size (needs matplotlib, from the `bench`
extra).

Every part is a real process, as in production, all on this machine:

- the broker: Debian's Mosquitto (open, plain TCP on loopback), or the
  embedded amqtt broker served by this script in a child process
  (`bench/convergence.py serve-amqtt`, the code `edgefleet server` runs,
  without an authority);
- the controller: `edgefleet controller --security none`, 10 groups
  (`bench/g0` … `bench/g9`) created with `edgefleet group create`;
- the fleet: `--simulators` processes of `edge_agent.simulation` (the image
  `edgefleet simulate` execs), N clusters over the 10 groups, workloads
  Ready at once (`--ready-delay 0`). Each simulated cluster is the real
  agent with its own MQTT connection; only the Kubernetes API is in memory.
  Their state directories are on tmpfs (/dev/shm): a real device fsyncs its
  own disk in parallel with every other device; here 10,000 of them would
  queue on one disk and measure the VM's disk, not edgefleet;
- the apply: the `edgefleet apply` command, run as a process.

The script raises its open-file limit to what the kernel allows (children
inherit it: the broker holds one socket per cluster, each simulator one per
cluster it runs).

For each size it starts everything, waits until the fleet summary counts N
clusters online, then times two rollouts of examples/hello-web to all N
clusters:

- "new": the bundle does not exist yet;
- "update": the Deployment's image tag changes (a new generation).

Each is timed from just before `edgefleet apply` starts until the bundle's
summary (`fleet/summary/bundles/hello-web`, read by this script over MQTT as
a dashboard would) shows the new generation with ready == desired == N.
That includes the apply command's own start-up, the broker's fan-out, every
agent's verify, apply and status report, and the controller's aggregation
(summaries are recomputed at most every 0.5 s). CPU seconds per process
over the rollout come from /proc/PID/stat.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Python puts bench/ first on sys.path, and bench/wire.py is there: without this,
# `import wire` would import that script instead of the package.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

import aiomqtt  # noqa: E402

from bench import reporting  # noqa: E402
from bench.processes import cpu_seconds, peak_rss_mib  # noqa: E402
from tests import brokers  # noqa: E402
from tests.processes import stop  # noqa: E402
from wire import summaries, topics, urls  # noqa: E402

EXAMPLE = ROOT / "examples" / "hello-web"
BUNDLE = "hello-web"
GROUPS = 10
IMAGE = re.compile(r"image: nginx:\S+")
# Beyond these something is broken, not slow.
CONNECT_DEADLINE = 600.0
ROLLOUT_DEADLINE = 300.0
# After the rollouts, CPU is measured over this long with nothing changing but heartbeats.
IDLE_WINDOW = 20.0


def group_roots() -> list[str]:
    return [f"bench/g{i}" for i in range(GROUPS)]


def raise_open_files() -> int:
    """Raise this process's open-file limit (children inherit it) as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard
    with contextlib.suppress(OSError, ValueError):
        wanted = max(hard, int(Path("/proc/sys/fs/nr_open").read_text()))
    for limit in (wanted, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
            return limit
        except (OSError, ValueError):
            continue
    return soft


# -- the parts ----------------------------------------------------------------------------------------


def edgefleet(state_dir: Path, *argv: str) -> str:
    """Run one `edgefleet` command to completion; its output, or an error with it."""
    done = subprocess.run(
        [sys.executable, "-m", "controller.cli", *argv, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"edgefleet {' '.join(argv)} exited with {done.returncode}: {done.stderr}")
    return done.stdout


@contextmanager
def broker(kind: str, workdir: Path) -> Iterator[tuple[urls.BrokerUrl, int]]:
    """The broker under test, in its own process; yields its URL and PID."""
    if kind == "mosquitto":
        # tests.brokers runs it as our own user: the open-file limit raised here is its too.
        with brokers.Mosquitto(workdir, extra_config="set_tcp_nodelay true\n") as running:
            assert running.process is not None
            yield running.url, running.process.pid
        return
    port = brokers.free_port()
    log = (workdir / "amqtt.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "serve-amqtt", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while not brokers.accepts(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"amqtt did not listen: {(workdir / 'amqtt.log').read_text()}")
            time.sleep(0.05)
        yield urls.BrokerUrl("127.0.0.1", port), process.pid
    finally:
        stop(process)
        log.close()


@dataclasses.dataclass
class Watcher:
    """The summaries a dashboard would see, as they arrive."""

    fleet: summaries.FleetSummary | None = None
    bundle: summaries.BundleSummary | None = None
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def run(self, url: urls.BrokerUrl) -> None:
        space = topics.Topics()
        while True:
            try:
                async with aiomqtt.Client(url.host, url.port, identifier="bench-watcher") as mqtt:
                    await mqtt.subscribe(space.summary(), qos=1)
                    await mqtt.subscribe(space.summary_bundle(BUNDLE), qos=1)
                    async for message in mqtt.messages:
                        payload = message.payload if isinstance(message.payload, bytes) else b""
                        if not payload:
                            continue
                        if message.topic.value == space.summary():
                            self.fleet = summaries.decode_fleet(payload)
                        else:
                            self.bundle = summaries.decode_bundle(payload)
                        self.changed.set()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.5)

    def last(self) -> str:
        """What the summaries said last, for a failure message."""
        fleet, bundle = self.fleet, self.bundle
        said = f"fleet online {fleet['online']}/{fleet['clusters']}" if fleet else "no fleet summary"
        if bundle:
            said += f", generation {bundle['generation']} ready {bundle['ready']}/{bundle['desired']}"
            said += f" {bundle['states']}"
        return said

    async def until(self, condition: Any, deadline: float, what: str, alive: Any) -> float:
        """Wait until `condition()` holds; the perf_counter time it was first seen."""
        end = time.monotonic() + deadline
        while not condition():
            alive()
            self.changed.clear()
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {what} within {deadline:.0f} s; last: {self.last()}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 1.0)):
                    await self.changed.wait()
        return time.perf_counter()


@dataclasses.dataclass
class Rollout:
    what: str
    generation: int
    apply_returned: float  # s from starting `edgefleet apply` until it exited
    first_ready: float  # s until a summary first counted any cluster ready on the new generation
    all_ready: float  # s until the summary showed ready == desired == N
    cpu: dict[str, float]  # role -> CPU seconds over the rollout


@dataclasses.dataclass
class Run:
    broker: str
    clusters: int
    simulators: int
    connected: float  # s from starting the simulators until the summary counted all online
    rollouts: list[Rollout]
    peak_rss_mib: dict[str, float]
    idle_cpu: dict[str, float] = dataclasses.field(default_factory=dict)  # role -> % of one core
    commands: dict[str, float] = dataclasses.field(default_factory=dict)  # edgefleet command -> s
    failed: str = ""


class Parts:
    """Every process of one run, by role."""

    def __init__(self) -> None:
        self.pids: dict[str, list[int]] = {}
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    def add(self, role: str, pid: int) -> None:
        self.pids.setdefault(role, []).append(pid)

    def spawn(self, role: str, argv: list[str], log: Path) -> None:
        with log.open("wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        self.processes.append((role, process))
        self.add(role, process.pid)

    def alive(self) -> None:
        for role, process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{role} (pid {process.pid}) exited with {process.returncode}")

    def cpu(self) -> dict[str, float]:
        return {role: sum(cpu_seconds(pid) for pid in pids) for role, pids in self.pids.items()}

    def peak_rss(self) -> dict[str, float]:
        return {role: sum(peak_rss_mib(pid) for pid in pids) for role, pids in self.pids.items()}

    def stop(self) -> None:
        for _, process in reversed(self.processes):
            stop(process, timeout=30)


def set_image(bundle: Path, tag: str) -> None:
    app = bundle / "app.yaml"
    app.write_text(IMAGE.sub(f"image: nginx:{tag}", app.read_text()))


async def rollout(
    what: str, parts: Parts, watcher: Watcher, state_dir: Path, url: urls.BrokerUrl, bundle: Path, n: int
) -> Rollout:
    before = watcher.bundle["generation"] if watcher.bundle is not None else 0
    cpu = parts.cpu()
    started = time.perf_counter()
    apply = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", "apply", str(bundle),
        "--state-dir", str(state_dir), "--broker", str(url),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip

    def fresh() -> summaries.BundleSummary | None:
        doc = watcher.bundle
        return doc if doc is not None and doc["generation"] > before else None

    def any_ready() -> bool:
        doc = fresh()
        return doc is not None and doc["ready"] > 0

    output, _ = await apply.communicate()
    returned = time.perf_counter() - started
    if apply.returncode != 0:
        raise RuntimeError(f"edgefleet apply exited with {apply.returncode}: {output.decode()}")
    first = await watcher.until(any_ready, ROLLOUT_DEADLINE, "cluster ready", parts.alive) - started
    done = await watcher.until(
        lambda: (doc := fresh()) is not None and doc["desired"] == n and doc["ready"] == n,
        ROLLOUT_DEADLINE,
        f"{n} clusters ready",
        parts.alive,
    )
    after = parts.cpu()
    generation = fresh()
    assert generation is not None
    return Rollout(
        what,
        generation["generation"],
        returned,
        first,
        done - started,
        {role: after[role] - cpu.get(role, 0.0) for role in after},
    )


async def one_run(kind: str, n: int, simulators: int, workdir: Path, shm: Path) -> Run:
    state_dir = workdir / "controller"
    edgefleet(state_dir, "keys", "init")
    for index, root in enumerate(group_roots()):
        edgefleet(state_dir, "group", "create", f"g{index}", "--topic-root", root)
    bundle = workdir / BUNDLE
    shutil.copytree(EXAMPLE, bundle)
    parts = Parts()
    run = Run(kind, n, simulators, 0.0, [], {})
    with broker(kind, workdir) as (url, broker_pid):
        parts.add("broker", broker_pid)
        watcher = Watcher()
        watching = asyncio.create_task(watcher.run(url))
        try:
            parts.spawn(
                "controller",
                [sys.executable, "-m", "controller.cli", "controller", "--broker", str(url),
                 "--security", "none", "--state-dir", str(state_dir)],
                workdir / "controller.log",
            )  # fmt: skip
            started = time.perf_counter()
            for index in range(simulators):
                count = n // simulators + (1 if index < n % simulators else 0)
                argv = [sys.executable, "-m", "edge_agent.simulation", "--broker", str(url),
                        "--trust", str(state_dir / "signing-key.pub.pem"), "--clusters", str(count),
                        "--prefix", f"s{index}", "--ready-delay", "0",
                        "--state-dir", str(shm / f"s{index}")]  # fmt: skip
                for root in group_roots():
                    argv += ["--group", root]
                parts.spawn("simulators", argv, workdir / f"simulator-{index}.log")
            await watcher.until(
                lambda: watcher.fleet is not None and watcher.fleet["online"] == n,
                CONNECT_DEADLINE,
                f"{n} clusters online",
                parts.alive,
            )
            run.connected = time.perf_counter() - started
            run.rollouts.append(await rollout("new", parts, watcher, state_dir, url, bundle, n))
            set_image(bundle, "1.27.9-alpine")
            run.rollouts.append(await rollout("update", parts, watcher, state_dir, url, bundle, n))
            before, started = parts.cpu(), time.perf_counter()
            await asyncio.sleep(IDLE_WINDOW)  # a measuring window, not a wait for a condition
            after, took = parts.cpu(), time.perf_counter() - started
            run.idle_cpu = {role: 100 * (after[role] - before.get(role, 0.0)) / took for role in after}
            for command in COMMANDS:
                run.commands[" ".join(command)] = await timed_command(url, command)
        except (RuntimeError, TimeoutError) as exc:
            run.failed = str(exc)
        finally:
            run.peak_rss_mib = parts.peak_rss()
            parts.stop()
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
    return run


# What an operator runs against the converged fleet; each is timed as a whole process.
COMMANDS = (
    ("status",),
    ("clusters",),
    ("clusters", "--group", "bench/g3", "--state", "Ready", "--limit", "20"),
    ("clusters", "-o", "json"),
)


async def timed_command(url: urls.BrokerUrl, command: tuple[str, ...]) -> float:
    """Seconds `edgefleet COMMAND` takes against the live summaries, start-up included."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", *command, "--broker", str(url), cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, errors = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(
            f"edgefleet {' '.join(command)} exited with {process.returncode}: {errors.decode()}"
        )
    return time.perf_counter() - started


# -- output -------------------------------------------------------------------------------------------


def header(args: argparse.Namespace, limit: int) -> None:
    print("Convergence at scale (bench/convergence.py)")
    print(f"  machine: {os.cpu_count()} cores, {reporting.cpu_model()}")
    mosquitto = reporting.command_first_line([brokers.mosquitto_binary() or "mosquitto", "-h"])
    print(f"  python {sys.version.split()[0]}; {mosquitto}")
    print(f"  open-file limit raised to {limit:,}; {GROUPS} groups; {args.simulators} simulator processes")
    print()


def report(runs: list[Run]) -> None:
    rows = []
    for run in runs:
        if run.failed and not run.rollouts:
            rows.append([run.broker, f"{run.clusters:,}", "-", "-", "-", "-", "-", "-", "-", "failed"])
            continue
        for rollout in run.rollouts:
            cpu = rollout.cpu
            rows.append([
                run.broker, f"{run.clusters:,}", rollout.what, f"{rollout.apply_returned:.2f}",
                f"{rollout.first_ready:.2f}", f"{rollout.all_ready:.2f}",
                f"{cpu.get('broker', 0):.1f}", f"{cpu.get('controller', 0):.1f}",
                f"{cpu.get('simulators', 0):.1f}", "partly failed" if run.failed else "ok",
            ])  # fmt: skip
    print(
        reporting.table(
            [
                "broker",
                "clusters",
                "rollout",
                "apply s",
                "first ready s",
                "all ready s",
                "broker cpu s",
                "controller cpu s",
                "simulators cpu s",
                "result",
            ],
            rows,
        )
    )  # fmt: skip
    print()
    rows = [
        [run.broker, f"{run.clusters:,}", f"{run.connected:.1f}",
         *(f"{run.peak_rss_mib.get(role, 0):,.0f}" for role in ("broker", "controller", "simulators")),
         f"{run.peak_rss_mib.get('simulators', 0) * 1024 / run.clusters:,.0f}",
         *(f"{run.idle_cpu[role]:.1f}" if role in run.idle_cpu else "-"
           for role in ("broker", "controller", "simulators")),
         run.failed or "-"]
        for run in runs
    ]  # fmt: skip
    print(
        "Start-up, peak RSS (MiB; simulators summed over their processes) and CPU while idle "
        f"(% of one core over {IDLE_WINDOW:.0f} s after the update)"
    )
    print(
        reporting.table(
            ["broker", "clusters", "all online s", "broker MiB", "controller MiB", "simulators MiB",
             "KiB per sim. agent", "broker idle %", "controller idle %", "simulators idle %", "failure"],
            rows,
        )
    )  # fmt: skip


COMMAND_NAMES = [" ".join(command) for command in COMMANDS]


def plot(results: list[dict[str, Any]], out: Path) -> None:
    import matplotlib  # bench extra: only this output needs it

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4.5), dpi=120)
    styles = {"mosquitto": "tab:blue", "amqtt": "tab:orange"}
    for kind in ("mosquitto", "amqtt"):
        for what, marker in (("new", "o-"), ("update", "s--")):
            points = sorted(
                (r["clusters"], ro["all_ready"])
                for r in results
                if r["broker"] == kind
                for ro in r["rollouts"]
                if ro["what"] == what
            )
            if points:
                xs, ys = zip(*points, strict=True)
                axes.plot(xs, ys, marker, color=styles[kind], label=f"{kind}, {what} bundle")
    for r in results:
        if r["failed"] and not r["rollouts"]:
            axes.plot([r["clusters"]], [1], "x", color=styles[r["broker"]], markersize=9)
            axes.annotate(
                f"{r['broker']}: no convergence\nat {r['clusters']:,}",
                (r["clusters"], 1),
                textcoords="offset points",
                xytext=(6, 4),
                fontsize=7,
                color=styles[r["broker"]],
            )
    axes.axhline(10, color="grey", linewidth=0.8, linestyle=":", label="target at 10,000: 10 s")
    axes.set_xlabel("simulated clusters (10 groups)")
    axes.set_ylabel("edgefleet apply → all Ready (s)")
    axes.set_title("Convergence on a 2-core machine (broker, controller and simulators included)")
    axes.title.set_fontsize(9)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out)
    print(f"plot written to {out}")


# -- entry points -------------------------------------------------------------------------------------


def serve_amqtt(port: int) -> None:
    from broker import embedded

    async def forever() -> None:
        async with embedded.serve("127.0.0.1", port):
            await asyncio.Event().wait()

    logging.basicConfig(level=logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(forever())


async def measure(args: argparse.Namespace) -> list[Run]:
    runs = []
    for kind in args.brokers:
        for n in args.sizes:
            if kind == "amqtt" and n > args.amqtt_max:
                continue
            with tempfile.TemporaryDirectory(prefix="edgefleet-conv-") as work, \
                    tempfile.TemporaryDirectory(prefix="edgefleet-conv-", dir="/dev/shm") as shm:  # fmt: skip
                run = await one_run(kind, n, args.simulators, Path(work), Path(shm))
            runs.append(run)
            print(f"  {kind} {n:,}: {run.failed or 'ok'}", file=sys.stderr, flush=True)
            if run.failed:
                break  # larger fleets on this broker will not do better
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", nargs="?", default="measure", choices=("measure", "plot", "serve-amqtt"))
    parser.add_argument("--sizes", default="1000,3000,5000,10000,15000")
    parser.add_argument("--brokers", default="mosquitto,amqtt")
    parser.add_argument("--amqtt-max", type=int, default=5000, help="largest fleet tried on amqtt")
    parser.add_argument("--simulators", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path("convergence.json"))
    parser.add_argument("--plot", type=Path, help="also draw convergence against fleet size to this PNG")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "serve-amqtt":
        serve_amqtt(args.port)
        return 0
    if args.command == "plot":
        plot(json.loads(args.json.read_text()), args.plot or Path("convergence.png"))
        return 0
    args.sizes = [int(size) for size in args.sizes.split(",") if size]
    args.brokers = [kind for kind in args.brokers.split(",") if kind]
    limit = raise_open_files()
    header(args, limit)
    runs = asyncio.run(measure(args))
    report(runs)
    args.json.write_text(json.dumps([dataclasses.asdict(run) for run in runs], indent=1))
    timed = [run for run in runs if run.commands]
    if timed:
        print("\nedgefleet commands against the converged fleet (s, whole process)")
        print(
            reporting.table(
                ["broker", "clusters", *COMMAND_NAMES],
                [[r.broker, f"{r.clusters:,}", *(f"{t:.2f}" for t in r.commands.values())] for r in timed],
            )
        )
    print(f"\nfigures written to {args.json}")
    if args.plot:
        plot([dataclasses.asdict(run) for run in runs], args.plot)
    return 1 if any(run.failed for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
