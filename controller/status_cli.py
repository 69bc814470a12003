"""`edgefleet status|clusters|bundles`: the fleet's readiness, read from the controller's summaries.

The controller publishes retained JSON summaries (wire.summaries); these
commands only read them, so they work from any machine that can reach the
broker, with no state directory. MQTT has no end-of-retained marker, so a read
is complete when the fleet summary has arrived together with as many group
and bundle summaries as it counts, or when the deadline passes (then what
arrived is shown, with a warning naming what did not).

A `Snapshot` holds what was received and is fed one (topic, payload) at a
time; formatting is pure (snapshot and `now` in, lines out) so tests pin the
tables without a broker. Summaries that cannot be used (wire.errors.WireError)
are skipped and reported once on stderr, never shown as data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode

from controller import errors, login, publishing
from wire import errors as wire_errors
from wire import summaries, topics, urls

log = logging.getLogger(__name__)

# Retained summaries arrive within milliseconds of subscribing; 5 s also covers a slow TLS handshake.
DEFAULT_TIMEOUT = 5.0
# A busy controller republishes several times a second; redrawing faster only flickers.
REDRAW_INTERVAL = 0.5
CLEAR_SCREEN = "\x1b[H\x1b[2J"
SEPARATOR = "---"
# Malformed topics named in the warning; the count stays exact.
MALFORMED_NAMES = 3


@dataclass
class Snapshot:
    """The usable summaries received under one prefix, by topic, and why the others were not."""

    topics: topics.Topics
    fleet: summaries.FleetSummary | None = None
    groups: dict[str, summaries.GroupSummary] = field(default_factory=dict)
    bundles: dict[str, summaries.BundleSummary] = field(default_factory=dict)
    malformed: dict[str, str] = field(default_factory=dict)  # topic -> why it was skipped
    _payloads: dict[str, bytes] = field(default_factory=dict, repr=False)

    def receive(self, topic: str, payload: bytes) -> bool:
        """Take one message (an empty payload deletes a retained one); return whether anything changed."""
        if self._payloads.get(topic, b"") == payload:
            return False
        self._forget(topic)
        if not payload:
            return True
        self._payloads[topic] = payload
        try:
            address = self.topics.parse(topic)
            if address.kind is topics.Kind.SUMMARY:
                self.fleet = _checked_fleet(payload)
            elif address.kind is topics.Kind.SUMMARY_GROUP and address.group is not None:
                self.groups[topic] = _checked_group(payload, address.group)
            elif address.kind is topics.Kind.SUMMARY_BUNDLE and address.name is not None:
                self.bundles[topic] = _checked_bundle(payload, address.name)
            else:
                raise wire_errors.InvalidName(f"{topic} is not a summary topic")
        except wire_errors.WireError as exc:
            self.malformed[topic] = str(exc)
        return True

    def _forget(self, topic: str) -> None:
        self._payloads.pop(topic, None)
        self.malformed.pop(topic, None)
        self.groups.pop(topic, None)
        self.bundles.pop(topic, None)
        if topic == self.topics.summary():
            self.fleet = None

    def _arrived(self, kind: str) -> int:
        """Group or bundle summaries received, usable or not: a malformed one will not get better."""
        under = f"{self.topics.summary()}/{kind}/"
        return len(self.groups if kind == "groups" else self.bundles) + sum(
            1 for topic in self.malformed if topic.startswith(under)
        )

    def complete(self) -> bool:
        """Whether everything the fleet summary counts has arrived (or the fleet summary is unusable)."""
        if self.fleet is None:
            return self.topics.summary() in self.malformed
        return (
            self._arrived("groups") >= self.fleet["groups"]
            and self._arrived("bundles") >= self.fleet["bundles"]
        )

    def shortfall(self) -> str | None:
        """What the fleet summary counts but did not arrive, if anything."""
        if self.fleet is None or self.complete():
            return None
        return (
            f"the fleet summary counts {self.fleet['groups']} group(s) and {self.fleet['bundles']} "
            f"bundle(s), but {self._arrived('groups')} group and {self._arrived('bundles')} "
            "bundle summaries arrived"
        )


def _fields(
    document: Mapping[str, object], what: str, *, counts: Sequence[str] = (), texts: Sequence[str] = ()
) -> None:
    for key in counts:
        value = document.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise wire_errors.Malformed(f"{what}.{key} is not a count")
    for key in texts:
        if not isinstance(document.get(key), str):
            raise wire_errors.Malformed(f"{what}.{key} is not a string")


def _checked_fleet(payload: bytes) -> summaries.FleetSummary:
    document = summaries.decode_fleet(payload)
    counts = ("clusters", "online", "bundles", "bundles_ready", "groups", "desired", "ready", "offline")
    _fields(document, "fleet summary", counts=counts, texts=("state", "message"))
    return document


def _checked_bundle(payload: bytes, bundle: str) -> summaries.BundleSummary:
    document = summaries.decode_bundle(payload)
    counts = ("generation", "desired", "ready", "offline")
    _fields(document, "bundle summary", counts=counts, texts=("bundle", "state", "message"))
    if document["bundle"] != bundle:
        raise wire_errors.WrongBinding(f"bundle summary of {document['bundle']!r} on the topic of {bundle!r}")
    return document


def _checked_group(payload: bytes, group: str) -> summaries.GroupSummary:
    document = summaries.decode_group(payload)
    counts = ("clusters", "online", "desired", "ready", "offline")
    _fields(document, "group summary", counts=counts, texts=("group", "state", "message"))
    if document["group"] != group:
        raise wire_errors.WrongBinding(f"group summary of {document['group']!r} on the topic of {group!r}")
    rows: object = document["cluster_rows"]
    if not isinstance(rows, list):
        raise wire_errors.Malformed("group summary.cluster_rows is not a list")
    for number, row in enumerate(rows):
        what = f"group summary.cluster_rows[{number}]"
        if not isinstance(row, dict):
            raise wire_errors.Malformed(f"{what} is not an object")
        _fields(row, what, counts=("desired", "ready"), texts=("name", "group", "state"))
        labels = row.get("labels")
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise wire_errors.Malformed(f"{what}.labels is not a map of strings")
        if row.get("online") not in (True, False, None):
            raise wire_errors.Malformed(f"{what}.online is not true, false or null")
        seen = row.get("last_seen")
        if seen is not None and (not isinstance(seen, int | float) or isinstance(seen, bool)):
            raise wire_errors.Malformed(f"{what}.last_seen is not a time")
        count, first = row.get("agent_errors", 0), row.get("agent_error", "")
        if type(count) is not int or count < 0 or not isinstance(first, str):
            raise wire_errors.Malformed(f"{what}.agent_errors is not a count, or agent_error not a string")
    return document


# Formatting: pure, snapshot (and the wall clock's `now`) in, lines out.


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """kubectl-style columns: widths from the content, three spaces apart, no trailing blanks."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    return [
        "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (headers, *rows)
    ]


