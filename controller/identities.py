"""Who may join and who has joined: tokens, join requests, broker credentials.

Lives in the controller's SQLite database beside controller.state, and keeps
three promises:

- Secrets are stored hashed (controller.tokens). The one exception is the
  `broker_changes` queue: a credential for an external broker (Mosquitto's
  dynamic security wants the password itself) waits there, in the 0600
  database, only until the running controller has handed it to the broker.
- Every change of rights is one transaction that also queues the matching
  broker change, so the broker and the registry cannot drift apart for good:
  a controller that was down finds the queue and finishes it.
- A revoked cluster keeps its row (so aggregates can say "revoked") but loses
  its credential at once.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from controller import errors, keystore, tokens
from controller.state import State
from wire import registration, rights

CONTROLLER_USERNAME = "edgefleet-controller"
PASSWORD_FILE = "broker-password"


def cluster_username(name: str) -> str:
    return f"cluster-{name}"


def agent_client_id(name: str) -> str:
    """The one client id a cluster's credentials may connect with (edge_agent.agent uses it)."""
    return f"edgefleet-agent-{name}"


class RequestStatus(enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"  # by an operator; the running controller completes it
    DENIED = "denied"
    DONE = "done"  # the cluster exists


class ChangeAction(enum.Enum):
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True)
class JoinRequest:
    name: str
    client_id: str
    token_id: str
    group: str
    public_key: bytes
    status: RequestStatus
    received_at: float
    labels: Mapping[str, str] = field(default_factory=dict)
    facts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Registered:
    """A cluster as registration sees it."""

    name: str
    group: str
    public_key: bytes | None
    revoked: bool


@dataclass(frozen=True)
class BrokerChange:
    seq: int
    action: ChangeAction
    username: str
    role: rights.Role
    cluster: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Credential:
    username: str
    password_hash: str
    role: rights.Role
    cluster: str | None


def controller_password(state_dir: Path) -> str:
    """The controller's own broker password, created on first use (0600 beside the key)."""
    path = state_dir / PASSWORD_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise errors.StateError(f"cannot read {path}: {exc.strerror}") from exc
    password = tokens.new_secret()
    keystore.write_atomic(path, password.encode(), mode=0o600)
    return password


def _token(row: tuple[object, ...]) -> tokens.Token:
    (id_, secret_hash, group, labels, approval, max_uses, uses, created_at, expires_at, revoked_at) = row
    return tokens.Token(
        id=str(id_),
        secret_hash=str(secret_hash),
        group=str(group),
        labels=json.loads(str(labels)),
        approval=tokens.Approval(approval),
        max_uses=max_uses if isinstance(max_uses, int) else None,
        uses=int(uses),  # type: ignore[call-overload]
        created_at=float(created_at),  # type: ignore[arg-type]
        expires_at=float(expires_at),  # type: ignore[arg-type]
        revoked_at=float(revoked_at) if revoked_at is not None else None,  # type: ignore[arg-type]
    )


def _request(row: tuple[object, ...]) -> JoinRequest:
    name, client_id, token_id, group, labels, facts, public_key, status, received_at = row
    return JoinRequest(
        name=str(name),
        client_id=str(client_id),
        token_id=str(token_id),
        group=str(group),
        labels=json.loads(str(labels)),
        facts=json.loads(str(facts)),
        public_key=bytes.fromhex(str(public_key)),
        status=RequestStatus(status),
        received_at=float(received_at),  # type: ignore[arg-type]
    )


_TOKEN_COLUMNS = (
    "id, secret_hash, group_name, labels, approval, max_uses, uses, created_at, expires_at, revoked_at"
)
_REQUEST_COLUMNS = "name, client_id, token_id, group_name, labels, facts, public_key, status, received_at"


