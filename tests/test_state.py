"""The controller's database: what an older version left behind still opens."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from controller import errors, join_cli
from controller.identities import Identities
from controller.state import Cluster, Delivery, DeliveryKind, Group, State
from wire import keys, urls


def test_a_database_from_before_registration_and_format_2_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "edgefleet.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE groups (name TEXT PRIMARY KEY, topic_root TEXT NOT NULL UNIQUE, labels TEXT NOT NULL,"
        " created_at REAL NOT NULL);"
        "CREATE TABLE clusters (name TEXT PRIMARY KEY, group_name TEXT NOT NULL, labels TEXT NOT NULL,"
        " created_at REAL NOT NULL);"
        "INSERT INTO groups VALUES ('edge/west', 'edge/west', '{}', 0);"
        "INSERT INTO clusters VALUES ('pi-1', 'edge/west', '{}', 0);"
    )
    old.commit()
    old.close()
    state = State(path)
    try:
        assert state.clusters() == [Cluster("pi-1", "edge/west", {}, revoked=False, envelope_formats=None)]
        state.record_envelope_formats({("edge/west", "pi-1"): frozenset({1, 2})})
        assert state.clusters()[0].envelope_formats == {1, 2}
    finally:
        state.close()


def test_the_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    state = State(tmp_path / "edgefleet.db")
    try:
        state.add_group(Group("edge/west", "edge/west", {}))  # a write: the WAL files appear
    finally:
        state.close()
    again = State(tmp_path / "edgefleet.db")
    again.close()
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_a_group_with_a_live_token_is_kept_and_one_with_only_revoked_tokens_goes(tmp_path: Path) -> None:
    state = State(tmp_path / "edgefleet.db")
    try:
        state.add_group(Group("edge/west", "edge/west", {}))
        registry = Identities(state)
        token, _ = join_cli.issue(
            registry, keys.SigningKey.generate(), group="edge/west", broker=urls.BrokerUrl("h", 1)
        )
        with pytest.raises(errors.ControllerError, match="join tokens"):
            state.delete_group("edge/west")
        registry.revoke_token(token.id, 0.0)
        state.delete_group("edge/west")
        assert state.groups() == [] and registry.all_tokens() == []
    finally:
        state.close()


def test_a_database_from_before_kept_envelopes_gains_their_columns(tmp_path: Path) -> None:
    path = tmp_path / "edgefleet.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE bundles (name TEXT PRIMARY KEY, generation INTEGER NOT NULL, issued_at REAL NOT NULL,"
        " deleted INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE deliveries (bundle TEXT NOT NULL REFERENCES bundles(name), group_name TEXT NOT NULL,"
        " topic_root TEXT NOT NULL, kind TEXT NOT NULL, generation INTEGER NOT NULL, digest TEXT NOT NULL,"
        " deployments TEXT NOT NULL, acknowledged INTEGER NOT NULL, PRIMARY KEY (bundle, group_name));"
        "INSERT INTO bundles VALUES ('app', 3, 0, 0);"
        "INSERT INTO deliveries VALUES ('app', 'west', 'edge/west', 'manifest', 3, 'd', '[]', 1);"
    )
    old.commit()
    old.close()
    state = State(path)
    try:
        # Acknowledged before envelopes were kept: nothing to restore it from.
        assert state.all_deliveries() == [
            Delivery("app", "west", "edge/west", DeliveryKind.MANIFEST, 3, "d", (), True)
        ]
        assert not state.deliveries("app")["west"].kept  # so the next apply sends it again
    finally:
        state.close()


def _intend(state: State, generation_of: str = "app") -> int:
    delivery = Delivery(generation_of, "west", "edge/west", DeliveryKind.MANIFEST, 0, "d", (), False)
    return state.begin_generation(generation_of, [delivery]).generation


def test_a_new_generation_keeps_what_the_broker_holds_until_it_acknowledges_the_new_one(
    tmp_path: Path,
) -> None:
    state = State.open(tmp_path)
    try:
        first = _intend(state)
        state.seal("app", "west", first, b"one")
        state.acknowledge("app", "west", first, b"one")
        second = _intend(state)
        kept = state.envelopes("app", "west")
        assert kept is not None
        assert (kept.row.generation, kept.row.acknowledged, kept.payload) == (second, False, None)
        assert (kept.row.held_generation, kept.held_payload) == (first, b"one")
        state.seal("app", "west", second, b"two")
        state.acknowledge("app", "west", first, b"late")  # a late acknowledgement changes nothing
        kept = state.envelopes("app", "west")
        assert kept is not None and kept.payload == b"two" and kept.held_payload == b"one"
        state.acknowledge("app", "west", second, b"two")
        kept = state.envelopes("app", "west")
        assert kept is not None and kept.row.acknowledged
        assert (kept.row.held_generation, kept.held_payload) == (second, b"two")
    finally:
        state.close()
