"""Status ingest: how many status messages a second the controller aggregates, and what it keeps.

Run with `PATH=.venv/bin:$PATH .venv/bin/python bench/ingest.py` (about three
minutes on 2 cores). It prints plain-text tables, and its progress on stderr.

Why: every agent publishes its status document retained, on connect, on every
change and as a heartbeat; the controller reads all of them on one event loop
(controller.aggregating), and a restarted controller reads every retained one
back at once. The scale issue asks for at least 20,000 status messages a
second on one core, and under 2 KB of controller memory per tracked cluster.

The fleet: `--clusters` N (default 1,000, 10,000, 100,000) spread over 10
groups (topic roots edge/site-00 to edge/site-09, clusters interleaved), each
cluster labelled env and site, registered in a real registry
(controller.state.State in a temp dir: groups with `add_group`, clusters in
one transaction with the row `add_cluster` writes, because `add_cluster` is a
transaction each, about 0.2 ms, 20 s for 100,000). Every group holds
`--bundles` B bundles (default 1 and 5), each one ConfigMap with one target
for all (tests.factories.manifest). The aggregator reads the registry with
`refresh_registry`, as its registry loop does; the manifests go into its table
with `Table.manifest`, which is what `handle()` does with a bundle message
once its signature is verified (left out: bundle messages are 10 x B of the
fleet's). "Shape" below is N x B.

Status payloads are what real agents send: `edge_agent.reporting.document`
of `bundle_status(Ready)` on the desired deployment for each bundle, node
facts of a k3s node, session 3, encoded with `wire.status.encode` (sorted,
compact JSON: about 500 bytes with one bundle, 1,500 with five). A round is
one message from every cluster; each round carries the next `seq` and a later
`ts`, so every message is accepted and replaces the report of the round
before. (Each cluster's document is encoded once; a round swaps in its last
three keys, seq, session and ts, which sort last; checked byte for byte.)

a) `Aggregator.handle(topic, payload)` in this process, one core: the first
   round (each registered cluster's first report, the table growing), then
   steady rounds until at least `--messages` messages. CPU
   (time.process_time) and wall (time.perf_counter) per message, messages a
   second, and the share spent in the garbage collector (gc.callbacks), which
   stays on, as in the controller.
b) Summaries: what the controller does at most every `summary_interval`
   (0.5 s) while anything changes: `Aggregator._publish` with a sink in place
   of the MQTT client, i.e. `Aggregator.summaries()` and the JSON encoding of
   every document (once without `ts` to see whether it changed, once to
   publish; `published` emptied first, so every document counts as changed,
   as the group documents do in every cycle while statuses arrive, since
   their cluster rows carry `last_seen`), right after a round in which every
   cluster reported: the most a cycle has to redo. summaries() is timed
   apart; median of 3 (a round before each) up to 50,000 deployments, else
   one run. The publish loop sleeps
   `summary_interval` after each publish, so while the fleet changes the
   summaries take publish/(publish + 0.5 s) of the loop's core whatever the
   message rate; from that, the rate left for handle() and the core's load at
   the target rate. Then measured: a loop like the controller's, on one
   thread, handles messages back to back and publishes whenever
   `summary_interval` has passed since the last publish ended, for
   `--loop-seconds`; skipped when one cycle takes more than half of that.
c) End to end over Debian's Mosquitto as installed (tests.brokers.mosquitto;
   skip with `--no-broker`): at `--broker-clusters` N (default 10,000 and
   20,000) with one bundle, a publisher in another process (this script with
   the hidden `--publish-child` option; paho-mqtt, QoS 1, retained) puts the
   signed bundle messages and one status per cluster on the broker and exits;
   then the real controller (`Aggregator.run()`, with a keystore and the
   registry in its state directory) starts in this process and receives them
   all as retained messages, as after a restart. Timed from the first status
   message handled to the last (or to the last before none came for `QUIET`
   seconds: "received" then says how many were lost): messages a second, this
   process's CPU (user + system), and how much of it went to handle(),
   summaries() and refresh_registry(); the rest is the MQTT client (the
   controller's read-ahead socket, and paho and aiomqtt for what it leaves them),
   asyncio and encoding the summaries. Mosquitto's CPU is read from
   /proc/PID/stat. `--end-to-end-only` runs just this part (seconds, not minutes).
d) Memory per tracked cluster, at `--memory-clusters` N (default 10,000 and
   100,000) x B: for each shape, one fresh child process reads VmRSS and
   another the bytes tracemalloc traces (Python allocations only: exact, but
   without the allocator's slack and fragmentation, which RSS shows), each
   after gc.collect, with every payload already built: before the aggregator
   reads the registry, after, after one status from every cluster, and after
   one summaries() (whatever the table keeps for its summaries, as in a
   running controller; traced only up to `TRACED_SUMMARIES_UP_TO` clusters,
   since tracemalloc makes it slow). The hidden `--memory-child` option;
   `MEMORY_CHILDREN` run at a time. Per cluster, and projected linearly to 1,000,000. Then a
   breakdown of one cluster's entry at the profiled N, before any summary
   (sys.getsizeof, objects shared with another cluster's entry left out).
e) Where handle() spends its time, at `--profile-clusters` N (default
   10,000): each stage timed around its call over one round (topics.parse,
   json.loads on its own, status.decode_status, Table.status), handle() whole
   over the next; then cProfile over one round of handle(): the top functions
   by own and by cumulative time (profiling slows everything; read the
   shares, not the absolute values).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import gc
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Python puts bench/ first on sys.path, and bench/wire.py is there: without this,
# `import wire` would import that script instead of the package.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

import aiomqtt  # noqa: E402
from paho.mqtt import client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from bench import processes  # noqa: E402
from bench.reporting import command_first_line, cpu_model, ms, table  # noqa: E402
from controller import aggregating, keystore, readiness_table  # noqa: E402
from controller.state import Group, State  # noqa: E402
from edge_agent import reporting  # noqa: E402
from tests import brokers, factories  # noqa: E402
from wire import agent_config, envelopes, manifests, status, topics, urls  # noqa: E402

GROUPS = 10
ROOTS = [f"edge/site-{g:02d}" for g in range(GROUPS)]
# A device's session number after a few reconnects (edge_agent.store counts them from 1).
SESSION = 3
NODE = status.NodeFacts(kubernetes_version="v1.30.6+k3s1", platform="linux/arm64", ready=True)
# Reports are dated a day back, so `last_seen` (the earlier of `ts` and now) is the report's.
T0 = time.time() - 86_400
INTERVAL = aggregating.Settings().summary_interval
TARGET_RATE = 20_000  # status messages a second on one core (the scale issue)
TARGET_BYTES = 2_048  # controller memory per tracked cluster (the scale issue)
PUBLISH_WINDOW = 1_000  # the publisher's messages in flight before it waits for their PUBACKs
# End to end, the controller has lost what has not come this long after its last status message.
QUIET = 3.0
MEMORY_CHILDREN = 2  # memory child processes at a time (one per core here)
STAGES = ("registered", "reporting", "summarized")  # what the memory children measure after
# summaries() under tracemalloc takes minutes at 100,000 clusters; RSS has that stage there.
TRACED_SUMMARIES_UP_TO = 10_000


# -- the fleet ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    clusters: int
    bundles: int

    def __str__(self) -> str:
        return f"{self.clusters:,} x {self.bundles}"


def cluster_name(index: int) -> str:
    return f"pi-{index:06d}"


def labels(index: int) -> dict[str, str]:
    return {"env": "prod" if index % 2 else "dev", "site": f"site-{index % GROUPS:02d}"}


def held(root: str, bundles: int) -> list[manifests.Manifest]:
    """The bundles a group holds: one ConfigMap each, one target for all."""
    return [
        factories.manifest(
            group=root, bundle=f"app-{b}", objects=(factories.config_map(f"app-{b}", greeting="hello"),)
        )
        for b in range(bundles)
    ]


def registry(state_dir: Path, shape: Shape) -> State:
    state = State.open(state_dir)
    for g, root in enumerate(ROOTS):
        state.add_group(Group(f"site-{g:02d}", root))
    rows = [
        (cluster_name(i), f"site-{i % GROUPS:02d}", json.dumps(labels(i), sort_keys=True), time.time())
        for i in range(shape.clusters)
    ]
    with state.transaction() as db:  # the row State.add_cluster writes, all in one transaction
        db.executemany(
            "INSERT INTO clusters (name, group_name, labels, created_at) VALUES (?, ?, ?, ?)", rows
        )
    return state


@dataclass
class Timed(aggregating.Aggregator):
    """The controller's aggregator, adding up the time its summaries and registry reads take."""

    summary_seconds: float = 0.0
    registry_seconds: float = 0.0

    def summaries(self) -> dict[str, Mapping[str, Any] | None]:
        start = time.perf_counter()
        try:
            return super().summaries()
        finally:
            self.summary_seconds += time.perf_counter() - start

    def refresh_registry(self, state: State) -> set[str]:
        start = time.perf_counter()
        try:
            return super().refresh_registry(state)
        finally:
            self.registry_seconds += time.perf_counter() - start


