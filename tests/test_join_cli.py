"""The registration flow as an operator and a device run it: every step a real process.

`edgefleet server --tls` (embedded broker enforcing the registry, development
CA), `edgefleet token create`, `edgefleet-agent join` and `run` with nothing but
its state directory, `edgefleet apply`, manual approval, revocation.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.identities import Identities
from controller.state import State
from tests import brokers, processes, waiting
from tests.fakekube import FakeCluster
from wire import urls

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _edgefleet(*args: str, state_dir: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller.cli", *args, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _agent(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge_agent.cli", *args]


def _joining(*args: str) -> subprocess.CompletedProcess[str]:
    """`edgefleet-agent ARGS` to completion (a join that is answered)."""
    return subprocess.run(_agent(*args), capture_output=True, text=True, timeout=60)


@pytest.fixture
def server(tmp_path: Path, topic_root: str) -> Iterator[tuple[Path, str]]:
    """A state directory with a key and a group, and `edgefleet server --tls` running on it."""
    state_dir = tmp_path / "controller"
    assert _edgefleet("keys", "init", state_dir=state_dir).returncode == 0
    assert _edgefleet("group", "create", topic_root, state_dir=state_dir).returncode == 0
    port = brokers.free_port()
    argv = [sys.executable, "-m", "controller.cli", "server", "--tls", "--listen", f"127.0.0.1:{port}"]
    with processes.running([*argv, "--state-dir", str(state_dir)], tmp_path / "server.log") as process:
        waiting.until(
            lambda: process.poll() is not None or brokers.accepts(port),
            timeout=20,
            what="the server to listen",
        )
        assert process.poll() is None, (tmp_path / "server.log").read_text()
        yield state_dir, f"mqtts://127.0.0.1:{port}"


def test_token_join_run_apply_and_revoke_with_the_command_lines(
    server: tuple[Path, str], tmp_path: Path, topic_root: str
) -> None:
    state_dir, broker = server
    created = _edgefleet("token", "create", "--group", topic_root, "--broker", broker, state_dir=state_dir)
    assert created.returncode == 0, created.stderr
    join = created.stdout.strip()
    assert join.startswith("edgefleet-join-v1:") and "warning" not in created.stderr
    listed = _edgefleet("token", "list", state_dir=state_dir)
    assert topic_root in listed.stdout and join.split(":", 1)[1][:20] not in listed.stdout

    device = tmp_path / "device"
    joined = _joining("join", join, "--name", "pi-cli", "--label", "env=prod", "--state-dir", str(device))
    assert joined.returncode == 0, joined.stderr
    assert "joined as pi-cli" in joined.stdout
    assert ((device / "identity.yaml").stat().st_mode & 0o777) == 0o600

    again = _joining("join", join, "--name", "pi-cli", "--state-dir", str(tmp_path / "impostor"))
    assert again.returncode == 1 and "taken" in again.stderr

    with FakeCluster() as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        run = _agent("run", "--state-dir", str(device), "--kubeconfig", str(kubeconfig))
        with processes.running(run, tmp_path / "agent.log") as agent:
            applied = _edgefleet(
                "apply",
                str(EXAMPLES / "hello-web"),
                "--broker",
                broker,
                "--broker-ca",
                str(state_dir / "tls" / "ca.pem"),
                state_dir=state_dir,
            )
            assert applied.returncode == 0, applied.stderr
            # Format 1 or 2, by whether the controller has heard the agent's first status yet.
            assert re.search(
                r"published manifest generation 1 \(envelope format [12], [\d,]+ bytes\)", applied.stdout
            ), applied.stdout
            waiting.until(
                lambda: cluster.get_object("apps/v1", "Deployment", "hello", "hello-web") is not None,
                timeout=30,
                what="the joined agent to apply hello-web",
            )
            revoked = _edgefleet("clusters", "revoke", "pi-cli", state_dir=state_dir)
            assert revoked.returncode == 0, revoked.stderr
            waiting.until(
                lambda: b"refuses cluster-pi-cli's credentials" in (tmp_path / "agent.log").read_bytes(),
                timeout=30,
                what="the revoked agent to be refused",
            )
            assert agent.poll() is None  # it keeps trying (an operator may restore it); it is not let in


def test_manual_approval_and_token_revocation_with_the_command_lines(
    server: tuple[Path, str], tmp_path: Path, topic_root: str
) -> None:
    state_dir, broker = server
    created = _edgefleet(
        "token",
        "create",
        "--group",
        topic_root,
        "--broker",
        broker,
        "--approval",
        "manual",
        state_dir=state_dir,
    )
    assert created.returncode == 0, created.stderr
    join = created.stdout.strip()
    pending: list[str] = []

    def waits() -> bool:
        pending.append(_edgefleet("clusters", "pending", state_dir=state_dir).stdout)
        return "pi-waits" in pending[-1]

    with FakeCluster() as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        device = str(tmp_path / "device")
        argv = _agent(
            "join", join, "--name", "pi-waits", "--state-dir", device, "--kubeconfig", str(kubeconfig)
        )
        with processes.running(argv, tmp_path / "join.log") as waiting_join:
            waiting.until(waits, timeout=30, what="the request to be pending")
            assert "kubernetes_version=v" in pending[-1] and "architecture=" in pending[-1]
            assert waiting_join.poll() is None
            approved = _edgefleet("clusters", "approve", "pi-waits", state_dir=state_dir)
            assert approved.returncode == 0, approved.stderr
            assert waiting_join.wait(timeout=30) == 0, (tmp_path / "join.log").read_text()

    token_id = created.stderr.split()[1]
    assert _edgefleet("token", "revoke", token_id, state_dir=state_dir).returncode == 0
    state = State.open(state_dir)
    try:
        waiting.until(lambda: not Identities(state).changes(), timeout=20, what="the revocation applied")
    finally:
        state.close()
    refused = _joining("join", join, "--name", "pi-late", "--state-dir", str(tmp_path / "late"))
    assert refused.returncode == 1 and "refused join token" in refused.stderr
    assert "pi-late" not in _edgefleet("clusters", "pending", state_dir=state_dir).stdout


def test_status_commands_on_the_controller_machine_log_in_by_themselves(
    server: tuple[Path, str], tmp_path: Path
) -> None:
    state_dir, broker = server
    env = {**os.environ, "EDGEFLEET_STATE_DIR": str(state_dir)}
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "controller.cli",
            "status",
            "--broker",
            broker,
            "--broker-ca",
            str(state_dir / "tls" / "ca.pem"),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert shown.returncode == 0, shown.stderr
    assert '"clusters"' in shown.stdout


def test_controller_drives_mosquitto_dynamic_security_from_the_command_line(
    secured_mosquitto_url: urls.BrokerUrl, tmp_path: Path, topic_root: str
) -> None:
    state_dir = tmp_path / "controller"
    assert _edgefleet("keys", "init", state_dir=state_dir).returncode == 0
    assert _edgefleet("group", "create", topic_root, state_dir=state_dir).returncode == 0
    admin, ca = secured_mosquitto_url, secured_mosquitto_url.ca_file
    assert ca is not None and admin.username and admin.password
    admin_url = f"mqtts://{admin.username}:{admin.password}@{admin.host}:{admin.port}"
    device_url = f"mqtts://{admin.host}:{admin.port}"
    argv = [sys.executable, "-m", "controller.cli", "controller", "--broker", admin_url, "--broker-ca", ca]
    with processes.running([*argv, "--state-dir", str(state_dir)], tmp_path / "controller.log") as controller:
        created = _edgefleet(
            "token",
            "create",
            "--group",
            topic_root,
            "--broker",
            device_url,
            "--broker-ca",
            ca,
            state_dir=state_dir,
        )
        assert created.returncode == 0, created.stderr
        assert "warning" not in created.stderr, (tmp_path / "controller.log").read_text()
        joined = _joining(
            "join", created.stdout.strip(), "--name", "pi-mosq", "--state-dir", str(tmp_path / "device")
        )
        assert joined.returncode == 0, joined.stderr + (tmp_path / "controller.log").read_text()
        assert controller.poll() is None


def test_controller_without_the_dynsec_admin_is_a_clear_error(tmp_path: Path) -> None:
    state_dir = tmp_path / "controller"
    assert _edgefleet("keys", "init", state_dir=state_dir).returncode == 0
    result = _edgefleet("controller", "--broker", "mqtt://127.0.0.1:1", state_dir=state_dir)
    assert result.returncode == 1
    assert "dynamic-security admin account" in result.stderr
