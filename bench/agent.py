"""Agent benchmark: how long from `edgefleet apply` to applied, and what the agent costs.

Run with `.venv/bin/python bench/agent.py` (about 40 s). It prints plain-text
tables; docs/benchmarks.md records a run of them. The fake Kubernetes API
server (tests.fakekube) stands in for k3s throughout, so no figure here
includes a real API server's cost.

Part a, apply to applied: for each broker (the embedded amqtt broker, served
in this process, and Debian's Mosquitto as a subprocess) three real agent
processes (`python -m edge_agent.cli run`, configs written by `edgefleet
cluster add`) each apply to their own fake API server, all three served from
threads of this process. Once every agent has logged that it is connected and
subscribed, the bench changes the Deployment's image tag in a copy of
examples/hello-web, calls `delivering.apply` (render, sign, publish retained,
wait for PUBACK: what `edgefleet apply` does) and polls every ~1 ms until each
fake cluster holds the new image ("applied": the Deployment is the last of the
four objects an agent applies) and each agent's state file records the new
generation ("recorded": the agent's last step). A cluster is only read once
its API server has received a Deployment PATCH, because reading it costs a
deep copy. Times run from the start of `delivering.apply`. The first apply is
cold (each agent runs API discovery and creates the objects) and is reported
on its own; then `UPDATES` updates, one at a time, each waiting for all three
agents to record it. The CPU the agents and this process spent per update is
printed under the table.

Part b, footprint: one real agent process on Mosquitto, read from
/proc/PID/status (VmRSS, RssAnon, RssFile, VmHWM) and /proc/PID/stat (utime +
stime, in clock ticks): after it connects with no bundle, over `IDLE_SECONDS`
idle before and after the first apply, over `UPDATES` one-at-a-time updates
(their latencies are the 1-agent rows of table a), during a burst of `BURST`
applies published back to back (VmRSS sampled every 2 ms from a thread,
besides VmHWM), and idle after the burst.

Part c: fresh interpreters that only import parts of the agent report their
own RSS, to show what the agent weighs without the kubernetes client.

Part d times, in this process, each step an agent takes for one manifest
(verify, the fsync'd state writes, the server-side applies against a fresh
fake API server), to show where part a's agent time goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import io
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Python puts bench/ first on sys.path, and bench/wire.py is there: without this,
# `import wire` would import that script instead of the package.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

from bench.reporting import command_first_line, cpu_model, median, ms, p90, table  # noqa: E402
from broker import embedded  # noqa: E402
from controller import cli as controller_cli  # noqa: E402
from controller import delivering, keystore  # noqa: E402
from controller.state import State  # noqa: E402
from tests import brokers  # noqa: E402
from tests.fakekube import FakeCluster  # noqa: E402
from tests.processes import stop  # noqa: E402
from wire import topics, urls  # noqa: E402

EXAMPLE = ROOT / "examples" / "hello-web"
BUNDLE = "hello-web"
GROUP = "bench/site"
IMAGE = re.compile(r"image: nginx:\S+")
UPDATES = 20
BURST = 20
IDLE_SECONDS = 10.0
POLL = 0.001  # seconds between looks at the fake clusters and state files
SAMPLE = 0.002  # seconds between VmRSS samples during the burst
DEADLINE = 60.0  # for any one condition (connect, apply): beyond it something is broken
CLK_TCK = os.sysconf("SC_CLK_TCK")
COMPLAINTS: list[str] = []  # per agent process: how many WARNING/ERROR lines it logged


# -- helpers ------------------------------------------------------------------


def mb(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def versions(*packages: str) -> str:
    found = []
    for package in packages:
        try:
            found.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{package} (not installed)")
    return ", ".join(found)


def header() -> None:
    mosquitto = brokers.mosquitto_binary()
    print("Agent benchmark (bench/agent.py)")
    print(f"  date:      {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"  nproc:     {command_first_line(['nproc'])} (os.cpu_count() = {os.cpu_count()})")
    print(f"  CPU:       {cpu_model()} ({platform.machine()})")
    print(f"  Python:    {platform.python_implementation()} {platform.python_version()}")
    print(f"  mosquitto: {command_first_line([mosquitto, '-h']) if mosquitto else 'not installed'}")
    print(f"  libraries: {versions('amqtt', 'aiomqtt', 'paho-mqtt', 'kubernetes', 'urllib3')}")
    print(f"  bundle:    examples/{BUNDLE} (4 objects, the same variant on every cluster)")
    print(f"  load avg:  {loadavg()} (1, 5, 15 min) at start")
    print()


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def set_image(bundle: Path, tag: str) -> str:
    path = bundle / "app.yaml"
    image = f"nginx:{tag}"
    path.write_text(IMAGE.sub(f"image: {image}", path.read_text()))
    return image


# -- /proc ----------------------------------------------------------------------


def proc_status(pid: int | str) -> dict[str, int]:
    """The kB and count fields of /proc/PID/status, as ints (kB values in KiB)."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM", "Threads") and parts:
            found[key] = int(parts[0])
    return found


