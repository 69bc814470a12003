"""`edgefleet token create|list|revoke` and `edgefleet clusters pending|approve|deny|revoke`.

These only write the registry. The running controller (`edgefleet server` or
`edgefleet controller`) carries each change to the broker within its
`security_interval` (controller.registering): a new token's bootstrap
account, an approval's reply, a revocation's disconnect. `token create`
waits briefly for that and says so when no controller picked it up.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from controller import errors, fleet_cli, keystore, tlsca, tokens
from controller.identities import Identities, RequestStatus
from controller.state import State
from wire import errors as wire_errors
from wire import joining, keys, urls

# How long `token create` waits for the running controller to enable the token.
ENABLE_WAIT = 5.0


def add_commands(commands: Any, add_state_dir: Any) -> None:
    token = commands.add_parser("token", help="join tokens: how new clusters register")
    actions = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a join token and print its join string")
    create.add_argument("--group", required=True)
    create.add_argument("--ttl", default="168h", help="lifetime, e.g. 30m, 168h, 4w (default 168h)")
    create.add_argument("--label", action="append", default=[], help="k=v every cluster joining gets")
    create.add_argument("--approval", choices=("auto", "manual"), default="auto")
    create.add_argument("--max-uses", type=int, help="clusters that may join with it (default: unlimited)")
    fleet_cli.add_broker(create)
    create.set_defaults(run=_create)
    listing = actions.add_parser("list", help="list tokens (never their secrets)")
    listing.set_defaults(run=_list)
    revoke = actions.add_parser("revoke", help="revoke a token: nobody joins with it any more")
    revoke.add_argument("id")
    revoke.set_defaults(run=_revoke)
    for parser in (create, listing, revoke):
        add_state_dir(parser)


def add_cluster_actions(clusters: argparse.ArgumentParser, add_state_dir: Any) -> None:
    """`edgefleet clusters ACTION`; with no action `clusters` still lists readiness."""
    actions = clusters.add_subparsers(dest="clusters_command", metavar="[ACTION]")
    pending = actions.add_parser("pending", help="join requests waiting for approval")
    pending.set_defaults(run=_pending)
    for name, help_text, run in (
        ("approve", "approve a waiting join request", _approve),
        ("deny", "deny a waiting join request; the agent stops", _deny),
        ("revoke", "revoke a cluster: credentials deleted, disconnected, shown as revoked", _revoke_cluster),
    ):
        parser = actions.add_parser(name, help=help_text)
        parser.add_argument("name")
        parser.set_defaults(run=run)
        add_state_dir(parser)
    add_state_dir(pending)


def _registry(args: argparse.Namespace) -> tuple[State, Identities]:
    if args.state_dir is None:
        raise errors.StateError("no state directory: pass --state-dir or set EDGEFLEET_STATE_DIR")
    state = State.open(args.state_dir)
    return state, Identities(state)


def _ca_der(args: argparse.Namespace, url: urls.BrokerUrl) -> bytes | None:
    if args.broker_ca:
        return tlsca.der_of(Path(args.broker_ca))
    development = tlsca.ca_path(args.state_dir)
    if url.tls and development.exists():
        return tlsca.der_of(development)  # `edgefleet server --tls` made it
    return None


def issue(
    registry: Identities,
    key: keys.SigningKey,
    *,
    group: str,
    broker: urls.BrokerUrl,
    ttl: float = tokens.DEFAULT_TTL,
    approval: tokens.Approval = tokens.Approval.AUTO,
    labels: Mapping[str, str] | None = None,
    max_uses: int | None = None,
    ca_der: bytes | None = None,
    topic_prefix: str = "fleet",
    now: float | None = None,
) -> tuple[tokens.Token, joining.JoinString]:
    """Record a new token; return it and the join string that carries its secret."""
    now = time.time() if now is None else now
    secret = tokens.new_secret()
    token = tokens.Token(
        id=tokens.new_id(),
        secret_hash=tokens.hash_secret(secret),
        group=group,
        expires_at=now + ttl,
        created_at=now,
        approval=approval,
        labels=dict(labels or {}),
        max_uses=max_uses,
    )
    join = joining.JoinString(
        broker=str(dataclasses.replace(broker, username=None, password=None)),
        token_id=token.id,
        secret=secret,
        fingerprint=key.verify_key.fingerprint,
        topic_prefix=topic_prefix,
        ca_der=ca_der,
    )
    registry.add_token(token, secret)
    return token, join


def _create(args: argparse.Namespace) -> None:
    ttl = tokens.parse_duration(args.ttl)
    if args.max_uses is not None and args.max_uses < 1:
        raise errors.ControllerError("--max-uses must be at least 1")
    try:
        url = urls.BrokerUrl.parse(args.broker)
    except wire_errors.WireError as exc:
        raise errors.ControllerError(f"--broker: {exc}") from exc
    key = keystore.load(args.state_dir)
    state, registry = _registry(args)
    try:
        token, join = issue(
            registry,
            key,
            group=args.group,
            broker=url,
            ttl=ttl,
            approval=tokens.Approval(args.approval),
            labels=fleet_cli.parse_labels(args.label),
            max_uses=args.max_uses,
            ca_der=_ca_der(args, url),
        )
        enabled = _wait_enabled(registry)
    finally:
        state.close()
    expires = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(token.expires_at))
    uses = f", {args.max_uses} use(s)" if args.max_uses else ""
    print(
        f"token {token.id} for group {args.group}: {args.approval} approval, expires {expires}{uses}",
        file=sys.stderr,
    )
    if not enabled:
        print(
            "edgefleet: warning: no running controller has enabled it yet; it works once "
            "'edgefleet server' or 'edgefleet controller' runs",
            file=sys.stderr,
        )
    print(join.encode())


def _wait_enabled(registry: Identities) -> bool:
    """True once the running controller has taken every queued change to the broker."""
    deadline = time.monotonic() + ENABLE_WAIT
    while registry.changes():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # polling another process's progress in SQLite; nothing to wait on
    return True


def _list(args: argparse.Namespace) -> None:
    state, registry = _registry(args)
    try:
        found = registry.all_tokens()
    finally:
        state.close()
    now = time.time()
    for token in found:
        if token.revoked_at is not None:
            status = "revoked" if token.revoked_at < token.expires_at else "expired"
        elif token.expires_at <= now:
            status = "expired"
        else:
            status = f"valid {_left(token.expires_at - now)}"
        uses = f"{token.uses}/{token.max_uses}" if token.max_uses else f"{token.uses}"
        print(f"{token.id}  group {token.group:<24} {token.approval.value:<6}  uses {uses:<7} {status}")


def _left(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.0f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.0f}h"
    return f"{max(seconds, 0) / 60:.0f}m"


def _revoke(args: argparse.Namespace) -> None:
    state, registry = _registry(args)
    try:
        token = registry.revoke_token(args.id, time.time())
    finally:
        state.close()
    print(f"token {token.id} revoked; clusters that joined with it keep running")


def _pending(args: argparse.Namespace) -> None:
    state, registry = _registry(args)
    try:
        waiting = registry.requests(RequestStatus.PENDING)
    finally:
        state.close()
    if not waiting:
        print("no join requests are waiting")
    for request in waiting:
        labels = ",".join(f"{k}={v}" for k, v in request.labels.items()) or "-"
        facts = ",".join(f"{k}={v}" for k, v in request.facts.items()) or "-"
        age = time.time() - request.received_at
        print(
            f"{request.name:<32} group {request.group:<24} labels {labels}  facts {facts}  ({age:.0f}s ago)"
        )


def _approve(args: argparse.Namespace) -> None:
    _decide(args, RequestStatus.APPROVED)
    print(f"{args.name} approved; the controller registers it and tells the agent")


def _deny(args: argparse.Namespace) -> None:
    _decide(args, RequestStatus.DENIED)
    print(f"{args.name} denied; the agent is told and stops")


def _decide(args: argparse.Namespace, status: RequestStatus) -> None:
    state, registry = _registry(args)
    try:
        registry.decide(args.name, status, time.time())
    finally:
        state.close()


def _revoke_cluster(args: argparse.Namespace) -> None:
    state, registry = _registry(args)
    try:
        registry.revoke_cluster(args.name, time.time())
    finally:
        state.close()
    print(f"cluster {args.name} revoked: its credentials are deleted and the controller disconnects it")
