"""`edgefleet status|clusters|bundles`: the controller's summaries, read back as an operator sees them.

Formatting is pinned on crafted snapshots; reading runs against both real
brokers, with summaries published retained under each test's own prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import signal
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller import errors, publishing, status_cli
from tests import brokers, waiting
from wire import summaries, topics, urls

NOW = 1_700_000_000.0
# Watching redraws within milliseconds of a change; this only bounds a failing test.
WAIT = 15.0


def _fleet(**overrides: Any) -> summaries.FleetSummary:
    document: summaries.FleetSummary = {
        "clusters": 5,
        "online": 3,
        "bundles": 2,
        "bundles_ready": 1,
        "groups": 2,
        "desired": 6,
        "ready": 4,
        "offline": 1,
        "states": {"Ready": 5, "Modified": 1},
        "state": "Modified",
        "message": "Modified: 1 (edge/us-west/pi-03); Offline: 1 (edge/us-east/pi-07)",
        "ts": NOW,
    }
    document.update(overrides)  # type: ignore[typeddict-item]
    return document


def _row(name: str, group: str, **overrides: Any) -> summaries.ClusterRow:
    row: summaries.ClusterRow = {
        "name": name,
        "group": group,
        "labels": {},
        "online": True,
        "last_seen": NOW - 3,
        "agent_version": "0.1.0",
        "desired": 2,
        "ready": 2,
        "state": "Ready",
    }
    row.update(overrides)  # type: ignore[typeddict-item]
    return row


def _west() -> summaries.GroupSummary:
    return {
        "group": "edge/us-west",
        "clusters": 3,
        "online": 3,
        "bundles": {
            "metrics": {"desired": 1, "ready": 1, "state": "Ready"},
            "web": {"desired": 3, "ready": 2, "state": "Modified"},
        },
        "cluster_rows": [
            _row("pi-01", "edge/us-west", labels={"region": "us-west", "env": "prod"}, desired=1, ready=1),
            _row("pi-02", "edge/us-west", desired=1, ready=1),
            _row("pi-03", "edge/us-west", desired=2, ready=1, state="Modified"),
        ],
        "desired": 4,
        "ready": 3,
        "offline": 0,
        "states": {"Ready": 3, "Modified": 1},
        "state": "Modified",
        "message": "Modified: 1 (edge/us-west/pi-03)",
        "ts": NOW,
    }


def _east() -> summaries.GroupSummary:
    return {
        "group": "edge/us-east",
        "clusters": 2,
        "online": 0,
        "bundles": {
            "metrics": {"desired": 1, "ready": 0, "state": "Ready"},
            "web": {"desired": 1, "ready": 0, "state": "Ready"},
        },
        "cluster_rows": [
            _row("pi-07", "edge/us-east", online=False, last_seen=NOW - 7200, ready=0),
            _row("pi-09", "edge/us-east", online=None, last_seen=None, desired=0, ready=0, state="Pending"),
        ],
        "desired": 2,
        "ready": 1,
        "offline": 1,
        "states": {"Ready": 2},
        "state": "Ready",
        "message": "Offline: 1 (edge/us-east/pi-07)",
        "ts": NOW,
    }


def _bundle(name: str, **overrides: Any) -> summaries.BundleSummary:
    document: summaries.BundleSummary = {
        "bundle": name,
        "generation": 4,
        "desired": 4,
        "ready": 2,
        "offline": 1,
        "states": {"Ready": 3, "Modified": 1},
        "state": "Modified",
        "message": "Modified: 1 (edge/us-west/pi-03); Offline: 1 (edge/us-east/pi-07)",
        "non_ready": [],
        "ts": NOW,
    }
    document.update(overrides)  # type: ignore[typeddict-item]
    return document


def _metrics() -> summaries.BundleSummary:
    return _bundle(
        "metrics", generation=1, desired=2, ready=2, offline=0, states={"Ready": 2}, state="Ready", message=""
    )


def _messages(t: topics.Topics) -> list[tuple[str, bytes]]:
    """A whole fleet: the fleet summary, two groups, two bundles."""
    return [
        (t.summary(), summaries.encode(_fleet())),
        (t.summary_group("edge/us-west"), summaries.encode(_west())),
        (t.summary_group("edge/us-east"), summaries.encode(_east())),
        (t.summary_bundle("web"), summaries.encode(_bundle("web"))),
        (t.summary_bundle("metrics"), summaries.encode(_metrics())),
    ]


def _snapshot(messages: Iterable[tuple[str, bytes]] | None = None) -> status_cli.Snapshot:
    snapshot = status_cli.Snapshot(topics.Topics("fleet"))
    for topic, payload in _messages(snapshot.topics) if messages is None else messages:
        snapshot.receive(topic, payload)
    return snapshot


# Formatting: pure, on crafted snapshots.


def test_status_table_shows_groups_bundles_and_fleet_totals() -> None:
    assert status_cli.render(_snapshot(), command="status", output="table", now=NOW) == [
        "GROUP          CLUSTERS   BUNDLES-READY   STATUS",
        "edge/us-east   0/2        1/2             Ready; Offline: 1 (edge/us-east/pi-07)",
        "edge/us-west   3/3        3/4             Modified: 1 (edge/us-west/pi-03)",
        "",
        "BUNDLE    GENERATION   CLUSTERS-READY   OFFLINE   STATUS",
        "metrics   1            2/2              0         Ready",
        "web       4            2/4              1         Modified: 1 (edge/us-west/pi-03); Offline: 1 (edge/us-east/pi-07)",
        "",
        "FLEET: 2 groups, 3/5 clusters online, 1/2 bundles ready, 4/6 deployments ready, 1 offline: "
        "Modified: 1 (edge/us-west/pi-03); Offline: 1 (edge/us-east/pi-07)",
    ]


def test_clusters_table_shows_offline_unknown_and_never_seen() -> None:
    assert status_cli.render(_snapshot(), command="clusters", output="table", now=NOW) == [
        "NAME    GROUP          LABELS                    ONLINE    LAST-SEEN   BUNDLES-READY   STATE",
        "pi-07   edge/us-east   <none>                    no        2h ago      0/2             Ready",
        "pi-09   edge/us-east   <none>                    unknown   never       0/0             Pending",
        "pi-01   edge/us-west   env=prod,region=us-west   yes       3s ago      1/1             Ready",
        "pi-02   edge/us-west   <none>                    yes       3s ago      1/1             Ready",
        "pi-03   edge/us-west   <none>                    yes       3s ago      1/2             Modified",
    ]


def test_revoked_clusters_are_listed_as_revoked_and_counted_in_the_fleet_line() -> None:
    t = topics.Topics("fleet")
    west = {**_west(), "revoked": ["pi-stolen"]}
    messages = [
        (topic, summaries.encode(west) if topic == t.summary_group("edge/us-west") else payload)  # type: ignore[arg-type]
        for topic, payload in _messages(t)
    ]
    messages[0] = (t.summary(), summaries.encode(_fleet(revoked=1)))
    snapshot = _snapshot(messages)
    clusters = status_cli.render(snapshot, command="clusters", output="table", now=NOW)
    assert _columns(clusters)[-1] == ["pi-stolen", "edge/us-west", "-", "no", "-", "-", "Revoked"]
    status = status_cli.render(snapshot, command="status", output="table", now=NOW)
    assert "1 offline, 1 revoked: " in status[-1]


def _columns(lines: list[str]) -> list[list[str]]:
    """Cells of a table whose cells hold no run of three spaces."""
    return [[cell.strip() for cell in line.split("   ") if cell.strip()] for line in lines]


def test_bundles_table_has_state_and_message_columns() -> None:
    lines = status_cli.render(_snapshot(), command="bundles", output="table", now=NOW)
    assert lines == [
        "BUNDLE    GENERATION   READY/DESIRED   OFFLINE   STATE      MESSAGE",
        "metrics   1            2/2             0         Ready",
        "web       4            2/4             1         Modified   Modified: 1 (edge/us-west/pi-03); Offline: 1 (edge/us-east/pi-07)",
    ]


def test_columns_are_as_wide_as_their_widest_cell() -> None:
    assert status_cli.table(["A", "LONG-HEADER", "C"], [["wide-cell", "x", ""]]) == [
        "A           LONG-HEADER   C",
        "wide-cell   x",
    ]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-2.0, "0s ago"),
        (0.4, "0s ago"),
        (59.9, "59s ago"),
        (60, "1m ago"),
        (3599, "59m ago"),
        (7200, "2h ago"),
        (3 * 86400, "3d ago"),
    ],
)
def test_last_seen_is_relative(seconds: float, shown: str) -> None:
    assert status_cli.ago(seconds) == shown


def test_empty_fleet_says_so_instead_of_printing_bare_headers() -> None:
    snapshot = _snapshot([("fleet/summary", summaries.encode(_fleet(groups=0, bundles=0)))])
    lines = status_cli.render(snapshot, command="status", output="table", now=NOW)
    assert lines[:3] == ["No groups found.", "", "No bundles found."]
    assert status_cli.render(snapshot, command="clusters", output="table", now=NOW) == ["No clusters found."]
    assert status_cli.render(snapshot, command="bundles", output="table", now=NOW) == ["No bundles found."]


def test_json_documents_have_the_shapes_scripts_read() -> None:
    snapshot = _snapshot()
    status = json.loads("\n".join(status_cli.render(snapshot, command="status", output="json", now=NOW)))
    assert status["fleet"] == _fleet()
    assert [g["group"] for g in status["groups"]] == ["edge/us-east", "edge/us-west"]
    assert [b["bundle"] for b in status["bundles"]] == ["metrics", "web"]
    clusters = json.loads("\n".join(status_cli.render(snapshot, command="clusters", output="json", now=NOW)))
    assert [(r["name"], r["online"], r["last_seen"]) for r in clusters][:2] == [
        ("pi-07", False, NOW - 7200),
        ("pi-09", None, None),
    ]
    bundles = json.loads("\n".join(status_cli.render(snapshot, command="bundles", output="json", now=NOW)))
    assert bundles == [_metrics(), _bundle("web")]


def test_watch_frames_clear_a_terminal_and_separate_tables_in_a_pipe() -> None:
    assert status_cli.frame(["a"], tty=True, first=True, output="table") == "\x1b[H\x1b[2Ja\n"
    assert status_cli.frame(["a"], tty=False, first=True, output="table") == "a\n"
    assert status_cli.frame(["a"], tty=False, first=False, output="table") == "---\na\n"
    assert status_cli.frame(["{}"], tty=False, first=False, output="json") == "{}\n"


# The snapshot: what it keeps, skips and counts.


@pytest.mark.parametrize(
    ("topic", "payload", "why"),
    [
        ("fleet/summary/bundles/web", b"{not json", "not JSON"),
        (
            "fleet/summary/bundles/web",
            summaries.encode(_bundle("api")),
            "bundle summary of 'api' on the topic of 'web'",
        ),
        (
            "fleet/summary/bundles/web",
            summaries.encode(_bundle("web", generation="4")),
            "generation is not a count",
        ),
        ("fleet/summary/groups/edge/us-east", summaries.encode(_west()), "on the topic of 'edge/us-east'"),
        (
            "fleet/summary/groups/edge/us-west",
            summaries.encode({**_west(), "cluster_rows": [{"name": "x"}]}),  # type: ignore[typeddict-item]
            "cluster_rows[0]",
        ),
        ("fleet/summary/groups/fleet/x", summaries.encode(_west()), "may not start with 'fleet'"),
        ("fleet/summary", summaries.encode(_fleet(groups=None)), "groups is not a count"),
    ],
)
def test_unusable_summaries_are_skipped_with_the_reason(topic: str, payload: bytes, why: str) -> None:
    snapshot = _snapshot([(topic, payload)])
    assert snapshot.fleet is None and not snapshot.groups and not snapshot.bundles
    assert why in snapshot.malformed[topic]
    warning = status_cli.malformed_warning(snapshot)
    assert warning is not None and warning.startswith(f"ignored 1 malformed summary ({topic}: ")


def test_a_fixed_or_deleted_summary_replaces_what_was_there() -> None:
    snapshot = _snapshot()
    web = snapshot.topics.summary_bundle("web")
    assert snapshot.receive(web, b"[]") is True
    assert web in snapshot.malformed and web not in snapshot.bundles
    assert snapshot.receive(web, summaries.encode(_bundle("web"))) is True
    assert web in snapshot.bundles and not snapshot.malformed
    assert snapshot.receive(web, summaries.encode(_bundle("web"))) is False  # unchanged: no redraw
    assert snapshot.receive(web, b"") is True  # a retained message deleted
    assert web not in snapshot.bundles


def test_complete_once_the_fleet_and_as_many_summaries_as_it_counts_arrived() -> None:
    t = topics.Topics("fleet")
    messages = _messages(t)
    snapshot = _snapshot(messages[1:])
    assert not snapshot.complete()  # no fleet summary yet
    snapshot.receive(*messages[0])
    assert snapshot.complete() and snapshot.shortfall() is None
    partial = _snapshot([*messages[:2], (t.summary_bundle("web"), b"junk")])
    assert not partial.complete()  # the malformed bundle counts as arrived; a group is missing
    assert partial.shortfall() == (
        "the fleet summary counts 2 group(s) and 2 bundle(s), but 1 group and 1 bundle summaries arrived"
    )


# Reading from real brokers.


@dataclass
class Run:
    out: str
    err: str
    error: str | None


def add_broker(parser: argparse.ArgumentParser) -> None:
    """What controller.cli passes in (fleet_cli's): --broker and --broker-ca."""
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--broker-ca")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgefleet")
    status_cli.add_commands(parser.add_subparsers(dest="command", required=True), add_broker)
    return parser