def controller(state_dir: Path, state: State, shape: Shape) -> Timed:
    aggregator = Timed(state_dir, urls.BrokerUrl("127.0.0.1", 1883))
    aggregator.refresh_registry(state)
    for root in ROOTS:
        for manifest in held(root, shape.bundles):
            aggregator.table.manifest(root, manifest)
    return aggregator


@dataclass(frozen=True)
class Template:
    """One cluster's status message but for its last three keys (seq, session, ts sort last)."""

    topic: str
    head: bytes


def templates(shape: Shape) -> list[Template]:
    space = topics.Topics()
    deployments = {m.bundle: m.targets[0].deployment_id for m in held(ROOTS[0], shape.bundles)}
    out = []
    for i in range(shape.clusters):
        root = ROOTS[i % GROUPS]
        config = agent_config.AgentConfig(
            cluster=cluster_name(i),
            group=root,
            broker="mqtt://broker.invalid",
            trusted_keys=(),
            labels=labels(i),
        )
        bundles = {
            bundle: reporting.bundle_status(
                status.State.READY, generation=1, deployment_id=deployment, applied_deployment_id=deployment
            )
            for bundle, deployment in deployments.items()
        }
        document = reporting.document(
            config, session=SESSION, seq=7, ts=report_ts(i, 7), node=NODE, bundles=bundles
        )
        encoded = status.encode(document)
        template = Template(space.status(root, config.cluster), encoded[: encoded.index(b'"seq":')])
        if i == 0:  # the shortcut writes exactly what the agent's encoder does
            assert payload(template, i, 7) == encoded, (payload(template, i, 7), encoded)
        out.append(template)
    return out


