"""Registration messages: the request a joining agent sends and the signed, sealed reply.

Request (`<prefix>/register/<client-id>`, JSON): token id and secret, the
cluster name and labels it asks for, facts (architecture, Kubernetes
version...), and a fresh X25519 public key. Nothing in it is trusted before the
controller checks the token.

Reply (`<prefix>/register/<client-id>/reply`), a msgpack array

    [version, outcome, message, signer: bin 32, ephemeral: bin 32 | b"", sealed: bin | b"", signature]

signed by the controller's Ed25519 key over

    b"edgefleet/registration\\x00" + msgpack([version, outcome, message, signer,
                                             ephemeral, sealed, client_id, recipient])

so a reply is bound to the one request (client id and agent key) it answers
and can never verify as an envelope. The agent checks the signer against the
fingerprint pinned in its join string *before* reading anything else. An
approval's grant (credentials, group, trusted keys) is sealed to the agent's
key: X25519 with a one-time key, HKDF-SHA256, ChaCha20-Poly1305. Anyone who
reads the reply topic learns no credential.
"""

from __future__ import annotations

import enum
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from wire import errors, keys, names

VERSION = 1
DOMAIN = b"edgefleet/registration\x00"
_SEAL_INFO = b"edgefleet/registration/seal"
# A request is a few hundred bytes; labels and facts are bounded well below this.
MAX_REQUEST_BYTES = 16 * 1024
# A reply holds a few PEM keys and credentials.
MAX_REPLY_BYTES = 64 * 1024
MAX_LABELS = 64
MAX_FACTS = 32
_MAX_TEXT = 256
_REPLY_FIELDS = 7


class Outcome(enum.Enum):
    APPROVED = "approved"
    PENDING = "pending"  # held for `edgefleet clusters approve`
    DENIED = "denied"  # an operator said no
    REFUSED = "refused"  # the request itself is not acceptable (token, name...)


@dataclass(frozen=True)
class Request:
    token_id: str
    secret: str
    name: str
    public_key: bytes  # raw X25519, 32 bytes
    labels: Mapping[str, str] = field(default_factory=dict)
    facts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Grant:
    """What an approved agent learns, sealed: enough to run with no other configuration."""

    cluster: str
    group: str  # the group's topic root
    labels: Mapping[str, str]
    username: str
    password: str
    trusted_keys: tuple[str, ...]  # PEM


@dataclass(frozen=True)
class Reply:
    outcome: Outcome
    message: str
    grant: Grant | None = None


# -- requests -------------------------------------------------------------------------------


# Bootstrap accounts are `join-<token id>`; their clients connect as `join-<random>`.
BOOTSTRAP_PREFIX = "join-"


def bootstrap_username(token_id: str) -> str:
    """The broker account a join token stands for (its secret is the password)."""
    return BOOTSTRAP_PREFIX + token_id


def token_of(username: str) -> str | None:
    """The token id of a bootstrap account, or None for any other account."""
    return username[len(BOOTSTRAP_PREFIX) :] if username.startswith(BOOTSTRAP_PREFIX) else None


def bootstrap_client_id() -> str:
    """A joining agent's client id: unguessable, so no other holder of the same token can
    name its reply topic (Mosquitto cannot restrict it to the client's own)."""
    return BOOTSTRAP_PREFIX + secrets.token_hex(16)


