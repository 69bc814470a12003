from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from wire import errors, keys


def test_private_key_round_trips_through_pem() -> None:
    key = keys.SigningKey.generate()
    again = keys.SigningKey.from_pem(key.to_pem())
    assert again.key_id == key.key_id
    assert key.verify_key.verify(again.sign(b"m"), b"m")


def test_public_key_round_trips_through_pem_and_raw() -> None:
    public = keys.SigningKey.generate().verify_key
    assert keys.VerifyKey.from_pem(public.to_pem()).key_id == public.key_id
    assert keys.VerifyKey.from_raw(public.raw).key_id == public.key_id


def test_key_id_is_sha256_of_raw_public_key_and_fingerprint_is_openssh_style() -> None:
    public = keys.SigningKey.generate().verify_key
    assert public.key_id == hashlib.sha256(public.raw).digest()
    expected = "SHA256:" + base64.b64encode(public.key_id).decode().rstrip("=")
    assert public.fingerprint == expected


def test_signature_by_other_key_does_not_verify() -> None:
    a, b = keys.SigningKey.generate(), keys.SigningKey.generate()
    assert not a.verify_key.verify(b.sign(b"m"), b"m")
    assert not a.verify_key.verify(a.sign(b"m"), b"n")


def test_rejects_non_ed25519_and_garbage_keys() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(errors.BadKey, match="Ed25519"):
        keys.SigningKey.from_pem(ec_pem)
    with pytest.raises(errors.BadKey):
        keys.SigningKey.from_pem(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(errors.BadKey):
        keys.VerifyKey.from_pem(b"garbage")
    with pytest.raises(errors.BadKey):
        keys.VerifyKey.from_raw(b"\x00" * 31)
