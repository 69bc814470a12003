"""Summaries count exactly what a plain per-cell count gives, through any sequence of
changes: the table shares outcomes between clusters, counts them per distinct outcome
set, and keeps them between summaries; this recomputes every cell from scratch and
compares every count, state, message and non-ready list."""

from __future__ import annotations

import collections
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from controller import readiness_table
from wire import manifests, selectors, status, summaries

GROUPS = ("edge/a", "edge/b", "edge/c")
STATES = [s.value for s in status.State if s not in (status.State.PENDING, status.State.OUT_OF_SYNC)]


@dataclass
class Cluster:
    group: str
    name: str
    labels: dict[str, str]
    online: bool | None = None
    reported: dict[str, dict[str, Any]] | None = None
    seq: int = 0


@dataclass
class Fleet:
    """What the table was told, kept plainly."""

    rng: random.Random
    table: readiness_table.Table = field(default_factory=readiness_table.Table)
    clusters: list[Cluster] = field(default_factory=list)
    held: dict[tuple[str, str], manifests.Manifest] = field(default_factory=dict)

    def register(self) -> None:
        self.table.register(GROUPS, [(c.group, c.name, c.labels) for c in self.clusters])

    def manifest(self, group: str, bundle: str, generation: int) -> None:
        variants = tuple(
            manifests.Variant(
                "default", ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{bundle}{g}{v}"}},)
            )
            for v, g in enumerate((generation, generation))
        )
        env = self.rng.choice([None, "prod", "lab"])
        targets = (
            manifests.Target("prod", variants[0].deployment_id, cluster_selector=manifests.ClusterSelector(
                match_labels={"env": env} if env else {})),
            manifests.Target("named", variants[1].deployment_id, cluster_name=self.clusters[0].name),
            manifests.Target("rest", variants[1].deployment_id if self.rng.random() < 0.5 else None,
                             cluster_selector=manifests.ClusterSelector()),
        )  # fmt: skip
        manifest = manifests.Manifest(manifests.Kind.BUNDLE, bundle, group, generation, 0.0, targets, variants)
        assert self.table.manifest(group, manifest)
        self.held[group, bundle] = manifest

    def report(self, cluster: Cluster) -> None:
        bundles = {}
        for (group, bundle), manifest in self.held.items():
            if group == cluster.group and self.rng.random() < 0.8:
                deployment = self.rng.choice([v.deployment_id for v in manifest.variants] + ["old"])
                bundles[bundle] = {
                    "deployment_id": deployment,
                    "generation": manifest.generation,
                    "state": self.rng.choice(STATES + ["Ready"] * 4),
                    "message": self.rng.choice(["", "", "waiting", f"pod {cluster.name}-x crashed"]),
                }
        cluster.seq += 1
        document = {
            "cluster": cluster.name, "group": cluster.group, "labels": cluster.labels, "session": 1,
            "seq": cluster.seq, "ts": 1.0, "agent_version": "test", "bundles": bundles,
        }  # fmt: skip
        assert self.table.status(cluster.group, cluster.name, document, 1.0)  # type: ignore[arg-type]
        cluster.reported = bundles

    def presence(self, cluster: Cluster) -> None:
        cluster.online = self.rng.random() < 0.7
        presence = status.Presence(online=cluster.online, since=0.0, session=1)
        assert self.table.presence(cluster.group, cluster.name, presence, 1.0)


def _cells(fleet: Fleet) -> list[tuple[Cluster, str, str, str, bool]]:
    """Every (cluster, bundle, state, message, ready), by group, cluster name and bundle."""
    cells = []
    for cluster in sorted(fleet.clusters, key=lambda c: (c.group, c.name)):
        for (group, bundle), manifest in sorted(fleet.held.items()):
            if group != cluster.group:
                continue
            desired = selectors.select(manifest.targets, cluster=cluster.name, labels=cluster.labels).deployment_id
            if desired is None:
                continue
            entry = (cluster.reported or {}).get(bundle)
            if entry is None:
                state, message = "Pending", "not reported yet"
            elif entry["deployment_id"] != desired:
                state, message = "OutOfSync", f"runs generation {entry['generation']}"
            else:
                state, message = entry["state"], entry["message"]
            cells.append((cluster, bundle, state, message, state == "Ready" and cluster.online is True))
    return cells