def report_ts(index: int, seq: int) -> float:
    return T0 + seq * 60.0 + index * 1e-5


def payload(template: Template, index: int, seq: int) -> bytes:
    tail = b'"seq":%d,"session":%d,"ts":%b}' % (seq, SESSION, repr(report_ts(index, seq)).encode())
    return template.head + tail


def round_of(fleet: list[Template], seq: int) -> list[tuple[str, bytes]]:
    return [(t.topic, payload(t, i, seq)) for i, t in enumerate(fleet)]


def feed(aggregator: aggregating.Aggregator, messages: list[tuple[str, bytes]]) -> tuple[float, float]:
    """Hand every message to the aggregator; return (CPU seconds, wall seconds)."""
    handle = aggregator.handle
    cpu, wall = time.process_time(), time.perf_counter()
    for topic, body in messages:
        handle(topic, body)
    return time.process_time() - cpu, time.perf_counter() - wall


def check(aggregator: aggregating.Aggregator, shape: Shape, seq: int) -> None:
    """Every cluster's report is from round `seq`, and nothing was dropped."""
    table_ = aggregator.table
    assert table_.ignored == 0, table_.ignored
    assert len(table_.clusters) == shape.clusters, len(table_.clusters)
    stale = [s.name for s in table_.clusters.values() if s.reported is None or s.seq != seq]
    assert not stale, stale[:5]


class GcClock:
    """Time spent in the cyclic garbage collector while registered (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start

    @contextlib.contextmanager
    def running(self) -> Iterator[GcClock]:
        gc.callbacks.append(self)
        try:
            yield self
        finally:
            gc.callbacks.remove(self)


# -- a) handle() --------------------------------------------------------------------------------


@dataclass
class Throughput:
    shape: Shape
    payload_bytes: int
    first_cpu: float  # seconds, the first round
    first_gc: float  # of which in the garbage collector (wall)
    messages: int  # steady
    cpu: float  # seconds, steady rounds
    wall: float
    gc_seconds: float

    @property
    def per_message(self) -> float:
        return self.cpu / self.messages


def throughput(
    aggregator: Timed, fleet: list[Template], shape: Shape, messages: int
) -> tuple[Throughput, int]:
    """Run the first round and steady rounds; return the result and the last round's seq."""
    first = round_of(fleet, 1)
    size = sum(len(body) for _, body in first) // len(first)
    with GcClock().running() as first_gc:
        first_cpu, _ = feed(aggregator, first)
    del first
    rounds = max(1, math.ceil(messages / shape.clusters))
    cpu = wall = 0.0
    steady_gc = GcClock()
    for seq in range(2, rounds + 2):
        batch = round_of(fleet, seq)
        with steady_gc.running():
            c, w = feed(aggregator, batch)
        cpu, wall = cpu + c, wall + w
    check(aggregator, shape, rounds + 1)
    result = Throughput(
        shape, size, first_cpu, first_gc.seconds, rounds * shape.clusters, cpu, wall, steady_gc.seconds
    )
    return result, rounds + 1


# -- b) summaries -------------------------------------------------------------------------------


class Sink:
    """Stands in for the aiomqtt client in Aggregator._publish: counts what would go out."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.largest = 0

    async def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        self.messages += 1
        self.bytes += len(payload)
        self.largest = max(self.largest, len(payload))


def publish_cycle(aggregator: Timed, sink: Sink) -> tuple[float, float]:
    """One publish as the controller's loop does it; return (its CPU seconds, summaries() seconds)."""
    before = aggregator.summary_seconds
    cpu = time.process_time()
    asyncio.run(aggregator._publish(cast(aiomqtt.Client, sink), everything=False))
    return time.process_time() - cpu, aggregator.summary_seconds - before


@dataclass
class Summaries:
    shape: Shape
    summaries: float  # seconds, one summaries()
    publish: float  # seconds, summaries() and encoding
    bytes: int
    largest: int
    handle: float  # seconds per message, from a)

    @property
    def share(self) -> float:
        """Of the loop's core while the fleet changes."""
        return self.publish / (self.publish + INTERVAL)

    @property
    def rate_left(self) -> float:
        return (1 - self.share) / self.handle

    @property
    def load_at_target(self) -> float:
        return TARGET_RATE * self.handle + self.share


def summaries(
    aggregator: Timed, fleet: list[Template], shape: Shape, handle: float, seq: int
) -> tuple[Summaries, int]:
    """Publish cycles right after every cluster reported (a round before each but the first,
    which follows a)); return the median one and the last seq handed out."""
    repeat = 3 if shape.clusters * shape.bundles <= 50_000 else 1
    runs = []
    for n in range(repeat):
        if n:
            seq += 1
            feed(aggregator, round_of(fleet, seq))
        aggregator.published.clear()  # every document new, as after a restart
        sink = Sink()
        runs.append((*publish_cycle(aggregator, sink), sink))
    publish, summarize, sink = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    return Summaries(shape, summarize, publish, sink.bytes, sink.largest, handle), seq


@dataclass
class Loop:
    shape: Shape
    seconds: float = 0.0  # wall
    cpu: float = 0.0
    messages: int = 0
    cycles: int = 0
    publish_cpu: float = 0.0
    skipped: str = ""


