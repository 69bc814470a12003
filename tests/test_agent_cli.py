"""`edgefleet cluster add` writes a config that `edgefleet-agent run` runs with, as a process."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from controller import cli as controller_cli
from controller import delivering, keystore
from controller.state import State
from edge_agent import cli as agent_cli
from tests import fleet as fleets
from tests import waiting
from tests.fakekube import FakeCluster
from wire import topics, urls

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def test_agent_process_applies_what_the_controller_publishes(
    mosquitto_url: urls.BrokerUrl, topic_root: str, tmp_path: Path
) -> None:
    state_dir = tmp_path / "controller"
    config = tmp_path / "pi.agent.yaml"
    keystore.init(state_dir)
    base = ["--state-dir", str(state_dir)]
    assert controller_cli.main(["group", "create", topic_root, "--label", "region=us-west", *base]) == 0
    assert (
        controller_cli.main(
            [
                "cluster",
                "add",
                "pi-cli",
                "--group",
                topic_root,
                "--label",
                "env=prod",
                "--broker",
                str(mosquitto_url),
                "--config-out",
                str(config),
                *base,
            ]
        )
        == 0
    )
    with FakeCluster() as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        agent = subprocess.Popen(
            fleets.agent_process(config, tmp_path / "agent", kubeconfig),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            state = State.open(state_dir)
            key = keystore.load(state_dir)
            report = await delivering.apply(
                state, key, mosquitto_url, EXAMPLES / "hello-web", topics.Topics()
            )
            state.close()
            assert report.ok
            await waiting.until_async(
                lambda: cluster.get_object("apps/v1", "Deployment", "hello", "hello-web") is not None,
                timeout=30,
                what="the agent process to apply hello-web",
            )
        finally:
            agent.send_signal(signal.SIGTERM)
            output, _ = agent.communicate(timeout=20)
    assert agent.returncode == 0, output
    assert "applied 4 objects of hello-web" in output


def test_bad_config_is_a_message_and_exit_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("version: 1\ncluster: pi\n")
    assert agent_cli.main(["run", "--config", str(config), "--state-dir", str(tmp_path)]) == 1
    assert "needs a string 'group'" in capsys.readouterr().err
    assert (
        agent_cli.main(["run", "--config", str(tmp_path / "missing.yaml"), "--state-dir", str(tmp_path)]) == 1
    )
    assert "cannot read" in capsys.readouterr().err