def _expected(cells: list[tuple[Cluster, str, str, str, bool]]) -> dict[str, Any]:
    def listed(what: str, names: list[str]) -> str:
        more = ", …" if len(names) > summaries.MESSAGE_NAMES else ""
        return f"{what}: {len(names)} ({', '.join(sorted(names)[: summaries.MESSAGE_NAMES])}{more})"

    states = collections.Counter(state for _, _, state, _, _ in cells)
    known = sorted((status.State(s) for s in states), key=lambda s: s.rank, reverse=True)
    parts = [
        listed(s.value, [f"{c.group}/{c.name}" for c, _, state, _, _ in cells if state == s.value])
        for s in known
        if s is not status.State.READY
    ]
    offline = [f"{c.group}/{c.name}" for c, *_ in cells if c.online is False]
    if offline:
        parts.append(listed(readiness_table.OFFLINE, offline))
    return {
        "desired": len(cells),
        "ready": sum(1 for *_, ready in cells if ready),
        "offline": len(offline),
        "states": dict(sorted(states.items())),
        "state": status.worst(known).value,
        "message": "; ".join(parts),
    }


def _check(fleet: Fleet) -> None:
    computed = readiness_table.summarize(fleet.table, GROUPS, 2.0)
    cells = _cells(fleet)
    counted = ("desired", "ready", "offline", "states", "state", "message")
    assert {k: computed.fleet[k] for k in counted} == _expected(cells)  # type: ignore[literal-required]
    for bundle in {b for _, b in fleet.held}:
        of_bundle = [cell for cell in cells if cell[1] == bundle]
        doc = computed.bundles[bundle]
        assert {k: doc[k] for k in counted} == _expected(of_bundle)  # type: ignore[literal-required]
        assert doc["non_ready"] == [
            {"cluster": c.name, "group": c.group, "state": state, "message": message}
            for c, _, state, message, ready in of_bundle
            if not ready
        ][: summaries.MAX_NON_READY]
    for group in GROUPS:
        of_group = [cell for cell in cells if cell[0].group == group]
        doc_group = computed.groups[group]
        assert {k: doc_group[k] for k in counted} == _expected(of_group)  # type: ignore[literal-required]
        per_bundle = {}
        for bundle in sorted({b for _, b, *_ in of_group}):
            expected = _expected([cell for cell in of_group if cell[1] == bundle])
            per_bundle[bundle] = {k: expected[k] for k in ("desired", "ready", "state")}
        assert doc_group["bundles"] == per_bundle
        rows = {row["name"]: (row["desired"], row["ready"], row["state"]) for row in doc_group["cluster_rows"]}
        for cluster in (c for c in fleet.clusters if c.group == group):
            mine = [cell for cell in of_group if cell[0] is cluster]
            expected = _expected(mine)
            assert rows[cluster.name] == (expected["desired"], expected["ready"], expected["state"])


@pytest.mark.parametrize("seed", range(6))
def test_summaries_match_a_plain_count_through_random_changes(seed: int) -> None:
    rng = random.Random(seed)
    fleet = Fleet(rng)
    fleet.clusters = [
        Cluster(GROUPS[i % len(GROUPS)], f"c{i:02d}", {"env": rng.choice(["prod", "lab"])}) for i in range(40)
    ]
    fleet.register()
    for group in GROUPS:
        for bundle in ("app", "db", "web"):
            fleet.manifest(group, bundle, 1)
    _check(fleet)
    for cluster in fleet.clusters:
        fleet.presence(cluster)
        fleet.report(cluster)
    _check(fleet)
    for step in range(30):
        what = rng.random()
        if what < 0.5:
            for cluster in rng.sample(fleet.clusters, 5):
                fleet.report(cluster)
        elif what < 0.7:
            for cluster in rng.sample(fleet.clusters, 5):
                fleet.presence(cluster)
        elif what < 0.85:
            cluster = rng.choice(fleet.clusters)
            cluster.labels = {"env": rng.choice(["prod", "lab", "dev"])}
            fleet.register()
        else:
            group, bundle = rng.choice(sorted(fleet.held))
            fleet.manifest(group, bundle, fleet.held[group, bundle].generation + 1)
        if step % 3 != 1:  # sometimes two changes between summaries
            _check(fleet)
    _check(fleet)
