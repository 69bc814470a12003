"""Manifest codecs: the shipped dictionary is frozen, and every codec keeps its caps."""

from __future__ import annotations

import hashlib

import pytest
import zstandard

from tests import factories
from wire import canonical, codecs, errors, k8s1, manifests

# The dictionary is part of the protocol: agents in the field decode with these exact
# bytes. Changing it breaks every agent that reads `zstd-k8s1`; a better dictionary
# is a new codec name (bench/k8s1/build.py).
K8S1_SHA256 = "62dc0c143c9a4e528b6f8c1c0af284f14b981524d64f9ef382c46852c5ca192b"


def test_the_k8s1_dictionary_never_changes() -> None:
    assert hashlib.sha256(k8s1.DATA).hexdigest() == K8S1_SHA256 == k8s1.SHA256
    assert zstandard.ZstdCompressionDict(k8s1.DATA).dict_id() == 0x6B387331


def test_k8s1_frames_need_the_dictionary_and_do_not_repeat_its_id() -> None:
    packed = canonical.encode(manifests.to_wire(factories.manifest(), 2))
    frame = codecs.compress(codecs.Codec.ZSTD_K8S1, packed)
    assert zstandard.get_frame_parameters(frame).dict_id == 0
    assert codecs.decompress(codecs.Codec.ZSTD_K8S1, frame, max_output=len(packed)) == packed
    with pytest.raises(errors.Malformed):
        codecs.decompress(codecs.Codec.ZSTD, frame, max_output=len(packed))


def test_k8s1_shrinks_a_small_manifest_by_a_third_against_plain_zstd() -> None:
    packed = canonical.encode(manifests.to_wire(factories.manifest(), 2))
    plain = codecs.compress(codecs.Codec.ZSTD, packed)
    assert len(codecs.compress(codecs.Codec.ZSTD_K8S1, packed)) < len(plain) * 2 / 3


@pytest.mark.parametrize("codec", list(codecs.Codec))
def test_each_codec_refuses_output_past_the_cap(codec: codecs.Codec) -> None:
    data = b"apiVersion: v1\n" * 1000
    body = codecs.compress(codec, data)
    assert codecs.decompress(codec, body, max_output=len(data)) == data
    with pytest.raises(errors.DecompressionBomb):
        codecs.decompress(codec, body, max_output=len(data) - 1)