def cpu_ticks(pid: int) -> int:
    """utime + stime of every thread of `pid`, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), counted from 1


class Sampler:
    """Samples a process's VmRSS from a thread until stopped; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, proc_status(self.pid)["VmRSS"])
            self.samples += 1
            self._stop.wait(SAMPLE)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- a fleet of agent processes ---------------------------------------------------


@dataclass
class AgentProcess:
    name: str
    cluster: FakeCluster
    state_dir: Path
    log: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"agent {self.name} exited with {self.process.returncode}:\n{self.log_text()}")

    def deployment_patched(self, since: int) -> bool:
        """Whether the fake API server has received a PATCH of a Deployment since request `since`.

        Cheap, unlike `image` (a deep copy of the stored object, about 0.5 ms of this process's
        CPU): polled every millisecond on three clusters, deep copies alone would take a third of
        a core from the agents and the fake API servers being measured."""
        return any(m == "PATCH" and "/deployments/" in p for m, p in self.cluster.requests[since:])

    def image(self) -> str | None:
        deployment = self.cluster.get_object("apps/v1", "Deployment", "hello", "hello-web")
        if deployment is None:
            return None
        image: str = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        return image

    def recorded(self) -> int:
        try:
            document = json.loads((self.state_dir / "applied" / f"{BUNDLE}.json").read_text())
        except (FileNotFoundError, ValueError):  # not yet, or (never, writes are atomic) torn
            return 0
        generation: int = document["generation"]
        return generation

    def applies(self) -> int:
        return self.log_text().count(f"applied 4 objects of {BUNDLE}")


@dataclass
class Update:
    returned: float  # seconds from the start of delivering.apply until it returned
    applied: list[float]  # per agent, until its cluster held the new image
    recorded: list[float]  # per agent, until its state file held the new generation


@dataclass
class Fleet:
    url: urls.BrokerUrl
    workdir: Path
    state: State
    key: Any
    bundle: Path
    agents: list[AgentProcess] = field(default_factory=list)
    tag: int = 0

    async def publish(self) -> tuple[str, int, float]:
        """Change the image, run delivering.apply; return the image, generation and apply's seconds."""
        self.tag += 1
        image = set_image(self.bundle, f"1.27.{self.tag}-alpine")
        started = time.perf_counter()
        report = await delivering.apply(self.state, self.key, self.url, self.bundle, topics.Topics())
        took = time.perf_counter() - started
        if not report.ok or report.generation is None:
            raise RuntimeError(f"apply failed: {report}")
        return image, report.generation, took

    async def update(self) -> Update:
        since = {agent.name: len(agent.cluster.requests) for agent in self.agents}
        started = time.perf_counter()
        image, generation, returned = await self.publish()
        applied: dict[str, float] = {}
        recorded: dict[str, float] = {}
        deadline = started + DEADLINE
        while len(recorded) < len(self.agents):
            for agent in self.agents:
                if (
                    agent.name not in applied
                    and agent.deployment_patched(since[agent.name])
                    and agent.image() == image
                ):
                    applied[agent.name] = time.perf_counter() - started
                if agent.name in applied and agent.name not in recorded and agent.recorded() >= generation:
                    recorded[agent.name] = time.perf_counter() - started
            if time.perf_counter() > deadline:
                for agent in self.agents:
                    agent.alive()
                raise RuntimeError(f"timed out waiting for generation {generation} on every agent")
            await asyncio.sleep(POLL)
        return Update(returned, sorted(applied.values()), sorted(recorded.values()))

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while not condition():
            for agent in self.agents:
                agent.alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {DEADLINE:.0f}s waiting for {what}")
            await asyncio.sleep(0.01)


