"""Fault matrix: a device behind NAT (docs/reliability.md).

The agent runs as a real process in a network namespace that reaches the
broker only through a masquerading router and accepts no inbound connection
(tests.netns); its Kubernetes API (tests.fakekube) is local to the device, in
that namespace too. Mosquitto (dynamic security, logging client addresses)
listens on the host's end of the router's WAN link, and `edgefleet controller`
drives it. The whole flow runs on the command lines an operator and a device
use: join with a token, apply a bundle, status back into the controller's
summaries.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller import login
from tests import brokers, mqtt, netns, recovery, waiting
from tests.fakekube import FakeCluster
from wire import registration, status, summaries, topics, urls

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FAULT = "device behind NAT"
T = topics.Topics()
# Mosquitto's notice for each accepted connection: "New client connected from ADDRESS:PORT as CLIENT-ID (...".
CONNECTED = re.compile(r"New client connected from (\S+):\d+ as (\S+) ")


@pytest.fixture
def site() -> Iterator[netns.Site]:
    netns.skip_unless_namespaces()
    with netns.site() as built:
        yield built


def _edgefleet(*args: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller.cli", *args, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _agent(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge_agent.cli", *args]


def _retained(url: urls.BrokerUrl, topic: str) -> bytes | None:
    """The retained message on `topic` now, or None when there is none yet."""
    try:
        return asyncio.run(mqtt.retained(url, topic, expect=1, timeout=1.0)).get(topic)
    except TimeoutError:
        return None


def _refused_from_outside(address: str, port: int) -> bool:
    """Whether a TCP connection from the host to address:port fails (a dropped SYN times out)."""
    try:
        with socket.create_connection((address, port), timeout=1.0):
            return False
    except OSError:
        return True


def test_device_behind_nat_joins_applies_and_reports(
    site: netns.Site, tmp_path: Path, topic_root: str
) -> None:
    name = f"pi-nat-{site.id}"
    state_dir = tmp_path / "controller"
    device_dir = tmp_path / "device"
    (tmp_path / "broker").mkdir()
    dynsec, password = brokers.dynsec_config(tmp_path / "broker")
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(
            brokers.Mosquitto(
                tmp_path / "broker",
                host=site.host_ip,
                extra_config=dynsec,
                anonymous=False,
                log_connections=True,
            )
        )
        plain = f"mqtt://{site.host_ip}:{broker.port}"
        assert _edgefleet("keys", "init", state_dir=state_dir).returncode == 0
        assert _edgefleet("group", "create", topic_root, state_dir=state_dir).returncode == 0
        admin = f"mqtt://{brokers.DYNSEC_ADMIN}:{password}@{site.host_ip}:{broker.port}"
        controller = stack.enter_context(
            netns.process(
                [
                    *(sys.executable, "-m", "controller.cli", "controller", "--broker", admin),
                    *("--summary-interval", "0.1", "--state-dir", str(state_dir)),
                ],
                tmp_path / "controller.log",
            )
        )
        created = _edgefleet("token", "create", "--group", topic_root, "--broker", plain, state_dir=state_dir)
        assert created.returncode == 0, created.stderr
        assert "warning" not in created.stderr, (tmp_path / "controller.log").read_text()

        # The device's own Kubernetes API, reachable only from inside the device.
        cluster = stack.enter_context(FakeCluster(listener=netns.socket_in(site.device)))
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        joined = subprocess.run(
            netns.command_in(
                site.device,
                _agent(
                    *("join", created.stdout.strip(), "--name", name),
                    *("--state-dir", str(device_dir), "--kubeconfig", str(kubeconfig)),
                ),
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert joined.returncode == 0, joined.stderr + (tmp_path / "controller.log").read_text()
        assert f"joined as {name}" in joined.stdout

        agent = stack.enter_context(
            netns.process(
                _agent("run", "--state-dir", str(device_dir), "--kubeconfig", str(kubeconfig)),
                tmp_path / "agent.log",
                namespace=site.device,
            )
        )
        as_controller = login.as_controller(urls.BrokerUrl.parse(plain), state_dir)
        summary_topic = T.summary_bundle("hello-web")

        def ready_in_summary() -> bool:
            payload = _retained(as_controller, summary_topic)
            if payload is None:
                return False
            summary = summaries.decode_bundle(payload)
            return summary["desired"] == summary["ready"] == 1 and summary["offline"] == 0

        with recovery.timed(FAULT, "time from `edgefleet apply` to Ready in the controller's summary"):
            applied = _edgefleet("apply", str(EXAMPLES / "hello-web"), "--broker", plain, state_dir=state_dir)
            assert applied.returncode == 0, applied.stderr
            waiting.until(ready_in_summary, timeout=30, what="hello-web Ready in the controller's summary")
        assert agent.poll() is None and controller.poll() is None

        deployment = cluster.get_object("apps/v1", "Deployment", "hello", "hello-web")
        assert deployment is not None
        assert deployment["metadata"]["labels"]["edgefleet.io/bundle"] == "hello-web"
        reported = _retained(as_controller, T.status(topic_root, name))
        assert reported is not None
        bundle = status.decode_status(reported)["bundles"]["hello-web"]
        assert bundle["state"] == "Ready" and bundle["generation"] == 1

        # The broker only ever saw the router: every device connection came through the NAT.
        log = broker.log_path.read_text()
        connections = CONNECTED.findall(log)
        joining = [
            address for address, client in connections if client.startswith(registration.BOOTSTRAP_PREFIX)
        ]
        running = [address for address, client in connections if client == f"edgefleet-agent-{name}"]
        assert joining and set(joining) == {site.router_wan_ip}, log
        assert running and set(running) == {site.router_wan_ip}, log
        # Everyone else (controller, CLI, this test's readers) is on the host itself.
        assert {address for address, _ in connections} == {site.router_wan_ip, site.host_ip}, log
        assert site.device_ip not in log

        # Nothing reaches the device from outside, though a service listens on its address
        # and the host routes the device's subnet to the router.
        listener = netns.socket_in(site.device)
        stack.callback(listener.close)
        listener.bind((site.device_ip, 0))
        listener.listen()
        port = listener.getsockname()[1]
        inside = netns.socket_in(site.device)
        with inside:
            inside.settimeout(5.0)
            inside.connect((site.device_ip, port))  # the device reaches its own service
        assert _refused_from_outside(site.device_ip, port)