def ago(seconds: float) -> str:
    seconds = max(0.0, seconds)  # a clock slightly ahead of ours is "now", not the future
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def _status(state: str, message: str) -> str:
    if not message or message.startswith(state):
        return message or state
    return f"{state}; {message}"


def _ratio(part: int, whole: int) -> str:
    return f"{part}/{whole}"


def _online(value: bool | None) -> str:
    return "unknown" if value is None else "yes" if value else "no"


def _labels(labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items())) or "<none>"


def _groups(snapshot: Snapshot) -> list[summaries.GroupSummary]:
    return sorted(snapshot.groups.values(), key=lambda g: g["group"])


def _bundles(snapshot: Snapshot) -> list[summaries.BundleSummary]:
    return sorted(snapshot.bundles.values(), key=lambda b: b["bundle"])


def _rows(snapshot: Snapshot) -> list[summaries.ClusterRow]:
    rows = [row for group in _groups(snapshot) for row in group["cluster_rows"]]
    return sorted(rows, key=lambda r: (r["group"], r["name"]))


def fleet_line(fleet: summaries.FleetSummary | None) -> str:
    if fleet is None:
        return "FLEET: no fleet summary (is a controller running?)"
    return (
        f"FLEET: {fleet['groups']} groups, {_ratio(fleet['online'], fleet['clusters'])} clusters online, "
        f"{_ratio(fleet['bundles_ready'], fleet['bundles'])} bundles ready, "
        f"{_ratio(fleet['ready'], fleet['desired'])} deployments ready, {fleet['offline']} offline"
        f"{f', {revoked} revoked' if (revoked := fleet.get('revoked')) else ''}: "
        f"{_status(fleet['state'], fleet['message'])}"
    )