def _cli(argv: list[str]) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        code = controller_cli.main(argv)
    # main() turns our packages' logging up to INFO (one line per publish); keep the tables readable.
    for package in ("controller", "broker", "wire"):
        logging.getLogger(package).setLevel(logging.WARNING)
    if code != 0:
        raise RuntimeError(f"edgefleet {' '.join(argv)} exited with {code}")


@asynccontextmanager
async def fleet(url: urls.BrokerUrl, workdir: Path, labels: list[str]) -> AsyncIterator[Fleet]:
    """A controller state, and one agent process per label, each on its own fake cluster; connected."""
    controller = workdir / "controller"
    keystore.init(controller)
    base = ["--state-dir", str(controller)]
    _cli(["group", "create", GROUP, *base])
    bundle = workdir / "bundle" / BUNDLE
    shutil.copytree(EXAMPLE, bundle)
    with contextlib.ExitStack() as stack:
        agents = []
        for number, label in enumerate(labels, 1):
            name = f"edge-{number}"
            config = workdir / f"{name}.agent.yaml"
            add = ["cluster", "add", name, "--group", GROUP, "--label", label, "--broker", str(url)]
            _cli([*add, "--config-out", str(config), *base])
            cluster = stack.enter_context(FakeCluster(ready_delay=0.0))
            kubeconfig = cluster.write_kubeconfig(workdir / f"{name}.kubeconfig")
            state_dir = workdir / name
            log = workdir / f"{name}.log"
            with log.open("wb") as out:
                argv = [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config)]
                argv += ["--state-dir", str(state_dir), "--kubeconfig", str(kubeconfig)]
                process = subprocess.Popen(
                    argv,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                )
            stack.callback(stop, process)
            agents.append(AgentProcess(name, cluster, state_dir, log, process))
        state = State.open(controller)
        stack.callback(state.close)
        running = Fleet(url, workdir, state, keystore.load(controller), bundle, agents)
        await running.until(
            lambda: all("connected to" in a.log_text() for a in agents), "every agent to connect"
        )
        yield running
    # The agents have stopped: anything they logged at WARNING or above is worth a line in the output.
    for agent in agents:
        complaints = [line for line in agent.log_text().splitlines() if re.search(r" (WARNING|ERROR) ", line)]
        COMPLAINTS.append(f"{workdir.name}/{agent.name}: {len(complaints)}")
        COMPLAINTS.extend(f"    {line}" for line in complaints[:5])


# -- a) apply to applied ----------------------------------------------------------


@asynccontextmanager
async def broker(kind: str, workdir: Path) -> AsyncIterator[urls.BrokerUrl]:
    if kind == "amqtt":
        async with embedded.serve() as endpoint:
            yield endpoint.url
    else:
        with brokers.mosquitto(workdir) as url:
            yield url


@dataclass
class Convergence:
    cold: Update
    warm: list[Update]
    connected: float  # seconds from starting the agent processes until all were subscribed
    agent_cpu: float  # seconds of CPU, all agents together, per update
    bench_cpu: float  # seconds of CPU of this process (controller, fake API servers, polling) per update


