"""Ed25519 keys: the controller signs every manifest, agents trust by key id.

A key id is the SHA-256 of the raw 32-byte public key. It names the key in
every envelope (so agents can hold several trusted keys during a rotation) and,
written as `SHA256:<base64>` like an OpenSSH fingerprint, it is what a join
token pins. Everything here works on bytes; writing key files (0600, atomic)
is the job of the side that owns them.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from wire import errors

KEY_ID_BYTES = 32
# Envelopes of format 2 name their key by this prefix of the key id.
SHORT_KEY_ID_BYTES = 8
SIGNATURE_BYTES = 64


def key_id_of(raw_public: bytes) -> bytes:
    return hashlib.sha256(raw_public).digest()


def fingerprint_of(key_id: bytes) -> str:
    """`SHA256:<base64>`; for a short key id, the start of the fingerprint it matches and "…"."""
    text = base64.b64encode(key_id).decode("ascii").rstrip("=")
    if len(key_id) < KEY_ID_BYTES:
        # Each character is 6 bits: the ones made of the short id's bits alone are also
        # the start of the full fingerprint (10 of them for 8 bytes).
        return "SHA256:" + text[: len(key_id) * 8 // 6] + "…"
    return "SHA256:" + text


@dataclass(frozen=True)
class VerifyKey:
    """A trusted public key."""

    public: ed25519.Ed25519PublicKey = field(repr=False)

    @property
    def raw(self) -> bytes:
        return self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def key_id(self) -> bytes:
        return key_id_of(self.raw)

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.key_id)

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            self.public.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def to_pem(self) -> bytes:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def from_raw(cls, raw: bytes) -> VerifyKey:
        if len(raw) != 32:
            raise errors.BadKey(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
        return cls(ed25519.Ed25519PublicKey.from_public_bytes(raw))

    @classmethod
    def from_pem(cls, pem: bytes) -> VerifyKey:
        try:
            public = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError) as exc:
            raise errors.BadKey(f"not a PEM public key: {exc}") from exc
        if not isinstance(public, ed25519.Ed25519PublicKey):
            raise errors.BadKey(f"expected an Ed25519 public key, got {type(public).__name__}")
        return cls(public)


@dataclass(frozen=True)
class SigningKey:
    """The controller's private signing key."""

    private: ed25519.Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ed25519.Ed25519PrivateKey.generate())

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(self.private.public_key())

    @property
    def key_id(self) -> bytes:
        return self.verify_key.key_id

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)

    def to_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted: the file's 0600 mode is what protects it."""
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        try:
            private = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise errors.BadKey(f"not an unencrypted PEM private key: {exc}") from exc
        if not isinstance(private, ed25519.Ed25519PrivateKey):
            raise errors.BadKey(f"expected an Ed25519 private key, got {type(private).__name__}")
        return cls(private)


Keyring = Mapping[bytes, VerifyKey]
"""The keys an agent trusts, by key id; several during a key rotation."""


def keyring(keys: Iterable[VerifyKey]) -> Keyring:
    """Trusted keys by key id; two keys that share a short key id are refused (BadKey)."""
    ring = {key.key_id: key for key in keys}
    prefixes = {key_id[:SHORT_KEY_ID_BYTES] for key_id in ring}
    if len(prefixes) != len(ring):
        raise errors.BadKey(
            f"two trusted keys share their first {SHORT_KEY_ID_BYTES} key id bytes; "
            "an envelope could not say which one signed it"
        )
    return ring


def find(trusted: Keyring, key_id: bytes) -> VerifyKey | None:
    """The trusted key named by a whole key id, or by its short prefix (format 2)."""
    if len(key_id) == KEY_ID_BYTES:
        return trusted.get(key_id)
    for full, key in trusted.items():
        if full[: len(key_id)] == key_id:
            return key
    return None