def controller_loop(
    aggregator: Timed,
    fleet: list[Template],
    shape: Shape,
    *,
    seq: int,
    seconds: float,
    cycle: float,
    rate: float,
) -> tuple[Loop, int]:
    """Messages back to back, publishing whenever `summary_interval` passed since the last publish
    ended (the publish loop's sleep); return the result and the last seq handed out."""
    result = Loop(shape)
    if cycle > seconds / 2:
        result.skipped = f"one cycle takes {cycle:.1f} s"
        return result, seq
    last = seq + math.ceil(seconds * rate * 1.5 / shape.clusters) + 1
    messages = [message for s in range(seq + 1, last + 1) for message in round_of(fleet, s)]
    sink = Sink()
    publish_cycle(aggregator, sink)  # what was published before the window
    handle = aggregator.handle
    cpu, start = time.process_time(), time.perf_counter()
    due, end = start + INTERVAL, start + seconds
    for topic, body in messages:
        handle(topic, body)
        result.messages += 1
        if result.messages % 64 == 0:
            now = time.perf_counter()
            if now >= end:
                break
            if now >= due:
                result.publish_cpu += publish_cycle(aggregator, sink)[0]
                result.cycles += 1
                due = time.perf_counter() + INTERVAL
    result.seconds, result.cpu = time.perf_counter() - start, time.process_time() - cpu
    return result, last


# -- c) end to end over Mosquitto ---------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """Clocks and running totals at one moment of an end-to-end run."""

    wall: float
    cpu: float  # this process, user + system
    handle: float
    summaries: float
    registry: float
    broker: float  # Mosquitto's CPU

    def __sub__(self, other: Mark) -> Mark:
        pairs = zip(dataclasses.astuple(self), dataclasses.astuple(other), strict=True)
        return Mark(*(a - b for a, b in pairs))


@dataclass
class Metered(Timed):
    """Also counts status messages, times handle(), and marks the first status and the last."""

    expected: int = 0
    broker_pid: int | None = None
    statuses: int = 0
    handle_seconds: float = 0.0
    last_status: float = 0.0
    first: Mark | None = None
    last: Mark | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def handle(self, topic: str, payload: bytes) -> None:
        start = time.perf_counter()
        super().handle(topic, payload)
        self.last_status = time.perf_counter()
        self.handle_seconds += self.last_status - start
        if "/status/" not in topic:
            return
        self.statuses += 1
        if self.statuses == 1:
            self.first = self.mark(start)
        if self.statuses == self.expected:
            self.done.set()

    def mark(self, wall: float) -> Mark:
        broker = processes.cpu_seconds(self.broker_pid) if self.broker_pid is not None else 0.0
        return Mark(
            wall, own_cpu_seconds(), self.handle_seconds, self.summary_seconds, self.registry_seconds, broker
        )


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class EndToEnd:
    shape: Shape
    published: float  # the publisher's wall seconds
    received: int  # status messages the controller got
    window: Mark  # from its first status message to its last


def publish_child(state_dir: Path, host: str, port: int, shape: Shape) -> None:
    """Put the bundles and one status per cluster on the broker, retained, as agents would."""
    key = keystore.load(state_dir)
    space = topics.Topics()
    messages = [
        (space.bundle(root, m.bundle), envelopes.seal(m, key, version=2))
        for root in ROOTS
        for m in held(root, shape.bundles)
    ]
    messages += round_of(templates(shape), 1)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-ingest-publisher")
    client.connect(host, port)
    client.loop_start()
    start = time.perf_counter()
    try:
        for at in range(0, len(messages), PUBLISH_WINDOW):
            infos = [
                client.publish(t, body, qos=1, retain=True) for t, body in messages[at : at + PUBLISH_WINDOW]
            ]
            for info in infos:
                info.wait_for_publish(timeout=60)
                if not info.is_published():
                    raise SystemExit(f"publish not acknowledged: rc {info.rc}")
    finally:
        client.disconnect()
        client.loop_stop()
    print(json.dumps({"messages": len(messages), "seconds": time.perf_counter() - start}))


async def receive(state_dir: Path, url: urls.BrokerUrl, shape: Shape, broker_pid: int | None) -> Metered:
    """Run the controller until it has every status, or none came for QUIET seconds."""
    aggregator = Metered(state_dir, url, expected=shape.clusters, broker_pid=broker_pid)
    task = asyncio.create_task(aggregator.run())
    try:
        async with asyncio.timeout(120):
            while not aggregator.done.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.1):
                        await aggregator.done.wait()
                if aggregator.statuses and time.perf_counter() - aggregator.last_status > QUIET:
                    break
    finally:
        aggregator.last = aggregator.mark(aggregator.last_status)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return aggregator


def end_to_end(workdir: Path, shape: Shape) -> EndToEnd:
    state_dir = workdir / f"e2e-{shape.clusters}-{shape.bundles}-{len(list(workdir.iterdir()))}"
    state_dir.mkdir()
    keystore.init(state_dir)
    registry(state_dir, shape).close()
    with brokers.Mosquitto(state_dir) as running:
        url, broker = running.url, running.process
        assert broker is not None
        command = [sys.executable, str(Path(__file__).resolve()), "--publish-child", str(state_dir)]
        command += [url.host, str(url.port), str(shape.clusters), str(shape.bundles)]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"publisher failed: {done.stderr}")
        published = json.loads(done.stdout.splitlines()[-1])
        aggregator = asyncio.run(receive(state_dir, url, shape, broker.pid))
    if aggregator.statuses == shape.clusters:
        check(aggregator, shape, 1)
    assert aggregator.first is not None and aggregator.last is not None, "no status arrived"
    window = aggregator.last - aggregator.first
    return EndToEnd(shape, published["seconds"], aggregator.statuses, window)


