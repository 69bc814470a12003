"""Fault matrix row 8, disk trouble on the device: the agent's state directory full or
read-only, on a real tmpfs (we run as root, so permissions would not stop a write).

What is pinned: the retained status says what went wrong (a bundle whose record cannot
be saved is ErrApplied with the OS's words; a manifest or session the disk refused is
listed in `agent_errors`), nothing is applied that could not be recorded, every file
under the state directory is the old complete version or the new one (each is parsed),
an agent started on a read-only disk still connects, and all recovers once the disk
takes writes again.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_agent import applying
from edge_agent.agent import Agent
from edge_agent.store import Applied, Store
from tests import fleet as fleets
from tests import recovery
from tests.fakekube import FakeCluster
from tests.test_agent import KEY, NAMESPACE, _config_map
from tests.test_api_trouble import Seen, T, config, publish, running, sealed, until, watching
from wire import envelopes, keys, urls

DISK_FULL = "State directory full"
DISK_READ_ONLY = "State directory read-only"
# Room for the state of a few small bundles and the discovery cache, and quick to fill.
DISK_SIZE = "1m"
TRUSTED = keys.keyring([KEY.verify_key])


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


@dataclass(frozen=True)
class Disk:
    """A small tmpfs of our own: filled, remounted read-only, and given back by the test."""

    mountpoint: Path

    @property
    def filler(self) -> Path:
        return self.mountpoint / "filler"

    def fill(self) -> None:
        """Write a filler file until the disk takes not one more byte."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 16, 1 << 12, 1):
                block = b"\0" * size
                while True:
                    try:
                        os.write(fd, block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink()

    def remount(self, mode: str) -> None:
        done = _run("mount", "-o", f"remount,{mode}", str(self.mountpoint))
        if done.returncode:
            pytest.skip(f"cannot remount a tmpfs {mode} here: {done.stderr.strip()}")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for the state directory needs root")
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    done = _run(
        "mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0700", "edgefleet-test", str(mountpoint)
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield Disk(mountpoint)
    finally:
        if _run("umount", str(mountpoint)).returncode:
            _run("umount", "--lazy", str(mountpoint))


def _agent(url: urls.BrokerUrl, group: str, cluster: FakeCluster, state_dir: Path) -> Agent:
    applier = applying.KubeApplier(cluster.api_client(), discovery_cache=state_dir / "discovery.json")
    return Agent(
        config(url, group),
        Store(state_dir),
        applier,
        retry_backoff=fleets.fast_backoff,
        reconnect_backoff=fleets.fast_backoff,
    )


def parsed(state_dir: Path) -> dict[str, object]:
    """Every file under the state directory, parsed as what it must be; anything else fails."""
    found: dict[str, object] = {}
    for path in sorted(p for p in state_dir.rglob("*") if p.is_file()):
        name = path.relative_to(state_dir).as_posix()
        if name.startswith("manifests/") and name.endswith(".bin"):
            found[name] = envelopes.unseal(path.read_bytes(), trusted=TRUSTED).generation
        elif name.startswith("applied/") and name.endswith(".json"):
            found[name] = Store(state_dir).applied(path.stem)  # a fresh store: read from disk
        elif name == "session":
            found[name] = int(path.read_text())
        elif name == "discovery.json":
            found[name] = json.loads(path.read_text())
        else:
            raise AssertionError(f"unexpected file in the state directory: {name}")  # a temp file left
    return found


def agent_error(seen: Seen, *words: str) -> bool:
    """Whether the latest status lists an agent error saying all of `words`."""
    latest = seen.latest
    listed = latest.get("agent_errors", []) if latest else []
    return any(all(word in line for word in words) for line in listed)


def clean(seen: Seen) -> bool:
    return seen.latest is not None and "agent_errors" not in seen.latest


def _data(cluster: FakeCluster) -> object:
    found = cluster.get_object("v1", "ConfigMap", "shop", "a")
    return found["data"] if found else None


async def test_a_full_disk_is_reported_keeps_every_state_file_whole_and_recovers(
    mosquitto_url: urls.BrokerUrl, topic_root: str, disk: Disk
) -> None:
    state_dir = disk.mountpoint / "agent"
    topic = T.bundle(topic_root, "app")
    with FakeCluster() as cluster:
        agent = _agent(mosquitto_url, topic_root, cluster, state_dir)
        async with watching(mosquitto_url, topic_root, "pi") as seen, running(agent):
            await publish(mosquitto_url, topic, sealed(topic_root, 1, NAMESPACE, _config_map("a", v="1")))
            await until(lambda: seen.ready_on("app", 1) and clean(seen), "Ready on generation 1")
            before = parsed(state_dir)
            assert set(before) == {"manifests/app.bin", "applied/app.json", "session", "discovery.json"}

            disk.fill()
            began = time.monotonic()
            await publish(mosquitto_url, topic, sealed(topic_root, 2, NAMESPACE, _config_map("a", v="2")))
            await until(
                lambda: (
                    seen.shows("app", "ErrApplied", 2, "applied/app.json", "No space left on device")
                    and agent_error(seen, "manifest of app", "No space left on device")
                ),
                "ErrApplied and the unsaved manifest in the retained status",
            )
            recovery.record(
                DISK_FULL,
                "time from a manifest to ErrApplied and agent_errors in status",
                time.monotonic() - began,
            )
            assert parsed(state_dir) == before  # every file still the old, complete version
            assert _data(cluster) == {"v": "1"}  # nothing applied that could not be recorded

            disk.free()
            with recovery.timed(
                DISK_FULL, "time from space back to Ready on the latest generation, no error"
            ):
                await until(lambda: seen.ready_on("app", 2) and clean(seen), "Ready on generation 2")
        after = parsed(state_dir)
    record = after["applied/app.json"]
    assert after["manifests/app.bin"] == 2
    assert isinstance(record, Applied) and record.generation == 2 and record.complete
    assert _data(cluster) == {"v": "2"}


async def test_a_read_only_disk_is_reported_does_not_stop_a_restart_and_recovers(
    mosquitto_url: urls.BrokerUrl, topic_root: str, disk: Disk
) -> None:
    state_dir = disk.mountpoint / "agent"
    topic = T.bundle(topic_root, "app")
    with FakeCluster() as cluster:
        first = _agent(mosquitto_url, topic_root, cluster, state_dir)
        async with watching(mosquitto_url, topic_root, "pi") as seen:
            async with running(first):
                await publish(mosquitto_url, topic, sealed(topic_root, 1, NAMESPACE, _config_map("a", v="1")))
                await until(lambda: seen.ready_on("app", 1) and clean(seen), "Ready on generation 1")
                before = parsed(state_dir)

                disk.remount("ro")
                await publish(mosquitto_url, topic, sealed(topic_root, 2, NAMESPACE, _config_map("a", v="2")))
                await until(
                    lambda: (
                        seen.shows("app", "ErrApplied", 2, "Read-only file system")
                        and agent_error(seen, "manifest of app", "Read-only file system")
                    ),
                    "ErrApplied and the unsaved manifest in the retained status",
                )

            # A restart (a reboot, a crash) on the read-only disk: the agent must still connect.
            second = _agent(mosquitto_url, topic_root, cluster, state_dir)
            async with running(second):
                began = time.monotonic()
                await until(
                    lambda: (
                        second.session > first.session
                        and any(p["online"] and p["session"] == second.session for p in seen.presence)
                        and agent_error(seen, f"session {second.session}", "Read-only file system")
                    ),
                    "the restarted agent online, saying its session is not saved",
                )
                recovery.record(
                    DISK_READ_ONLY,
                    "time from a start on a read-only disk to online",
                    time.monotonic() - began,
                )
                await until(
                    lambda: (
                        seen.shows("app", "ErrApplied", 2, "Read-only file system")
                        and agent_error(seen, "manifest of app")
                    ),
                    "generation 2 failing again after the restart",
                )
                assert parsed(state_dir) == before
                assert _data(cluster) == {"v": "1"}

                disk.remount("rw")
                with recovery.timed(
                    DISK_READ_ONLY, "time from writable to Ready on the latest generation, no error"
                ):
                    await until(lambda: seen.ready_on("app", 2) and clean(seen), "Ready on generation 2")
        after = parsed(state_dir)
    assert after["session"] == second.session  # the session taken in memory, saved once it could be
    record = after["applied/app.json"]
    assert after["manifests/app.bin"] == 2
    assert isinstance(record, Applied) and record.generation == 2 and record.complete
    assert _data(cluster) == {"v": "2"}