def status_lines(snapshot: Snapshot, *, now: float) -> list[str]:
    groups = [
        [
            g["group"],
            _ratio(g["online"], g["clusters"]),
            _ratio(g["ready"], g["desired"]),
            _status(g["state"], g["message"]),
        ]
        for g in _groups(snapshot)
    ]
    bundles = [
        [
            b["bundle"],
            str(b["generation"]),
            _ratio(b["ready"], b["desired"]),
            str(b["offline"]),
            _status(b["state"], b["message"]),
        ]
        for b in _bundles(snapshot)
    ]
    lines = (
        table(["GROUP", "CLUSTERS", "BUNDLES-READY", "STATUS"], groups) if groups else ["No groups found."]
    )
    lines.append("")
    headers = ["BUNDLE", "GENERATION", "CLUSTERS-READY", "OFFLINE", "STATUS"]
    lines += table(headers, bundles) if bundles else ["No bundles found."]
    return [*lines, "", fleet_line(snapshot.fleet)]


# Rows `edgefleet clusters` prints unless told otherwise: a 10,000-cluster fleet is
# filtered (--group, --state), not scrolled.
DEFAULT_CLUSTER_ROWS = 200


@dataclass(frozen=True)
class Selection:
    """Which clusters `edgefleet clusters` shows."""

    group: str | None = None  # a topic root; its sub-groups too (edge matches edge/us-west)
    state: str | None = None  # a bundle state, Offline or Revoked; any case
    limit: int | None = None  # at most this many rows; None: all

    def keeps(self, group: str, state: str, online: bool | None) -> bool:
        if self.group is not None and group != self.group and not group.startswith(self.group + "/"):
            return False
        if self.state is None:
            return True
        wanted = self.state.lower()
        return wanted == state.lower() or (wanted == "offline" and online is False)


def _cluster_rows(snapshot: Snapshot, selection: Selection) -> list[summaries.ClusterRow]:
    return [r for r in _rows(snapshot) if selection.keeps(r["group"], r["state"], r["online"])]


def _revoked(snapshot: Snapshot, selection: Selection) -> list[tuple[str, str]]:
    """(group, name) of revoked clusters: they count nowhere, and are listed so nobody wonders."""
    return [
        (g["group"], name)
        for g in _groups(snapshot)
        for name in g.get("revoked", [])
        if isinstance(name, str) and selection.keeps(g["group"], "Revoked", False)
    ]


def cluster_lines(snapshot: Snapshot, *, now: float, selection: Selection | None = None) -> list[str]:
    selection = selection or Selection(limit=DEFAULT_CLUSTER_ROWS)
    rows = [
        [
            r["name"],
            r["group"],
            _labels(r["labels"]),
            _online(r["online"]),
            "never" if r["last_seen"] is None else ago(now - r["last_seen"]),
            _ratio(r["ready"], r["desired"]),
            _state(r),
        ]
        for r in _cluster_rows(snapshot, selection)
    ]
    rows += [[name, group, "-", "no", "-", "-", "Revoked"] for group, name in _revoked(snapshot, selection)]
    if not rows:
        return ["No clusters found."]
    shown = rows if selection.limit is None else rows[: selection.limit]
    lines = table(["NAME", "GROUP", "LABELS", "ONLINE", "LAST-SEEN", "BUNDLES-READY", "STATE"], shown)
    if len(shown) < len(rows):
        lines.append(
            f"… and {len(rows) - len(shown)} more: narrow with --group or --state, or --limit 0 for all"
        )
    return lines


def _state(row: summaries.ClusterRow) -> str:
    """The row's state, and that its agent has trouble of its own (`-o json` has the first line)."""
    trouble = row.get("agent_errors", 0)
    if not trouble:
        return row["state"]
    return f"{row['state']} (agent: {trouble} error{'s' if trouble > 1 else ''})"


