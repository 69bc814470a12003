"""The controller's durable state: one SQLite database in the state directory.

Tables: groups (name, topic root, labels), clusters (name, group, labels,
registration key and facts, revoked or not), bundles (name, generation,
deleted), and deliveries: for each bundle and group, the generation and
content digest last decided for that group and whether the broker has
acknowledged it. Join tokens, join requests, broker credentials and the
queue of changes for an external broker are kept by controller.identities.

Publishing is intent-first: the new generation and every group's pending
delivery are committed in one transaction *before* anything is sent, and
each delivery is marked done when the broker acknowledges it. A crash or a
broker failure therefore leaves pending rows, and the next `apply` sends
them again; generations never go backwards because the counter is committed
before use.

Each delivery also keeps two sealed envelopes: the one intended (`payload`,
written once sealed, before it is sent) and the one the broker last
acknowledged (`held_payload` at `held_generation`). The running controller
uses them (controller.restoring) to finish a delivery an interrupted `apply`
left pending and to put back a retained bundle the broker lost, byte for
byte, without rendering or signing anything.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller import errors

DATABASE_NAME = "edgefleet.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY,
    topic_root TEXT NOT NULL UNIQUE,
    labels TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS clusters (
    name TEXT PRIMARY KEY,
    group_name TEXT NOT NULL REFERENCES groups(name),
    labels TEXT NOT NULL,
    created_at REAL NOT NULL,
    public_key TEXT,
    facts TEXT NOT NULL DEFAULT '{}',
    revoked_at REAL,
    envelope_formats TEXT
);
CREATE TABLE IF NOT EXISTS bundles (
    name TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    issued_at REAL NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    group_name TEXT NOT NULL REFERENCES groups(name),
    labels TEXT NOT NULL,
    approval TEXT NOT NULL,
    max_uses INTEGER,
    uses INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS join_requests (
    name TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    token_id TEXT NOT NULL,
    group_name TEXT NOT NULL,
    labels TEXT NOT NULL,
    facts TEXT NOT NULL,
    public_key TEXT NOT NULL,
    status TEXT NOT NULL,
    received_at REAL NOT NULL,
    decided_at REAL,
    reply BLOB
);
CREATE TABLE IF NOT EXISTS credentials (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    cluster TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS broker_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,
    action TEXT NOT NULL,
    role TEXT NOT NULL,
    cluster TEXT,
    password TEXT
);
CREATE TABLE IF NOT EXISTS deliveries (
    bundle TEXT NOT NULL REFERENCES bundles(name),
    group_name TEXT NOT NULL,
    topic_root TEXT NOT NULL,
    kind TEXT NOT NULL,
    generation INTEGER NOT NULL,
    digest TEXT NOT NULL,
    deployments TEXT NOT NULL,
    acknowledged INTEGER NOT NULL,
    payload BLOB,
    held_generation INTEGER,
    held_payload BLOB,
    PRIMARY KEY (bundle, group_name)
);
"""


# Columns added to `clusters` by registration, for databases created before it.
_ADDED_CLUSTER_COLUMNS = {
    "public_key": "TEXT",
    "facts": "TEXT NOT NULL DEFAULT '{}'",
    "revoked_at": "REAL",
    # JSON list of the envelope format versions the cluster's agent says it reads (NULL: not heard yet).
    "envelope_formats": "TEXT",
}

# Columns added to `deliveries` for restoring retained bundles, for databases created before it.
_ADDED_DELIVERY_COLUMNS = {"payload": "BLOB", "held_generation": "INTEGER", "held_payload": "BLOB"}


def _private(path: Path) -> None:
    """Create the database 0600 (it holds hashes, and briefly passwords for the broker).

    An existing database is only chmod'ed, never opened here: closing any
    descriptor of a file drops every POSIX lock this process holds on it,
    including the locks of SQLite connections already open on it."""
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
    os.chmod(path, 0o600)


