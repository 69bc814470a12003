"""The envelope contract: round trips, and every kind of bad input refused precisely."""

from __future__ import annotations

import dataclasses
import tracemalloc
import zlib

import msgpack
import pytest
import zstandard

from tests import factories
from wire import canonical, codecs, envelopes, errors, keys, limits, manifests

GROUP, BUNDLE = "edge/us-west", "web"


def _verify(data: bytes, trusted: keys.Keyring, **kwargs: object) -> manifests.Manifest:
    return envelopes.verify(data, trusted=trusted, group=GROUP, bundle=BUNDLE, **kwargs)  # type: ignore[arg-type]


def _reseal(
    key: keys.SigningKey, *, version: int = 1, codec: str = "zstd", body: bytes, key_id: bytes | None = None
) -> bytes:
    """Sign arbitrary fields by hand, as a buggy or future controller might."""
    kid = key.key_id if key_id is None else key_id
    signature = key.sign(envelopes.signed_bytes(version, kid, codec, body))
    packed: bytes = msgpack.packb([version, kid, codec, body, signature], use_bin_type=True)
    return packed


def _body(wire_manifest: object, codec: codecs.Codec = codecs.Codec.ZSTD) -> bytes:
    return codecs.compress(codec, msgpack.packb(wire_manifest, use_bin_type=True))


