"""Signed envelopes: the only thing an agent accepts as a bundle.

Byte layout (docs/protocol.md has the full table): a msgpack array

    [format_version: int, key_id: bin, codec: str, body: bin, signature: bin 64]

where `body` is the compressed canonical msgpack of the manifest and
`signature` is Ed25519 over

    b"edgefleet/envelope\\x00" + msgpack([format_version, key_id, codec, body])

The domain prefix keeps a signature made for anything else (a registration
reply, a future firmware statement) from ever verifying as an envelope.

Format 1 carries the whole 32-byte key id and the manifest encoding that
names deployments by id; format 2 carries the key id's first 8 bytes (it only
picks which trusted key to try: the signature is what authenticates) and the
encoding that names variants by position (wire.manifests). Agents read both;
a controller seals 2 only for groups whose agents all say they read it.

`verify` checks in the order of DESIGN.md, cheapest first, and stops at the
first failure: size cap, parse envelope, format version, known key id,
signature, decompress with an output cap, parse manifest, topic binding,
generation. Nothing is decompressed or parsed past the envelope unless a
trusted key signed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from wire import canonical, codecs, errors, keys, limits, manifests

SUPPORTED_VERSIONS = frozenset(manifests.VERSIONS)
LATEST = max(SUPPORTED_VERSIONS)
DOMAIN = b"edgefleet/envelope\x00"
_FIELDS = 5
# Bytes of the key id each format carries.
_KEY_ID_BYTES = {1: keys.KEY_ID_BYTES, 2: keys.SHORT_KEY_ID_BYTES}
# What a controller seals each format with, unless told otherwise.
DEFAULT_CODECS = {1: codecs.Codec.ZSTD, 2: codecs.Codec.ZSTD_K8S1}


@dataclass(frozen=True)
class Envelope:
    """A parsed, not yet verified envelope."""

    format_version: int
    key_id: bytes
    codec: codecs.Codec
    body: bytes
    signature: bytes

    def signed_bytes(self) -> bytes:
        return signed_bytes(self.format_version, self.key_id, self.codec.value, self.body)


def signed_bytes(format_version: int, key_id: bytes, codec: str, body: bytes) -> bytes:
    header: bytes = msgpack.packb([format_version, key_id, codec, body], use_bin_type=True)
    return DOMAIN + header


def seal(
    manifest: manifests.Manifest,
    key: keys.SigningKey,
    *,
    version: int,
    codec: codecs.Codec | None = None,
) -> bytes:
    """Encode, compress and sign a manifest in format `version`; return the bytes to publish.

    No default: which format a group can read is the caller's decision
    (controller.delivering.envelope_format)."""
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"cannot seal format version {version}")
    codec = DEFAULT_CODECS[version] if codec is None else codec
    body = codecs.compress(codec, canonical.encode(manifests.to_wire(manifest, version)))
    key_id = key.key_id[: _KEY_ID_BYTES[version]]
    signature = key.sign(signed_bytes(version, key_id, codec.value, body))
    sealed: bytes = msgpack.packb([version, key_id, codec.value, body, signature], use_bin_type=True)
    return sealed


def parse(data: bytes, *, caps: limits.Limits = limits.DEFAULT) -> Envelope:
    """Size-check and parse the outer structure; nothing is trusted yet."""
    if len(data) > caps.max_envelope_bytes:
        raise errors.TooLarge(f"envelope is {len(data)} bytes, over the {caps.max_envelope_bytes}-byte cap")
    fields = _unpack_exactly(data)
    if not isinstance(fields, list) or len(fields) != _FIELDS:
        raise errors.Malformed("envelope is not a 5-element array")
    version, key_id, codec, body, signature = fields
    if not isinstance(version, int) or isinstance(version, bool):
        raise errors.Malformed("envelope format version is not an integer")
    if version not in SUPPORTED_VERSIONS:
        raise errors.UnsupportedVersion(
            f"envelope format version {version}; this build reads {sorted(SUPPORTED_VERSIONS)}"
        )
    if not isinstance(key_id, bytes) or len(key_id) != _KEY_ID_BYTES[version]:
        raise errors.Malformed(f"envelope key id is not {_KEY_ID_BYTES[version]} bytes")
    if not isinstance(codec, str):
        raise errors.Malformed("envelope codec is not a string")
    try:
        codec_ = codecs.Codec(codec)
    except ValueError:
        raise errors.UnsupportedVersion(f"envelope codec {codec[:32]!r} is not supported") from None
    if not isinstance(body, bytes):
        raise errors.Malformed("envelope body is not binary")
    if not isinstance(signature, bytes) or len(signature) != keys.SIGNATURE_BYTES:
        raise errors.Malformed("envelope signature is not 64 bytes")
    if msgpack.packb(fields, use_bin_type=True) != data:
        # One byte string per envelope: no re-encodings of the same fields.
        raise errors.Malformed("envelope is not in canonical msgpack encoding")
    return Envelope(version, key_id, codec_, body, signature)


def unseal(data: bytes, *, trusted: keys.Keyring, caps: limits.Limits = limits.DEFAULT) -> manifests.Manifest:
    """Parse, authenticate, inflate and decode: the manifest, or a WireError."""
    envelope = parse(data, caps=caps)
    key = keys.find(trusted, envelope.key_id)
    if key is None:
        raise errors.UnknownKey(f"envelope signed by untrusted key {keys.fingerprint_of(envelope.key_id)}")
    if not key.verify(envelope.signature, envelope.signed_bytes()):
        raise errors.BadSignature(f"signature does not verify under {key.fingerprint}")
    body = codecs.decompress(envelope.codec, envelope.body, max_output=caps.max_manifest_bytes)
    return manifests.from_wire(_unpack_exactly(body), envelope.format_version)


def verify(
    data: bytes,
    *,
    trusted: keys.Keyring,
    group: str,
    bundle: str,
    applied_generation: int = 0,
    caps: limits.Limits = limits.DEFAULT,
) -> manifests.Manifest:
    """Everything an agent checks before it may act on a message from `<group>/bundles/<bundle>`.

    The same generation as the one applied is accepted (retained messages are
    redelivered on every reconnect); an older one is Replayed.
    """
    manifest = unseal(data, trusted=trusted, caps=caps)
    if manifest.group != group or manifest.bundle != bundle:
        raise errors.WrongBinding(
            f"manifest for {manifest.group}/bundles/{manifest.bundle} arrived on {group}/bundles/{bundle}"
        )
    if manifest.generation < applied_generation:
        raise errors.Replayed(
            f"generation {manifest.generation} of {bundle} is older than "
            f"applied generation {applied_generation}"
        )
    return manifest


def _unpack_exactly(data: bytes) -> Any:
    # Every element takes at least one byte, so no container may declare more
    # elements than there are bytes: that also caps what msgpack preallocates.
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=max(len(data), 1))
    unpacker.feed(data)
    try:
        value = unpacker.unpack()
    except msgpack.OutOfData:
        raise errors.Truncated("input ends inside a msgpack value") from None
    except ValueError as exc:
        if "exceeds max_" in str(exc):
            raise errors.Truncated(f"a msgpack container declares more than the input holds: {exc}") from exc
        # FormatError, StackError (too deep), non-string map keys, bad UTF-8.
        raise errors.Malformed(f"not valid msgpack: {exc}") from exc
    except TypeError as exc:
        # FormatError, StackError (too deep), non-string map keys, bad UTF-8.
        raise errors.Malformed(f"not valid msgpack: {exc}") from exc
    if unpacker.tell() != len(data):
        raise errors.TrailingData(f"{len(data) - unpacker.tell()} bytes follow the msgpack value")
    return value