# -- d) memory ----------------------------------------------------------------------------------


def rss_bytes() -> int:
    return processes.status_kib("self", "VmRSS") * 1024


def memory_child(shape: Shape, measured: str) -> None:
    """Print, as JSON, what the aggregator's table adds for `shape` at each stage: VmRSS
    (`measured` "rss") or the bytes tracemalloc traces ("traced")."""
    with tempfile.TemporaryDirectory() as tmp:
        state = registry(Path(tmp), shape)
        messages = round_of(templates(shape), 1)
        readings: dict[str, int] = {}

        def note(stage: str) -> None:
            gc.collect()
            readings[stage] = tracemalloc.get_traced_memory()[0] if measured == "traced" else rss_bytes()

        if measured == "traced":
            tracemalloc.start()
        aggregator = aggregating.Aggregator(Path(tmp), urls.BrokerUrl("127.0.0.1", 1883))
        note("empty")
        aggregator.refresh_registry(state)
        for root in ROOTS:
            for manifest in held(root, shape.bundles):
                aggregator.table.manifest(root, manifest)
        note("registered")
        feed(aggregator, messages)
        check(aggregator, shape, 1)
        # As the registry loop does within registry_interval: records what each agent says
        # it reads (kept until then, per cluster) and re-reads the registry.
        aggregator.refresh_registry(state)
        note("reporting")
        if measured == "rss" or shape.clusters <= TRACED_SUMMARIES_UP_TO:
            aggregator.summaries()  # what the table keeps for its summaries, as a running one has it
            note("summarized")
        state.close()
    print(json.dumps(readings))


@dataclass
class Memory:
    shape: Shape
    rss: dict[str, int]
    traced: dict[str, int]

    def per_cluster(self, measured: str, stage: str) -> float | None:
        readings = self.rss if measured == "rss" else self.traced
        if stage not in readings:
            return None
        return (readings[stage] - readings["empty"]) / self.shape.clusters


def memory(shapes: list[Shape]) -> list[Memory]:
    """One child process per shape and measure, `MEMORY_CHILDREN` at a time, longest first
    (each reads only its own memory, so they may share the machine)."""
    jobs = sorted(
        ((shape, measured) for shape in shapes for measured in ("traced", "rss")),
        key=lambda job: job[0].clusters * (job[0].bundles + 2) * (3 if job[1] == "traced" else 1),
        reverse=True,
    )
    script = str(Path(__file__).resolve())
    running: list[tuple[Shape, str, subprocess.Popen[str]]] = []
    readings: dict[tuple[Shape, str], dict[str, int]] = {}
    while jobs or running:
        while jobs and len(running) < MEMORY_CHILDREN:
            shape, measured = jobs.pop(0)
            command = [
                sys.executable,
                script,
                "--memory-child",
                str(shape.clusters),
                str(shape.bundles),
                measured,
            ]
            running.append((shape, measured, subprocess.Popen(command, stdout=subprocess.PIPE, text=True)))
        shape, measured, child = running.pop(0)
        out, _ = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"memory child for {shape} ({measured}) failed")
        readings[shape, measured] = json.loads(out.splitlines()[-1])
    return [Memory(shape, readings[shape, "rss"], readings[shape, "traced"]) for shape in shapes]


def entry_sizes(
    table_: readiness_table.Table, key: tuple[str, str], other: tuple[str, str]
) -> dict[str, int]:
    """Bytes of one cluster's entry by part, leaving out objects another cluster's entry shares."""
    visited: set[int] = set()
    _entry(table_, other, visited, {})
    sizes: dict[str, int] = {}
    _entry(table_, key, visited, sizes)
    sizes["Table.clusters slot (dict entry)"] = sys.getsizeof(table_.clusters) // len(table_.clusters)
    return sizes


def _entry(
    table_: readiness_table.Table, key: tuple[str, str], visited: set[int], sizes: dict[str, int]
) -> None:
    """Add to `sizes` what the objects of `key`'s entry not yet in `visited` take, by part."""

    def add(part: str, obj: object) -> None:
        if id(obj) not in visited:
            visited.add(id(obj))
            sizes[part] = sizes.get(part, 0) + sys.getsizeof(obj)

    def walk(part: str, obj: object) -> None:
        if isinstance(obj, dict):
            add(f"{part}: dicts", obj)
            for k, v in obj.items():
                add(f"{part}: key strings", k)
                walk(part, v)
        elif isinstance(obj, readiness_table.Reported | readiness_table.Outcome):  # named tuples
            add(f"{part}: records", obj)
            for item in obj:
                walk(part, item)
        elif isinstance(obj, readiness_table.Selected | readiness_table.Derived):
            add(f"{part}: records", obj)
            for name in type(obj).__slots__:
                walk(part, getattr(obj, name))
        elif isinstance(obj, list | tuple):
            add(f"{part}: lists", obj)
            for item in obj:
                walk(part, item)
        elif isinstance(obj, str):
            add(f"{part}: value strings", obj)
        elif isinstance(obj, manifests.Manifest):
            pass  # shared by the whole group
        else:
            add(f"{part}: numbers", obj)

    stored = next(k for k in table_.clusters if k == key)  # the dict's own key tuple
    seen = table_.clusters[stored]
    add("Seen object (slotted: no __dict__)", seen)
    add("key tuple and names", stored)
    for text in (*stored, seen.name, seen.group):
        add("key tuple and names", text)
    walk("labels", seen.labels)
    add("Seen numbers (last_seen, session)", seen.last_seen)
    add("Seen numbers (last_seen, session)", seen.session)
    walk("report kept", seen.reported)
    walk("agent version", seen.agent_version)
    walk("selection cache", seen.selected)
    walk("summary cache (outcomes, row counts)", seen.derived)


