"""The controller's database: what an older version left behind still opens."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from controller.state import Cluster, State


def test_a_database_from_before_registration_gains_the_new_columns(tmp_path: Path) -> None:
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
        assert state.clusters() == [Cluster("pi-1", "edge/west", {}, revoked=False)]
    finally:
        state.close()