def cluster_document(snapshot: Snapshot, selection: Selection | None = None) -> list[summaries.ClusterRow]:
    rows = _cluster_rows(snapshot, selection or Selection())
    limit = selection.limit if selection is not None else None
    return rows if limit is None else rows[:limit]


def bundle_lines(snapshot: Snapshot, *, now: float) -> list[str]:
    rows = [
        [
            b["bundle"],
            str(b["generation"]),
            _ratio(b["ready"], b["desired"]),
            str(b["offline"]),
            b["state"],
            b["message"],
        ]
        for b in _bundles(snapshot)
    ]
    if not rows:
        return ["No bundles found."]
    return table(["BUNDLE", "GENERATION", "READY/DESIRED", "OFFLINE", "STATE", "MESSAGE"], rows)


def status_document(snapshot: Snapshot) -> dict[str, Any]:
    return {"fleet": snapshot.fleet, "groups": _groups(snapshot), "bundles": _bundles(snapshot)}


@dataclass(frozen=True)
class View:
    """One command's output: table lines, or the JSON document scripts read.

    Both take the `Selection` of `clusters`; the other commands show everything."""

    lines: Callable[[Snapshot, float, Selection | None], list[str]]
    document: Callable[[Snapshot, Selection | None], object]


VIEWS = {
    "status": View(lambda s, now, _: status_lines(s, now=now), lambda s, _: status_document(s)),
    "clusters": View(
        lambda s, now, selection: cluster_lines(s, now=now, selection=selection), cluster_document
    ),
    "bundles": View(lambda s, now, _: bundle_lines(s, now=now), lambda s, _: _bundles(s)),
}


def render(
    snapshot: Snapshot, *, command: str, output: str, now: float, selection: Selection | None = None
) -> list[str]:
    """`command`'s output; `selection` narrows `clusters` (default: the first DEFAULT_CLUSTER_ROWS rows)."""
    view = VIEWS[command]
    if output == "json":
        return json.dumps(view.document(snapshot, selection), indent=2, sort_keys=True).splitlines()
    return view.lines(snapshot, now, selection)


def malformed_warning(snapshot: Snapshot) -> str | None:
    if not snapshot.malformed:
        return None
    count = len(snapshot.malformed)
    named = "; ".join(f"{t}: {why}" for t, why in sorted(snapshot.malformed.items())[:MALFORMED_NAMES])
    more = f"; and {count - MALFORMED_NAMES} more" if count > MALFORMED_NAMES else ""
    return f"ignored {count} malformed {'summary' if count == 1 else 'summaries'} ({named}{more})"


# Reading: one subscription, a reader task feeding the snapshot, waiting on the loop clock.


class _Subscription:
    """Feeds every message to the snapshot in a task of its own, so waiting never loses one."""

    def __init__(self, mqtt: aiomqtt.Client, snapshot: Snapshot, url: urls.BrokerUrl) -> None:
        self.snapshot = snapshot
        self._mqtt = mqtt
        self._url = url
        self._changed = asyncio.Event()
        self._lost: aiomqtt.MqttError | None = None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self._mqtt.messages:
                if not any(message.topic.matches(f) for f in _filters(self.snapshot.topics)):
                    # The embedded amqtt broker (0.12) may hand a new client retained messages
                    # matching an earlier client's subscriptions: not ours to show or count.
                    log.debug("ignoring %s: outside the summary subscriptions", message.topic.value)
                    continue
                payload = message.payload
                data = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
                if self.snapshot.receive(message.topic.value, data):
                    self._changed.set()
        except aiomqtt.MqttError as exc:
            self._lost = exc
            self._changed.set()

    async def changed(self, *, deadline: float | None) -> bool:
        """Wait until the snapshot changes (True) or the loop clock reaches `deadline` (False)."""
        try:
            async with asyncio.timeout_at(deadline):
                await self._changed.wait()
        except TimeoutError:
            return False
        self.check()
        return True

    def check(self) -> None:
        """Raise if the connection was lost; otherwise forget the changes seen so far."""
        if self._lost is not None:
            raise errors.ControllerError(f"lost the connection to broker {self._url}: {self._lost}")
        self._changed.clear()

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