async def _edgefleet(*argv: str) -> Run:
    """Run one command as the CLI does (sync, asyncio.run), in a thread: the amqtt broker lives on this loop."""
    args = _parser().parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    error = None
    try:
        await asyncio.to_thread(status_cli.run, args, out, err)
    except errors.ControllerError as exc:
        error = str(exc)
    return Run(out.getvalue(), err.getvalue(), error)


def _prefix(topic_root: str) -> topics.Topics:
    return topics.Topics(f"{topic_root}/fleet")


async def test_status_reads_the_retained_summaries(broker_url: urls.BrokerUrl, topic_root: str) -> None:
    t = _prefix(topic_root)
    await publishing.publish_retained(broker_url, _messages(t))
    run = await _edgefleet("status", "--broker", str(broker_url), "--topic-prefix", t.prefix)
    assert run.error is None and run.err == ""
    lines = run.out.splitlines()
    assert _columns(lines[:3]) == [
        ["GROUP", "CLUSTERS", "BUNDLES-READY", "STATUS"],
        ["edge/us-east", "0/2", "1/2", "Ready; Offline: 1 (edge/us-east/pi-07)"],
        ["edge/us-west", "3/3", "3/4", "Modified: 1 (edge/us-west/pi-03)"],
    ]
    assert [
        "web",
        "4",
        "2/4",
        "1",
        "Modified: 1 (edge/us-west/pi-03); Offline: 1 (edge/us-east/pi-07)",
    ] in _columns(lines)
    assert lines[-1].startswith(
        "FLEET: 2 groups, 3/5 clusters online, 1/2 bundles ready, 4/6 deployments ready"
    )


