from __future__ import annotations

import json

import pytest

from wire import errors, limits, status


def _document() -> status.StatusDocument:
    return {
        "cluster": "pi-7",
        "group": "edge/us-west",
        "labels": {"site": "sf-12"},
        "agent_version": "0.1.0",
        "session": 3,
        "seq": 41,
        "ts": 1_700_000_000.5,
        "node": {"kubernetes_version": "v1.31.2+k3s1", "platform": "linux/arm64", "ready": True},
        "bundles": {
            "web": {
                "state": "NotReady",
                "generation": 4,
                "deployment_id": "ab" * 32,
                "applied_deployment_id": "ab" * 32,
                "message": "1 of 1 objects not ready",
                "non_ready": [
                    {
                        "api_version": "apps/v1",
                        "kind": "Deployment",
                        "namespace": "hello",
                        "name": "web",
                        "message": "0/1 replicas available",
                    }
                ],
                "modified": [],
            }
        },
    }


def test_status_document_round_trips() -> None:
    document = _document()
    assert status.decode_status(status.encode(document)) == document


def test_presence_round_trips() -> None:
    presence: status.Presence = {"online": False, "since": 12.5, "session": 9}
    assert status.decode_presence(status.encode(presence)) == presence


def test_states_rank_as_fleet_ranks_them() -> None:
    order = ["ErrApplied", "WaitApplied", "Modified", "OutOfSync", "Pending", "NotReady", "Ready"]
    ranked = sorted(status.State, key=lambda s: s.rank, reverse=True)
    assert [s.value for s in ranked] == order
    assert (
        status.worst([status.State.READY, status.State.MODIFIED, status.State.PENDING])
        is status.State.MODIFIED
    )
    assert status.worst([]) is status.State.READY


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xff\xfe",
        b"[]",
        b"{}",
        b"[" * 100_000,
        json.dumps({**_document(), "seq": "41"}).encode(),
        json.dumps({**_document(), "session": True}).encode(),
        json.dumps({**_document(), "labels": {"a": 1}}).encode(),
        json.dumps({**_document(), "bundles": {"web": {"state": "Sleeping", "generation": 1}}}).encode(),
        json.dumps({**_document(), "bundles": {"web": []}}).encode(),
    ],
)
def test_malformed_status_is_refused(payload: bytes) -> None:
    with pytest.raises(errors.Malformed):
        status.decode_status(payload)


def test_oversized_status_is_refused_before_parsing() -> None:
    with pytest.raises(errors.TooLarge):
        status.decode_status(b" " * (limits.MAX_STATUS_BYTES + 1))


def test_an_agent_that_does_not_list_its_envelope_formats_reads_format_1() -> None:
    document = status.decode_status(status.encode(_document()))
    assert status.envelope_formats(document) == {1}
    listed = status.decode_status(json.dumps({**_document(), "envelope_formats": [1, 2]}).encode())
    assert status.envelope_formats(listed) == {1, 2}


@pytest.mark.parametrize("formats", [[], "1,2", [1, "2"], [True], [0], list(range(1, 18))])
def test_malformed_envelope_formats_are_refused(formats: object) -> None:
    with pytest.raises(errors.Malformed, match="envelope_formats"):
        status.decode_status(json.dumps({**_document(), "envelope_formats": formats}).encode())