@pytest.mark.parametrize("version", sorted(envelopes.SUPPORTED_VERSIONS))
@pytest.mark.parametrize("codec", list(codecs.Codec))
def test_round_trips_with_each_version_and_codec(
    version: int, codec: codecs.Codec, signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    manifest = factories.manifest()
    assert _verify(envelopes.seal(manifest, signing_key, version=version, codec=codec), trusted) == manifest


@pytest.mark.parametrize("version", sorted(envelopes.SUPPORTED_VERSIONS))
def test_tombstone_round_trips(version: int, signing_key: keys.SigningKey, trusted: keys.Keyring) -> None:
    stone = manifests.tombstone(bundle=BUNDLE, group=GROUP, generation=3, issued_at=5.0)
    sealed = envelopes.seal(stone, signing_key, version=version)
    assert _verify(sealed, trusted).kind is manifests.Kind.TOMBSTONE


def test_sealing_is_deterministic_for_the_same_manifest(signing_key: keys.SigningKey) -> None:
    manifest = factories.manifest()
    assert envelopes.seal(manifest, signing_key, version=2) == envelopes.seal(
        manifest, signing_key, version=2
    )


@pytest.mark.parametrize("version", sorted(envelopes.SUPPORTED_VERSIONS))
def test_every_single_byte_change_is_refused(
    version: int, signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    data = envelopes.seal(factories.manifest(), signing_key, version=version)
    for index in range(len(data)):
        tampered = bytearray(data)
        tampered[index] ^= 0x01
        with pytest.raises(errors.WireError):
            _verify(bytes(tampered), trusted)


def test_unknown_key_is_refused(signing_key: keys.SigningKey) -> None:
    other = keys.keyring([keys.SigningKey.generate().verify_key])
    with pytest.raises(errors.UnknownKey, match="untrusted key SHA256:"):
        _verify(envelopes.seal(factories.manifest(), signing_key, version=2), other)


def test_signature_by_wrong_key_under_trusted_key_id_is_refused(
    signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    impostor = keys.SigningKey.generate()
    body = _body(manifests.to_wire(factories.manifest()))
    forged = _reseal(impostor, key_id=signing_key.key_id, body=body)
    with pytest.raises(errors.BadSignature):
        _verify(forged, trusted)


def test_truncation_is_refused(signing_key: keys.SigningKey, trusted: keys.Keyring) -> None:
    data = envelopes.seal(factories.manifest(), signing_key, version=2)
    for cut in (0, 1, len(data) // 2, len(data) - 1):
        with pytest.raises(errors.Truncated):
            _verify(data[:cut], trusted)


def test_trailing_garbage_is_refused(signing_key: keys.SigningKey, trusted: keys.Keyring) -> None:
    data = envelopes.seal(factories.manifest(), signing_key, version=2)
    with pytest.raises(errors.TrailingData):
        _verify(data + b"\x00", trusted)


def test_trailing_garbage_inside_signed_body_is_refused(
    signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    body = _body(manifests.to_wire(factories.manifest())) + b"junk"
    with pytest.raises(errors.TrailingData):
        _verify(_reseal(signing_key, body=body), trusted)


def test_unknown_format_version_is_refused(signing_key: keys.SigningKey, trusted: keys.Keyring) -> None:
    body = _body(manifests.to_wire(factories.manifest()))
    with pytest.raises(errors.UnsupportedVersion, match=r"format version 3; this build reads \[1, 2\]"):
        _verify(_reseal(signing_key, version=3, body=body), trusted)


def test_unknown_codec_is_refused(signing_key: keys.SigningKey, trusted: keys.Keyring) -> None:
    with pytest.raises(errors.UnsupportedVersion, match="codec 'brotli'"):
        _verify(_reseal(signing_key, codec="brotli", body=b"x"), trusted)


def test_non_canonical_encoding_is_refused(signing_key: keys.SigningKey, trusted: keys.Keyring) -> None:
    data = envelopes.seal(factories.manifest(), signing_key, version=1)
    _, key_id, codec, body, signature = msgpack.unpackb(data)
    # The same five fields, with the version as a uint8 (0xcc 0x01) instead of a fixint.
    reencoded = b"\x95\xcc\x01" + b"".join(
        msgpack.packb(f, use_bin_type=True) for f in (key_id, codec, body, signature)
    )
    with pytest.raises(errors.Malformed, match="canonical"):
        _verify(reencoded, trusted)


def test_oversized_envelope_is_refused_before_parsing(
    signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    data = envelopes.seal(factories.manifest(), signing_key, version=2)
    with pytest.raises(errors.TooLarge):
        _verify(data, trusted, caps=limits.Limits(max_envelope_bytes=len(data) - 1))
    with pytest.raises(errors.TooLarge):
        _verify(b"\x00" * (limits.MAX_ENVELOPE_BYTES + 1), trusted)


def _zstd_zeros(size: int) -> bytes:
    """`size` zero bytes as one zstd frame that declares its size, built in 1 MiB steps."""
    chunk = b"\x00" * (1 << 20)
    compressor = zstandard.ZstdCompressor(level=1).compressobj(size=size)
    parts = [compressor.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join(parts) + compressor.flush()


def _zlib_zeros(size: int) -> bytes:
    chunk = b"\x00" * (1 << 20)
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join(parts) + compressor.flush()


@pytest.mark.parametrize(
    ("codec", "bomb", "size"),
    # zlib tops out near 1000:1
    [("zstd", _zstd_zeros, 4 << 30), ("zstd-k8s1", _zstd_zeros, 4 << 30), ("zlib", _zlib_zeros, 512 << 20)],
)
def test_decompression_bomb_is_refused_with_bounded_memory(
    codec: str, bomb: object, size: int, signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    body = bomb(size)  # type: ignore[operator]  # hundreds of MiB to GiB of zeros
    assert len(body) < limits.MAX_ENVELOPE_BYTES // 2
    caps = limits.Limits(max_manifest_bytes=8 << 20)
    data = _reseal(signing_key, codec=codec, body=body)
    tracemalloc.start()
    try:
        with pytest.raises(errors.DecompressionBomb):
            _verify(data, trusted, caps=caps)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Bounded by the cap (zlib's output buffer grows by doubling), not by the bomb.
    assert peak < 3 * caps.max_manifest_bytes


@pytest.mark.parametrize(("version", "codec"), [(1, "zstd"), (2, "zstd-k8s1")])
def test_nothing_is_inflated_before_the_signature_checks_out(
    version: int, codec: str, signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    bomb = _zstd_zeros(1 << 30)  # would be DecompressionBomb if it were inflated
    short = keys.KEY_ID_BYTES if version == 1 else keys.SHORT_KEY_ID_BYTES
    stranger = keys.SigningKey.generate()
    unknown = _reseal(stranger, version=version, codec=codec, body=bomb, key_id=stranger.key_id[:short])
    with pytest.raises(errors.UnknownKey):
        _verify(unknown, trusted)
    impostor = _reseal(stranger, version=version, codec=codec, body=bomb, key_id=signing_key.key_id[:short])
    with pytest.raises(errors.BadSignature):
        _verify(impostor, trusted)


def test_zstd_frame_without_declared_size_is_refused(
    signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    raw = msgpack.packb(manifests.to_wire(factories.manifest()), use_bin_type=True)
    body = zstandard.ZstdCompressor(write_content_size=False).compressobj().compress(raw)
    body += zstandard.ZstdCompressor(write_content_size=False).compressobj().flush()
    with pytest.raises(errors.Malformed):
        _verify(_reseal(signing_key, body=body), trusted)


def test_manifest_for_another_group_or_bundle_is_refused(
    signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    elsewhere = envelopes.seal(factories.manifest(group="edge/eu-central"), signing_key, version=2)
    with pytest.raises(errors.WrongBinding, match="edge/eu-central"):
        _verify(elsewhere, trusted)
    other_bundle = envelopes.seal(factories.manifest(bundle="db"), signing_key, version=2)
    with pytest.raises(errors.WrongBinding):
        _verify(other_bundle, trusted)


def test_older_generation_is_refused_and_same_generation_accepted(
    signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    data = envelopes.seal(factories.manifest(generation=4), signing_key, version=2)
    with pytest.raises(errors.Replayed, match="older than applied generation 5"):
        _verify(data, trusted, applied_generation=5)
    assert _verify(data, trusted, applied_generation=4).generation == 4


def test_variant_whose_content_does_not_match_its_id_is_refused(
    signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    wire = manifests.to_wire(factories.manifest())
    wire["variants"][0]["objects"][0]["data"]["greeting"] = "swapped"
    with pytest.raises(errors.IntegrityMismatch):
        _verify(_reseal(signing_key, body=_body(wire)), trusted)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda w: w.update(kind="firmware"), "kind"),
        (lambda w: w.update(generation=0), "generation"),
        (lambda w: w.update(generation="7"), "generation"),
        (lambda w: w.pop("bundle"), "bundle"),
        (lambda w: w.update(group="edge/+"), "group"),
        (lambda w: w["targets"][0].update(deployment_id="f" * 64), "lacks"),
        (
            lambda w: w["targets"][0]["cluster_selector"]["matchExpressions"].append(
                {"key": "k", "operator": "Like", "values": []}
            ),
            "operator",
        ),
        (lambda w: w["variants"][0]["objects"][0].pop("kind"), "kind"),
        (lambda w: w.update(variants="nope"), "list"),
    ],
)
def test_malformed_manifests_are_refused(
    mutate: object, message: str, signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    wire = manifests.to_wire(factories.manifest())
    mutate(wire)  # type: ignore[operator]
    with pytest.raises(errors.Malformed, match=message):
        _verify(_reseal(signing_key, body=_body(wire)), trusted)


def test_unknown_manifest_fields_are_ignored_within_a_version(
    signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    wire = manifests.to_wire(factories.manifest())
    wire["rollout"] = {"maxUnavailable": 1}
    assert _verify(_reseal(signing_key, body=_body(wire)), trusted) == factories.manifest()


def test_deeply_nested_objects_are_refused(signing_key: keys.SigningKey, trusted: keys.Keyring) -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(limits.MAX_DEPTH + 5):
        node["x"] = {}
        node = node["x"]  # type: ignore[assignment]
    with pytest.raises(errors.Malformed, match="nested"):
        canonical.normalize(deep)


# -- format 2 ---------------------------------------------------------------------------


def _two_variants() -> manifests.Manifest:
    first = manifests.Variant("default", (factories.config_map("web", greeting="hello"),))
    second = manifests.Variant("default", (factories.config_map("web", greeting="hola"),))
    targets = (
        manifests.Target(
            "spain", second.deployment_id, cluster_selector=manifests.ClusterSelector({"c": "es"})
        ),
        manifests.Target("paused", None, cluster_name="pi-01"),
        manifests.Target("rest", first.deployment_id, cluster_selector=manifests.ClusterSelector()),
    )
    return manifests.Manifest(
        manifests.Kind.BUNDLE, BUNDLE, GROUP, 2, 1_700_000_000.0, targets, (first, second)
    )


def test_format_2_names_variants_by_position_and_carries_no_ids() -> None:
    manifest = _two_variants()
    wire = manifests.to_wire(manifest, 2)
    assert [t.get("variant") for t in wire["targets"]] == [1, None, 0]
    assert "deployment_id" not in repr(wire)
    assert "cluster_selector" not in wire["targets"][1] and "cluster_name" not in wire["targets"][2]
    assert wire["issued_at"] == 1_700_000_000 and isinstance(wire["issued_at"], int)
    decoded = manifests.from_wire(msgpack.unpackb(canonical.encode(wire)), 2)
    assert decoded == manifest
    assert [t.deployment_id for t in decoded.targets] == [t.deployment_id for t in manifest.targets]


def test_format_2_envelope_names_its_key_by_a_short_id(signing_key: keys.SigningKey) -> None:
    v1 = msgpack.unpackb(envelopes.seal(factories.manifest(), signing_key, version=1))
    v2 = msgpack.unpackb(envelopes.seal(factories.manifest(), signing_key, version=2))
    assert (v1[0], v1[1], v1[2]) == (1, signing_key.key_id, "zstd")
    assert (v2[0], v2[1], v2[2]) == (2, signing_key.key_id[: keys.SHORT_KEY_ID_BYTES], "zstd-k8s1")


def test_format_2_is_smaller_than_format_1(signing_key: keys.SigningKey) -> None:
    manifest = _two_variants()
    v1 = envelopes.seal(manifest, signing_key, version=1)
    v2 = envelopes.seal(manifest, signing_key, version=2)
    assert len(v2) < len(v1) * 0.7


def test_short_key_id_of_an_untrusted_key_is_shown_as_the_start_of_its_fingerprint(
    signing_key: keys.SigningKey,
) -> None:
    stranger = keys.SigningKey.generate()
    sealed = envelopes.seal(factories.manifest(), stranger, version=2)
    with pytest.raises(errors.UnknownKey) as refused:
        _verify(sealed, keys.keyring([signing_key.verify_key]))
    shown = str(refused.value).split("untrusted key ")[1]
    assert shown.endswith("…") and stranger.verify_key.fingerprint.startswith(shown[:-1])


def test_a_keyring_refuses_two_keys_with_the_same_short_id() -> None:
    @dataclasses.dataclass(frozen=True)
    class Twin(keys.VerifyKey):
        claimed: bytes = b""

        @property
        def key_id(self) -> bytes:
            return self.claimed

    one, two = keys.SigningKey.generate().verify_key, keys.SigningKey.generate().verify_key
    twin = Twin(two.public, one.key_id[:8] + b"\x00" * 24)
    with pytest.raises(errors.BadKey, match="first 8 key id bytes"):
        keys.keyring([one, twin])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda w: w["targets"][0].update(variant=2), "not one of the manifest's 1 variants"),
        (lambda w: w["targets"][0].update(variant=-1), "not one of"),
        (lambda w: w["targets"][0].update(variant=True), "index or nil"),
        (lambda w: w["targets"][0].update(variant="0"), "index or nil"),
        (lambda w: w.pop("variants"), "not one of the manifest's 0 variants"),
        (lambda w: w["variants"][0].pop("namespace"), "namespace"),
    ],
)
def test_malformed_format_2_manifests_are_refused(
    mutate: object, message: str, signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    wire = manifests.to_wire(factories.manifest(), 2)
    mutate(wire)  # type: ignore[operator]
    short = signing_key.key_id[: keys.SHORT_KEY_ID_BYTES]
    body = _body(wire, codecs.Codec.ZSTD_K8S1)
    with pytest.raises(errors.Malformed, match=message):
        _verify(_reseal(signing_key, version=2, codec="zstd-k8s1", key_id=short, body=body), trusted)


def test_a_format_2_manifest_in_a_format_1_envelope_is_refused(
    signing_key: keys.SigningKey, trusted: keys.Keyring
) -> None:
    body = _body(manifests.to_wire(factories.manifest(), 2))
    with pytest.raises(errors.Malformed, match=r"lacks 'deployment_id'"):
        _verify(_reseal(signing_key, version=1, body=body), trusted)