# -- e) where the time goes ---------------------------------------------------------------------


def stages(aggregator: Timed, fleet: list[Template], shape: Shape, seq: int) -> tuple[list[list[str]], int]:
    """µs per message of each step of handle(), timed around each call over one round (json.loads
    again on its own, as part of decode_status's time); then handle() whole over the next round."""
    space, table_, clock = aggregator.space, aggregator.table, time.perf_counter
    parse = loads = decode = store = 0.0
    for topic, body in round_of(fleet, seq + 1):
        start = clock()
        address = space.parse(topic)
        parsed = clock()
        json.loads(body)
        loaded = clock()
        document = status.decode_status(body)
        decoded = clock()
        assert address.group is not None and address.name is not None
        table_.status(address.group, address.name, document, time.time())
        stored = clock()
        parse, loads = parse + parsed - start, loads + loaded - parsed
        decode, store = decode + decoded - loaded, store + stored - decoded
    _, whole = feed(aggregator, round_of(fleet, seq + 2))
    check(aggregator, shape, seq + 2)
    us = 1e6 / shape.clusters
    rows = [
        ["topics.parse(topic)", f"{parse * us:.2f}"],
        ["status.decode_status(payload)", f"{decode * us:.2f}"],
        ["  of which json.loads (timed apart)", f"{loads * us:.2f}"],
        ["  of which the checks", f"{(decode - loads) * us:.2f}"],
        ["Table.status(group, name, document, now)", f"{store * us:.2f}"],
        ["handle() whole (next round)", f"{whole * us:.2f}"],
        [
            "  of which the rest (clock, kind checks, group lookup, event)",
            f"{(whole - parse - decode - store) * us:.2f}",
        ],
    ]
    return rows, seq + 2


def profile(aggregator: Timed, fleet: list[Template], shape: Shape, seq: int, top: int) -> tuple[str, int]:
    """cProfile over one round of handle(): the top functions by own and by cumulative time."""
    batch = round_of(fleet, seq + 1)
    profiler = cProfile.Profile()
    profiler.enable()
    feed(aggregator, batch)
    profiler.disable()
    check(aggregator, shape, seq + 1)
    entries = [e for e in profiler.getstats() if _where(e.code) not in _PROFILER_OWN]
    total = sum(e.inlinetime for e in entries)
    n = shape.clusters

    def rows(ranked: list[Any]) -> list[list[str]]:
        return [
            [
                _where(e.code)[:80],
                f"{e.callcount / n:.2f}",
                f"{e.inlinetime / n * 1e6:.2f}",
                f"{e.totaltime / n * 1e6:.2f}",
                f"{e.inlinetime / total:.0%}",
            ]
            for e in ranked[:top]
        ]

    headers = ["function", "calls/msg", "own µs/msg", "cum µs/msg", "own share"]
    by_own = sorted(entries, key=lambda e: e.inlinetime, reverse=True)
    by_cumulative = sorted(entries, key=lambda e: e.totaltime, reverse=True)
    text = (
        f"by own time ({total / n * 1e6:.1f} µs per message in all, profiled)\n"
        + table(headers, rows(by_own), right={1, 2, 3, 4})
        + "\n\nby cumulative time\n"
        + table(headers, rows(by_cumulative), right={1, 2, 3, 4})
    )
    return text, seq + 1


_PROFILER_OWN = {
    f"bench/ingest.py:{feed.__code__.co_firstlineno} feed",
    "<method 'disable' of '_lsprof.Profiler' objects>",
}


def _where(code: types.CodeType | str) -> str:
    if isinstance(code, str):
        return code
    path = Path(code.co_filename)
    short = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    return f"{short}:{code.co_firstlineno} {code.co_qualname}"


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Report:
    throughputs: list[Throughput] = field(default_factory=list)
    summaries: list[Summaries] = field(default_factory=list)
    loops: list[Loop] = field(default_factory=list)
    ends: list[EndToEnd] = field(default_factory=list)
    memory: list[Memory] = field(default_factory=list)
    entries: list[tuple[Shape, dict[str, int]]] = field(default_factory=list)
    stages: list[tuple[Shape, list[list[str]]]] = field(default_factory=list)
    profiles: list[tuple[Shape, str]] = field(default_factory=list)


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def measure_shape(shape: Shape, args: argparse.Namespace, report: Report) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        progress(f"{shape}: building the fleet")
        fleet = templates(shape)
        state = registry(Path(tmp), shape)
        aggregator = controller(Path(tmp), state, shape)
        state.close()
        progress(f"{shape}: handle()")
        result, seq = throughput(aggregator, fleet, shape, args.messages)
        report.throughputs.append(result)
        if shape.clusters == args.profile_clusters:
            progress(f"{shape}: stages and profile")
            entry = entry_sizes(aggregator.table, (ROOTS[1], cluster_name(1)), (ROOTS[2], cluster_name(2)))
            report.entries.append((shape, entry))
            rows, seq = stages(aggregator, fleet, shape, seq)
            report.stages.append((shape, rows))
            text, seq = profile(aggregator, fleet, shape, seq, args.top)
            report.profiles.append((shape, text))
        progress(f"{shape}: summaries")
        cost, seq = summaries(aggregator, fleet, shape, result.per_message, seq)
        report.summaries.append(cost)
        progress(f"{shape}: controller loop")
        loop, seq = controller_loop(
            aggregator,
            fleet,
            shape,
            seq=seq,
            seconds=args.loop_seconds,
            cycle=cost.publish + INTERVAL,
            rate=1 / result.per_message,
        )
        report.loops.append(loop)