async def test_clusters_and_bundles_read_the_same_summaries(
    broker_url: urls.BrokerUrl, topic_root: str
) -> None:
    t = _prefix(topic_root)
    await publishing.publish_retained(broker_url, _messages(t))
    base = ("--broker", str(broker_url), "--topic-prefix", t.prefix)
    clusters = await _edgefleet("clusters", *base)
    rows = _columns(clusters.out.splitlines())
    assert [r[0] for r in rows] == ["NAME", "pi-07", "pi-09", "pi-01", "pi-02", "pi-03"]
    assert rows[1][3] == "no" and rows[1][4].endswith("d ago")  # NOW - 2h, seen from today
    assert rows[2][3:5] == ["unknown", "never"]
    bundles = await _edgefleet("bundles", *base)
    assert _columns(bundles.out.splitlines())[1:] == [
        ["metrics", "1", "2/2", "0", "Ready"],
        [
            "web",
            "4",
            "2/4",
            "1",
            "Modified",
            "Modified: 1 (edge/us-west/pi-03); Offline: 1 (edge/us-east/pi-07)",
        ],
    ]


async def test_json_output_parses_for_every_command(broker_url: urls.BrokerUrl, topic_root: str) -> None:
    t = _prefix(topic_root)
    await publishing.publish_retained(broker_url, _messages(t))
    base = ("-o", "json", "--broker", str(broker_url), "--topic-prefix", t.prefix)
    status = json.loads((await _edgefleet("status", *base)).out)
    assert set(status) == {"fleet", "groups", "bundles"}
    assert status["fleet"]["groups"] == 2 and len(status["groups"]) == 2 and len(status["bundles"]) == 2
    clusters = json.loads((await _edgefleet("clusters", *base)).out)
    assert isinstance(clusters, list) and {r["name"] for r in clusters} == {
        "pi-01",
        "pi-02",
        "pi-03",
        "pi-07",
        "pi-09",
    }
    bundles = json.loads((await _edgefleet("bundles", *base)).out)
    assert [(b["bundle"], b["ready"], b["desired"], b["offline"]) for b in bundles] == [
        ("metrics", 2, 2, 0),
        ("web", 2, 4, 1),
    ]