class DeliveryKind(enum.Enum):
    MANIFEST = "manifest"
    TOMBSTONE = "tombstone"


@dataclass(frozen=True)
class Group:
    name: str
    topic_root: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Cluster:
    name: str
    group: str
    labels: Mapping[str, str] = field(default_factory=dict)
    revoked: bool = False
    # Envelope format versions its agent reads, as its last status said; None: not heard yet.
    envelope_formats: frozenset[int] | None = None


@dataclass(frozen=True)
class Delivery:
    """What a group was last told about a bundle, and whether the broker has it."""

    bundle: str
    group: str
    topic_root: str
    kind: DeliveryKind
    generation: int
    digest: str
    deployments: tuple[str, ...]
    acknowledged: bool
    sealed: bool = False  # the envelope for `generation` is kept (`Envelopes.payload`)
    # The generation whose envelope the broker last acknowledged, kept (`Envelopes.held_payload`).
    held_generation: int | None = None

    @property
    def kept(self) -> bool:
        """Whether the controller can restore what the broker was last given (False: it was
        delivered by a version that kept no envelopes; `apply` sends it again)."""
        return self.held_generation is not None


@dataclass(frozen=True)
class Envelopes:
    """A delivery and the envelopes it keeps (controller.restoring)."""

    row: Delivery
    payload: bytes | None  # sealed for row.generation
    held_payload: bytes | None  # last acknowledged, at row.held_generation


@dataclass(frozen=True)
class BundleRecord:
    name: str
    generation: int
    issued_at: float
    deleted: bool


