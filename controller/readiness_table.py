"""The fleet table: what every cluster last said, and the readiness it adds up to (pure).

Inputs are the registry (groups and clusters with labels), the manifests each
group holds (the controller reads its own retained, signed messages back, so
it counts against exactly what agents see), and the status and presence
documents clusters publish. Sessions order a cluster's documents: anything
from an older session than the newest seen is ignored, so a late will from
a dead connection never marks a reconnected cluster offline.

Per bundle and cluster, the controller's view of the state is:
- Pending: the cluster never reported the bundle;
- OutOfSync: it reports another deployment than the one it should run;
- otherwise what the cluster reports (WaitApplied, ErrApplied, NotReady,
  Modified, Ready).
`ready` counts clusters that are online and Ready on the desired deployment;
offline clusters are counted apart, never as ready. A revoked cluster counts
nowhere: nothing it said is kept, and summaries only list it as revoked.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from wire import manifests, selectors, status, summaries

OFFLINE = "Offline"
_READY = status.State.READY.value  # read per cell: an enum attribute lookup costs more than the compare


@dataclass(frozen=True, slots=True)
class Reported:
    """What the controller keeps of one bundle's status: only what summaries show. The
    whole decoded document took about 3 KB per cluster, most of it key strings."""

    deployment_id: str | None
    generation: object
    state: str
    message: str


_LABEL_SETS: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}


def _shared_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """One dict per distinct label set, shared by every cluster that has it (read-only):
    fleets have many clusters and few label sets."""
    key = tuple(sorted(labels.items()))
    shared = _LABEL_SETS.get(key)
    if shared is None:
        if len(_LABEL_SETS) > MAX_SHARED_LABEL_SETS:
            _LABEL_SETS.clear()  # unbounded variety (a label per cluster): stop sharing old sets
        shared = _LABEL_SETS[key] = {_shared(k): _shared(v) for k, v in key}
    return shared


MAX_SHARED_LABEL_SETS = 10_000
MAX_SHARED = 100_000


_SHARED_TEXT: dict[str, str] = {}


def _shared(text: object) -> str:
    """One copy of each short text clusters repeat (bundle names, deployment ids, states,
    versions, labels). Not sys.intern: these come from clients, and interned strings
    may live forever; this pool is dropped whenever it outgrows MAX_SHARED."""
    value = text if isinstance(text, str) else str(text)
    shared = _SHARED_TEXT.get(value)
    if shared is None:
        if len(_SHARED_TEXT) >= MAX_SHARED:
            _SHARED_TEXT.clear()
        shared = _SHARED_TEXT[value] = value
    return shared


def _reported(report: status.StatusDocument) -> dict[str, Reported]:
    return {
        _shared(bundle): Reported(
            None if entry.get("deployment_id") is None else _shared(entry.get("deployment_id")),
            entry.get("generation"),
            _shared(entry.get("state")),
            str(entry.get("message", "")),
        )
        for bundle, entry in report["bundles"].items()
    }


@dataclass
class Seen:
    """One cluster as the controller knows it."""

    name: str
    group: str  # topic root
    labels: dict[str, str] = field(default_factory=dict)
    registered: bool = False
    session: int = 0
    online: bool | None = None
    last_seen: float | None = None
    seq: int = 0  # of the report kept; reset when presence starts a newer session
    agent_version: str | None = None
    reported: dict[str, Reported] | None = None  # bundle -> what it said; None: never reported
    # bundle -> (manifest, the deployment it selects here): selection is the costliest
    # step of a summary, and a cluster's answer only changes with the manifest or labels.
    selected: dict[str, tuple[manifests.Manifest, str | None]] = field(default_factory=dict)
    # Bumped whenever anything a summary shows of this cluster changes; with the table's
    # epoch it keys `derived`: this cluster's cells and its row's counts as last computed
    # (the row itself is rebuilt per summary: keeping it cost about 400 bytes a cluster).
    version: int = 0
    derived: tuple[tuple[int, int], tuple[Cell, ...], tuple[int, int, str]] | None = None

    def relabel(self, labels: Mapping[str, str]) -> None:
        if labels != self.labels:
            self.labels = _shared_labels(labels)
            self.selected.clear()
            self.version += 1

    def desired(self, bundle: str, manifest: manifests.Manifest) -> str | None:
        """The deployment id `manifest` selects for this cluster (None: nothing)."""
        known = self.selected.get(bundle)
        if known is not None and known[0] is manifest:
            return known[1]
        deployment = selectors.select(manifest.targets, cluster=self.name, labels=self.labels).deployment_id
        self.selected[bundle] = (manifest, deployment)
        return deployment


@dataclass
class Table:
    clusters: dict[tuple[str, str], Seen] = field(default_factory=dict)
    held: dict[tuple[str, str], manifests.Manifest] = field(default_factory=dict)  # (group, bundle)
    revoked: set[tuple[str, str]] = field(default_factory=set)  # (group, name)
    ignored: int = 0
    epoch: int = 0  # bumped whenever `held` changes: every cluster's cells may change with it

    def _cluster(self, group: str, name: str) -> Seen:
        seen = self.clusters.get((group, name))
        if seen is None:  # not setdefault: that builds a Seen for every message
            seen = self.clusters[(group, name)] = Seen(name, group)
        return seen

    def register(
        self,
        groups: Iterable[str],
        clusters: Iterable[tuple[str, str, Mapping[str, str]]],
        revoked: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Replace the registry part: (topic root, name, labels) of every registered
        cluster, and (topic root, name) of every revoked one."""
        known = set(groups)
        self.revoked = {key for key in revoked if key[0] in known}
        registered = {(root, name) for root, name, _ in clusters}
        for key, seen in list(self.clusters.items()):
            if (seen.registered and key not in registered) or key[0] not in known or key in self.revoked:
                del self.clusters[key]
        for root, name, labels in clusters:
            seen = self._cluster(root, name)
            seen.registered = True
            seen.relabel(labels)
        for key in [k for k in self.held if k[0] not in known]:
            del self.held[key]
            self.epoch += 1

    def presence(self, group: str, name: str, presence: status.Presence, now: float) -> bool:
        if (group, name) in self.revoked:
            return False
        seen = self._cluster(group, name)
        if presence["session"] < seen.session:
            return False
        if presence["session"] > seen.session:
            seen.seq = 0  # a new connection numbers its reports from 1 again
        seen.session, seen.online, seen.last_seen = presence["session"], presence["online"], now
        seen.version += 1
        return True

    def status(self, group: str, name: str, report: status.StatusDocument, now: float) -> bool:
        if report["cluster"] != name or report["group"] != group:
            self.ignored += 1
            return False
        if (group, name) in self.revoked:
            return False
        seen = self._cluster(group, name)
        if report["session"] < seen.session:
            return False
        if seen.reported is not None and report["session"] == seen.session and report["seq"] < seen.seq:
            return False
        seen.session, seen.seq, seen.reported = report["session"], report["seq"], _reported(report)
        seen.agent_version = _shared(report["agent_version"])
        # The device's own time of the report: after a controller restart, "last seen"
        # still says when the device last spoke, not when the retained copy was read.
        seen.last_seen = min(float(report["ts"]), now)
        seen.version += 1
        if not seen.registered:
            seen.relabel(report["labels"])
        return True

    def manifest(self, group: str, manifest: manifests.Manifest) -> bool:
        key = (group, manifest.bundle)
        current = self.held.get(key)
        if current is not None and current.generation > manifest.generation:
            return False  # a replay of something older
        if manifest.kind is manifests.Kind.TOMBSTONE:
            if self.held.pop(key, None) is None:
                return False
        else:
            self.held[key] = manifest
        self.epoch += 1
        return True