def _filters(t: topics.Topics) -> tuple[str, str, str]:
    return t.summary(), f"{t.summary()}/bundles/+", f"{t.summary()}/groups/#"


@asynccontextmanager
async def _subscribed(
    url: urls.BrokerUrl, snapshot: Snapshot, *, deadline: float
) -> AsyncIterator[_Subscription]:
    """Connect and subscribe to every summary by `deadline`; disconnect (and stop reading) on exit."""
    try:
        async with AsyncExitStack() as stack:
            try:
                async with asyncio.timeout_at(deadline):
                    mqtt = await stack.enter_async_context(
                        publishing.client(url, identifier=f"edgefleet-status-{secrets.token_hex(6)}")
                    )
            except TimeoutError as exc:
                raise errors.ControllerError(f"cannot reach broker {url}: it did not answer in time") from exc
            except aiomqtt.MqttError as exc:
                raise errors.ControllerError(f"cannot reach broker {url}: {exc}") from exc
            subscription = _Subscription(mqtt, snapshot, url)
            stack.push_async_callback(subscription.close)
            for topic_filter in _filters(snapshot.topics):
                granted = await mqtt.subscribe(topic_filter, qos=1)
                if any(c.is_failure if isinstance(c, ReasonCode) else c >= 0x80 for c in granted):
                    raise errors.ControllerError(f"broker {url} refused the subscription to {topic_filter}")
            yield subscription
    except aiomqtt.MqttError as exc:  # subscribing or disconnecting
        raise errors.ControllerError(f"broker {url}: {exc}") from exc


async def _first_complete(subscription: _Subscription, url: urls.BrokerUrl, *, deadline: float) -> None:
    snapshot = subscription.snapshot
    while not snapshot.complete() and await subscription.changed(deadline=deadline):
        pass
    if snapshot.fleet is None:
        why = snapshot.malformed.get(snapshot.topics.summary())
        if why is not None:
            raise errors.ControllerError(f"the fleet summary on {url} cannot be used: {why}")
        raise errors.ControllerError(f"no fleet summary on {url}: is a controller running?")