async def test_without_a_fleet_summary_says_no_controller_publishes(
    broker_url: urls.BrokerUrl, topic_root: str
) -> None:
    t = _prefix(topic_root)
    await publishing.publish_retained(
        broker_url, [(t.summary_bundle("web"), summaries.encode(_bundle("web")))]
    )
    run = await _edgefleet(
        "status", "--broker", str(broker_url), "--topic-prefix", t.prefix, "--timeout", "0.5"
    )
    assert run.error == f"no fleet summary on {broker_url}: is a controller running?"
    assert run.out == ""


async def test_malformed_summary_is_skipped_and_reported(broker_url: urls.BrokerUrl, topic_root: str) -> None:
    t = _prefix(topic_root)
    broken = t.summary_bundle("broken")
    # The fleet counts three bundles; the malformed one still counts as arrived, so no waiting for it.
    await publishing.publish_retained(
        broker_url,
        [*_messages(t)[1:], (broken, b"{not json"), (t.summary(), summaries.encode(_fleet(bundles=3)))],
    )
    started = time.monotonic()
    run = await _edgefleet(
        "bundles", "--broker", str(broker_url), "--topic-prefix", t.prefix, "--timeout", "30"
    )
    assert time.monotonic() - started < 20  # complete without waiting for the deadline
    assert run.error is None
    assert [r[0] for r in _columns(run.out.splitlines())] == ["BUNDLE", "metrics", "web"]
    assert run.err.startswith(
        f"edgefleet: warning: ignored 1 malformed summary ({broken}: bundle summary is not JSON"
    )
    assert run.err.count("\n") == 1


