"""Simulated clusters: the real agent code over an in-memory cluster, many per process.

For capacity planning and demos only, and labelled as such in everything it
prints. Each simulated agent is the real `Agent`: it connects to the broker,
verifies every manifest, selects its variant by its labels, reports status
and presence exactly as a device would. Only the cluster is imitated
(`MemoryCluster`): applying stores the objects, workloads become ready
`ready_delay` seconds after they are applied, and a chosen fraction of
clusters fails every apply with a permanent error. Since that cluster never
blocks, its calls run on the event loop instead of a worker thread.

    python -m edge_agent.simulation --broker mqtt://127.0.0.1:1883 --trust key.pub.pem \\
        --clusters 20 --group edge/us-west --group edge/us-east --vary env=prod,dev

On a broker that enforces edgefleet's rights (`edgefleet server`, or Mosquitto
with dynamic security) simulated clusters join as devices do, each with the
real join protocol, from join strings (`--join`, one per group, repeatable).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import logging
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from edge_agent import errors, joining
from edge_agent.agent import Agent
from edge_agent.reporting import Observed
from edge_agent.store import ObjectRef, Store
from wire import agent_config, keys, manifests, status
from wire import errors as wire_errors

log = logging.getLogger(__name__)

BANNER = "SIMULATION"


def _ready_status(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The status a real controller writes once the workload is up (None: the kind has none)."""
    replicas = int((obj.get("spec") or {}).get("replicas", 1) or 1)
    kind = obj.get("kind")
    if kind == "Deployment":
        return {
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        }
    if kind == "StatefulSet":
        return {
            "replicas": replicas,
            "readyReplicas": replicas,
            "currentReplicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
        }
    if kind == "DaemonSet":
        return {
            "desiredNumberScheduled": 1,
            "currentNumberScheduled": 1,
            "updatedNumberScheduled": 1,
            "numberReady": 1,
            "numberAvailable": 1,
            "observedGeneration": 1,
        }
    if kind == "Job":
        return {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    if kind == "Pod":
        return {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    if kind == "PersistentVolumeClaim":
        return {"phase": "Bound"}
    if kind == "CustomResourceDefinition":
        return {"conditions": [{"type": "Established", "status": "True"}]}
    return None


def _labelled(obj: Mapping[str, Any], bundle: str) -> dict[str, Any]:
    """`obj` with the bundle label, as applying sets it. Copied only down the path that
    changes: manifests are immutable, and a deep copy per object per look made up a
    tenth of a simulator's CPU at 5,000 clusters."""
    metadata = dict(obj.get("metadata") or {})
    metadata["labels"] = {**(metadata.get("labels") or {}), "edgefleet.io/bundle": bundle}
    return {**obj, "metadata": metadata}


@dataclass
class MemoryCluster:
    """An in-memory stand-in for a Kubernetes API: an `Applier` for simulated agents."""

    name: str
    ready_delay: float = 0.0
    failing: bool = False
    version: str = "v1.31.0+simulated"
    objects: dict[ObjectRef, tuple[dict[str, Any], float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _ref(self, obj: Mapping[str, Any], variant: manifests.Variant) -> ObjectRef:
        metadata = obj["metadata"]
        namespaced = obj["kind"] not in (
            "Namespace",
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
        )
        namespace = str(
            variant.options.get("targetNamespace") or metadata.get("namespace") or variant.namespace
        )
        return ObjectRef(
            str(obj["apiVersion"]), str(obj["kind"]), namespace if namespaced else "", metadata["name"]
        )

    def refs(self, bundle: str, variant: manifests.Variant) -> tuple[ObjectRef, ...]:
        return tuple(self._ref(obj, variant) for obj in variant.objects)

    def apply(self, bundle: str, variant: manifests.Variant) -> tuple[ObjectRef, ...]:
        if self.failing:
            raise errors.PermanentApplyError(f"simulated failure: cluster {self.name} refuses every apply")
        now = time.monotonic()
        with self._lock:
            for obj in variant.objects:
                self.objects[self._ref(obj, variant)] = (_labelled(obj, bundle), now)
        return self.refs(bundle, variant)

    def remove(self, bundle: str, refs: Iterable[ObjectRef]) -> None:
        with self._lock:
            for ref in refs:
                held = self.objects.get(ref)
                if held is not None and held[0]["metadata"]["labels"].get("edgefleet.io/bundle") == bundle:
                    del self.objects[ref]

    def observe(self, bundle: str, variant: manifests.Variant) -> list[Observed]:
        found = []
        now = time.monotonic()
        with self._lock:
            for obj in variant.objects:
                ref = self._ref(obj, variant)
                held = self.objects.get(ref)
                desired = _labelled(obj, bundle)
                if held is None:
                    found.append(Observed(ref, desired, None))
                    continue
                live = dict(held[0])  # only `status` is set here, on this copy
                ready = _ready_status(live)
                if ready is not None:
                    live["status"] = ready if now - held[1] >= self.ready_delay else {}
                found.append(Observed(ref, desired, live))
        return found

    def facts(self) -> status.NodeFacts:
        return status.NodeFacts(
            kubernetes_version=self.version, platform="linux/arm64 (simulated)", ready=True
        )


_T = TypeVar("_T")
_P = ParamSpec("_P")


async def inline(func: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run `func` on the event loop. A MemoryCluster never blocks, and with thousands of
    agents in one process, a thread hop per call cost more CPU than the call itself."""
    return func(*args, **kwargs)


def _fails(name: str, fraction: float) -> bool:
    """Whether `name` is among the `fraction` of clusters that fail: stable across runs."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def _variations(vary: Sequence[str]) -> list[dict[str, str]]:
    """`env=prod,dev` `tier=a,b` -> label sets cycled over the clusters."""
    axes = []
    for item in vary:
        key, _, values = item.partition("=")
        axes.append([(key, value) for value in values.split(",") if value])
    return [dict(combo) for combo in itertools.product(*axes)] or [{}]


@dataclass(frozen=True)
class Plan:
    """Which simulated clusters to run: names, groups, labels."""

    clusters: int
    groups: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    vary: tuple[str, ...] = ()
    prefix: str = "sim"

    def members(self) -> list[tuple[str, str, dict[str, str]]]:
        variations = _variations(self.vary)
        found = []
        for index in range(self.clusters):
            group = self.groups[index % len(self.groups)]
            labels = {
                **self.labels,
                **variations[(index // len(self.groups)) % len(variations)],
                "simulated": "true",
            }
            found.append((f"{self.prefix}-{index:05d}", group, labels))
        return found


def agents(
    plan: Plan,
    *,
    broker: str,
    trusted_pem: str,
    state_root: Path,
    topic_prefix: str = "fleet",
    ready_delay: float = 0.0,
    fail_fraction: float = 0.0,
    timing: Mapping[str, float] | None = None,
) -> list[Agent]:
    """Real agents over memory clusters, one per member of `plan`."""
    built = []
    for name, group, labels in plan.members():
        config = agent_config.AgentConfig(
            cluster=name,
            group=group,
            broker=broker,
            trusted_keys=(trusted_pem,),
            labels=labels,
            topic_prefix=topic_prefix,
            **(timing or {}),  # type: ignore[arg-type]
        )
        cluster = MemoryCluster(name, ready_delay=ready_delay, failing=_fails(name, fail_fraction))
        built.append(Agent(config, Store(state_root / name), cluster, offload=inline))
    return built


# Joins under way at once: enough to load the controller, not to exhaust file descriptors.
JOIN_CONCURRENCY = 64


async def joined_agents(
    plan: Plan,
    joins: Sequence[str],
    *,
    state_root: Path,
    ready_delay: float = 0.0,
    fail_fraction: float = 0.0,
    timing: Mapping[str, float] | None = None,
    concurrency: int = JOIN_CONCURRENCY,
) -> list[Agent]:
    """Real agents over memory clusters, each registered with the join protocol first.

    Member i joins with `joins[i % len(joins)]`; its group is whatever that
    join string's token grants (`plan.groups` only names the spread)."""
    slots = asyncio.Semaphore(concurrency)

    async def one(index: int, name: str, labels: dict[str, str]) -> Agent:
        async with slots:
            joined = await joining.join(
                joins[index % len(joins)], name=name, state_dir=state_root / name, labels=labels
            )
        config = dataclasses.replace(joined.config, **(timing or {}))  # type: ignore[arg-type]
        cluster = MemoryCluster(name, ready_delay=ready_delay, failing=_fails(name, fail_fraction))
        return Agent(config, Store(state_root / name), cluster, offload=inline)

    members = plan.members()
    return list(await asyncio.gather(*(one(i, name, labels) for i, (name, _, labels) in enumerate(members))))


async def run(simulated: list[Agent]) -> None:
    tasks = [asyncio.ensure_future(agent.run()) for agent in simulated]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="edgefleet simulate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--broker", required=True)
    parser.add_argument("--trust", type=Path, help="controller public key (PEM), without --join")
    parser.add_argument("--clusters", type=int, required=True)
    parser.add_argument("--group", action="append", default=[], help="topic root; repeat to spread clusters")
    parser.add_argument(
        "--join", action="append", default=[], help="join string (one per group): clusters register first"
    )
    parser.add_argument("--labels", default="", help="labels every cluster has, k=v,...")
    parser.add_argument(
        "--vary", action="append", default=[], help="k=v1,v2: label values cycled over clusters"
    )
    parser.add_argument("--prefix", default="sim", help="cluster name prefix")
    parser.add_argument("--topic-prefix", default="fleet")
    parser.add_argument("--ready-delay", type=float, default=0.5, help="seconds until workloads are ready")
    parser.add_argument(
        "--fail-fraction", type=float, default=0.0, help="fraction of clusters whose applies fail"
    )
    parser.add_argument(
        "--state-dir", type=Path, help="where simulated agents keep state (default: temporary)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.join and (args.trust is None or not args.group):
        print("edgefleet simulate: error: give --join, or --trust and --group", file=sys.stderr)
        return 2
    try:
        pem = args.trust.read_text() if args.trust else ""
        if pem:
            keys.VerifyKey.from_pem(pem.encode())
        labels = dict(item.split("=", 1) for item in args.labels.split(",") if item)
    except (OSError, ValueError, wire_errors.WireError) as exc:
        print(f"edgefleet simulate: error: {exc}", file=sys.stderr)
        return 1
    spread = tuple(args.group) or tuple(f"join-{i}" for i in range(len(args.join)))
    plan = Plan(args.clusters, spread, labels, tuple(args.vary), args.prefix)
    where = f"{len(args.join)} join string(s)" if args.join else f"groups {', '.join(args.group)}"
    print(
        f"{BANNER}: {args.clusters} simulated agents (real agent code, in-memory clusters) on {args.broker}; "
        f"{where}",
        flush=True,
    )
    with contextlib.ExitStack() as stack:
        root = args.state_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="edgefleet-sim-"))
        )
        try:
            return asyncio.run(_simulate(args, plan, pem, root))
        except KeyboardInterrupt:
            return 0


async def _simulate(args: argparse.Namespace, plan: Plan, pem: str, root: Path) -> int:
    if args.join:
        try:
            simulated = await joined_agents(
                plan,
                args.join,
                state_root=root,
                ready_delay=args.ready_delay,
                fail_fraction=args.fail_fraction,
            )
        except errors.AgentError as exc:
            print(f"edgefleet simulate: error: {exc}", file=sys.stderr)
            return 1
        print(f"{BANNER}: {len(simulated)} simulated clusters joined", flush=True)
    else:
        simulated = agents(
            plan,
            broker=args.broker,
            trusted_pem=pem,
            state_root=root,
            topic_prefix=args.topic_prefix,
            ready_delay=args.ready_delay,
            fail_fraction=args.fail_fraction,
        )
    await run(simulated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