@dataclass(frozen=True, slots=True)
class Cell:
    """One cluster's share of one bundle."""

    bundle: str
    cluster: Seen
    state: str
    message: str
    ready: bool  # online and Ready on the desired deployment


def members(table: Table) -> dict[str, list[Seen]]:
    """topic root -> its clusters, by name."""
    found: dict[str, list[Seen]] = collections.defaultdict(list)
    for seen in table.clusters.values():
        found[seen.group].append(seen)
    for group_members in found.values():
        group_members.sort(key=lambda s: s.name)
    return found


def _held_by_group(table: Table) -> dict[str, list[tuple[str, manifests.Manifest]]]:
    """topic root -> (bundle, manifest) it holds, by bundle name."""
    found: dict[str, list[tuple[str, manifests.Manifest]]] = collections.defaultdict(list)
    for (group, bundle), manifest in sorted(table.held.items()):
        found[group].append((bundle, manifest))
    return found


def derive(
    table: Table, seen: Seen, held: list[tuple[str, manifests.Manifest]]
) -> tuple[tuple[Cell, ...], summaries.ClusterRow]:
    """`seen`'s cell per bundle it should run, and its row; recomputed only when the
    cluster or the held manifests changed since the last call (incremental summaries)."""
    key = (seen.version, table.epoch)
    if seen.derived is not None and seen.derived[0] == key:
        return seen.derived[1], _row(seen, seen.derived[2])
    found: list[Cell] = []  # a tuple when kept: it takes a third of a dict's memory
    for bundle, manifest in held:
        desired = seen.desired(bundle, manifest)
        if desired is None:
            continue
        entry = seen.reported.get(bundle) if seen.reported is not None else None
        if entry is None:
            state, message = status.State.PENDING.value, "not reported yet"
        elif entry.deployment_id != desired:
            state, message = status.State.OUT_OF_SYNC.value, f"runs generation {entry.generation}"
        else:
            state, message = entry.state, entry.message
        found.append(Cell(bundle, seen, state, message, state == _READY and seen.online is True))
    if len(seen.selected) > len(held):  # forget manifests of bundles no longer held
        kept = {bundle for bundle, _ in held}
        seen.selected = {b: known for b, known in seen.selected.items() if b in kept}
    counts = (len(found), sum(1 for c in found if c.ready), _worst(found))
    kept_cells = tuple(found)
    seen.derived = (key, kept_cells, counts)
    return kept_cells, _row(seen, counts)