async def convergence(kind: str, root: Path) -> Convergence:
    workdir = root / f"a-{kind}"
    workdir.mkdir()
    async with broker(kind, workdir) as url:
        started = time.perf_counter()
        async with fleet(url, workdir, ["env=prod", "env=lab", "env=prod"]) as running:
            connected = time.perf_counter() - started
            cold = await running.update()
            pids = [agent.process.pid for agent in running.agents]
            ticks, cpu = sum(cpu_ticks(pid) for pid in pids), time.process_time()
            warm = [await running.update() for _ in range(UPDATES)]
            agent_cpu = (sum(cpu_ticks(pid) for pid in pids) - ticks) / CLK_TCK / UPDATES
            bench_cpu = (time.process_time() - cpu) / UPDATES
    return Convergence(cold, warm, connected, agent_cpu, bench_cpu)


def convergence_rows(cold: Update, warm: list[Update]) -> list[list[str]]:
    metrics: list[Callable[[Update], float]] = [
        lambda u: u.returned,
        lambda u: u.applied[0],
        lambda u: u.applied[-1],
        lambda u: u.recorded[-1],
        lambda u: u.applied[-1] - u.returned,
    ]
    rows = [["cold (first apply)", "1", *(ms(m(cold)) for m in metrics)]]
    picks: list[tuple[str, Callable[[list[float]], float]]] = [("median", median), ("p90", p90), ("min", min)]
    for label, pick in picks:
        rows.append([f"update, {label}", str(len(warm)), *(ms(pick([m(u) for u in warm])) for m in metrics)])
    return rows


# -- b) footprint -------------------------------------------------------------------


@dataclass
class Phase:
    what: str
    status: dict[str, int]
    seconds: float | None = None  # the measured window, if any
    ticks: int | None = None  # CPU ticks over the window
    note: str = ""


async def idle(agent: AgentProcess, what: str) -> Phase:
    ticks = cpu_ticks(agent.process.pid)
    started = time.perf_counter()
    await asyncio.sleep(IDLE_SECONDS)  # the measured window itself: nothing to wait for
    seconds = time.perf_counter() - started
    agent.alive()
    used = cpu_ticks(agent.process.pid) - ticks
    return Phase(what, proc_status(agent.process.pid), seconds, used)


async def footprint(root: Path) -> tuple[list[Phase], Update, list[Update]]:
    workdir = root / "b"
    workdir.mkdir()
    phases = []
    with brokers.mosquitto(workdir) as url:
        async with fleet(url, workdir, ["env=prod"]) as running:
            agent = running.agents[0]
            pid = agent.process.pid
            phases.append(Phase("connected, no bundle yet", proc_status(pid)))
            phases.append(await idle(agent, f"idle {IDLE_SECONDS:.0f} s, no bundle yet"))

            ticks, started = cpu_ticks(pid), time.perf_counter()
            cold = await running.update()
            phases.append(
                Phase(
                    "first apply (cold), until recorded",
                    proc_status(pid),
                    time.perf_counter() - started,
                    cpu_ticks(pid) - ticks,
                )
            )
            phases.append(await idle(agent, f"idle {IDLE_SECONDS:.0f} s after the first apply"))

            ticks, started = cpu_ticks(pid), time.perf_counter()
            warm = [await running.update() for _ in range(UPDATES)]
            used = cpu_ticks(pid) - ticks
            phases.append(
                Phase(
                    f"{UPDATES} updates, one at a time",
                    proc_status(pid),
                    time.perf_counter() - started,
                    used,
                    f"{UPDATES} applies, {1000 * used / CLK_TCK / UPDATES:.1f} ms CPU per apply",
                )
            )

            applies, ticks, started = agent.applies(), cpu_ticks(pid), time.perf_counter()
            with Sampler(pid) as sampler:
                generation = 0
                for _ in range(BURST):
                    _, generation, _ = await running.publish()
                final = generation
                await running.until(lambda: agent.recorded() >= final, "the burst's last generation")
            burst = Phase(
                f"burst: {BURST} applies back to back, until recorded",
                proc_status(pid),
                time.perf_counter() - started,
                cpu_ticks(pid) - ticks,
                f"{agent.applies() - applies} applies; peak sampled VmRSS {mb(sampler.peak)} MB"
                f" ({sampler.samples} samples)",
            )
            phases.append(burst)
            phases.append(await idle(agent, f"idle {IDLE_SECONDS:.0f} s after the burst"))
    return phases, cold, warm


