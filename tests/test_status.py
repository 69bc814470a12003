from __future__ import annotations

import json

import hypothesis
import pytest
from hypothesis import strategies as st

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


def _reference_decode_status(payload: bytes) -> status.StatusDocument:
    """decode_status as it was before its checks were made fast: it must decide (and
    word its errors) exactly like this."""
    doc = status._load(payload, "status")
    for key, kind in (
        ("cluster", str),
        ("group", str),
        ("agent_version", str),
        ("session", int),
        ("seq", int),
        ("ts", (int, float)),
        ("labels", dict),
        ("node", dict),
        ("bundles", dict),
    ):
        status._require(doc, key, kind, "status")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in doc["labels"].items()):
        raise errors.Malformed("status.labels must map strings to strings")
    for name, bundle in doc["bundles"].items():
        where = f"status.bundles[{name!r}]"
        if not isinstance(bundle, dict):
            raise errors.Malformed(f"{where} is not an object")
        state = status._require(bundle, "state", str, where)
        if state not in status._STATE_NAMES:
            raise errors.Malformed(f"{where}.state {state[:40]!r} is not a bundle state")
        status._require(bundle, "generation", int, where)
    # Added with format 2, after the fast path was written: the same check, which
    # test_malformed_envelope_formats_are_refused covers on its own.
    status._check_formats(doc.get("envelope_formats", [1]))
    # Added for the agent's own trouble (its state directory): the same check, which
    # test_malformed_agent_errors_are_refused covers on its own.
    if "agent_errors" in doc:
        doc["agent_errors"] = status._agent_errors(doc["agent_errors"])
    return doc  # type: ignore[return-value]


_ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.sampled_from(["Ready", "ErrApplied", "Sleeping"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.one_of(st.text(max_size=3), st.integers()), max_size=2),
)


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(
    st.lists(
        st.tuples(
            st.sampled_from(["", "labels", "bundles", "bundles.web", "bundles.api"]),
            st.sampled_from([*status.StatusDocument.__annotations__, "state", "generation", "site", "x"]),
            st.one_of(_ODD_VALUES, st.just(...)),
        ),
        max_size=4,
    )
)
def test_decode_status_decides_like_the_plain_reference(changes: list[tuple[str, str, object]]) -> None:
    document: dict[str, object] = json.loads(json.dumps(_document()))
    document["bundles"]["api"] = {"state": "Ready", "generation": 1}  # type: ignore[index]
    for where, key, value in changes:
        target: object = document
        for part in where.split(".") if where else []:
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if value is ...:
            target.pop(key, None)
        else:
            target[key] = value
    payload = json.dumps(document).encode()
    try:
        expected: object = _reference_decode_status(payload)
    except errors.WireError as exc:
        expected = (type(exc), str(exc))
    try:
        got: object = status.decode_status(payload)
    except errors.WireError as exc:
        got = (type(exc), str(exc))
    assert got == expected


def test_an_agent_that_does_not_list_its_envelope_formats_reads_format_1() -> None:
    document = status.decode_status(status.encode(_document()))
    assert status.envelope_formats(document) == {1}
    listed = status.decode_status(json.dumps({**_document(), "envelope_formats": [1, 2]}).encode())
    assert status.envelope_formats(listed) == {1, 2}


@pytest.mark.parametrize("formats", [[], "1,2", [1, "2"], [True], [0], list(range(1, 18))])
def test_malformed_envelope_formats_are_refused(formats: object) -> None:
    with pytest.raises(errors.Malformed, match="envelope_formats"):
        status.decode_status(json.dumps({**_document(), "envelope_formats": formats}).encode())


def test_agent_errors_are_optional_and_round_trip() -> None:
    assert "agent_errors" not in status.decode_status(status.encode(_document()))
    troubled: status.StatusDocument = {**_document(), "agent_errors": ["cannot write /var/lib/x: No space"]}
    assert status.decode_status(status.encode(troubled)) == troubled


@pytest.mark.parametrize("problems", ["disk full", [1], [None], ["ok", {"line": "x"}]])
def test_malformed_agent_errors_are_refused(problems: object) -> None:
    with pytest.raises(errors.Malformed, match="agent_errors"):
        status.decode_status(json.dumps({**_document(), "agent_errors": problems}).encode())


def test_agent_errors_past_the_limits_are_cut_not_refused() -> None:
    long = "x" * (status.MAX_AGENT_ERROR_CHARS + 100)
    many = {**_document(), "agent_errors": [long] + [f"line {n}" for n in range(20)]}
    kept = status.decode_status(json.dumps(many).encode())["agent_errors"]
    assert len(kept) == status.MAX_AGENT_ERRORS and kept[0] == long[: status.MAX_AGENT_ERROR_CHARS]
    assert kept[1:] == [f"line {n}" for n in range(status.MAX_AGENT_ERRORS - 1)]