async def test_missing_summaries_are_named_when_the_deadline_passes(
    broker_url: urls.BrokerUrl, topic_root: str
) -> None:
    t = _prefix(topic_root)
    await publishing.publish_retained(broker_url, _messages(t)[:4])  # no metrics bundle summary
    # 2 s: time enough for the retained summaries that exist to arrive on a busy machine.
    run = await _edgefleet(
        "bundles", "--broker", str(broker_url), "--topic-prefix", t.prefix, "--timeout", "2"
    )
    assert run.error is None and [r[0] for r in _columns(run.out.splitlines())] == ["BUNDLE", "web"]
    assert (
        "counts 2 group(s) and 2 bundle(s), but 2 group and 1 bundle summaries arrived within 2s" in run.err
    )


async def test_messages_outside_the_subscriptions_are_ignored(
    broker_url: urls.BrokerUrl, topic_root: str
) -> None:
    # amqtt 0.12 hands a new client retained messages matching an earlier client's subscriptions.
    earlier = _prefix(topic_root)
    await publishing.publish_retained(broker_url, _messages(earlier))
    assert (
        await _edgefleet("bundles", "--broker", str(broker_url), "--topic-prefix", earlier.prefix)
    ).error is None
    run = await _edgefleet(
        "status", "--broker", str(broker_url), "--topic-prefix", f"{topic_root}/other", "--timeout", "0.5"
    )
    assert run.error == f"no fleet summary on {broker_url}: is a controller running?"
    assert run.err == ""


