"""`edgefleet apply` / `bundle delete` against real brokers: what lands retained, per group."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller import bundles, delivering, errors, keystore, targeting
from controller.state import Cluster, Group, State
from tests import brokers, mqtt
from wire import canonical, envelopes, keys, manifests, topics, urls

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
T = topics.Topics()


@pytest.fixture
def key(tmp_path: Path) -> keys.SigningKey:
    return keystore.init(tmp_path / "state")


@pytest.fixture
def state(tmp_path: Path, key: keys.SigningKey, topic_root: str) -> Iterator[State]:
    state = State.open(tmp_path / "state")
    state.add_group(Group("west", f"{topic_root}/west", {"region": "us-west"}))
    state.add_group(Group("east", f"{topic_root}/east", {"region": "us-east"}))
    yield state
    state.close()


def _opened(payload: bytes, key: keys.SigningKey) -> manifests.Manifest:
    return envelopes.unseal(payload, trusted=keys.keyring([key.verify_key]))


def _bundle(tmp_path: Path, text: str, name: str = "app") -> Path:
    root = tmp_path / name
    root.mkdir(exist_ok=True)
    (root / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {v: '1'}\n")
    (root / "fleet.yaml").write_text(text)
    return root


async def test_apply_publishes_one_manifest_per_targeted_group_and_is_idempotent(
    broker_url: urls.BrokerUrl, state: State, key: keys.SigningKey, topic_root: str, tmp_path: Path
) -> None:
    bundle = _bundle(tmp_path, "targets: [{clusterGroupSelector: {matchLabels: {region: us-west}}}]\n")
    report = await delivering.apply(state, key, broker_url, bundle, T)
    assert report.ok and report.published == {"west": "manifest generation 1"}
    held = await mqtt.retained(broker_url, f"{topic_root}/+/bundles/+", expect=1)
    [(topic, payload)] = held.items()
    assert topic == f"{topic_root}/west/bundles/app"
    manifest = _opened(payload, key)
    assert (manifest.group, manifest.generation) == (f"{topic_root}/west", 1)

    again = await delivering.apply(state, key, broker_url, bundle, T)
    assert again.published == {} and again.unchanged == ("west",) and again.generation is None


async def test_changes_bump_the_generation_and_untargeted_groups_get_a_tombstone(
    broker_url: urls.BrokerUrl, state: State, key: keys.SigningKey, topic_root: str, tmp_path: Path
) -> None:
    bundle = _bundle(tmp_path, "{}\n")
    assert (await delivering.apply(state, key, broker_url, bundle, T)).generation == 1
    _bundle(tmp_path, "targets: [{clusterGroup: east}]\n")
    report = await delivering.apply(state, key, broker_url, bundle, T)
    assert report.published == {"east": "manifest generation 2", "west": "tombstone generation 2"}
    held = await mqtt.retained(broker_url, f"{topic_root}/+/bundles/app", expect=2)
    west = _opened(held[f"{topic_root}/west/bundles/app"], key)
    east = _opened(held[f"{topic_root}/east/bundles/app"], key)
    assert west.kind is manifests.Kind.TOMBSTONE and west.generation == 2
    assert east.kind is manifests.Kind.BUNDLE and east.generation == 2


async def test_delete_tombstones_every_group_and_a_later_apply_goes_on_counting(
    broker_url: urls.BrokerUrl, state: State, key: keys.SigningKey, topic_root: str, tmp_path: Path
) -> None:
    bundle = _bundle(tmp_path, "{}\n")
    await delivering.apply(state, key, broker_url, bundle, T)
    report = await delivering.delete(state, key, broker_url, "app", T)
    assert report.published == {"east": "tombstone generation 2", "west": "tombstone generation 2"}
    held = await mqtt.retained(broker_url, f"{topic_root}/+/bundles/app", expect=2)
    assert {_opened(p, key).kind for p in held.values()} == {manifests.Kind.TOMBSTONE}
    assert (await delivering.delete(state, key, broker_url, "app", T)).published == {}
    assert (await delivering.apply(state, key, broker_url, bundle, T)).generation == 3


async def test_a_failed_publish_is_finished_by_the_next_apply(
    state: State, key: keys.SigningKey, topic_root: str, tmp_path: Path
) -> None:
    bundle = _bundle(tmp_path, "{}\n")
    down = urls.BrokerUrl("127.0.0.1", brokers.free_port())
    report = await delivering.apply(state, key, down, bundle, T)
    assert not report.ok and set(report.failed) == {"east", "west"}
    assert state.bundle("app").generation == 1  # the intent was committed first
    with brokers.mosquitto(tmp_path) as url:
        retry = await delivering.apply(state, key, url, bundle, T)
        assert retry.ok and retry.published == {
            "east": "manifest generation 1",
            "west": "manifest generation 1",
        }
        held = await mqtt.retained(url, f"{topic_root}/+/bundles/app", expect=2)
        assert {_opened(p, key).generation for p in held.values()} == {1}
        assert (await delivering.apply(state, key, url, bundle, T)).published == {}


async def test_a_render_error_publishes_nothing_and_changes_nothing(
    broker_url: urls.BrokerUrl, state: State, key: keys.SigningKey, tmp_path: Path
) -> None:
    bundle = _bundle(tmp_path, "{}\n")
    await delivering.apply(state, key, broker_url, bundle, T)
    (bundle / "broken.yaml").write_text("key: [unclosed\n")
    with pytest.raises(errors.BundleError, match=r"broken\.yaml"):
        await delivering.apply(state, key, broker_url, bundle, T)
    assert state.bundle("app").generation == 1
    shutil.rmtree(bundle)


def test_decide_resends_unacknowledged_deliveries_as_recorded() -> None:
    from controller import bundles, targeting
    from controller.state import Delivery, DeliveryKind

    plan = bundles.Plan(targeting.Group("west"), (), ())
    pending = Delivery("app", "west", "root/west", DeliveryKind.TOMBSTONE, 4, "", (), False)
    decision = delivering.decide(
        "app", {"west": plan}, {"west": Group("west", "root/west")}, {"west": pending}, {}
    )
    assert decision.resend == (pending,) and decision.publish == ()


# -- envelope formats ---------------------------------------------------------------------


def _format_of(payload: bytes) -> int:
    return envelopes.parse(payload).format_version


@pytest.mark.parametrize(
    ("formats", "expected"),
    [
        ([], 2),  # nobody to hold back: joiners are as new as this build
        ([None], 1),  # not heard from yet: assumed to read 1 only
        ([{1, 2}, {1, 2, 3}], 2),
        ([{1, 2}, {1}], 1),
        ([{2}], 2),
    ],
)
def test_a_group_gets_the_newest_format_all_its_clusters_read(
    formats: list[set[int] | None], expected: int
) -> None:
    clusters = [
        Cluster(f"pi-{i}", "west", {}, False, None if f is None else frozenset(f))
        for i, f in enumerate(formats)
    ]
    assert delivering.envelope_format(clusters) == expected


def test_a_revoked_cluster_does_not_hold_its_group_back() -> None:
    clusters = [
        Cluster("old", "west", {}, True, frozenset({1})),
        Cluster("new", "west", {}, False, frozenset({1, 2})),
    ]
    assert delivering.envelope_format(clusters) == 2


async def test_a_group_is_sent_format_2_once_its_agents_all_read_it(
    broker_url: urls.BrokerUrl, state: State, key: keys.SigningKey, topic_root: str, tmp_path: Path
) -> None:
    state.add_cluster(Cluster("pi-w", "west"))
    state.add_cluster(Cluster("pi-e", "east"))
    state.record_envelope_formats({("east", "pi-e"): frozenset({1, 2})})
    bundle = _bundle(tmp_path, "{}\n")
    assert (await delivering.apply(state, key, broker_url, bundle, T)).generation == 1
    held = await mqtt.retained(broker_url, f"{topic_root}/+/bundles/app", expect=2)
    assert _format_of(held[f"{topic_root}/east/bundles/app"]) == 2
    assert _format_of(held[f"{topic_root}/west/bundles/app"]) == 1  # pi-w has not said

    state.record_envelope_formats({("west", "pi-w"): frozenset({1, 2})})
    report = await delivering.apply(state, key, broker_url, bundle, T)
    assert report.published == {"west": "manifest generation 2"} and report.unchanged == ("east",)
    before = _opened(held[f"{topic_root}/west/bundles/app"], key)
    held = await mqtt.retained(broker_url, f"{topic_root}/west/bundles/app", expect=1)
    payload = held[f"{topic_root}/west/bundles/app"]
    west = _opened(payload, key)
    assert _format_of(payload) == 2 and west.generation == 2
    assert (west.targets, west.variants) == (before.targets, before.variants)  # the same content


def test_format_1_digests_are_what_they_were_before_formats_could_differ(tmp_path: Path) -> None:
    """An upgraded controller must not see every format 1 delivery as changed and republish it."""
    with bundles.open_bundle(_bundle(tmp_path, "{}\n")) as bundle:
        plan = bundle.plan(targeting.Group("west", {}))
    wire = manifests.to_wire(plan.manifest("x", generation=1, issued_at=0.0))
    before = canonical.digest(
        {"targets": wire["targets"], "variants": [v.deployment_id for v in plan.variants]}
    )
    assert delivering.content_digest(plan, 1) == before
    assert delivering.content_digest(plan, 2) != before


def test_decide_resends_once_what_was_delivered_before_envelopes_were_kept() -> None:
    from controller import bundles, targeting
    from controller.state import Delivery, DeliveryKind

    plan = bundles.Plan(targeting.Group("west"), (), ())
    old = Delivery("app", "west", "root/west", DeliveryKind.TOMBSTONE, 4, "", (), True)  # no envelope kept
    groups = {"west": Group("west", "root/west")}
    assert delivering.decide("app", {"west": plan}, groups, {"west": old}, {}).resend == (old,)
    kept = Delivery("app", "west", "root/west", DeliveryKind.TOMBSTONE, 4, "", (), True, held_generation=4)
    assert delivering.decide("app", {"west": plan}, groups, {"west": kept}, {}).nothing_to_do


async def test_delete_sends_again_a_tombstone_it_keeps_no_copy_of(
    mosquitto_url: urls.BrokerUrl, state: State, key: keys.SigningKey, topic_root: str, tmp_path: Path
) -> None:
    bundle = _bundle(tmp_path, "targets: [{clusterGroupSelector: {matchLabels: {region: us-west}}}]\n")
    await delivering.apply(state, key, mosquitto_url, bundle, T)
    first = await delivering.delete(state, key, mosquitto_url, "app", T)
    assert first.published == {"west": "tombstone generation 2"}
    assert (await delivering.delete(state, key, mosquitto_url, "app", T)).published == {}  # kept: done
    # As a version that kept no envelopes left it: acknowledged, nothing to restore it from.
    with state.transaction() as db:
        db.execute("UPDATE deliveries SET held_payload = NULL, held_generation = NULL")
    again = await delivering.delete(state, key, mosquitto_url, "app", T)
    assert again.published == {"west": "tombstone generation 3"}
    assert state.envelopes("app", "west").held_payload is not None  # type: ignore[union-attr]
