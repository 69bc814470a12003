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
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from wire import manifests, selectors, status, summaries

OFFLINE = "Offline"

# Clusters the table keeps that the registry does not list. On a broker that enforces
# rights only clusters that joined since the last registry refresh report so; with
# `--security none`, a simulated fleet (bench/convergence.py runs up to 15,000). Past it,
# statuses and presence under new names are counted in `ignored`, not kept: a flood of
# made-up names does not grow the controller without bound.
MAX_UNREGISTERED = 20_000

# Sessions and sequence numbers past this are refused: agents' sessions are milliseconds
# since 1970 (about 2**41) and sequence numbers count reports, and one larger would outrank
# every later report of the real agent for good. 2**53: exact in every JSON reader.
MAX_COUNTER = 2**53

_READY = status.State.READY.value  # read per cell: an enum attribute lookup costs more than the compare


class Reported(NamedTuple):
    """What the controller keeps of one bundle's status: only what summaries show. The
    whole decoded document took about 3 KB per cluster, most of it key strings. One copy
    per distinct record, shared by the clusters that report it (`_record`): a tuple, so
    the pool that shares it needs no key of its own."""

    deployment_id: str | None
    generation: object
    state: str
    message: str


_LABEL_SETS: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}


def _shared_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """One dict per distinct label set, shared by every cluster that has it (read-only):
    fleets have many clusters and few label sets."""
    key = tuple(sorted(labels.items()))
    if not _poolable(itertools.chain.from_iterable(key), len(key)):
        return {_shared(k): _shared(v) for k, v in key}
    shared = _LABEL_SETS.get(key)
    if shared is None:
        if len(_LABEL_SETS) > MAX_SHARED_LABEL_SETS:
            _LABEL_SETS.clear()  # unbounded variety (a label per cluster): stop sharing old sets
        shared = _LABEL_SETS[key] = {_shared(k): _shared(v) for k, v in key}
    return shared


MAX_SHARED_LABEL_SETS = 10_000
MAX_SHARED = 100_000
# Distinct records, reports, outcomes and row counts pooled for sharing (each pool below
# starts afresh past it): a healthy fleet has a handful; thousands mean a message per
# cluster, which nothing shares, and a pool entry per cluster would cost about 250 bytes.
MAX_POOLED = 10_000
# What a pool entry may hold: names, deployment ids, states and versions are far shorter
# than MAX_POOLED_TEXT, agents cut messages at 500 characters (edge_agent.reporting), and
# clusters that share a report or a label set have a handful of bundles or labels. Anything
# bigger is kept by its cluster alone: pooled, a flood of documents near the status size
# cap would pin MAX_POOLED of them (2 GB for messages of 200 KB) after their clusters let go.
MAX_POOLED_TEXT = 512
MAX_POOLED_ITEMS = 64


def _poolable(texts: Iterable[str], items: int) -> bool:
    """Whether a label set or a report (`items` labels or bundles, with these texts) may be pooled."""
    return items <= MAX_POOLED_ITEMS and all(len(text) <= MAX_POOLED_TEXT for text in texts)


_SHARED_TEXT: dict[str, str] = {}


def _shared(text: object) -> str:
    """One copy of each short text clusters repeat (bundle names, deployment ids, states,
    versions, labels). Not sys.intern: these come from clients, and interned strings
    may live forever; this pool is dropped whenever it outgrows MAX_SHARED."""
    value = text if isinstance(text, str) else str(text)
    if len(value) > MAX_POOLED_TEXT:
        return value
    shared = _SHARED_TEXT.get(value)
    if shared is None:
        if len(_SHARED_TEXT) >= MAX_SHARED:
            _SHARED_TEXT.clear()
        shared = _SHARED_TEXT[value] = value
    return shared


# Clusters that run the same deployments report the same records, and mostly the same
# whole report: one copy of each, shared read-only (about 700 bytes a cluster with five
# bundles). A record is its own key (a tuple equals the tuple it was made from), so a
# distinct one costs only its pool entry; a distinct report, its flat key tuple too.
_RECORDS: dict[tuple[str | None, object, str, str], Reported] = {}
_REPORTS: dict[tuple[str | Reported, ...], dict[str, Reported]] = {}


def _record(key: tuple[str | None, object, str, str]) -> Reported:
    """The pooled record equal to `key` (a small one: `_small`)."""
    record = _RECORDS.get(key)
    if record is None:
        if len(_RECORDS) >= MAX_POOLED:
            _RECORDS.clear()  # a message per cluster (errors): stop sharing old records
        record = Reported(*key)
        _RECORDS[record] = record
    return record