def _row(seen: Seen, counts: tuple[int, int, str]) -> summaries.ClusterRow:
    desired, ready, state = counts
    return summaries.ClusterRow(
        name=seen.name,
        group=seen.group,
        labels=seen.labels,  # shared, read-only
        online=seen.online,
        last_seen=seen.last_seen,
        agent_version=seen.agent_version,
        desired=desired,
        ready=ready,
        state=state,
    )


_STATES = {state.value: state for state in status.State}


def _worst(cells: Iterable[Cell]) -> str:
    """The state that stands for `cells` (a cluster row's), without building a message."""
    return status.worst([_STATES[c.state] for c in cells if c.state in _STATES]).value


def _counts(group_cells: list[Cell]) -> summaries.Counts:
    states = collections.Counter(cell.state for cell in group_cells)
    offline = [cell for cell in group_cells if cell.cluster.online is False]
    known = [_STATES[s] for s in states if s in _STATES]
    worst = status.worst(known)
    parts = []
    for state in sorted(known, key=lambda s: s.rank, reverse=True):
        if state is status.State.READY:
            continue
        names = [f"{c.cluster.group}/{c.cluster.name}" for c in group_cells if c.state == state.value]
        parts.append(_listed(state.value, names))
    if offline:
        parts.append(_listed(OFFLINE, [f"{c.cluster.group}/{c.cluster.name}" for c in offline]))
    return summaries.Counts(
        desired=len(group_cells),
        ready=sum(1 for cell in group_cells if cell.ready),
        offline=len(offline),
        states=dict(sorted(states.items())),
        state=worst.value,
        message="; ".join(parts),
    )