def code_version() -> str:
    """The commit measured, and the tracked files changed since (the tree may be shared)."""
    git = ["git", "--no-optional-locks", "-C", str(ROOT)]  # read-only: no index refresh written
    described = command_first_line([*git, "describe", "--always", "--dirty"])
    changed = subprocess.run(
        [*git, "diff", "--name-only", "HEAD"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.split()
    return described + (f" (changed: {', '.join(changed)})" if changed else "")


def print_aggregation(report: Report, args: argparse.Namespace) -> None:
    """Sections a) and b): handle() alone, and with summaries on the same core."""
    print("a) Aggregator.handle(topic, payload), one core (steady: each message replaces the report before)")
    rows = []
    for t in report.throughputs:
        n = t.shape.clusters
        rows.append(
            [
                str(t.shape),
                f"{t.payload_bytes:,}",
                f"{t.first_cpu / n * 1e6:.1f}",
                f"{t.first_gc / t.first_cpu:.0%}",
                f"{t.messages:,}",
                f"{t.per_message * 1e6:.1f}",
                f"{t.wall / t.messages * 1e6:.1f}",
                f"{t.messages / t.cpu:,.0f}",
                f"{t.messages / t.wall:,.0f}",
                f"{t.gc_seconds / t.wall:.0%}",
                "yes" if t.messages / t.cpu >= TARGET_RATE else "NO",
            ]
        )
    headers = ["shape", "payload B", "first µs/msg", "first GC", "steady msgs", "CPU µs/msg", "wall µs/msg"]
    headers += ["msgs/s CPU", "msgs/s wall", "steady GC", "target"]
    print(table(headers, rows))
    print("first = the round in which each registered cluster reports for the first time; GC = its share")

    print(f"\nb) Summaries: one publish cycle, {INTERVAL} s apart (summaries() + JSON encoding, all new)")
    rows = [
        [
            str(s.shape),
            ms(s.summaries),
            ms(s.publish),
            ms(s.publish - s.summaries),
            f"{s.bytes / 1e6:.2f}",
            f"{s.largest / 1e6:.2f}",
            f"{s.share:.0%}",
            f"{s.rate_left:,.0f}",
            f"{s.load_at_target:.0%}",
        ]
        for s in report.summaries
    ]
    headers = ["shape", "summaries ms", "publish ms", "encode ms", "MB out", "largest MB"]
    headers += ["core share", "msgs/s left", f"load at {TARGET_RATE // 1000}k/s"]
    print(table(headers, rows))
    print(
        "core share = publish / (publish + interval) while anything changes; msgs/s left = handle()'s rate\n"
        f"on the rest of the core; load at {TARGET_RATE:,}/s = handle() CPU at that rate + core share "
        "(over 100%: falls behind)"
    )
    print(f"\n   measured: a one-thread loop like the controller's, {args.loop_seconds:g} s per shape")
    rows = []
    for loop in report.loops:
        if loop.skipped:
            rows.append([str(loop.shape), "-", "-", "-", "-", f"skipped: {loop.skipped}"])
            continue
        rows.append(
            [
                str(loop.shape),
                f"{loop.messages:,}",
                f"{loop.messages / loop.seconds:,.0f}",
                str(loop.cycles),
                f"{loop.publish_cpu / loop.cpu:.0%}",
                "yes" if loop.messages / loop.seconds >= TARGET_RATE else "NO",
            ]
        )
    print(table(["shape", "messages", "msgs/s", "publishes", "publish share", "target"], rows))


def print_report(report: Report, args: argparse.Namespace) -> None:
    print(f"Status ingest: {GROUPS} groups, every cluster Ready on every bundle; shape = clusters x bundles")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"code: {code_version()}")
    print(
        f"targets: {TARGET_RATE:,} status messages/s on one core; under {TARGET_BYTES:,} bytes per cluster\n"
    )

    if report.throughputs:
        print_aggregation(report, args)
    if report.ends:
        print("\nc) End to end: the controller (Aggregator.run) reads every status retained on Mosquitto")
        rows = []
        for e in report.ends:
            w, n = e.window, e.received
            rest = w.cpu - w.handle - w.summaries - w.registry
            rows.append(
                [
                    str(e.shape),
                    f"{e.published:.1f}",
                    f"{n:,}",
                    f"{w.wall:.2f}",
                    f"{n / w.wall:,.0f}",
                    f"{w.cpu / w.wall:.0%}",
                    f"{w.cpu / n * 1e6:.1f}",
                    f"{w.handle / n * 1e6:.1f}",
                    f"{w.summaries / n * 1e6:.1f}",
                    f"{w.registry / n * 1e6:.1f}",
                    f"{rest / n * 1e6:.1f}",
                    f"{w.broker:.2f}",
                ]
            )
        headers = ["shape", "publisher s", "received", "ingest s", "msgs/s", "ctl CPU"]
        headers += ["ctl µs/msg", "handle", "summaries", "registry", "rest", "mosquitto CPU s"]
        print(table(headers, rows))
        print(
            "received = status messages the controller got of the one per cluster retained on the broker;\n"
            "ctl µs/msg = this process's CPU per status message, first to last; parts: handle, summaries,\n"
            "registry (refresh_registry), rest (MQTT client, asyncio, encoding summaries)"
        )

    if report.memory:
        print("\nd) Memory per tracked cluster (bytes; a fresh process per shape and measure)")
        rows = []
        for m in report.memory:
            figures = {(w, stage): m.per_cluster(w, stage) for w in ("traced", "rss") for stage in STAGES}
            steady = max(f for (_, stage), f in figures.items() if f is not None and stage == "summarized")
            rows.append(
                [
                    str(m.shape),
                    *("-" if f is None else f"{f:,.0f}" for f in figures.values()),
                    f"{steady * 1e6 / 2**30:.1f}",
                    "yes" if steady < TARGET_BYTES else "NO",
                ]
            )
        headers = ["shape", *(f"traced: {s}" for s in STAGES), *(f"RSS: {s}" for s in STAGES)]
        print(table([*headers, "1M GiB", "target"], rows))
        print(
            "registered = after refresh_registry; reporting = and one status from every cluster, then\n"
            "the next refresh_registry (which records the formats agents read);\n"
            "summarized = and one summaries() (what the table keeps for it; not traced past "
            f"{TRACED_SUMMARIES_UP_TO:,} clusters);\n1M = the larger summarized figure x 1,000,000"
        )
    for shape, sizes in report.entries:
        print(f"\n   one cluster's entry at {shape} (sys.getsizeof, bytes not shared with other clusters)")
        rows = [[part, f"{size:,}"] for part, size in sorted(sizes.items(), key=lambda kv: -kv[1])]
        rows.append(["total", f"{sum(sizes.values()):,}"])
        print(table(["part", "bytes"], rows))

    for shape, stage_rows in report.stages:
        print(f"\ne) Where handle() spends its time at {shape}: each stage timed around its call (µs/msg)")
        print(table(["stage", "µs/msg"], stage_rows))
    for shape, text in report.profiles:
        print(f"\n   cProfile over one round of handle() at {shape}")
        print(text)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--clusters", type=int, action="append", help="fleet sizes (default 1000, 10000, 100000)"
    )
    parser.add_argument("--bundles", type=int, action="append", help="bundles per group (default 1 and 5)")
    parser.add_argument("--messages", type=int, default=50_000, help="steady messages per shape, at least")
    parser.add_argument(
        "--loop-seconds", type=float, default=3.0, help="window of the measured controller loop"
    )
    parser.add_argument(
        "--memory-clusters", type=int, action="append", help="fleet sizes for memory (default 10000, 100000)"
    )
    parser.add_argument(
        "--broker-clusters", type=int, action="append", help="fleet sizes end to end (default 10000, 20000)"
    )
    parser.add_argument("--no-broker", action="store_true", help="skip the end-to-end run over Mosquitto")
    parser.add_argument(
        "--end-to-end-only", action="store_true", help="only the end-to-end run over Mosquitto (c)"
    )
    parser.add_argument(
        "--profile-clusters", type=int, default=10_000, help="fleet size for stages and profile"
    )
    parser.add_argument("--top", type=int, default=12, help="functions listed per profile table")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)  # clusters bundles rss|traced
    parser.add_argument(
        "--publish-child", nargs=5, help=argparse.SUPPRESS
    )  # state_dir host port clusters bundles
    return parser.parse_args(argv)