def _small(record: tuple[str | None, object, str, str]) -> bool:
    """Whether a record's key is small enough to pool (MAX_POOLED_TEXT)."""
    deployment_id, _, _, message = record  # the state is one of a few names (decode_status)
    return len(message) <= MAX_POOLED_TEXT and (
        deployment_id is None or len(deployment_id) <= MAX_POOLED_TEXT
    )


def _reported(report: status.StatusDocument) -> dict[str, Reported]:
    """bundle -> its record; the same dict for every cluster that reports the same."""
    entries = report["bundles"]
    bundles = [_shared(bundle) for bundle in entries]
    keys = [
        (
            None if (deployment := e.get("deployment_id")) is None else _shared(deployment),
            e.get("generation"),
            _shared(e.get("state")),
            str(e.get("message", "")),
        )
        for e in entries.values()
    ]
    if not (_poolable(bundles, len(bundles)) and all(map(_small, keys))):
        # Too big to share: this cluster's own records, and nothing of it pooled.
        return {bundle: Reported(*k) for bundle, k in zip(bundles, keys, strict=True)}
    records = [_record(k) for k in keys]
    key: tuple[str | Reported, ...] = (*bundles, *records)  # names, then records: never equal
    shared = _REPORTS.get(key)
    if shared is None:
        if len(_REPORTS) >= MAX_POOLED:
            _REPORTS.clear()
        shared = _REPORTS[key] = dict(zip(bundles, records, strict=True))
    return shared


@dataclass(frozen=True, slots=True, eq=False)
class Selected:
    """The deployment each of a group's held manifests selects for a cluster (None:
    nothing), in the group's order of bundles. Selection is the costliest step of a
    summary, and a cluster's answer only changes with the manifests or its labels;
    clusters with the same answers share one (`Table.selections`)."""

    held: tuple[manifests.Manifest, ...]
    deployments: tuple[str | None, ...]


NOTHING_SELECTED = Selected((), ())


class Outcome(NamedTuple):
    """What a cluster's report means for one bundle it should run. One copy per distinct
    outcome (in a Ready fleet, one per bundle), shared by the clusters that have it; a
    tuple, so its pool needs no key of its own. A summary's cells pair it with its cluster."""

    bundle: str
    state: str
    message: str
    ready: bool  # online and Ready on the desired deployment


@dataclass(frozen=True, slots=True, eq=False)
class Derived:
    """A cluster's outcomes and its row's counts; shared like the outcomes."""

    outcomes: tuple[Outcome, ...]
    desired: int
    ready: int
    state: str  # the worst of the outcomes'


_OUTCOMES: dict[Outcome, Outcome] = {}
_DERIVED: dict[tuple[Outcome, ...], Derived] = {}


def _outcome(bundle: str, state: str, message: str, ready: bool) -> Outcome:
    made = Outcome(bundle, state, message, ready)
    if len(message) > MAX_POOLED_TEXT:
        return made
    outcome = _OUTCOMES.get(made)
    if outcome is None:
        if len(_OUTCOMES) >= MAX_POOLED:
            _OUTCOMES.clear()  # a message per cluster (errors): stop sharing old outcomes
        outcome = _OUTCOMES[made] = made
    return outcome


def _derived(outcomes: tuple[Outcome, ...]) -> Derived:
    derived = _DERIVED.get(outcomes)
    if derived is None:
        ready = sum(1 for o in outcomes if o.ready)
        derived = Derived(outcomes, len(outcomes), ready, _worst(outcomes))
        if len(outcomes) <= MAX_POOLED_ITEMS and all(len(o.message) <= MAX_POOLED_TEXT for o in outcomes):
            if len(_DERIVED) >= MAX_POOLED:
                _DERIVED.clear()
            _DERIVED[outcomes] = derived
    return derived


NOTHING_DERIVED = Derived((), 0, 0, status.worst([]).value)


