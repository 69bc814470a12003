"""Summary recomputation: how long the controller takes to turn its table into summaries.

Run with `PATH=.venv/bin:$PATH .venv/bin/python bench/summaries.py`. It
prints one table; docs/benchmarks.md records a run.

Why: the aggregator recomputes every summary (controller.readiness_table.summarize)
at most every `summary_interval` while anything changes, on the event loop
that also ingests status. Its cost per recompute bounds how large a fleet
one controller can keep live.

The table is built in memory, as the aggregator's would be: `--clusters` N
(default 1,000, 2,000, 10,000) spread over 10 groups, half labelled env=prod,
5 bundles held by every group with one target for all, and every cluster
reporting every bundle Ready on the desired deployment and online.
`summarize` runs `--repeat` times; the median and the fastest are printed.
Summaries are incremental: a cluster's cells and row are recomputed only
when its status, presence or labels, or the manifests, changed since the
previous call. So each size is timed three ways: every cluster changed
before each call (what a recompute from scratch costs), one in ten changed
(a busy rollout), none changed (a quiet fleet).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Python puts bench/ first on sys.path, and bench/wire.py is there: without this,
# `import wire` would import that script instead of the package.
sys.path[:] = [str(HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

from bench import reporting  # noqa: E402
from controller import readiness_table  # noqa: E402
from wire import manifests, status  # noqa: E402

GROUPS = 10
BUNDLES = 5


def table_of(clusters: int) -> tuple[readiness_table.Table, list[str]]:
    table = readiness_table.Table()
    groups = [f"edge/g{i}" for i in range(GROUPS)]
    members = [
        (groups[i % GROUPS], f"pi-{i:05d}", {"env": "prod" if i % 2 else "dev"}) for i in range(clusters)
    ]
    table.register(groups, members)
    deployments = {}
    for group in groups:
        for b in range(BUNDLES):
            objects = ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{b}"}},)
            variant = manifests.Variant("default", objects)
            target = manifests.Target(
                "all", variant.deployment_id, cluster_selector=manifests.ClusterSelector()
            )
            manifest = manifests.Manifest(
                manifests.Kind.BUNDLE, f"b{b}", group, 1, 0.0, (target,), (variant,)
            )
            table.manifest(group, manifest)
            deployments[f"b{b}"] = variant.deployment_id
    for group, name, labels in members:
        table.presence(group, name, status.Presence(online=True, since=0.0, session=1), 1.0)
        bundles = {
            bundle: {"deployment_id": deployment, "generation": 1, "state": "Ready", "message": ""}
            for bundle, deployment in deployments.items()
        }
        report = {
            "cluster": name,
            "group": group,
            "labels": labels,
            "session": 1,
            "seq": 1,
            "ts": 1.0,
            "agent_version": "bench",
            "bundles": bundles,
        }
        table.status(group, name, report, 1.0)  # type: ignore[arg-type]
    return table, groups


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--clusters", type=int, action="append", help="fleet sizes (default 1000, 2000, 10000)"
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for clusters in args.clusters or [1000, 2000, 10000]:
        table, groups = table_of(clusters)
        everyone = list(table.clusters.values())
        for what, changed in (("every cluster", everyone), ("1 in 10", everyone[::10]), ("none", [])):
            took = []
            for _ in range(args.repeat):
                for seen in changed:  # as a new status or presence would
                    seen.version += 1
                start = time.perf_counter()
                computed = readiness_table.summarize(table, groups, 2.0)
                took.append(time.perf_counter() - start)
            assert computed.fleet["ready"] == computed.fleet["desired"] == clusters * BUNDLES, computed.fleet
            rows.append(
                [
                    f"{clusters:,}",
                    f"{clusters * BUNDLES:,}",
                    what,
                    f"{statistics.median(took) * 1000:.0f}",
                    f"{min(took) * 1000:.0f}",
                    f"{statistics.median(took) / (clusters * BUNDLES) * 1e6:.1f}",
                ]
            )
    print(f"summarize(): {GROUPS} groups, {BUNDLES} bundles each, every deployment Ready; {args.repeat} runs")
    print("changed: clusters whose status or presence changed since the previous summarize()")
    headers = ["clusters", "deployments", "changed", "median ms", "fastest ms", "µs per deployment"]
    print(reporting.table(headers, rows, right={0, 1, 3, 4, 5}))
    print(f"\nmachine: {reporting.cpu_model()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
