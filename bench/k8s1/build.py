"""Build wire/k8s1.py: the zstd dictionary of the manifest codec `zstd-k8s1`.

    .venv/bin/python bench/k8s1/build.py            # print size and SHA-256, compare with the shipped one
    .venv/bin/python bench/k8s1/build.py --write    # write wire/k8s1.py (a new codec name, see below)

What the dictionary holds:

- content: the canonical msgpack of every object in vocabulary.yaml (generic
  Kubernetes objects with the common `app.kubernetes.io/*` labels, written by
  hand), then the skeleton of a format 2 manifest with placeholder values;
- entropy tables: zstd's ZDICT_finalizeDictionary, fitted to 300 synthetic
  applications (samples.py) encoded as format 2 manifests, at level 19, with
  dictionary id 0x6b387331 ("k8s1").

None of the inputs is taken from examples/ or from `helm create`: the
dictionary must not be fitted to the bundles it is measured on.

The dictionary is part of the protocol. Once an agent reads `zstd-k8s1`, its
bytes never change (tests/test_codecs.py pins their SHA-256); a better
dictionary is a new codec name. libzstd versions may fit slightly different
tables, so a rebuild is compared, never shipped over the old one.

ZDICT_finalizeDictionary is reached through python-zstandard's cffi backend,
a private module: this script runs on a developer's machine, never in the
product, which only loads the finished bytes.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import random
import sys
import textwrap
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:] = [str(ROOT), str(HERE), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

import samples  # noqa: E402

from wire import canonical, manifests  # noqa: E402

DICT_ID = 0x6B387331
LEVEL = 19
SAMPLES = 300
SEED = 7
TARGET = ROOT / "wire" / "k8s1.py"


def content() -> bytes:
    documents = [d for d in yaml.safe_load_all((HERE / "vocabulary.yaml").read_text()) if d]
    vocabulary = b"".join(canonical.encode(d) for d in documents)
    return vocabulary + skeleton()


def skeleton() -> bytes:
    variant = manifests.Variant("default", ())
    target = manifests.Target("default", variant.deployment_id, cluster_selector=manifests.ClusterSelector())
    manifest = manifests.Manifest(
        manifests.Kind.BUNDLE, "example", "example", 1, 1_760_000_000.0, (target,), (variant,)
    )
    return canonical.encode(manifests.to_wire(manifest, 2))


def sample_manifests() -> list[bytes]:
    out = []
    for i, (name, namespace, objects) in enumerate(samples.corpus(SEED, SAMPLES)):
        pick = random.Random(i)
        variant = manifests.Variant(namespace, tuple(canonical.normalize(o) for o in objects))
        target = manifests.Target(
            pick.choice(["all", "default", "edge", "prod"]),
            variant.deployment_id,
            cluster_selector=manifests.ClusterSelector(),
        )
        manifest = manifests.Manifest(
            manifests.Kind.BUNDLE,
            name,
            pick.choice(["edge", "fleet/a", "site/b"]),
            pick.randint(1, 50),
            1_760_000_000.0 + i * 3607.0,
            (target,),
            (variant,),
        )
        out.append(canonical.encode(manifests.to_wire(manifest, 2)))
    return out


def finalize(raw: bytes, fitted_to: list[bytes]) -> bytes:
    from zstandard._cffi import ffi, lib  # private: see the module docstring

    capacity = len(raw) + 4096
    out = ffi.new("char[]", capacity)
    sizes = ffi.new("size_t[]", [len(s) for s in fitted_to])
    params = ffi.new("ZDICT_params_t *")
    params.compressionLevel = LEVEL
    params.notificationLevel = 0
    params.dictID = DICT_ID
    joined = b"".join(fitted_to)
    n = lib.ZDICT_finalizeDictionary(out, capacity, raw, len(raw), joined, sizes, len(fitted_to), params[0])
    if lib.ZDICT_isError(n):
        raise RuntimeError(ffi.string(lib.ZDICT_getErrorName(n)).decode())
    return bytes(ffi.buffer(out, n))


def module_text(data: bytes) -> str:
    encoded = "\n".join(textwrap.wrap(base64.b64encode(data).decode("ascii"), 100))
    return f'''"""The zstd dictionary of the manifest codec `zstd-k8s1` (generated: bench/k8s1/build.py).

Part of the protocol: these bytes never change once agents read them; a better
dictionary is a new codec name. tests/test_codecs.py pins the SHA-256.
"""

import base64

SHA256 = "{hashlib.sha256(data).hexdigest()}"

DATA = base64.b64decode(
    """
{encoded}
"""
)
'''


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="write wire/k8s1.py")
    args = parser.parse_args()
    raw = content()
    data = finalize(raw, sample_manifests())
    digest = hashlib.sha256(data).hexdigest()
    print(f"content {len(raw)} bytes, dictionary {len(data)} bytes, sha256 {digest}")
    if args.write:
        TARGET.write_text(module_text(data))
        print(f"wrote {TARGET}")
        return 0
    try:
        from wire import k8s1
    except ImportError:
        print("no wire/k8s1.py yet; --write creates it")
        return 1
    same = digest == k8s1.SHA256
    print("same as the shipped dictionary" if same else f"differs from the shipped {k8s1.SHA256}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