async def test_unreachable_broker_is_named() -> None:
    url = f"mqtt://127.0.0.1:{brokers.free_port()}"
    run = await _edgefleet("status", "--broker", url)
    assert run.error is not None and run.error.startswith(f"cannot reach broker {url}: ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--broker", "http://x"], "--broker: "), (["--topic-prefix", "a/+"], "--topic-prefix: ")],
)
async def test_bad_options_are_controller_errors(argv: list[str], message: str) -> None:
    run = await _edgefleet("status", *argv)
    assert run.error is not None and run.error.startswith(message)


async def test_watch_redraws_on_change_and_stops_on_cancel(
    broker_url: urls.BrokerUrl, topic_root: str
) -> None:
    t = _prefix(topic_root)
    await publishing.publish_retained(broker_url, _messages(t))
    frames: list[list[list[str]]] = []
    snapshot = status_cli.Snapshot(t)

    def draw(current: status_cli.Snapshot) -> None:
        frames.append(_columns(status_cli.bundle_lines(current, now=NOW)))

    task = asyncio.create_task(status_cli.watch(broker_url, snapshot, draw, interval=0.01))
    await waiting.until_async(lambda: len(frames) == 1, timeout=WAIT, what="the first frame")
    assert [r[0] for r in frames[0]] == ["BUNDLE", "metrics", "web"]

    fixed = _bundle("web", generation=5, ready=4, offline=0, states={"Ready": 4}, state="Ready", message="")
    await publishing.publish_retained(broker_url, [(t.summary_bundle("web"), summaries.encode(fixed))])
    await waiting.until_async(
        lambda: ["web", "5", "4/4", "0", "Ready"] in frames[-1], timeout=WAIT, what="web redrawn"
    )

    await publishing.publish_retained(broker_url, [(t.summary_bundle("metrics"), b"")])  # deleted
    await waiting.until_async(
        lambda: [r[0] for r in frames[-1]] == ["BUNDLE", "web"], timeout=WAIT, what="metrics gone"
    )

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


WATCH_SCRIPT = """
import sys
from tests.test_status_cli import _parser
args = _parser().parse_args(sys.argv[1:])
args.run(args)
"""


