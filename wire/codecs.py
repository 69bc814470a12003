"""Compression of manifest bodies, with the output capped while inflating.

Format 1 envelopes are sealed with zstd, by measurement (docs/benchmarks.md,
"Codec choice"): on single-application bundles zlib is ~3 % (at most 24 bytes) smaller, on a large
bundle of many similar objects zstd is 25 % smaller; decompression is under 2 %
of the agent's verify time with either. So bytes on the wire decide, and zstd
loses little where bundles are small and wins where they are large. zlib stays
decodable so a controller can fall back to it for agents built without zstd.

`zstd-k8s1` is zstd with a dictionary both ends already hold (wire/k8s1.py):
generic Kubernetes objects and the skeleton of a manifest, so the field names
every manifest repeats cost almost nothing. It takes a small bundle from about
1.7x the size of its gzip -9 YAML to under it (docs/benchmarks.md, "Wire").
The dictionary never changes; a better one would be a new codec name.

A body must inflate to at most `max_output` bytes. zstd frames must declare
their content size (we always write it), which is checked before any memory is
allocated; zlib is inflated with an explicit output bound. Either way a
gigabyte of zeros compressed to kilobytes is refused without inflating it.
"""

from __future__ import annotations

import enum
import functools
import zlib

import zstandard

from wire import errors, k8s1

# Level 10: level 3 is up to 3.5 % larger; level 19 is <1 % smaller on small
# bundles but costs 7-86x the compression time (docs/benchmarks.md).
ZSTD_LEVEL = 10

# zlib's best size; sealing is rare, on the controller.
ZLIB_LEVEL = 9


class Codec(enum.Enum):
    ZSTD = "zstd"
    ZLIB = "zlib"
    ZSTD_K8S1 = "zstd-k8s1"


@functools.cache
def _k8s1() -> zstandard.ZstdCompressionDict:
    dictionary = zstandard.ZstdCompressionDict(k8s1.DATA, dict_type=zstandard.DICT_TYPE_FULLDICT)
    # Digested once per process for the sealing level (about 180 µs a seal otherwise).
    dictionary.precompute_compress(level=ZSTD_LEVEL)
    return dictionary


def compress(codec: Codec, data: bytes) -> bytes:
    if codec is Codec.ZSTD:
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(data)
    if codec is Codec.ZSTD_K8S1:
        # The codec name says which dictionary: its 4-byte id in every frame would be redundant.
        return zstandard.ZstdCompressor(
            level=ZSTD_LEVEL, dict_data=_k8s1(), write_content_size=True, write_dict_id=False
        ).compress(data)
    return zlib.compress(data, ZLIB_LEVEL)


def decompress(codec: Codec, data: bytes, *, max_output: int) -> bytes:
    """Inflate `data` (one complete stream, nothing after it) to at most `max_output` bytes."""
    if codec is Codec.ZSTD:
        return _zstd_decompress(data, max_output, zstandard.ZstdDecompressor())
    if codec is Codec.ZSTD_K8S1:
        return _zstd_decompress(data, max_output, zstandard.ZstdDecompressor(dict_data=_k8s1()))
    return _zlib_decompress(data, max_output)


def _zstd_decompress(data: bytes, max_output: int, decompressor: zstandard.ZstdDecompressor) -> bytes:
    try:
        size = zstandard.frame_content_size(data)
    except zstandard.ZstdError as exc:
        raise errors.Malformed(f"body is not a zstd frame: {exc}") from exc
    if size == zstandard.CONTENTSIZE_UNKNOWN or size < 0:
        raise errors.Malformed("zstd frame does not declare its content size")
    if size > max_output:
        raise errors.DecompressionBomb(f"body declares {size} bytes, over the {max_output}-byte cap")
    inflater = decompressor.decompressobj()
    try:
        # Output is bounded: libzstd fails a frame that exceeds its declared size.
        out = inflater.decompress(data)
    except zstandard.ZstdError as exc:
        raise errors.Malformed(f"corrupt zstd body: {exc}") from exc
    if not inflater.eof:
        raise errors.Truncated("zstd body ends before its frame does")
    if inflater.unused_data:
        raise errors.TrailingData(f"{len(inflater.unused_data)} bytes follow the zstd frame")
    if len(out) != size:
        raise errors.Malformed(f"zstd frame declared {size} bytes but held {len(out)}")
    return out


def _zlib_decompress(data: bytes, max_output: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, max_output + 1)
    except zlib.error as exc:
        raise errors.Malformed(f"corrupt zlib body: {exc}") from exc
    if len(out) > max_output:
        raise errors.DecompressionBomb(f"body inflates past the {max_output}-byte cap")
    if inflater.unconsumed_tail or not inflater.eof:
        raise errors.Truncated("zlib body ends before its stream does")
    if inflater.unused_data:
        raise errors.TrailingData(f"{len(inflater.unused_data)} bytes follow the zlib stream")
    return out
