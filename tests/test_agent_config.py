from __future__ import annotations

import pytest

from wire import agent_config, errors, keys

PEM = keys.SigningKey.generate().verify_key.to_pem().decode()


def _document(**changes: object) -> dict[str, object]:
    config = agent_config.AgentConfig("pi-7", "edge/us-west", "mqtts://broker:8883", (PEM,), {"env": "prod"})
    return {**agent_config.to_document(config), **changes}


def test_round_trips() -> None:
    config = agent_config.from_document(_document())
    assert (config.cluster, config.group, config.labels) == ("pi-7", "edge/us-west", {"env": "prod"})
    assert config.broker_url().tls and config.broker_url().port == 8883
    assert len(config.keyring()) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"version": 2}, "version"),
        ({"cluster": ""}, "cluster"),
        ({"cluster": "a/b"}, "cluster name"),
        ({"group": "edge/#"}, "group"),
        ({"broker": "http://x"}, "mqtt://"),
        ({"labels": {"a": 1}}, "labels"),
        ({"trusted_keys": []}, "trusted_keys"),
        ({"trusted_keys": ["not a key"]}, "PEM"),
    ],
)
def test_rejects_bad_configs(changes: dict[str, object], message: str) -> None:
    with pytest.raises(errors.WireError, match=message):
        agent_config.from_document(_document(**changes))