async def test_watch_command_redraws_into_a_pipe_and_ends_cleanly_on_ctrl_c(
    mosquitto_url: urls.BrokerUrl, topic_root: str, repo_root: Path
) -> None:
    t = _prefix(topic_root)
    await publishing.publish_retained(mosquitto_url, _messages(t))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WATCH_SCRIPT, "status", "--watch", "--broker", str(mosquitto_url), "--topic-prefix", t.prefix,
        cwd=repo_root, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None

    async def next_frame() -> list[str]:
        lines: list[str] = []
        while not (lines and lines[-1].startswith("FLEET:")):
            line = await asyncio.wait_for(process.stdout.readline(), WAIT)  # type: ignore[union-attr]
            assert line, "the watch ended early"
            lines.append(line.decode().rstrip("\n"))
        return lines

    try:
        first = await next_frame()
        assert first[0].startswith("GROUP") and "\x1b" not in "".join(first)
        fleet = _fleet(bundles_ready=2, state="Ready", message="")
        await publishing.publish_retained(mosquitto_url, [(t.summary(), summaries.encode(fleet))])
        second = await next_frame()
        assert second[0] == "---" and second[-1].endswith(
            "2/2 bundles ready, 4/6 deployments ready, 1 offline: Ready"
        )
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), WAIT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0
    assert await process.stderr.read() == b""


@pytest.mark.parametrize(
    ("selection", "names"),
    [
        (status_cli.Selection(group="edge/us-west"), ["pi-01", "pi-02", "pi-03"]),
        (status_cli.Selection(group="edge"), ["pi-07", "pi-09", "pi-01", "pi-02", "pi-03"]),
        (status_cli.Selection(group="edge/us"), []),
        (status_cli.Selection(state="offline"), ["pi-07"]),
        (status_cli.Selection(state="modified"), ["pi-03"]),
        (status_cli.Selection(group="edge/us-east", state="Pending"), ["pi-09"]),
    ],
)
def test_clusters_are_filtered_by_group_and_state(selection: status_cli.Selection, names: list[str]) -> None:
    lines = status_cli.render(_snapshot(), command="clusters", output="table", now=NOW, selection=selection)
    shown = [row[0] for row in _columns(lines)[1:]] if names else []
    assert shown == names
    document = json.loads(
        "\n".join(
            status_cli.render(_snapshot(), command="clusters", output="json", now=NOW, selection=selection)
        )
    )
    assert [row["name"] for row in document] == names


def test_a_long_clusters_table_stops_at_the_limit_and_says_how_to_see_more() -> None:
    lines = status_cli.render(
        _snapshot(), command="clusters", output="table", now=NOW, selection=status_cli.Selection(limit=2)
    )
    assert len(_columns(lines[:-1])) == 3  # headers and two rows
    assert lines[-1] == "… and 3 more: narrow with --group or --state, or --limit 0 for all"


def test_a_cluster_whose_agent_has_trouble_of_its_own_says_so() -> None:
    t = topics.Topics("fleet")
    east = _east()
    trouble = "manifest of web kept in memory only: No space left on device"
    east["cluster_rows"][0]["agent_errors"], east["cluster_rows"][0]["agent_error"] = 1, trouble
    messages = [m for m in _messages(t) if m[0] != t.summary_group("edge/us-east")]
    snapshot = _snapshot([*messages, (t.summary_group("edge/us-east"), summaries.encode(east))])
    lines = status_cli.render(snapshot, command="clusters", output="table", now=NOW)
    assert lines[1].startswith("pi-07 ") and lines[1].endswith("   Ready (agent: 1 error)")
    rows = json.loads("\n".join(status_cli.render(snapshot, command="clusters", output="json", now=NOW)))
    assert (rows[0]["agent_errors"], rows[0]["agent_error"]) == (1, trouble) and "agent_errors" not in rows[1]
    east["cluster_rows"][0]["agent_errors"] = "one"  # type: ignore[typeddict-item]
    refused = _snapshot([*messages, (t.summary_group("edge/us-east"), summaries.encode(east))])
    assert not any(row["name"] == "pi-07" for row in status_cli.cluster_document(refused))