def main() -> None:
    args = parse()
    if args.memory_child:
        clusters, bundles, measured = args.memory_child
        memory_child(Shape(int(clusters), int(bundles)), measured)
        return
    if args.publish_child:
        state_dir, host, port, clusters, bundles = args.publish_child
        publish_child(Path(state_dir), host, int(port), Shape(int(clusters), int(bundles)))
        return
    started = time.perf_counter()
    report = Report()
    bundle_counts = args.bundles or [1, 5]
    for clusters in [] if args.end_to_end_only else args.clusters or [1_000, 10_000, 100_000]:
        for bundles in bundle_counts:
            measure_shape(Shape(clusters, bundles), args, report)
    if not args.no_broker:
        with tempfile.TemporaryDirectory() as tmp:
            for clusters in args.broker_clusters or [10_000, 20_000]:
                progress(f"{Shape(clusters, 1)}: end to end over Mosquitto")
                report.ends.append(end_to_end(Path(tmp), Shape(clusters, 1)))
    if not args.end_to_end_only:
        shapes = [Shape(c, b) for c in args.memory_clusters or [10_000, 100_000] for b in bundle_counts]
        progress(f"memory: {', '.join(map(str, shapes))}")
        report.memory = memory(shapes)
    print_report(report, args)
    print(f"\n(run took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
