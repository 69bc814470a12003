"""atheris target: the envelope decoder (wire.envelopes.verify) on hostile bytes.

A finding is any exception but WireError, or a manifest the trusted key never signed.
Three shapes of input, chosen by the first byte, so coverage reaches past the first
check: raw bytes; a sealed envelope with bytes overwritten; a body the trusted key
signed but that is no manifest (the parser behind the signature check).

    python -m tests.fuzz.envelope_target -max_total_time=60   (from the repository root)
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["wire", "msgpack"]):
    import msgpack

    from wire import codecs, envelopes, errors, keys, manifests

from tests import factories  # after the product is instrumented

KEY = keys.SigningKey.generate()
TRUSTED = keys.keyring([KEY.verify_key])
MANIFEST = factories.manifest()
STONE = manifests.tombstone(bundle="web", group="edge/us-west", generation=2, issued_at=1.0)
SEALED = [
    envelopes.seal(MANIFEST, KEY, version=2),
    envelopes.seal(MANIFEST, KEY, version=1),
    envelopes.seal(STONE, KEY, version=2),
]
SIGNED = (MANIFEST, STONE)


def _signed_body(body: bytes, version: int, codec: codecs.Codec) -> bytes:
    """`body` as the trusted key would seal it: signed, but not necessarily a manifest."""
    compressed = codecs.compress(codec, body)
    key_id = KEY.key_id[: envelopes._KEY_ID_BYTES[version]]
    signature = KEY.sign(envelopes.signed_bytes(version, key_id, codec.value, compressed))
    packed: bytes = msgpack.packb([version, key_id, codec.value, compressed, signature], use_bin_type=True)
    return packed


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 3, data[1:]
    if mode == 0:
        envelope = rest
    elif mode == 1:
        edited = bytearray(SEALED[data[0] // 3 % len(SEALED)])
        for at in range(0, len(rest) - 2, 3):
            edited[int.from_bytes(rest[at : at + 2], "big") % len(edited)] = rest[at + 2]
        envelope = bytes(edited)
    else:
        version = 1 + data[0] // 3 % 2
        codec = codecs.Codec.ZSTD if version == 1 else envelopes.DEFAULT_CODECS[2]
        envelope = _signed_body(rest, version, codec)
    try:
        manifest = envelopes.verify(envelope, trusted=TRUSTED, group="edge/us-west", bundle="web")
    except errors.WireError:
        return
    if manifest not in SIGNED and mode != 2:
        raise AssertionError(f"decoded a manifest the trusted key never signed: {manifest!r}")


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