def footprint_rows(phases: list[Phase]) -> list[list[str]]:
    rows = []
    for phase in phases:
        s = phase.status
        if phase.seconds is not None and phase.ticks is not None:
            cpu_s = phase.ticks / CLK_TCK
            window = [f"{phase.seconds:.2f}", f"{cpu_s:.2f}", f"{100 * cpu_s / phase.seconds:.2f}"]
        else:
            window = ["-", "-", "-"]
        rows.append(
            [
                phase.what,
                mb(s["VmRSS"]),
                mb(s["RssAnon"]),
                mb(s["RssFile"]),
                mb(s["VmHWM"]),
                str(s["Threads"]),
                *window,
            ]
        )
    return rows


IMPORTS = {
    "python -c pass (the interpreter alone)": "",
    "edge_agent.agent, aiomqtt (no kubernetes)": "import edge_agent.agent, aiomqtt",
    "edge_agent.cli (what `run` imports first)": "import edge_agent.cli, aiomqtt",
    "+ edge_agent.applying (kubernetes client)": "import edge_agent.cli, aiomqtt, edge_agent.applying",
}
PROBE = """\
import time
_t = time.perf_counter()
{imports}
_t = time.perf_counter() - _t
import json, sys
_s = {{}}
for _line in open("/proc/self/status"):
    _k, _, _v = _line.partition(":")
    if _k in ("VmRSS", "RssAnon", "RssFile"):
        _s[_k] = int(_v.split()[0])
_s["seconds"] = _t
_s["kubernetes"] = "kubernetes" in sys.modules
print(json.dumps(_s))
"""
PROBE_RUNS = 3