@dataclass(slots=True)
class Seen:
    """One cluster as the controller knows it. Slotted: a `__dict__` cost about 100 bytes
    a cluster. What it refers to is shared between clusters wherever their values are
    equal (labels, report, selection, outcomes), and read-only."""

    name: str
    group: str  # topic root
    labels: dict[str, str] = field(default_factory=lambda: _shared_labels({}))  # none yet, shared
    registered: bool = False
    session: int = 0
    online: bool | None = None
    last_seen: float | None = None
    seq: int = 0  # of the report kept; reset when presence starts a newer session
    agent_version: str | None = None
    reported: dict[str, Reported] | None = None  # bundle -> what it said; None: never reported
    trouble: tuple[int, str] | None = None  # agent_errors of its last status: how many, the first
    selected: Selected = NOTHING_SELECTED  # cache: the deployments the held manifests select here
    # Bumped whenever anything a summary shows of this cluster changes; `derived` is what
    # a summary computed of this cluster at (`derived_version`, `derived_epoch`), the
    # table's epoch counting manifest changes (the row itself is rebuilt per summary:
    # keeping it cost about 400 bytes a cluster).
    version: int = 0
    derived: Derived = NOTHING_DERIVED
    derived_version: int = -1
    derived_epoch: int = -1

    def relabel(self, labels: Mapping[str, str]) -> None:
        if labels != self.labels:
            self.labels = _shared_labels(labels)
            self.selected = NOTHING_SELECTED
            self.version += 1


@dataclass
class Table:
    clusters: dict[tuple[str, str], Seen] = field(default_factory=dict)
    held: dict[tuple[str, str], manifests.Manifest] = field(default_factory=dict)  # (group, bundle)
    revoked: set[tuple[str, str]] = field(default_factory=set)  # (group, name)
    ignored: int = 0
    max_unregistered: int = MAX_UNREGISTERED
    unregistered: int = 0  # clusters kept that the registry does not list
    epoch: int = 0  # bumped whenever `held` changes: every cluster's cells may change with it
    # One `Selected` per distinct answer, among clusters' answers for the held manifests;
    # emptied with every change of `held`, so it never keeps a replaced manifest alive.
    selections: dict[tuple[tuple[int, ...], tuple[str | None, ...]], Selected] = field(default_factory=dict)

    def _held_changed(self) -> None:
        self.epoch += 1
        self.selections.clear()

    def _cluster(self, group: str, name: str) -> Seen:
        seen = self.clusters.get((group, name))
        if seen is None:  # not setdefault: that builds a Seen for every message
            seen = self.clusters[(group, name)] = Seen(name, group)
        return seen

    def _admitted(self, group: str, name: str) -> Seen | None:
        """The cluster a message is about; a new unregistered one only below the cap
        (None: over it, and counted in `ignored`)."""
        seen = self.clusters.get((group, name))
        if seen is None:
            if self.unregistered >= self.max_unregistered:
                self.ignored += 1
                return None
            seen = self.clusters[(group, name)] = Seen(name, group)
            self.unregistered += 1
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
        self.unregistered = sum(1 for seen in self.clusters.values() if not seen.registered)
        for key in [k for k in self.held if k[0] not in known]:
            del self.held[key]
            self._held_changed()

    def presence(self, group: str, name: str, presence: status.Presence, now: float) -> bool:
        if not 0 <= presence["session"] <= MAX_COUNTER:
            self.ignored += 1
            return False
        if (group, name) in self.revoked:
            return False
        seen = self._admitted(group, name)
        if seen is None or presence["session"] < seen.session:
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
        ts = _time(report["ts"])
        if ts is None or not (0 <= report["session"] <= MAX_COUNTER and 0 <= report["seq"] <= MAX_COUNTER):
            self.ignored += 1
            return False
        if (group, name) in self.revoked:
            return False
        seen = self._admitted(group, name)
        if seen is None or report["session"] < seen.session:
            return False
        if seen.reported is not None and report["session"] == seen.session and report["seq"] < seen.seq:
            return False
        seen.session, seen.seq, seen.reported = report["session"], report["seq"], _reported(report)
        seen.agent_version = _shared(report["agent_version"])
        problems = report.get("agent_errors")
        seen.trouble = None
        if problems:
            seen.trouble = (len(problems), _shared(problems[0][: summaries.ROW_ERROR_CHARS]))
        # The device's own time of the report: after a controller restart, "last seen"
        # still says when the device last spoke, not when the retained copy was read.
        seen.last_seen = min(ts, now)
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
        self._held_changed()
        return True


def _time(value: float) -> float | None:
    """A document's time as a float; None for what is not one: NaN and Infinity, which
    JSON parsers read but summaries could not carry as JSON, and integers past a float."""
    try:
        ts = float(value)
    except OverflowError:
        return None
    return ts if math.isfinite(ts) else None


Cell = tuple[Seen, Outcome]  # one cluster's share of one bundle, as a summary counts it


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