class Identities:
    def __init__(self, state: State) -> None:
        self.state = state

    # -- tokens -----------------------------------------------------------------------------

    def add_token(self, token: tokens.Token, secret: str) -> None:
        """Record a token and queue its bootstrap account for an external broker."""
        with self.state.transaction() as db:
            if not db.execute("SELECT 1 FROM groups WHERE name = ?", (token.group,)).fetchone():
                raise errors.ControllerError(
                    f"no group {token.group!r}; create it with 'edgefleet group create {token.group}'"
                )
            db.execute(
                f"INSERT INTO tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    token.id,
                    token.secret_hash,
                    token.group,
                    json.dumps(dict(token.labels), sort_keys=True),
                    token.approval.value,
                    token.max_uses,
                    0,
                    token.created_at,
                    token.expires_at,
                ),
            )
            _queue(db, ChangeAction.ADD, token.username, rights.Role.BOOTSTRAP, password=secret)

    def token(self, token_id: str) -> tokens.Token | None:
        rows = self.state.query(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE id = ?", (token_id,))
        return _token(rows[0]) if rows else None

    def all_tokens(self) -> list[tokens.Token]:
        return [
            _token(r) for r in self.state.query(f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY created_at")
        ]

    def revoke_token(self, token_id: str, now: float) -> tokens.Token:
        with self.state.transaction() as db:
            if not db.execute("SELECT 1 FROM tokens WHERE id = ?", (token_id,)).fetchone():
                raise errors.ControllerError(f"no token {token_id!r}; 'edgefleet token list' shows them")
            db.execute("UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", (now, token_id))
            _queue(db, ChangeAction.REMOVE, registration.bootstrap_username(token_id), rights.Role.BOOTSTRAP)
        token = self.token(token_id)
        assert token is not None
        return token

    def retire_tokens(self, now: float) -> list[str]:
        """Queue removal of the bootstrap accounts of expired tokens; return their ids.

        A used-up token keeps its account until it expires: the controller
        refuses new devices with a precise reason, and a device whose reply
        was lost can still ask again with its same key."""
        retired = []
        with self.state.transaction() as db:
            rows = db.execute(
                "SELECT id FROM tokens WHERE revoked_at IS NULL AND expires_at <= ?", (now,)
            ).fetchall()
            for (token_id,) in rows:
                # Retiring is revoking that nobody asked for: the account goes, the record stays.
                db.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", (now, token_id))
                _queue(
                    db, ChangeAction.REMOVE, registration.bootstrap_username(token_id), rights.Role.BOOTSTRAP
                )
                retired.append(token_id)
        return retired

    # -- join requests -------------------------------------------------------------------------

    def request(self, name: str) -> JoinRequest | None:
        rows = self.state.query(f"SELECT {_REQUEST_COLUMNS} FROM join_requests WHERE name = ?", (name,))
        return _request(rows[0]) if rows else None

    def requests(self, status: RequestStatus) -> list[JoinRequest]:
        rows = self.state.query(
            f"SELECT {_REQUEST_COLUMNS} FROM join_requests WHERE status = ? ORDER BY received_at",
            (status.value,),
        )
        return [_request(r) for r in rows]

    def hold(self, request: JoinRequest, *, consume: bool) -> None:
        """Record (or refresh) a request that waits for an operator.

        An operator's decision made meanwhile (approved, and so on) is never
        overwritten: only a missing, pending or denied request is (re)written."""
        with self.state.transaction() as db:
            row = db.execute("SELECT status FROM join_requests WHERE name = ?", (request.name,)).fetchone()
            if row is not None and row[0] not in (RequestStatus.PENDING.value, RequestStatus.DENIED.value):
                return
            self._upsert_request(db, request)
            if consume:
                db.execute("UPDATE tokens SET uses = uses + 1 WHERE id = ?", (request.token_id,))

    def decide(self, name: str, status: RequestStatus, now: float) -> JoinRequest:
        """An operator's approve or deny of a pending request."""
        with self.state.transaction() as db:
            row = db.execute("SELECT status FROM join_requests WHERE name = ?", (name,)).fetchone()
            if row is None or row[0] != RequestStatus.PENDING.value:
                raise errors.ControllerError(
                    f"no pending join request for {name!r}; 'edgefleet clusters pending' lists them"
                )
            db.execute(
                "UPDATE join_requests SET status = ?, decided_at = ? WHERE name = ?",
                (status.value, now, name),
            )
        request = self.request(name)
        assert request is not None
        return request

    def save_reply(self, name: str, client_id: str, reply: bytes) -> None:
        """Keep the sealed approval sent to `client_id`, to send again if that client asks again.

        Only the device that asked can open it, so keeping it exposes nothing."""
        with self.state.transaction() as db:
            db.execute(
                "UPDATE join_requests SET reply = ? WHERE name = ? AND client_id = ?",
                (reply, name, client_id),
            )

    def sent_reply(self, name: str, client_id: str) -> bytes | None:
        """The approval already sent to this very client (same connection of the same device), if any."""
        rows = self.state.query(
            "SELECT reply FROM join_requests WHERE name = ? AND client_id = ? AND status = ?",
            (name, client_id, RequestStatus.DONE.value),
        )
        found = rows[0][0] if rows else None
        return bytes(found) if isinstance(found, (bytes, memoryview)) else None

    def forget_request(self, name: str) -> None:
        with self.state.transaction() as db:
            db.execute("DELETE FROM join_requests WHERE name = ?", (name,))

    def _upsert_request(self, db: sqlite3.Connection, request: JoinRequest) -> None:
        db.execute(
            f"INSERT OR REPLACE INTO join_requests ({_REQUEST_COLUMNS}, decided_at, reply) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
            (
                request.name,
                request.client_id,
                request.token_id,
                request.group,
                json.dumps(dict(request.labels), sort_keys=True),
                json.dumps(dict(request.facts), sort_keys=True),
                request.public_key.hex(),
                request.status.value,
                request.received_at,
            ),
        )

    # -- clusters ---------------------------------------------------------------------------------

    def registered(self, name: str) -> Registered | None:
        rows = self.state.query(
            "SELECT name, group_name, public_key, revoked_at FROM clusters WHERE name = ?", (name,)
        )
        if not rows:
            return None
        name_, group, key, revoked = rows[0]
        return Registered(
            str(name_), str(group), bytes.fromhex(str(key)) if key else None, revoked is not None
        )

    def topic_root(self, group: str) -> str:
        rows = self.state.query("SELECT topic_root FROM groups WHERE name = ?", (group,))
        if not rows:
            raise errors.ControllerError(f"no group {group!r}")
        return str(rows[0][0])

    def register(self, request: JoinRequest, password: str, *, consume: bool) -> None:
        """Create (or, for the same device key, re-issue) the cluster and its credential."""
        username = cluster_username(request.name)
        now = time.time()
        with self.state.transaction() as db:
            row = db.execute("SELECT revoked_at FROM clusters WHERE name = ?", (request.name,)).fetchone()
            if row is not None and row[0] is not None:  # revoked between the decision and now
                raise errors.ControllerError(f"cluster {request.name!r} was revoked; join under another name")
            db.execute(
                "INSERT INTO clusters (name, group_name, labels, created_at, public_key, facts) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "labels = excluded.labels, facts = excluded.facts",
                (
                    request.name,
                    request.group,
                    json.dumps(dict(request.labels), sort_keys=True),
                    now,
                    request.public_key.hex(),
                    json.dumps(dict(request.facts), sort_keys=True),
                ),
            )
            _set_credential(db, username, password, rights.Role.CLUSTER, request.name, now)
            self._upsert_request(db, dataclasses.replace(request, status=RequestStatus.DONE))
            if consume:
                db.execute("UPDATE tokens SET uses = uses + 1 WHERE id = ?", (request.token_id,))

    def add_credential(self, cluster: str, password: str) -> None:
        """A credential for a cluster added by hand (`edgefleet cluster add`)."""
        with self.state.transaction() as db:
            _set_credential(
                db, cluster_username(cluster), password, rights.Role.CLUSTER, cluster, time.time()
            )

    def revoke_cluster(self, name: str, now: float) -> None:
        with self.state.transaction() as db:
            row = db.execute("SELECT revoked_at FROM clusters WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise errors.ControllerError(f"no cluster {name!r}")
            db.execute("UPDATE clusters SET revoked_at = COALESCE(revoked_at, ?) WHERE name = ?", (now, name))
            db.execute("DELETE FROM credentials WHERE username = ?", (cluster_username(name),))
            _queue(db, ChangeAction.REMOVE, cluster_username(name), rights.Role.CLUSTER, cluster=name)

    # -- credentials ----------------------------------------------------------------------------

    def ensure_controller(self, password: str) -> None:
        with self.state.transaction() as db:
            row = db.execute(
                "SELECT password_hash FROM credentials WHERE username = ?", (CONTROLLER_USERNAME,)
            ).fetchone()
            if row is None or not tokens.secret_matches(password, row[0]):
                _set_credential(db, CONTROLLER_USERNAME, password, rights.Role.CONTROLLER, None, time.time())

    def credential(self, username: str) -> Credential | None:
        rows = self.state.query(
            "SELECT username, password_hash, role, cluster FROM credentials WHERE username = ?", (username,)
        )
        if not rows:
            return None
        user, password_hash, role, cluster = rows[0]
        return Credential(str(user), str(password_hash), rights.Role(role), str(cluster) if cluster else None)

    # -- the queue of changes for an external broker ----------------------------------------------

    def changes(self) -> list[BrokerChange]:
        rows = self.state.query(
            "SELECT seq, action, username, role, cluster, password FROM broker_changes ORDER BY seq"
        )
        return [
            BrokerChange(
                int(seq),  # type: ignore[call-overload]
                ChangeAction(action),
                str(user),
                rights.Role(role),
                str(cluster) if cluster else None,
                str(password) if password is not None else None,
            )
            for seq, action, user, role, cluster, password in rows
        ]

    def change_done(self, seq: int) -> None:
        with self.state.transaction() as db:
            db.execute("DELETE FROM broker_changes WHERE seq = ?", (seq,))


def _queue(
    db: sqlite3.Connection,
    action: ChangeAction,
    username: str,
    role: rights.Role,
    *,
    cluster: str | None = None,
    password: str | None = None,
) -> None:
    db.execute(
        "INSERT INTO broker_changes (username, action, role, cluster, password) VALUES (?, ?, ?, ?, ?)",
        (username, action.value, role.value, cluster, password),
    )


def _set_credential(
    db: sqlite3.Connection, username: str, password: str, role: rights.Role, cluster: str | None, now: float
) -> None:
    db.execute(
        "INSERT OR REPLACE INTO credentials (username, password_hash, role, cluster, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (username, tokens.hash_secret(password), role.value, cluster, now),
    )
    _queue(db, ChangeAction.ADD, username, role, cluster=cluster, password=password)