def import_rows() -> list[list[str]]:
    rows = []
    for what, imports in IMPORTS.items():
        runs = []
        for _ in range(PROBE_RUNS):
            done = subprocess.run(
                [sys.executable, "-c", PROBE.format(imports=imports)],
                capture_output=True,
                text=True,
                cwd=ROOT,
                check=True,
            )
            runs.append(json.loads(done.stdout))
        runs.sort(key=lambda r: r["VmRSS"])
        mid = runs[len(runs) // 2]
        took = median([r["seconds"] for r in runs])
        rows.append(
            [
                what,
                mb(mid["VmRSS"]),
                mb(mid["RssAnon"]),
                mb(mid["RssFile"]),
                ms(took) if imports else "-",
                "yes" if mid["kubernetes"] else "no",
            ]
        )
    return rows


# -- d) the pieces of one agent apply ----------------------------------------------------

PIECE_RUNS = 30


def pieces(root: Path) -> list[list[str]]:
    """Time, in this process, each step an agent takes for one manifest: on the envelope and
    config part b's agent last held, with a fresh fake API server and a state dir on the same disk."""
    from edge_agent import applying, receiving
    from edge_agent import cli as agent_cli
    from edge_agent.store import Applied, Store
    from wire import manifests

    workdir = root / "b"
    config = agent_cli.load_config(workdir / "edge-1.agent.yaml")
    payload = (workdir / "edge-1" / "manifests" / f"{BUNDLE}.bin").read_bytes()
    space = topics.Topics(config.topic_prefix)
    topic = space.bundle(config.group, BUNDLE)
    trusted = config.keyring()

    def check() -> manifests.Manifest:
        result = receiving.check(topic, payload, topic_space=space, trusted=trusted)
        if not isinstance(result, receiving.Accepted):
            raise RuntimeError(f"the agent's own envelope is refused: {result}")
        return result.manifest

    variant = check().variants[0]
    store = Store(root / "d")
    rows = []
    with FakeCluster(ready_delay=0.0) as cluster:
        applier = applying.KubeApplier(cluster.api_client(), discovery_cache=root / "d" / "discovery.json")
        started = time.perf_counter()
        refs = applier.refs(BUNDLE, variant)
        applier.apply(BUNDLE, variant)
        first = time.perf_counter() - started
        record = Applied(7, variant.deployment_id, tuple(sorted(refs)))
        steps: dict[str, Callable[[], object]] = {
            "receiving.check: parse, verify Ed25519, decompress, decode": check,
            "Store.save_manifest: atomic write, fsync file and dir": lambda: store.save_manifest(
                BUNDLE, payload
            ),
            "Store.save_applied (twice per apply)": lambda: store.save_applied(BUNDLE, record),
            "KubeApplier.refs (discovery cached)": lambda: applier.refs(BUNDLE, variant),
            "KubeApplier.apply: 4 server-side applies, fake API": lambda: applier.apply(BUNDLE, variant),
        }
        timings: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(PIECE_RUNS):
            for name, step in steps.items():
                started = time.perf_counter()
                step()
                timings[name].append(time.perf_counter() - started)
    for name, values in timings.items():
        rows.append([name, str(len(values)), ms(median(values)), ms(p90(values))])
    total = sum(median(v) * (2 if "twice" in name else 1) for name, v in timings.items())
    rows.append(["sum per apply (save_applied counted twice)", "-", ms(total), "-"])
    rows.append(["first refs + apply on a new cluster (discovery, creates)", "1", ms(first), "-"])
    return rows


# -- main ---------------------------------------------------------------------------------


async def main() -> None:
    header()
    with tempfile.TemporaryDirectory(prefix="edgefleet-bench-agent-") as tmp:
        root = Path(tmp)
        results = {}
        for kind in ("amqtt", "mosquitto"):
            results[kind] = await convergence(kind, root)
        phases, cold, warm = await footprint(root)
        steps = pieces(root)
        imports = import_rows()

    print(f"a) Apply to applied: examples/{BUNDLE}, agent processes each on its own fake API server;")
    print("   ms from the start of delivering.apply; clusters and state files polled every ~1 ms;")
    print("   the 1-agent rows are the updates of part b")
    print()
    headers = ["broker", "agents", "run", "n", "apply() returned", "first applied", "last applied"]
    headers += ["last recorded", "last applied - returned"]
    rows = []
    for kind, result in results.items():
        rows += [[kind, "3", *row] for row in convergence_rows(result.cold, result.warm)]
    rows += [["mosquitto", "1", *row] for row in convergence_rows(cold, warm)]
    print(table(headers, rows, right={1, 3, 4, 5, 6, 7, 8}))
    print()
    for kind, result in results.items():
        print(
            f"   {kind}: 3 agents started and connected in {result.connected:.2f} s; CPU per update:"
            f" {ms(result.agent_cpu)} ms in the 3 agents together, {ms(result.bench_cpu)} ms in this"
            " process (controller, fake API servers, polling; amqtt too when it is the broker)"
        )
    print()

    print("b) Footprint of one agent process (Mosquitto, fake API server), MB = MiB")
    print(f"   CPU from /proc/PID/stat utime+stime, {CLK_TCK} ticks/s (resolution {1000 // CLK_TCK} ms)")
    print()
    headers = ["phase", "VmRSS", "RssAnon", "RssFile", "VmHWM", "threads", "window s", "CPU s", "CPU %"]
    print(table(headers, footprint_rows(phases), right=set(range(1, 9))))
    for phase in phases:
        if phase.note:
            print(f"   {phase.what}: {phase.note}")
    print()

    print(f"c) RSS of a fresh interpreter after imports only (median of {PROBE_RUNS}), MB = MiB")
    print()
    headers = ["imports", "VmRSS", "RssAnon", "RssFile", "import ms", "kubernetes loaded"]
    print(table(headers, imports, right={1, 2, 3, 4}))
    print()
    print(f"d) One agent's steps for one manifest, timed in this process ({PIECE_RUNS} runs, ms)")
    print()
    print(table(["step", "n", "median", "p90"], steps))
    print()
    print(f"agent log lines at WARNING or above: {', '.join(c for c in COMPLAINTS if not c.startswith(' '))}")
    for line in COMPLAINTS:
        if line.startswith(" "):
            print(line)
    print(f"load avg: {loadavg()} (1, 5, 15 min) at end")


if __name__ == "__main__":
    started = time.perf_counter()
    asyncio.run(main())
    print(f"total run time {time.perf_counter() - started:.0f} s")