def _listed(what: str, names: list[str]) -> str:
    shown = ", ".join(sorted(names)[: summaries.MESSAGE_NAMES])
    more = ", …" if len(names) > summaries.MESSAGE_NAMES else ""
    return f"{what}: {len(names)} ({shown}{more})"


@dataclass(frozen=True)
class Summaries:
    fleet: summaries.FleetSummary
    bundles: dict[str, summaries.BundleSummary]
    groups: dict[str, summaries.GroupSummary]


def summarize(table: Table, groups: Iterable[str], now: float) -> Summaries:
    """Every summary document. Linear in the fleet's cells; a cluster's cells and row are
    only recomputed when it, or a manifest, changed since the last call (`derive`)."""
    by_group = members(table)
    held = _held_by_group(table)
    # One pass over the clusters, by group and name, sorts their cells by bundle, by group,
    # and by group and bundle, and collects each group's rows.
    by_bundle: dict[str, list[Cell]] = collections.defaultdict(list)
    group_cells_of: dict[str, list[Cell]] = collections.defaultdict(list)
    bundle_cells_of: dict[str, dict[str, list[Cell]]] = collections.defaultdict(dict)
    rows_of: dict[str, list[summaries.ClusterRow]] = collections.defaultdict(list)
    for group, group_members in sorted(by_group.items()):
        group_held = held.get(group, [])
        group_cells, group_bundles, rows = group_cells_of[group], bundle_cells_of[group], rows_of[group]
        for seen in group_members:
            found, row = derive(table, seen, group_held)
            rows.append(row)
            for cell in found:
                bundle = cell.bundle
                by_bundle[bundle].append(cell)
                group_cells.append(cell)
                group_bundles.setdefault(bundle, []).append(cell)
    bundle_docs: dict[str, summaries.BundleSummary] = {}
    for bundle, bundle_cells in sorted(by_bundle.items()):
        generation = max(m.generation for (g, b), m in table.held.items() if b == bundle)
        non_ready = [
            summaries.NonReady(
                cluster=c.cluster.name, group=c.cluster.group, state=c.state, message=c.message
            )
            for c in bundle_cells
            if not c.ready
        ][: summaries.MAX_NON_READY]
        bundle_docs[bundle] = summaries.BundleSummary(
            **_counts(bundle_cells), bundle=bundle, generation=generation, non_ready=non_ready, ts=now
        )
    for (_, bundle), manifest in table.held.items():  # a bundle no cluster should run
        if bundle not in bundle_docs:
            bundle_docs[bundle] = summaries.BundleSummary(
                **_counts([]), bundle=bundle, generation=manifest.generation, non_ready=[], ts=now
            )
    group_docs: dict[str, summaries.GroupSummary] = {}
    all_cells = [cell for bundle_cells in by_bundle.values() for cell in bundle_cells]
    for group in sorted(groups):
        group_members = by_group.get(group, [])
        group_cells = group_cells_of.get(group, [])
        cells_by_bundle = bundle_cells_of.get(group, {})
        rows = rows_of.get(group, [])
        group_docs[group] = summaries.GroupSummary(
            **_counts(group_cells),
            group=group,
            clusters=len(group_members),
            online=sum(1 for s in group_members if s.online),
            bundles={
                b: summaries.BundleCell(
                    desired=len(cs), ready=sum(1 for c in cs if c.ready), state=_counts(cs)["state"]
                )
                for b, cs in sorted(cells_by_bundle.items())
            },
            cluster_rows=rows,
            revoked=sorted(name for root, name in table.revoked if root == group)[: summaries.MAX_NON_READY],
            ts=now,
        )
    fleet = summaries.FleetSummary(
        **_counts(all_cells),
        clusters=len(table.clusters),
        online=sum(1 for s in table.clusters.values() if s.online),
        bundles=len(bundle_docs),
        bundles_ready=sum(1 for d in bundle_docs.values() if d["ready"] == d["desired"]),
        groups=len(group_docs),
        revoked=len(table.revoked),
        ts=now,
    )
    return Summaries(fleet, bundle_docs, group_docs)
