"""Shared fixtures: real brokers on free ports, unique topic roots, keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from broker import embedded
from tests import brokers, recovery, tlscerts
from wire import keys, urls


@pytest.fixture(scope="session")
def mosquitto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[urls.BrokerUrl]:
    with brokers.mosquitto(tmp_path_factory.mktemp("mosquitto")) as url:
        yield url


@pytest.fixture(scope="session")
def secured_mosquitto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[urls.BrokerUrl]:
    """Mosquitto with dynamic security and TLS; the URL carries the dynsec admin's login."""
    workdir = tmp_path_factory.mktemp("secured-mosquitto")
    with brokers.secured_mosquitto(workdir, tlscerts.make(workdir / "tls")) as url:
        yield url


@pytest.fixture
async def amqtt_url() -> AsyncIterator[urls.BrokerUrl]:
    async with embedded.serve() as endpoint:
        yield endpoint.url


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker_url(request: pytest.FixtureRequest) -> urls.BrokerUrl:
    """Each test that takes this runs once against each real broker."""
    url: urls.BrokerUrl = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def topic_root() -> str:
    """A group name no other test uses, so tests sharing a broker never meet."""
    return f"t{uuid.uuid4().hex[:12]}/site"


@pytest.fixture(scope="session")
def signing_key() -> keys.SigningKey:
    return keys.SigningKey.generate()


@pytest.fixture(scope="session")
def trusted(signing_key: keys.SigningKey) -> keys.Keyring:
    return keys.keyring([signing_key.verify_key])


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault matrix's recovery times, as measured in this run (tests/recovery.py)."""
    if recovery.RECORDED:
        terminalreporter.section("recovery times (docs/reliability.md)")
        for line in recovery.report_lines():
            terminalreporter.write_line(line)
        recovery.write_json()