def derive(table: Table, seen: Seen, held: list[tuple[str, manifests.Manifest]]) -> Derived:
    """`seen`'s outcome per bundle it should run, and its row's counts; recomputed only
    when the cluster or the held manifests changed since the last call (incremental
    summaries)."""
    if seen.derived_version == seen.version and seen.derived_epoch == table.epoch:
        return seen.derived
    selected = _selected(table, seen, held)
    reported = seen.reported
    online = seen.online is True
    found: list[Outcome] = []
    for (bundle, _), desired in zip(held, selected.deployments, strict=True):
        if desired is None:
            continue
        entry = reported.get(bundle) if reported is not None else None
        if entry is None:
            state, message = status.State.PENDING.value, "not reported yet"
        elif entry.deployment_id != desired:
            state, message = status.State.OUT_OF_SYNC.value, f"runs generation {entry.generation}"
        else:
            state, message = entry.state, entry.message
        found.append(_outcome(bundle, state, message, online and state == _READY))
    seen.derived = _derived(tuple(found))
    seen.derived_version, seen.derived_epoch = seen.version, table.epoch
    return seen.derived


def _selected(table: Table, seen: Seen, held: list[tuple[str, manifests.Manifest]]) -> Selected:
    """The deployment each manifest in `held` selects for `seen`: its cached answer while
    the manifests are the same objects, else worked out again (targets only for the
    manifests that changed) and shared through `table.selections`."""
    known = seen.selected
    if len(known.held) == len(held):
        for (_, manifest), before in zip(held, known.held, strict=True):
            if manifest is not before:
                break
        else:
            return known
    before_of = {id(m): d for m, d in zip(known.held, known.deployments, strict=True)}  # alive in `known`
    ordered = tuple(manifest for _, manifest in held)
    deployments = tuple(
        before_of[id(m)]
        if id(m) in before_of
        else selectors.select(m.targets, cluster=seen.name, labels=seen.labels).deployment_id
        for m in ordered
    )
    # Ids stand for the manifests: every Selected in the pool keeps its manifests alive.
    key = (tuple(map(id, ordered)), deployments)
    shared = table.selections.get(key)
    if shared is None:
        if len(table.selections) >= MAX_POOLED:
            table.selections.clear()
        shared = table.selections[key] = Selected(ordered, deployments)
    seen.selected = shared
    return shared


def _row(seen: Seen, derived: Derived) -> summaries.ClusterRow:
    row = summaries.ClusterRow(
        name=seen.name,
        group=seen.group,
        labels=seen.labels,  # shared, read-only
        online=seen.online,
        last_seen=seen.last_seen,
        agent_version=seen.agent_version,
        desired=derived.desired,
        ready=derived.ready,
        state=derived.state,
    )
    if seen.trouble is not None:
        row["agent_errors"], row["agent_error"] = seen.trouble
    return row


_STATES = {state.value: state for state in status.State}


def _worst(outcomes: Iterable[Outcome]) -> str:
    """The state that stands for `outcomes` (a cluster row's), without building a message."""
    return status.worst([_STATES[o.state] for o in outcomes if o.state in _STATES]).value


@dataclass
class _Tally:
    """The cells of one scope of a summary (the fleet, a group, a bundle, a group's
    bundle), counted by outcome. The cells not ready are listed through their clusters
    (for names): keeping a (cluster, outcome) pair each until the summary is done made
    the garbage collector walk the whole table when many were not ready."""

    bundle: str | None = None  # of this scope; None: every bundle
    desired: int = 0
    ready: int = 0
    states: collections.Counter[str] = field(default_factory=collections.Counter)
    unready: list[Seen] = field(default_factory=list)  # clusters with a cell here not ready

    def add(self, outcome: Outcome, clusters: int) -> None:
        self.desired += clusters
        if outcome.ready:
            self.ready += clusters
        self.states[outcome.state] += clusters

    def cells(self) -> Iterator[Cell]:
        """The cells not ready, by group, cluster name and bundle."""
        for seen in self.unready:
            for outcome in seen.derived.outcomes:
                if not outcome.ready and (self.bundle is None or outcome.bundle == self.bundle):
                    yield seen, outcome

    def worst(self) -> status.State:
        return status.worst([_STATES[s] for s in self.states if s in _STATES])


