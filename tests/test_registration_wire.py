"""Registration request/reply (wire.registration) and the join string (wire.joining)."""

from __future__ import annotations

import base64
import json
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from wire import canonical, codecs, envelopes, errors, joining, keys, registration
from wire.registration import Grant, Outcome, Reply, Request

CLIENT_ID = "join-0123456789abcdef"
SECRET = "S" * 43


@pytest.fixture(scope="module")
def controller_key() -> keys.SigningKey:
    return keys.SigningKey.generate()


@pytest.fixture
def agent_key() -> x25519.X25519PrivateKey:
    return x25519.X25519PrivateKey.generate()


def _raw(private: x25519.X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes_raw()


def _request(public_key: bytes, **changes: Any) -> Request:
    values: dict[str, Any] = {
        "token_id": "a1b2c3d4e5f60718",
        "secret": SECRET,
        "name": "pi-7",
        "public_key": public_key,
        "labels": {"site": "berlin", "tier": "edge"},
        "facts": {"architecture": "aarch64", "kubernetes": "v1.30.2"},
    }
    values.update(changes)
    return Request(**values)


def _request_document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(registration.encode_request(_request(bytes(range(32)))))
    document.update(changes)
    return document


def _encoded(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def _grant() -> Grant:
    return Grant(
        cluster="pi-7",
        group="edge/us-west",
        labels={"site": "berlin"},
        username="cluster-pi-7",
        password="p" * 43,
        trusted_keys=("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "second"),
    )


def _open(
    payload: bytes, key: keys.SigningKey, private: x25519.X25519PrivateKey, client_id: str = CLIENT_ID
) -> Reply:
    return registration.open_reply(
        payload, fingerprint=key.verify_key.fingerprint, private_key=private, client_id=client_id
    )


def _sign_by_hand(
    key: keys.SigningKey,
    fields: list[Any],
    *,
    client_id: str,
    recipient: bytes,
    domain: bytes = registration.DOMAIN,
) -> bytes:
    """A reply whose signature is made here, over `domain` + the documented signed structure."""
    signed = domain + msgpack.packb([*fields, client_id, recipient], use_bin_type=True)
    packed: bytes = msgpack.packb([*fields, key.sign(signed)], use_bin_type=True)
    return packed


def _tamper(payload: bytes, index: int, value: Any) -> bytes:
    fields = msgpack.unpackb(payload, raw=False)
    fields[index] = value
    packed: bytes = msgpack.packb(fields, use_bin_type=True)
    return packed


# -- requests -------------------------------------------------------------------------------------


def test_request_survives_encode_and_decode_unchanged(agent_key: x25519.X25519PrivateKey) -> None:
    request = _request(_raw(agent_key))
    assert registration.decode_request(registration.encode_request(request)) == request


def test_request_without_labels_or_facts_decodes_to_empty_maps() -> None:
    document = _request_document()
    del document["labels"], document["facts"]
    decoded = registration.decode_request(_encoded(document))
    assert decoded.labels == {}
    assert decoded.facts == {}


def test_request_of_exactly_the_size_limit_is_read() -> None:
    payload = registration.encode_request(_request(bytes(32)))
    padded = payload + b" " * (registration.MAX_REQUEST_BYTES - len(payload))
    assert len(padded) == registration.MAX_REQUEST_BYTES
    assert registration.decode_request(padded).name == "pi-7"


def test_request_over_the_size_limit_is_too_large() -> None:
    payload = registration.encode_request(_request(bytes(32)))
    padded = payload + b" " * (registration.MAX_REQUEST_BYTES + 1 - len(payload))
    with pytest.raises(errors.TooLarge):
        registration.decode_request(padded)


@pytest.mark.parametrize("payload", [b"", b"not json", b"{", b"\xff\xfe{}", b"[" * 5000])
def test_request_that_is_not_json_is_malformed(payload: bytes) -> None:
    with pytest.raises(errors.Malformed):
        registration.decode_request(payload)


@pytest.mark.parametrize("payload", [b"[]", b'"text"', b"42", b"null"])
def test_request_that_is_not_a_json_object_is_malformed(payload: bytes) -> None:
    with pytest.raises(errors.Malformed):
        registration.decode_request(payload)


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_request_of_another_version_is_unsupported(version: object) -> None:
    with pytest.raises(errors.UnsupportedVersion):
        registration.decode_request(_encoded(_request_document(version=version)))


def test_request_without_a_version_is_unsupported() -> None:
    document = _request_document()
    del document["version"]
    with pytest.raises(errors.UnsupportedVersion):
        registration.decode_request(_encoded(document))


@pytest.mark.parametrize("missing", ["token", "secret", "name", "public_key"])
def test_request_missing_a_required_field_is_malformed(missing: str) -> None:
    document = _request_document()
    del document[missing]
    with pytest.raises(errors.Malformed, match=missing):
        registration.decode_request(_encoded(document))


@pytest.mark.parametrize("field", ["token", "secret", "name", "public_key"])
def test_request_field_that_is_not_a_string_is_malformed(field: str) -> None:
    with pytest.raises(errors.Malformed, match=field):
        registration.decode_request(_encoded(_request_document(**{field: 12345})))


def test_request_field_longer_than_256_characters_is_malformed() -> None:
    with pytest.raises(errors.Malformed, match="secret"):
        registration.decode_request(_encoded(_request_document(secret="x" * 257)))


@pytest.mark.parametrize("public_key", ["zz" * 32, "abc", "0g" + "00" * 31])
def test_request_public_key_that_is_not_hex_is_a_bad_key(public_key: str) -> None:
    with pytest.raises(errors.BadKey):
        registration.decode_request(_encoded(_request_document(public_key=public_key)))


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_request_public_key_of_wrong_length_is_a_bad_key(length: int) -> None:
    with pytest.raises(errors.BadKey, match="32 bytes"):
        registration.decode_request(_encoded(_request_document(public_key="ab" * length)))


def test_bad_key_is_a_kind_of_malformed() -> None:
    assert issubclass(errors.BadKey, errors.Malformed)


@pytest.mark.parametrize("name", ["", "-pi", "pi-", "edge/pi", "pi+7", "#", "$SYS", "a" * 64])
def test_request_for_an_invalid_cluster_name_is_refused(name: str) -> None:
    with pytest.raises(errors.InvalidName):
        registration.decode_request(_encoded(_request_document(name=name)))


def test_request_with_the_maximum_number_of_labels_is_read() -> None:
    labels = {f"k{i}": "v" for i in range(registration.MAX_LABELS)}
    decoded = registration.decode_request(_encoded(_request_document(labels=labels)))
    assert decoded.labels == labels


def test_request_with_too_many_labels_is_malformed() -> None:
    labels = {f"k{i}": "v" for i in range(registration.MAX_LABELS + 1)}
    with pytest.raises(errors.Malformed, match="labels"):
        registration.decode_request(_encoded(_request_document(labels=labels)))


def test_request_with_too_many_facts_is_malformed() -> None:
    facts = {f"k{i}": "v" for i in range(registration.MAX_FACTS + 1)}
    with pytest.raises(errors.Malformed, match="facts"):
        registration.decode_request(_encoded(_request_document(facts=facts)))


@pytest.mark.parametrize("value", [1, True, None, ["a"], {"nested": "map"}])
def test_request_label_value_that_is_not_a_string_is_malformed(value: object) -> None:
    with pytest.raises(errors.Malformed, match="labels"):
        registration.decode_request(_encoded(_request_document(labels={"site": value})))


@pytest.mark.parametrize("labels", [["site", "berlin"], "site=berlin", 7])
def test_request_labels_that_are_not_a_map_are_malformed(labels: object) -> None:
    with pytest.raises(errors.Malformed, match="labels"):
        registration.decode_request(_encoded(_request_document(labels=labels)))


def test_request_label_longer_than_256_characters_is_malformed() -> None:
    with pytest.raises(errors.Malformed, match="labels"):
        registration.decode_request(_encoded(_request_document(labels={"site": "b" * 257})))


# -- replies: round trips -------------------------------------------------------------------------


def test_approved_reply_round_trips_the_grant_exactly(
    controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    reply = Reply(Outcome.APPROVED, "cluster 'pi-7' registered", _grant())
    payload = registration.seal_reply(
        reply, key=controller_key, client_id=CLIENT_ID, recipient=_raw(agent_key)
    )
    opened = _open(payload, controller_key, agent_key)
    assert opened == reply
    assert opened.grant == _grant()


def test_approved_reply_does_not_show_the_grant_in_clear(
    controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    payload = registration.seal_reply(
        Reply(Outcome.APPROVED, "ok", _grant()),
        key=controller_key,
        client_id=CLIENT_ID,
        recipient=_raw(agent_key),
    )
    assert b"p" * 43 not in payload
    assert b"cluster-pi-7" not in payload


@pytest.mark.parametrize("outcome", [Outcome.PENDING, Outcome.DENIED, Outcome.REFUSED])
def test_unapproved_reply_carries_its_message_and_no_grant(
    outcome: Outcome, controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    payload = registration.seal_reply(
        Reply(outcome, f"the reason for {outcome.value}"),
        key=controller_key,
        client_id=CLIENT_ID,
        recipient=_raw(agent_key),
    )
    opened = _open(payload, controller_key, agent_key)
    assert opened == Reply(outcome, f"the reason for {outcome.value}", None)
    fields = msgpack.unpackb(payload, raw=False)
    assert fields[4] == b""  # no one-time key
    assert fields[5] == b""  # nothing sealed


# -- replies: whose key signed it ------------------------------------------------------------------


def test_reply_checked_against_another_fingerprint_is_an_unknown_key_naming_both(
    controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    pinned = keys.SigningKey.generate().verify_key.fingerprint
    payload = registration.seal_reply(
        Reply(Outcome.PENDING, "wait"), key=controller_key, client_id=CLIENT_ID, recipient=_raw(agent_key)
    )
    with pytest.raises(errors.UnknownKey) as raised:
        registration.open_reply(payload, fingerprint=pinned, private_key=agent_key, client_id=CLIENT_ID)
    assert controller_key.verify_key.fingerprint in str(raised.value)
    assert pinned in str(raised.value)


def test_reply_signed_by_an_impostor_claiming_the_pinned_key_does_not_verify(
    controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    impostor = keys.SigningKey.generate()
    fields = [1, "pending", "wait", controller_key.verify_key.raw, b"", b""]
    payload = _sign_by_hand(impostor, fields, client_id=CLIENT_ID, recipient=_raw(agent_key))
    with pytest.raises(errors.BadSignature):
        _open(payload, controller_key, agent_key)


# -- replies: tampering and binding ----------------------------------------------------------------


@pytest.fixture
def approval(controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey) -> bytes:
    return registration.seal_reply(
        Reply(Outcome.APPROVED, "cluster 'pi-7' registered", _grant()),
        key=controller_key,
        client_id=CLIENT_ID,
        recipient=_raw(agent_key),
    )


def test_reply_with_a_flipped_byte_in_the_sealed_grant_fails_the_signature(
    approval: bytes, controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    sealed = bytearray(msgpack.unpackb(approval, raw=False)[5])
    sealed[len(sealed) // 2] ^= 0x01
    with pytest.raises(errors.BadSignature):
        _open(_tamper(approval, 5, bytes(sealed)), controller_key, agent_key)


def test_reply_with_a_changed_message_fails_the_signature(
    approval: bytes, controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    with pytest.raises(errors.BadSignature):
        _open(_tamper(approval, 2, "cluster 'pi-8' registered"), controller_key, agent_key)


def test_reply_with_a_changed_outcome_fails_the_signature(
    controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    denied = registration.seal_reply(
        Reply(Outcome.DENIED, "no"), key=controller_key, client_id=CLIENT_ID, recipient=_raw(agent_key)
    )
    with pytest.raises(errors.BadSignature):
        _open(_tamper(denied, 1, "pending"), controller_key, agent_key)


def test_reply_with_a_swapped_one_time_key_fails_the_signature(
    approval: bytes, controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    other = _raw(x25519.X25519PrivateKey.generate())
    with pytest.raises(errors.BadSignature):
        _open(_tamper(approval, 4, other), controller_key, agent_key)


def test_reply_with_a_flipped_signature_byte_fails_the_signature(
    approval: bytes, controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    signature = bytearray(msgpack.unpackb(approval, raw=False)[6])
    signature[0] ^= 0x80
    with pytest.raises(errors.BadSignature):
        _open(_tamper(approval, 6, bytes(signature)), controller_key, agent_key)


@pytest.mark.parametrize("outcome", [Outcome.APPROVED, Outcome.PENDING])
def test_reply_made_for_another_client_id_fails_the_signature(
    outcome: Outcome, controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    grant = _grant() if outcome is Outcome.APPROVED else None
    payload = registration.seal_reply(
        Reply(outcome, "m", grant), key=controller_key, client_id=CLIENT_ID, recipient=_raw(agent_key)
    )
    with pytest.raises(errors.BadSignature):
        _open(payload, controller_key, agent_key, client_id="join-ffffffffffffffff")


@pytest.mark.parametrize("outcome", [Outcome.APPROVED, Outcome.DENIED])
def test_reply_made_for_another_recipient_key_fails_the_signature(
    outcome: Outcome, controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    someone_else = x25519.X25519PrivateKey.generate()
    grant = _grant() if outcome is Outcome.APPROVED else None
    payload = registration.seal_reply(
        Reply(outcome, "m", grant), key=controller_key, client_id=CLIENT_ID, recipient=_raw(someone_else)
    )
    with pytest.raises(errors.BadSignature):
        _open(payload, controller_key, agent_key)
    # ...while the key it was made for opens it.
    assert _open(payload, controller_key, someone_else).outcome is outcome


def test_reply_opened_with_another_private_key_than_its_recipient_fails(
    approval: bytes, controller_key: keys.SigningKey
) -> None:
    with pytest.raises(errors.BadSignature):
        _open(approval, controller_key, x25519.X25519PrivateKey.generate())


def test_controller_signed_approval_whose_grant_does_not_open_is_a_bad_signature(
    controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    one_time = _raw(x25519.X25519PrivateKey.generate())
    fields = [1, "approved", "ok", controller_key.verify_key.raw, one_time, b"\x00" * 64]
    payload = _sign_by_hand(controller_key, fields, client_id=CLIENT_ID, recipient=_raw(agent_key))
    with pytest.raises(errors.BadSignature, match="sealed grant"):
        _open(payload, controller_key, agent_key)


@pytest.mark.parametrize(("ephemeral", "sealed"), [(b"", b""), (bytes(32), b""), (b"", b"x" * 40)])
def test_controller_signed_approval_without_a_sealed_grant_is_malformed(
    ephemeral: bytes, sealed: bytes, controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    fields = [1, "approved", "ok", controller_key.verify_key.raw, ephemeral, sealed]
    payload = _sign_by_hand(controller_key, fields, client_id=CLIENT_ID, recipient=_raw(agent_key))
    with pytest.raises(errors.Malformed, match="sealed grant"):
        _open(payload, controller_key, agent_key)


def test_controller_signed_reply_with_an_unknown_outcome_is_malformed(
    controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    fields = [1, "maybe", "?", controller_key.verify_key.raw, b"", b""]
    payload = _sign_by_hand(controller_key, fields, client_id=CLIENT_ID, recipient=_raw(agent_key))
    with pytest.raises(errors.Malformed, match="outcome"):
        _open(payload, controller_key, agent_key)


# -- replies: domain separation --------------------------------------------------------------------


def test_signature_over_the_envelope_domain_never_verifies_as_a_reply(
    controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    fields = [1, "pending", "wait", controller_key.verify_key.raw, b"", b""]
    recipient = _raw(agent_key)
    as_envelope = _sign_by_hand(
        controller_key, fields, client_id=CLIENT_ID, recipient=recipient, domain=envelopes.DOMAIN
    )
    with pytest.raises(errors.BadSignature):
        _open(as_envelope, controller_key, agent_key)
    # The same structure signed under the registration domain is accepted: only the domain differs.
    as_reply = _sign_by_hand(controller_key, fields, client_id=CLIENT_ID, recipient=recipient)
    assert _open(as_reply, controller_key, agent_key) == Reply(Outcome.PENDING, "wait")


def test_signature_over_the_registration_domain_never_verifies_as_an_envelope(
    controller_key: keys.SigningKey,
) -> None:
    codec = codecs.Codec.ZSTD
    body = codecs.compress(codec, canonical.encode({"anything": 1}))
    header = msgpack.packb([1, controller_key.key_id, codec.value, body], use_bin_type=True)
    signature = controller_key.sign(registration.DOMAIN + header)
    data = msgpack.packb([1, controller_key.key_id, codec.value, body, signature], use_bin_type=True)
    with pytest.raises(errors.BadSignature):
        envelopes.unseal(data, trusted=keys.keyring([controller_key.verify_key]))


def test_the_two_signing_domains_differ_and_neither_prefixes_the_other() -> None:
    assert not registration.DOMAIN.startswith(envelopes.DOMAIN)
    assert not envelopes.DOMAIN.startswith(registration.DOMAIN)


# -- replies: garbage ------------------------------------------------------------------------------


def test_reply_over_the_size_limit_is_too_large(
    controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    with pytest.raises(errors.TooLarge):
        _open(b"\x90" * (registration.MAX_REPLY_BYTES + 1), controller_key, agent_key)


@pytest.mark.parametrize("payload", [b"", b"\xc1", b"\x97\x01", b"\x92\x01\x02\x03"])
def test_reply_that_is_not_msgpack_is_malformed(
    payload: bytes, controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    with pytest.raises(errors.Malformed):
        _open(payload, controller_key, agent_key)


@pytest.mark.parametrize("value", [[], [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6, 7, 8], {"a": 1}, "str", 7])
def test_reply_that_is_not_a_seven_element_array_is_malformed(
    value: object, controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    with pytest.raises(errors.Malformed, match="7-element"):
        _open(msgpack.packb(value, use_bin_type=True), controller_key, agent_key)


def test_reply_of_another_version_is_unsupported(
    approval: bytes, controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    with pytest.raises(errors.UnsupportedVersion):
        _open(_tamper(approval, 0, 2), controller_key, agent_key)


@pytest.mark.parametrize(("index", "value"), [(2, b"bytes"), (3, "text"), (4, 0), (5, None), (6, "sig")])
def test_reply_field_of_the_wrong_type_is_malformed(
    index: int,
    value: object,
    approval: bytes,
    controller_key: keys.SigningKey,
    agent_key: x25519.X25519PrivateKey,
) -> None:
    with pytest.raises(errors.Malformed):
        _open(_tamper(approval, index, value), controller_key, agent_key)


@pytest.mark.parametrize("length", [0, 31, 33])
def test_reply_signer_of_the_wrong_length_is_a_bad_key(
    length: int, approval: bytes, controller_key: keys.SigningKey, agent_key: x25519.X25519PrivateKey
) -> None:
    with pytest.raises(errors.BadKey):
        _open(_tamper(approval, 3, b"\x01" * length), controller_key, agent_key)


# -- join strings ----------------------------------------------------------------------------------

FINGERPRINT = keys.SigningKey.generate().verify_key.fingerprint


def _join(**changes: Any) -> joining.JoinString:
    values: dict[str, Any] = {
        "broker": "mqtts://broker.example.com:8883",
        "token_id": "a1b2c3d4e5f60718",
        "secret": "Zm9v_YmFy-" + "x" * 33,
        "fingerprint": FINGERPRINT,
        "topic_prefix": "acme/fleet",
    }
    values.update(changes)
    return joining.JoinString(**values)


def _join_text(document: object) -> str:
    raw = json.dumps(document).encode()
    return joining.PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _join_document(**changes: Any) -> dict[str, Any]:
    document = {
        "broker": "mqtt://broker:1883",
        "token": "a1b2c3d4e5f60718",
        "secret": "s" * 43,
        "fingerprint": FINGERPRINT,
        "prefix": "fleet",
    }
    document.update(changes)
    return document


def test_join_string_round_trips_without_a_ca() -> None:
    join = _join()
    text = join.encode()
    assert text.startswith(joining.PREFIX)
    assert "=" not in text
    assert joining.JoinString.parse(text) == join
    assert joining.JoinString.parse(text).ca_der is None


def test_join_string_round_trips_with_a_ca() -> None:
    join = _join(ca_der=bytes(range(256)) * 3)
    assert joining.JoinString.parse(join.encode()) == join


def test_join_string_round_trips_an_empty_ca_as_empty_not_absent() -> None:
    assert joining.JoinString.parse(_join(ca_der=b"").encode()).ca_der == b""


def test_join_string_parse_ignores_surrounding_whitespace() -> None:
    join = _join()
    assert joining.JoinString.parse(f"  \n\t{join.encode()}\r\n  ") == join


@pytest.mark.parametrize(
    "text",
    ["", "edgefleet-join-v2:e30", "EDGEFLEET-JOIN-V1:e30", "join:e30", "e30", "edgefleet-join-v1"],
)
def test_join_string_with_the_wrong_prefix_is_malformed(text: str) -> None:
    with pytest.raises(errors.Malformed, match="not a join string"):
        joining.JoinString.parse(text)


def test_join_string_cut_short_is_damaged() -> None:
    text = _join().encode()
    for cut in (1, 2, 3, 10):
        with pytest.raises(errors.Malformed, match="damaged"):
            joining.JoinString.parse(text[:-cut])


@pytest.mark.parametrize("body", ["%%%%", "é", "a", "AAAA"])
def test_join_string_with_an_unreadable_body_is_damaged(body: str) -> None:
    with pytest.raises(errors.Malformed, match="damaged"):
        joining.JoinString.parse(joining.PREFIX + body)


@pytest.mark.parametrize("document", [[1, 2], "text", 3, None, True])
def test_join_string_whose_content_is_not_a_map_is_malformed(document: object) -> None:
    with pytest.raises(errors.Malformed, match="not a map"):
        joining.JoinString.parse(_join_text(document))


@pytest.mark.parametrize("missing", ["broker", "token", "secret", "fingerprint", "prefix"])
def test_join_string_missing_a_key_names_it(missing: str) -> None:
    document = _join_document()
    del document[missing]
    with pytest.raises(errors.Malformed, match=f"lacks {missing}"):
        joining.JoinString.parse(_join_text(document))


def test_join_string_with_a_non_string_value_names_the_key() -> None:
    with pytest.raises(errors.Malformed, match="lacks token"):
        joining.JoinString.parse(_join_text(_join_document(token=12345678)))


@pytest.mark.parametrize(
    "broker", ["http://broker:1883", "broker:1883", "mqtt://", "mqtt://broker/path", "mqtt://b:99999"]
)
def test_join_string_with_a_bad_broker_url_is_malformed(broker: str) -> None:
    with pytest.raises(errors.Malformed, match="broker URL"):
        joining.JoinString.parse(_join_text(_join_document(broker=broker)))
    with pytest.raises(errors.Malformed):
        _join(broker=broker)


@pytest.mark.parametrize("token", ["short", "UPPERCASE123", "a1b2-c3d4e5", "a" * 33, ""])
def test_join_string_with_a_bad_token_id_is_malformed(token: str) -> None:
    with pytest.raises(errors.Malformed, match="token id"):
        joining.JoinString.parse(_join_text(_join_document(token=token)))


@pytest.mark.parametrize("secret", ["", "s" * 31, "s" * 129, "s" * 40 + "!", "s" * 40 + "="])
def test_join_string_with_a_bad_secret_is_malformed(secret: str) -> None:
    with pytest.raises(errors.Malformed, match="secret"):
        joining.JoinString.parse(_join_text(_join_document(secret=secret)))


@pytest.mark.parametrize(
    "fingerprint",
    [
        "",
        FINGERPRINT[len("SHA256:") :],
        "MD5:" + FINGERPRINT[len("SHA256:") :],
        FINGERPRINT + "=",
        FINGERPRINT[:-1],
        FINGERPRINT[:-1] + "_",
    ],
)
def test_join_string_with_a_bad_fingerprint_is_malformed(fingerprint: str) -> None:
    with pytest.raises(errors.Malformed, match="fingerprint"):
        joining.JoinString.parse(_join_text(_join_document(fingerprint=fingerprint)))


@pytest.mark.parametrize("ca", ["!!!not base64", "AAA", "AA==AA"])
def test_join_string_with_a_ca_that_is_not_base64_is_malformed(ca: str) -> None:
    with pytest.raises(errors.Malformed, match="'ca'"):
        joining.JoinString.parse(_join_text(_join_document(ca=ca)))


@pytest.mark.parametrize("ca", [123, ["AAAA"], {"der": "AAAA"}])
def test_join_string_with_a_ca_that_is_not_a_string_is_malformed(ca: object) -> None:
    with pytest.raises(errors.Malformed, match="'ca'"):
        joining.JoinString.parse(_join_text(_join_document(ca=ca)))


def test_join_string_over_the_length_limit_is_too_large() -> None:
    with pytest.raises(errors.TooLarge):
        joining.JoinString.parse(joining.PREFIX + "A" * joining.MAX_JOIN_STRING)


def test_join_string_length_limit_counts_after_stripping_whitespace() -> None:
    text = _join().encode()
    assert joining.JoinString.parse(" " * joining.MAX_JOIN_STRING + text) == _join()


def test_every_join_string_error_is_a_wire_error() -> None:
    for bad in (
        "",
        "nope",
        joining.PREFIX + "%%%",
        _join_text([1]),
        _join_text({}),
        _join_text(_join_document(broker="ftp://x")),
        joining.PREFIX + "A" * (joining.MAX_JOIN_STRING + 1),
    ):
        with pytest.raises(errors.WireError):
            joining.JoinString.parse(bad)


def test_join_string_nested_too_deeply_is_a_wire_error() -> None:
    text = joining.PREFIX + base64.urlsafe_b64encode(b"[" * 3000).decode().rstrip("=")
    assert len(text) < joining.MAX_JOIN_STRING
    with pytest.raises(errors.WireError):
        joining.JoinString.parse(text)


def test_join_string_with_a_non_ascii_ca_is_a_wire_error() -> None:
    with pytest.raises(errors.WireError):
        joining.JoinString.parse(_join_text(_join_document(ca="é")))


def test_join_string_with_a_bad_topic_prefix_is_refused_before_anything_is_written() -> None:
    with pytest.raises(errors.InvalidName):
        joining.JoinString.parse(_join_text(_join_document(prefix="#")))


def test_request_version_must_be_the_integer_one() -> None:
    for version in (True, 1.0, "1"):
        with pytest.raises(errors.UnsupportedVersion):
            registration.decode_request(_encoded(_request_document(version=version)))
