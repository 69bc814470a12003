"""The fleet table's summaries stay exact while they are computed incrementally: every
change a cluster or manifest can go through shows in the next summary."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from controller import readiness_table
from wire import manifests, status, summaries

GROUP = "edge/site"


def _manifest(generation: int, *, env: str | None = None, bundle: str = "app") -> manifests.Manifest:
    objects = ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{generation}"}},)
    variant = manifests.Variant("default", objects)
    selector = manifests.ClusterSelector(match_labels={"env": env} if env else {})
    target = manifests.Target("t", variant.deployment_id, cluster_selector=selector)
    return manifests.Manifest(manifests.Kind.BUNDLE, bundle, GROUP, generation, 0.0, (target,), (variant,))


def _report(name: str, seq: int, **bundles: tuple[manifests.Manifest, str]) -> Any:
    return {
        "cluster": name, "group": GROUP, "labels": {}, "session": 1, "seq": seq, "ts": 1.0,
        "agent_version": "test",
        "bundles": {
            bundle: {"deployment_id": m.variants[0].deployment_id, "generation": m.generation, "state": state}
            for bundle, (m, state) in bundles.items()
        },
    }  # fmt: skip


def _app(table: readiness_table.Table) -> tuple[int, int, str]:
    doc = readiness_table.summarize(table, [GROUP], 2.0).bundles["app"]
    return doc["desired"], doc["ready"], doc["state"]


def _table(first: manifests.Manifest) -> readiness_table.Table:
    table = readiness_table.Table()
    table.register([GROUP], [(GROUP, "a", {"env": "prod"}), (GROUP, "b", {"env": "lab"})])
    table.manifest(GROUP, first)
    for name in ("a", "b"):
        table.presence(GROUP, name, status.Presence(online=True, since=0.0, session=1), 1.0)
    return table


def test_each_change_shows_in_the_next_summary() -> None:
    first = _manifest(1)
    table = _table(first)
    assert _app(table) == (2, 0, "Pending")
    table.status(GROUP, "a", _report("a", 1, app=(first, "Ready")), 1.0)
    assert _app(table) == (2, 1, "Pending")
    table.status(GROUP, "b", _report("b", 1, app=(first, "Ready")), 1.0)
    assert _app(table) == (2, 2, "Ready")
    table.presence(GROUP, "b", status.Presence(online=False, since=0.0, session=1), 1.0)
    assert _app(table) == (2, 1, "Ready")  # offline: never counted ready

    second = _manifest(2)  # a new generation: both now run an older deployment
    table.manifest(GROUP, second)
    assert _app(table) == (2, 0, "OutOfSync")
    table.status(GROUP, "a", _report("a", 2, app=(second, "NotReady")), 1.0)
    assert _app(table) == (2, 0, "OutOfSync")
    group = readiness_table.summarize(table, [GROUP], 2.0).groups[GROUP]
    assert {row["name"]: row["state"] for row in group["cluster_rows"]} == {"a": "NotReady", "b": "OutOfSync"}


def test_labels_and_targets_change_who_should_run_a_bundle() -> None:
    only_prod = _manifest(1, env="prod")
    table = _table(only_prod)
    assert _app(table)[0] == 1
    table.register([GROUP], [(GROUP, "a", {"env": "prod"}), (GROUP, "b", {"env": "prod"})])
    assert _app(table)[0] == 2  # b was relabelled into the target
    table.manifest(GROUP, _manifest(2, env="lab"))
    assert _app(table)[0] == 0  # the new generation targets nobody here
    table.manifest(GROUP, manifests.tombstone(bundle="app", group=GROUP, generation=3, issued_at=0.0))
    assert "app" not in readiness_table.summarize(table, [GROUP], 2.0).bundles


def test_a_reconnected_agents_reports_count_from_one_again() -> None:
    first = _manifest(1)
    table = _table(first)
    old = _report("a", 50, app=(first, "Ready"))
    assert table.status(GROUP, "a", old, 1.0)
    table.presence(GROUP, "a", status.Presence(online=True, since=0.0, session=2), 1.0)
    new = {**_report("a", 1, app=(first, "NotReady")), "session": 2}
    assert table.status(GROUP, "a", new, 1.0)  # seq 1 of session 2 is newer than seq 50 of session 1
    group = readiness_table.summarize(table, [GROUP], 2.0).groups[GROUP]
    assert {row["name"]: row["state"] for row in group["cluster_rows"]}["a"] == "NotReady"
    stale = {**_report("a", 0, app=(first, "Ready")), "session": 2}
    assert not table.status(GROUP, "a", stale, 1.0)  # within a session, older is still older


# The table shares what clusters have in common (reports, selections, outcomes): a change
# to one cluster must never show in another that shared it, nor a stale answer survive.


def _cluster_states(table: readiness_table.Table) -> dict[str, str]:
    group = readiness_table.summarize(table, [GROUP], 2.0).groups[GROUP]
    return {row["name"]: row["state"] for row in group["cluster_rows"]}


def test_clusters_reporting_alike_share_one_copy_and_diverge_alone() -> None:
    first = _manifest(1)
    table = _table(first)
    table.status(GROUP, "a", _report("a", 1, app=(first, "Ready")), 1.0)
    table.status(GROUP, "b", _report("b", 1, app=(first, "Ready")), 1.0)
    assert _cluster_states(table) == {"a": "Ready", "b": "Ready"}
    a, b = table.clusters[GROUP, "a"], table.clusters[GROUP, "b"]
    assert a.reported is b.reported and a.selected is b.selected and a.derived is b.derived
    table.status(GROUP, "b", _report("b", 2, app=(first, "NotReady")), 1.0)
    assert _cluster_states(table) == {"a": "Ready", "b": "NotReady"}
    assert _app(table) == (2, 1, "NotReady")
    table.status(GROUP, "b", _report("b", 3, app=(first, "Ready")), 1.0)
    assert _cluster_states(table) == {"a": "Ready", "b": "Ready"}
    assert a.derived is b.derived  # alike again: shared again


def test_relabelling_one_cluster_reselects_only_that_cluster() -> None:
    only_prod = _manifest(1, env="prod")
    table = _table(only_prod)
    table.register([GROUP], [(GROUP, "a", {"env": "prod"}), (GROUP, "b", {"env": "prod"})])
    assert _app(table)[0] == 2  # both selected, sharing one answer
    table.register([GROUP], [(GROUP, "a", {"env": "lab"}), (GROUP, "b", {"env": "prod"})])
    assert _app(table)[0] == 1
    group = readiness_table.summarize(table, [GROUP], 2.0).groups[GROUP]
    assert {row["name"]: row["desired"] for row in group["cluster_rows"]} == {"a": 0, "b": 1}


def test_a_new_generation_of_one_bundle_reselects_it_and_keeps_the_others() -> None:
    app, db = _manifest(1, env="prod"), _manifest(1, bundle="db")
    table = _table(app)
    table.manifest(GROUP, db)
    for name in ("a", "b"):
        table.status(GROUP, name, _report(name, 1, app=(app, "Ready"), db=(db, "Ready")), 1.0)
    bundles = readiness_table.summarize(table, [GROUP], 2.0).bundles
    assert (bundles["app"]["desired"], bundles["db"]["desired"]) == (1, 2)  # app: prod only
    table.manifest(GROUP, _manifest(2, env="lab"))  # app now for lab only, db unchanged
    bundles = readiness_table.summarize(table, [GROUP], 2.0).bundles
    assert (bundles["app"]["desired"], bundles["app"]["state"]) == (1, "OutOfSync")
    assert (bundles["db"]["desired"], bundles["db"]["ready"]) == (2, 2)
    assert _cluster_states(table) == {"a": "Ready", "b": "OutOfSync"}


def test_a_replaced_manifest_is_not_kept_alive_by_the_selection_cache() -> None:
    first = _manifest(1)
    table = _table(first)
    assert _app(table)[0] == 2
    gone = weakref.ref(first)
    del first
    table.manifest(GROUP, _manifest(2))
    assert _app(table)[0] == 2
    gc.collect()
    assert gone() is None


def test_summaries_stay_exact_when_the_sharing_pools_overflow(monkeypatch: pytest.MonkeyPatch) -> None:
    for bound in ("MAX_SHARED", "MAX_POOLED"):
        monkeypatch.setattr(readiness_table, bound, 1)  # every pool starts afresh all the time
    first = _manifest(1)
    table = _table(first)
    table.status(GROUP, "a", _report("a", 1, app=(first, "Ready")), 1.0)
    table.status(GROUP, "b", _report("b", 1, app=(first, "Modified")), 1.0)
    assert _cluster_states(table) == {"a": "Ready", "b": "Modified"}
    table.presence(GROUP, "a", status.Presence(online=False, since=0.0, session=1), 1.0)
    assert _app(table) == (2, 0, "Modified")
    table.manifest(GROUP, _manifest(2))
    assert _cluster_states(table) == {"a": "OutOfSync", "b": "OutOfSync"}


def test_an_agents_own_trouble_shows_in_its_row_until_its_status_drops_it() -> None:
    first = _manifest(1)
    table = _table(first)
    long = "x" * 500
    troubled = {**_report("a", 1, app=(first, "Ready")), "agent_errors": [long, "session 7 kept in memory"]}
    table.status(GROUP, "a", troubled, 1.0)

    def rows() -> dict[str, tuple[object, object]]:
        group = readiness_table.summarize(table, [GROUP], 2.0).groups[GROUP]
        return {
            row["name"]: (row.get("agent_errors"), row.get("agent_error")) for row in group["cluster_rows"]
        }

    # How many, and the first line cut short: a group's rows stay small however much agents say.
    assert rows() == {"a": (2, "x" * summaries.ROW_ERROR_CHARS), "b": (None, None)}
    table.status(GROUP, "a", _report("a", 2, app=(first, "Ready")), 1.0)
    assert rows() == {"a": (None, None), "b": (None, None)}