def _counts(tally: _Tally) -> summaries.Counts:
    # Ready needs the cluster online and the state Ready: every cell of an offline cluster,
    # and every cell in another state, is one of `tally.cells()`.
    named: dict[str, list[str]] = collections.defaultdict(list)  # state -> its cells' clusters
    offline: list[str] = []
    for seen, outcome in tally.cells():
        name = f"{seen.group}/{seen.name}"
        named[outcome.state].append(name)
        if seen.online is False:
            offline.append(name)
    worst = tally.worst()
    parts = []
    known = [_STATES[s] for s in tally.states if s in _STATES]
    for state in sorted(known, key=lambda s: s.rank, reverse=True):
        if state is not status.State.READY:
            parts.append(_listed(state.value, named[state.value]))
    if offline:
        parts.append(_listed(OFFLINE, offline))
    return summaries.Counts(
        desired=tally.desired,
        ready=tally.ready,
        offline=len(offline),
        states=dict(sorted(tally.states.items())),
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
    """Every summary document. A cluster's outcomes and row counts are only recomputed
    when it, or a manifest, changed since the last call (`derive`). Clusters with the same
    outcomes share one `Derived`, so cells are counted per distinct `Derived` in a group,
    and only the cells not ready are visited one by one (their names are listed)."""
    by_group = members(table)
    held = _held_by_group(table)
    fleet = _Tally()
    by_bundle: dict[str, _Tally] = {}
    tallies_of: dict[str, _Tally] = {}
    bundle_tallies_of: dict[str, dict[str, _Tally]] = {}
    rows_of: dict[str, list[summaries.ClusterRow]] = {}
    for group, group_members in sorted(by_group.items()):
        group_held = held.get(group, [])
        group_tally = tallies_of[group] = _Tally()
        bundle_tallies: dict[str, _Tally] = collections.defaultdict(_Tally)  # counts only
        bundle_tallies_of[group] = bundle_tallies
        rows: list[summaries.ClusterRow] = []
        rows_of[group] = rows
        alike: dict[Derived, int] = collections.defaultdict(int)  # clusters per Derived
        for seen in group_members:
            derived = derive(table, seen, group_held)
            rows.append(_row(seen, derived))
            alike[derived] += 1
            if derived.ready != derived.desired:
                fleet.unready.append(seen)
                group_tally.unready.append(seen)
                for outcome in derived.outcomes:
                    if not outcome.ready:
                        bundle_tally = by_bundle.get(outcome.bundle)
                        if bundle_tally is None:
                            bundle_tally = by_bundle[outcome.bundle] = _Tally(outcome.bundle)
                        bundle_tally.unready.append(seen)
        for derived, clusters in alike.items():
            for outcome in derived.outcomes:
                bundle_tally = by_bundle.get(outcome.bundle)
                if bundle_tally is None:
                    bundle_tally = by_bundle[outcome.bundle] = _Tally(outcome.bundle)
                for scope in (fleet, bundle_tally, group_tally, bundle_tallies[outcome.bundle]):
                    scope.add(outcome, clusters)
    bundle_docs: dict[str, summaries.BundleSummary] = {}
    for bundle, tally in sorted(by_bundle.items()):
        generation = max(m.generation for (g, b), m in table.held.items() if b == bundle)
        non_ready = [
            summaries.NonReady(cluster=seen.name, group=seen.group, state=o.state, message=o.message)
            for seen, o in itertools.islice(tally.cells(), summaries.MAX_NON_READY)
        ]
        bundle_docs[bundle] = summaries.BundleSummary(
            **_counts(tally), bundle=bundle, generation=generation, non_ready=non_ready, ts=now
        )
    for (_, bundle), manifest in table.held.items():  # a bundle no cluster should run
        if bundle not in bundle_docs:
            bundle_docs[bundle] = summaries.BundleSummary(
                **_counts(_Tally()), bundle=bundle, generation=manifest.generation, non_ready=[], ts=now
            )
    group_docs: dict[str, summaries.GroupSummary] = {}
    for group in sorted(groups):
        group_members = by_group.get(group, [])
        group_docs[group] = summaries.GroupSummary(
            **_counts(tallies_of.get(group, _Tally())),
            group=group,
            clusters=len(group_members),
            online=sum(1 for s in group_members if s.online),
            bundles={
                b: summaries.BundleCell(desired=t.desired, ready=t.ready, state=t.worst().value)
                for b, t in sorted(bundle_tallies_of.get(group, {}).items())
            },
            cluster_rows=rows_of.get(group, []),
            revoked=sorted(name for root, name in table.revoked if root == group)[: summaries.MAX_NON_READY],
            ts=now,
        )
    fleet_doc = summaries.FleetSummary(
        **_counts(fleet),
        clusters=len(table.clusters),
        online=sum(1 for s in table.clusters.values() if s.online),
        bundles=len(bundle_docs),
        bundles_ready=sum(1 for d in bundle_docs.values() if d["ready"] == d["desired"]),
        groups=len(group_docs),
        revoked=len(table.revoked),
        ts=now,
    )
    return Summaries(fleet_doc, bundle_docs, group_docs)