async def read(url: urls.BrokerUrl, snapshot: Snapshot, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Fill `snapshot` with the retained summaries; raise ControllerError without a fleet summary."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with _subscribed(url, snapshot, deadline=deadline) as subscription:
        await _first_complete(subscription, url, deadline=deadline)


async def watch(
    url: urls.BrokerUrl,
    snapshot: Snapshot,
    draw: Callable[[Snapshot], None],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = REDRAW_INTERVAL,
) -> None:
    """Draw once the retained summaries are in, then again on every change, at most every `interval`.

    Runs until cancelled (Ctrl-C), which disconnects cleanly.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with _subscribed(url, snapshot, deadline=deadline) as subscription:
        await _first_complete(subscription, url, deadline=deadline)
        subscription.check()
        draw(snapshot)
        drawn = loop.time()
        while True:
            await subscription.changed(deadline=None)
            if loop.time() < drawn + interval:
                await asyncio.sleep(drawn + interval - loop.time())  # changes meanwhile join this frame
            subscription.check()
            draw(snapshot)
            drawn = loop.time()


# The commands: parse, read or watch, print.


def add_commands(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    add_broker: Callable[[argparse.ArgumentParser], None],
) -> dict[str, argparse.ArgumentParser]:
    """Add `status`, `clusters` and `bundles`; `add_broker` adds --broker and --broker-ca.

    Returns the parsers by name, so other modules can hang actions under them."""
    helps = {
        "status": "fleet readiness: groups, bundles and totals (like `kubectl get fleet`)",
        "clusters": "every cluster: online, last seen, bundles ready",
        "bundles": "every bundle: generation, clusters ready, offline, state",
    }
    parsers = {}
    for name, text in helps.items():
        parser = parsers[name] = commands.add_parser(name, help=text)
        parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
        parser.add_argument("--watch", action="store_true", help="redraw on every change until Ctrl-C")
        parser.add_argument(
            "--topic-prefix", default="fleet", help="the controller's topic prefix (default 'fleet')"
        )
        parser.add_argument(
            "--timeout",
            type=_positive,
            default=DEFAULT_TIMEOUT,
            help=f"seconds to wait for the retained summaries (default {DEFAULT_TIMEOUT:g})",
        )
        add_broker(parser)
        parser.set_defaults(run=run, status_command=name)
    clusters = parsers["clusters"]
    clusters.add_argument("--group", help="only this group (a topic root) and its sub-groups")
    clusters.add_argument(
        "--state", help="only clusters in this state: Ready, NotReady, ..., Offline, Revoked"
    )
    clusters.add_argument(
        "--limit",
        type=int,
        help=f"at most this many rows (default {DEFAULT_CLUSTER_ROWS} in a table, all in JSON; 0: all)",
    )
    return parsers


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


# Where the controller keeps its state (controller.cli): on the controller's machine
# the status commands log in with its account.
STATE_DIR_ENV = "EDGEFLEET_STATE_DIR"


def _broker(args: argparse.Namespace) -> urls.BrokerUrl:
    try:
        url = urls.BrokerUrl.parse(args.broker, ca_file=args.broker_ca)
    except wire_errors.WireError as exc:
        raise errors.ControllerError(f"--broker: {exc}") from exc
    state_dir = os.environ.get(STATE_DIR_ENV)
    return login.login(url, Path(state_dir) if state_dir else None)


def _selection(args: argparse.Namespace) -> Selection | None:
    """--group, --state and --limit of `clusters` (other commands have none)."""
    limit = getattr(args, "limit", None)
    if limit is not None and limit < 0:
        raise errors.ControllerError("--limit must be 0 (all) or more")
    if limit is None and args.output == "table":
        limit = DEFAULT_CLUSTER_ROWS
    return Selection(
        group=getattr(args, "group", None),
        state=getattr(args, "state", None),
        limit=None if limit == 0 else limit,
    )


def _topics(args: argparse.Namespace) -> topics.Topics:
    try:
        return topics.Topics(args.topic_prefix)
    except wire_errors.WireError as exc:
        raise errors.ControllerError(f"--topic-prefix: {exc}") from exc


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> None:
    """Run `args.status_command` (status, clusters or bundles) as parsed by `add_commands`."""
    out = out or sys.stdout
    err = err or sys.stderr
    url, snapshot = _broker(args), Snapshot(_topics(args))
    command, output = args.status_command, args.output
    try:
        if args.watch:
            _run_watch(url, snapshot, args, out)
        else:
            asyncio.run(read(url, snapshot, timeout=args.timeout))
            if (shortfall := snapshot.shortfall()) is not None:
                print(f"edgefleet: warning: {shortfall} within {args.timeout:g}s", file=err)
            for line in render(
                snapshot, command=command, output=output, now=time.time(), selection=_selection(args)
            ):
                print(line, file=out)
    finally:
        if (warning := malformed_warning(snapshot)) is not None:
            print(f"edgefleet: warning: {warning}", file=err)


def frame(lines: Sequence[str], *, tty: bool, first: bool, output: str) -> str:
    """One watch frame as text: a terminal is cleared first; in a pipe, table frames get a separator
    (JSON frames stay a plain stream of documents, which `jq` reads as it comes)."""
    head = CLEAR_SCREEN if tty else f"{SEPARATOR}\n" if not first and output == "table" else ""
    return head + "".join(f"{line}\n" for line in lines)


def _run_watch(url: urls.BrokerUrl, snapshot: Snapshot, args: argparse.Namespace, out: TextIO) -> None:
    tty, drawn = out.isatty(), 0

    def draw(current: Snapshot) -> None:
        nonlocal drawn
        lines = render(
            current,
            command=args.status_command,
            output=args.output,
            now=time.time(),
            selection=_selection(args),
        )
        print(frame(lines, tty=tty, first=not drawn, output=args.output), end="", file=out, flush=True)
        drawn += 1

    # Ctrl-C is how watching ends: asyncio.run cancels the watch, which disconnects, then re-raises.
    with suppress(KeyboardInterrupt):
        asyncio.run(watch(url, snapshot, draw, timeout=args.timeout))
