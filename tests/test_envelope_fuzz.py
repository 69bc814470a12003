"""Property-based: random and mutated bytes never escape as anything but WireError,
nothing is ever returned that the trusted key did not sign, and the agent takes a
signed envelope only from the topic it was sealed for."""

from __future__ import annotations

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent import receiving
from tests import factories, test_intake_fuzz
from wire import envelopes, errors, keys, manifests, topics

KEY = keys.SigningKey.generate()
TRUSTED = keys.keyring([KEY.verify_key])
MANIFEST = factories.manifest()
SEALED = envelopes.seal(MANIFEST, KEY, version=2)
SEALED_V1 = envelopes.seal(MANIFEST, KEY, version=1)
STONE = manifests.tombstone(bundle="web", group="edge/us-west", generation=2, issued_at=1.0)
SEALED_STONE = envelopes.seal(STONE, KEY, version=2)
SIGNED = {SEALED: MANIFEST, SEALED_V1: MANIFEST, SEALED_STONE: STONE}


def _decode(data: bytes) -> manifests.Manifest | None:
    try:
        return envelopes.verify(data, trusted=TRUSTED, group="edge/us-west", bundle="web")
    except errors.WireError:
        return None


def _assert_only_signed(data: bytes) -> None:
    result = _decode(data)
    if result is not None:
        assert result in SIGNED.values(), "decoded a manifest the trusted key never signed"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_raise_only_wire_errors(data: bytes) -> None:
    assert _decode(data) is None


@settings(max_examples=400, deadline=None)
@given(
    source=st.sampled_from([SEALED, SEALED_V1, SEALED_STONE]),
    edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(min_value=0)),
    tail=st.binary(max_size=16),
)
def test_mutated_envelopes_never_yield_unsigned_manifests(
    source: bytes, edits: list[tuple[int, int]], cut: int | None, tail: bytes
) -> None:
    data = bytearray(source)
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        del data[cut % len(data) :]
    _assert_only_signed(bytes(data) + tail)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(msgpack_values, min_size=0, max_size=6))
def test_structured_garbage_raises_only_wire_errors(fields: list[object]) -> None:
    assert _decode(msgpack.packb(fields, use_bin_type=True)) is None


@settings(max_examples=300, deadline=None)
@given(msgpack_values)
def test_signed_garbage_manifests_raise_only_wire_errors(value: object) -> None:
    """Even a trusted signer's nonsense body is refused cleanly, not crashed on."""
    body = envelopes.codecs.compress(envelopes.codecs.Codec.ZSTD, msgpack.packb(value, use_bin_type=True))
    signature = KEY.sign(envelopes.signed_bytes(1, KEY.key_id, "zstd", body))
    data = msgpack.packb([1, KEY.key_id, "zstd", body, signature], use_bin_type=True)
    assert _decode(data) is None


BUNDLE_TOPIC = "edge/us-west/bundles/web"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    topic=st.one_of(
        test_intake_fuzz.hostile_topics,
        st.sampled_from(
            ["edge/us-west/bundles/web/", "edge/us-west/bundles/web2", "edge/us-east/bundles/web"]
        ),
    ),
    payload=st.sampled_from([SEALED, SEALED_V1, SEALED_STONE, b"", b"\xff"]),
    pinned=st.booleans(),
)
def test_the_agent_refuses_a_signed_envelope_on_any_other_topic(
    topic: str, payload: bytes, pinned: bool
) -> None:
    """The agent's receiving side (edge_agent.receiving.check) on hostile topics: a signed
    envelope is taken only from its own group's topic for its own bundle; anything else is
    refused as a WireError, never raised."""
    result = receiving.check(
        topic, payload, topic_space=topics.Topics(), trusted=TRUSTED, group="edge/us-west" if pinned else None
    )
    if topic == BUNDLE_TOPIC and payload:
        assert isinstance(result, receiving.Accepted) and result.manifest == SIGNED[payload]
    else:
        assert isinstance(result, receiving.Refused) and isinstance(result.error, errors.WireError)