def encode_request(request: Request) -> bytes:
    return json.dumps(
        {
            "version": VERSION,
            "token": request.token_id,
            "secret": request.secret,
            "name": request.name,
            "labels": dict(request.labels),
            "facts": dict(request.facts),
            "public_key": request.public_key.hex(),
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


def _string_map(value: object, what: str, limit: int) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > limit:
        raise errors.Malformed(f"registration {what} must be a map of at most {limit} entries")
    for key, item in value.items():
        if (
            not isinstance(key, str)
            or not isinstance(item, str)
            or len(key) > _MAX_TEXT
            or len(item) > _MAX_TEXT
        ):
            raise errors.Malformed(f"registration {what} must map short strings to short strings")
    return dict(value)


def decode_request(payload: bytes) -> Request:
    """Validate a request's shape (not its token: that is the controller's decision)."""
    if len(payload) > MAX_REQUEST_BYTES:
        raise errors.TooLarge(f"registration request is {len(payload)} bytes (limit {MAX_REQUEST_BYTES})")
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise errors.Malformed(f"registration request is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise errors.Malformed("registration request must be a JSON object")
    if type(document.get("version")) is not int or document["version"] != VERSION:
        raise errors.UnsupportedVersion(f"registration request version {document.get('version')!r}")
    for key in ("token", "secret", "name", "public_key"):
        if not isinstance(document.get(key), str) or len(document[key]) > _MAX_TEXT:
            raise errors.Malformed(f"registration request needs a short string {key!r}")
    try:
        public_key = bytes.fromhex(document["public_key"])
    except ValueError as exc:
        raise errors.BadKey("registration request public_key is not hex") from exc
    if len(public_key) != 32:
        raise errors.BadKey("registration request public_key must be 32 bytes (X25519)")
    return Request(
        token_id=document["token"],
        secret=document["secret"],
        name=names.cluster(document["name"]),
        public_key=public_key,
        labels=_string_map(document.get("labels", {}), "labels", MAX_LABELS),
        facts=_string_map(document.get("facts", {}), "facts", MAX_FACTS),
    )


# -- replies --------------------------------------------------------------------------------


def _signed_bytes(fields: list[Any], client_id: str, recipient: bytes) -> bytes:
    packed: bytes = msgpack.packb([*fields, client_id, recipient], use_bin_type=True)
    return DOMAIN + packed


def _seal_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> ChaCha20Poly1305:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_SEAL_INFO).derive(
        shared
    )
    return ChaCha20Poly1305(key)


def _raw(public: x25519.X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _grant_document(grant: Grant) -> bytes:
    return json.dumps(
        {
            "cluster": grant.cluster,
            "group": grant.group,
            "labels": dict(grant.labels),
            "username": grant.username,
            "password": grant.password,
            "trusted_keys": list(grant.trusted_keys),
        },
        sort_keys=True,
    ).encode()


def seal_reply(reply: Reply, *, key: keys.SigningKey, client_id: str, recipient: bytes) -> bytes:
    """Sign `reply` for the request of `client_id`, sealing any grant to `recipient` (X25519)."""
    ephemeral, sealed = b"", b""
    if reply.grant is not None:
        one_time = x25519.X25519PrivateKey.generate()
        ephemeral = _raw(one_time.public_key())
        shared = one_time.exchange(x25519.X25519PublicKey.from_public_bytes(recipient))
        sealed = _seal_key(shared, ephemeral, recipient).encrypt(
            bytes(12), _grant_document(reply.grant), client_id.encode()
        )
    fields: list[Any] = [
        VERSION,
        reply.outcome.value,
        reply.message[: _MAX_TEXT * 4],
        key.verify_key.raw,
        ephemeral,
        sealed,
    ]
    signature = key.sign(_signed_bytes(fields, client_id, recipient))
    packed: bytes = msgpack.packb([*fields, signature], use_bin_type=True)
    return packed


def _decode_grant(plain: bytes) -> Grant:
    try:
        document = json.loads(plain)
    except ValueError as exc:
        raise errors.Malformed(f"sealed grant is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise errors.Malformed("sealed grant must be an object")
    for key in ("cluster", "group", "username", "password"):
        if not isinstance(document.get(key), str):
            raise errors.Malformed(f"sealed grant lacks {key!r}")
    trusted = document.get("trusted_keys")
    if not isinstance(trusted, list) or not trusted or not all(isinstance(k, str) for k in trusted):
        raise errors.Malformed("sealed grant lacks trusted_keys")
    return Grant(
        cluster=names.cluster(document["cluster"]),
        group=names.group(document["group"]),
        labels=_string_map(document.get("labels", {}), "labels", MAX_LABELS),
        username=document["username"],
        password=document["password"],
        trusted_keys=tuple(trusted),
    )


def open_reply(
    payload: bytes, *, fingerprint: str, private_key: x25519.X25519PrivateKey, client_id: str
) -> Reply:
    """Verify a reply against the pinned controller `fingerprint`, then unseal it.

    Raises UnknownKey when another key signed it (the join string does not
    belong to this controller), BadSignature when the signature fails, and
    Malformed for anything else that is not a reply to this request.
    """
    if len(payload) > MAX_REPLY_BYTES:
        raise errors.TooLarge(f"registration reply is {len(payload)} bytes")
    try:
        fields = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise errors.Malformed(f"registration reply is not msgpack: {exc}") from exc
    if not isinstance(fields, list) or len(fields) != _REPLY_FIELDS:
        raise errors.Malformed("registration reply must be a 7-element array")
    version, outcome, message, signer, ephemeral, sealed, signature = fields
    if type(version) is not int or version != VERSION:
        raise errors.UnsupportedVersion(f"registration reply version {version!r}")
    if not all(isinstance(v, bytes) for v in (signer, ephemeral, sealed, signature)) or not isinstance(
        message, str
    ):
        raise errors.Malformed("registration reply has fields of the wrong type")
    if len(signer) != 32:
        raise errors.BadKey("registration reply signer must be a raw Ed25519 key")
    if keys.fingerprint_of(keys.key_id_of(signer)) != fingerprint:
        raise errors.UnknownKey(
            f"the reply is signed by {keys.fingerprint_of(keys.key_id_of(signer))}, "
            f"not by the controller the join string names ({fingerprint})"
        )
    recipient = _raw(private_key.public_key())
    signed = _signed_bytes(fields[:6], client_id, recipient)
    if not keys.VerifyKey.from_raw(signer).verify(signature, signed):
        raise errors.BadSignature("registration reply signature does not verify")
    try:
        verdict = Outcome(outcome)
    except ValueError as exc:
        raise errors.Malformed(f"registration reply outcome {outcome!r}") from exc
    if verdict is not Outcome.APPROVED:
        return Reply(verdict, message)
    if len(ephemeral) != 32 or not sealed:
        raise errors.Malformed("an approval must carry a sealed grant")
    shared = private_key.exchange(x25519.X25519PublicKey.from_public_bytes(ephemeral))
    try:
        plain = _seal_key(shared, ephemeral, recipient).decrypt(bytes(12), sealed, client_id.encode())
    except InvalidTag as exc:
        raise errors.BadSignature("the sealed grant does not open with this agent's key") from exc
    return Reply(verdict, message, _decode_grant(plain))