class State:
    """Access to the database; every method is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            _private(path)
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            self._migrate()
            for companion in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                if companion.exists():
                    os.chmod(companion, 0o600)
        except (sqlite3.Error, OSError) as exc:
            raise errors.StateError(f"cannot open the state database {path}: {exc}") from exc

    def _migrate(self) -> None:
        """Add columns that later versions introduced to a database an earlier one made."""
        for table, added in (("clusters", _ADDED_CLUSTER_COLUMNS), ("deliveries", _ADDED_DELIVERY_COLUMNS)):
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for column, declaration in added.items():
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    @classmethod
    def open(cls, state_dir: Path) -> State:
        if not state_dir.is_dir():
            raise errors.StateError(
                f"state directory {state_dir} does not exist; run 'edgefleet keys init' first"
            )
        return cls(state_dir / DATABASE_NAME)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One immediate (write-locking) transaction; for controller.identities."""
        with self._transaction() as db:
            yield db

    def query(self, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return self._db.execute(sql, parameters).fetchall()
        except sqlite3.Error as exc:
            raise errors.StateError(f"state database {self.path}: {exc}") from exc

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """A read the running controller makes: its errors are StateError, like writes'."""
        try:
            yield
        except sqlite3.Error as exc:
            raise errors.StateError(f"state database {self.path}: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise errors.StateError(f"state database {self.path}: {exc}") from exc

    # -- groups ---------------------------------------------------------------

    def add_group(self, group: Group) -> None:
        with self._transaction() as db:
            clash = db.execute(
                "SELECT name FROM groups WHERE name = ? OR topic_root = ?", (group.name, group.topic_root)
            ).fetchone()
            if clash:
                raise errors.ControllerError(
                    f"group {clash[0]!r} already exists or uses topic root {group.topic_root!r}"
                )
            db.execute(
                "INSERT INTO groups VALUES (?, ?, ?, ?)",
                (group.name, group.topic_root, json.dumps(dict(group.labels), sort_keys=True), time.time()),
            )

    def groups(self) -> list[Group]:
        rows = self._db.execute("SELECT name, topic_root, labels FROM groups ORDER BY name").fetchall()
        return [Group(name, root, json.loads(labels)) for name, root, labels in rows]

    def group(self, name: str) -> Group:
        for group in self.groups():
            if group.name == name:
                return group
        raise errors.ControllerError(f"no group {name!r}; create it with 'edgefleet group create {name}'")

    def delete_group(self, name: str) -> None:
        with self._transaction() as db:
            if not db.execute("SELECT 1 FROM groups WHERE name = ?", (name,)).fetchone():
                raise errors.ControllerError(f"no group {name!r}")
            members = db.execute("SELECT COUNT(*) FROM clusters WHERE group_name = ?", (name,)).fetchone()[0]
            if members:
                raise errors.ControllerError(
                    f"group {name!r} still has {members} cluster(s); remove them first"
                )
            live = db.execute(
                "SELECT bundle FROM deliveries WHERE group_name = ? AND kind = ?",
                (name, DeliveryKind.MANIFEST.value),
            ).fetchall()
            if live:
                bundles = ", ".join(sorted(row[0] for row in live))
                raise errors.ControllerError(
                    f"group {name!r} still has bundles ({bundles}); retarget or delete them first"
                )
            live_tokens = db.execute(
                "SELECT id FROM tokens WHERE group_name = ? AND revoked_at IS NULL AND expires_at > ?",
                (name, time.time()),
            ).fetchall()
            if live_tokens:
                ids = ", ".join(sorted(row[0] for row in live_tokens))
                raise errors.ControllerError(
                    f"group {name!r} still has join tokens ({ids}); revoke them first"
                )
            db.execute("DELETE FROM join_requests WHERE group_name = ?", (name,))
            db.execute("DELETE FROM tokens WHERE group_name = ?", (name,))
            db.execute("DELETE FROM deliveries WHERE group_name = ?", (name,))
            db.execute("DELETE FROM groups WHERE name = ?", (name,))

    # -- clusters -------------------------------------------------------------

    def add_cluster(self, cluster: Cluster) -> None:
        with self._transaction() as db:
            if not db.execute("SELECT 1 FROM groups WHERE name = ?", (cluster.group,)).fetchone():
                raise errors.ControllerError(f"no group {cluster.group!r}")
            if db.execute("SELECT 1 FROM clusters WHERE name = ?", (cluster.name,)).fetchone():
                raise errors.ControllerError(
                    f"cluster {cluster.name!r} already exists; names are unique per fleet"
                )
            db.execute(
                "INSERT INTO clusters (name, group_name, labels, created_at) VALUES (?, ?, ?, ?)",
                (cluster.name, cluster.group, json.dumps(dict(cluster.labels), sort_keys=True), time.time()),
            )

    def clusters(self) -> list[Cluster]:
        rows = self._db.execute(
            "SELECT name, group_name, labels, revoked_at, envelope_formats FROM clusters ORDER BY name"
        ).fetchall()
        return [
            Cluster(
                name,
                group,
                json.loads(labels),
                revoked is not None,
                None if formats is None else frozenset(json.loads(formats)),
            )
            for name, group, labels, revoked, formats in rows
        ]

    def record_envelope_formats(self, formats: Mapping[tuple[str, str], frozenset[int]]) -> None:
        """Remember, per (group, cluster), which envelope formats its agent reads (one
        transaction). A cluster not in that group, or not registered at all, is left alone."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE clusters SET envelope_formats = ? WHERE name = ? AND group_name = ?",
                [(json.dumps(sorted(versions)), name, group) for (group, name), versions in formats.items()],
            )

    # -- bundles and deliveries -------------------------------------------------

    def bundle(self, name: str) -> BundleRecord | None:
        row = self._db.execute(
            "SELECT name, generation, issued_at, deleted FROM bundles WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else BundleRecord(row[0], row[1], row[2], bool(row[3]))

    def deliveries(self, bundle: str) -> dict[str, Delivery]:
        """group -> what it was last told about `bundle`."""
        rows = self._db.execute(f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE bundle = ?", (bundle,))
        return {row[1]: _delivery(row) for row in rows.fetchall()}

    def begin_generation(
        self, bundle: str, intended: list[Delivery], *, deleted: bool = False
    ) -> BundleRecord:
        """Commit a new generation and its pending deliveries before anything is sent."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT generation FROM bundles WHERE name = ?", (bundle,)).fetchone()
            generation = (row[0] if row else 0) + 1
            db.execute(
                "INSERT INTO bundles (name, generation, issued_at, deleted) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET generation = excluded.generation, "
                "issued_at = excluded.issued_at, deleted = excluded.deleted",
                (bundle, generation, now, int(deleted)),
            )
            for delivery in intended:
                # An upsert, not a replace: what the broker holds (held_*) stays known.
                db.execute(
                    "INSERT INTO deliveries (bundle, group_name, topic_root, kind, generation, digest, "
                    "deployments, acknowledged, payload) VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL) "
                    "ON CONFLICT(bundle, group_name) DO UPDATE SET topic_root = excluded.topic_root, "
                    "kind = excluded.kind, generation = excluded.generation, digest = excluded.digest, "
                    "deployments = excluded.deployments, acknowledged = 0, payload = NULL",
                    (
                        bundle,
                        delivery.group,
                        delivery.topic_root,
                        delivery.kind.value,
                        generation,
                        delivery.digest,
                        json.dumps(list(delivery.deployments)),
                    ),
                )
        return BundleRecord(bundle, generation, now, deleted)

    def seal(self, bundle: str, group: str, generation: int, payload: bytes) -> None:
        """Keep the envelope sealed for a pending delivery, so a restart can send it as it is."""
        with self._transaction() as db:
            db.execute(
                "UPDATE deliveries SET payload = ? WHERE bundle = ? AND group_name = ? AND generation = ?",
                (payload, bundle, group, generation),
            )

    def acknowledge(self, bundle: str, group: str, generation: int, payload: bytes) -> None:
        """The broker took `payload` for this delivery: it is what the group's topic now holds.

        A late acknowledgement of an older generation changes nothing."""
        with self._transaction() as db:
            db.execute(
                "UPDATE deliveries SET acknowledged = 1, held_generation = generation, held_payload = ? "
                "WHERE bundle = ? AND group_name = ? AND generation = ?",
                (payload, bundle, group, generation),
            )

    def all_deliveries(self) -> list[Delivery]:
        """Every bundle's deliveries, by bundle and group (the restore check reads them all)."""
        with self._reading():
            rows = self._db.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries ORDER BY bundle, group_name"
            ).fetchall()
        return [_delivery(row) for row in rows]

    def envelopes(self, bundle: str, group: str) -> Envelopes | None:
        """One delivery and the envelopes it keeps, as they are now."""
        with self._reading():
            row = self._db.execute(
                f"SELECT {_DELIVERY_COLUMNS}, payload, held_payload FROM deliveries "
                "WHERE bundle = ? AND group_name = ?",
                (bundle, group),
            ).fetchone()
        return None if row is None else Envelopes(_delivery(row), row[-2], row[-1])

    def bundles(self) -> list[BundleRecord]:
        rows = self._db.execute(
            "SELECT name, generation, issued_at, deleted FROM bundles ORDER BY name"
        ).fetchall()
        return [BundleRecord(r[0], r[1], r[2], bool(r[3])) for r in rows]


# What a Delivery is read from; `_delivery` maps a row of them.
_DELIVERY_COLUMNS = (
    "bundle, group_name, topic_root, kind, generation, digest, deployments, acknowledged, "
    "payload IS NOT NULL, held_generation"
)


def _delivery(row: Any) -> Delivery:
    return Delivery(
        row[0],
        row[1],
        row[2],
        DeliveryKind(row[3]),
        row[4],
        row[5],
        tuple(json.loads(row[6])),
        bool(row[7]),
        bool(row[8]),
        row[9],
    )
