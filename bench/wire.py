"""Wire benchmark: how big a sealed manifest is, and how fast it seals and verifies.

Run with `make bench` (that is, `.venv/bin/python bench/wire.py`). It prints
plain-text tables; docs/benchmarks.md records a run of them.

Bundles measured: the three examples (hello-web as plain YAML, kustomize-app
rendered by `kubectl kustomize`, helm-app rendered by helm-python-sdk), Helm's
own starter chart (`helm create`) with its optional objects switched on, and
"large-20x": one bundle shipping 20 copies of all four under distinct names.
Part e) takes every example through the controller's own rendering
(controller.bundles), with all its variants and targets, for one group each.

Envelope format 1 (32-byte key id, deployment ids on the wire, codec zstd) and
format 2 (8-byte key id, variants by position, codec zstd-k8s1 with its
shipped dictionary) are both measured: agents read both, and a controller
seals 2 for groups whose agents all read it.

The YAML of a bundle is the text as read (plain) or as rendered, documents
joined with "---\\n"; its gzip -9 size is Python's gzip at level 9 with mtime 0
(the size `gzip -9 -n` gives). Msgpack is the canonical encoding of the whole
manifest, which is what the codec compresses.

Times are medians over batches, each batch sized to last >= 2 ms so the
timer's own cost does not count, with the garbage collector off while a batch
runs (as timeit does). The cells compared with each other (all codecs of one
bundle; seal and verify of one bundle) run their batches in turn, round-robin,
until each has had `MIN_SECONDS`, so a neighbour loading the machine slows
them alike instead of skewing one. "spread" is half the interquartile range
of the batches, relative to the median.
"""

from __future__ import annotations

import functools
import gc
import gzip
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cryptography
import msgpack
import yaml
import zstandard

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# This script is bench/wire.py, and Python puts bench/ first on sys.path: without
# this, `import wire` would import the script itself instead of the package.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

from controller import bundles as rendering  # noqa: E402
from controller import fleetyaml, plain, targeting  # noqa: E402
from wire import canonical, codecs, envelopes, keys, limits, manifests  # noqa: E402

EXAMPLES = ROOT / "examples"
GROUP = "edge/bench"
ISSUED_AT = 1_700_000_000.0
COPIES = 20
MIN_SECONDS = 0.5
MIN_BATCHES = 9
BATCH_SECONDS = 0.002

HELM_APP_VALUES = {"replicaCount": 1, "sampleIntervalSeconds": 15}
# Everything optional in `helm create`'s chart, so it renders all its kinds.
STARTER_VALUES = {
    "ingress": {"enabled": True},
    "httpRoute": {"enabled": True},
    "autoscaling": {"enabled": True},
    "serviceAccount": {"create": True},
}

# Levels of part b; a zstd compressor is built per call with the content size
# written, exactly as wire.codecs.compress does.
ZSTD_LEVELS = (3, 10, 19)
ZLIB_LEVELS = (6, 9)


@dataclass(frozen=True)
class Bundle:
    name: str
    namespace: str
    yaml_text: str
    objects: tuple[dict[str, Any], ...]


# -- bundles ----------------------------------------------------------------


def parse_objects(text: str) -> tuple[dict[str, Any], ...]:
    return tuple(doc for doc in yaml.safe_load_all(text) if doc is not None)


def join_documents(texts: list[str]) -> str:
    return "---\n".join(t if t.endswith("\n") else t + "\n" for t in texts)


def plain_text(directory: Path) -> str:
    """The files `controller.plain.load_objects` reads, in its order, joined as one stream."""
    files = sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and p.suffix in plain.MANIFEST_SUFFIXES and p.name not in fleetyaml.DESCRIPTOR_NAMES
    )
    return join_documents([p.read_text(encoding="utf-8") for p in files])


def hello_web_text(suffix: str = "") -> str:
    text = plain_text(EXAMPLES / "hello-web")
    if not suffix:
        return text
    # A copy in its own namespace: rename the app and the namespace it lives in.
    text = text.replace("hello-web", f"hello-web{suffix}")
    text = text.replace("namespace: hello\n", f"namespace: hello{suffix}\n")
    return text.replace("name: hello\n", f"name: hello{suffix}\n")


def kustomize_text(suffix: str = "") -> str:
    overlay = EXAMPLES / "kustomize-app" / "overlays" / "prod"
    if not suffix:
        return run_kustomize(overlay)
    with tempfile.TemporaryDirectory() as tmp:
        # kustomize refuses absolute resource paths; a relative one may leave the root.
        rel = os.path.relpath(overlay, tmp)
        instance = f"pos{suffix}"
        Path(tmp, "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\n"
            "kind: Kustomization\n"
            f"resources:\n  - {rel}\n"
            f'nameSuffix: "{suffix}"\n'
            "labels:\n"
            f"  - pairs:\n      app.kubernetes.io/instance: {instance}\n"
            "    includeSelectors: true\n",
            encoding="utf-8",
        )
        return run_kustomize(Path(tmp))


def run_kustomize(directory: Path) -> str:
    done = subprocess.run(
        ["kubectl", "kustomize", str(directory)], check=True, capture_output=True, text=True, timeout=60
    )
    return done.stdout


def helm_text(chart: Any, values: dict[str, Any], *, name: str, namespace: str) -> str:
    rendered = chart.render(values, name=name, namespace=namespace)
    texts = []
    for path in sorted(rendered):
        # NOTES.txt is shown to the user, tests/ are `helm test` hooks: neither is installed.
        if path.endswith("NOTES.txt") or "/templates/tests/" in path:
            continue
        text = rendered[path]
        if not parse_objects(text):
            continue
        texts.append(text.lstrip("\n"))
    return join_documents(texts)


def make_bundle(name: str, namespace: str, text: str) -> Bundle:
    return Bundle(name, namespace, text, parse_objects(text))


def load_bundles() -> list[Bundle]:
    import helm_python

    hello = make_bundle("hello-web", "default", hello_web_text())
    # The text and controller.plain must agree on what the bundle is.
    assert list(hello.objects) == plain.load_objects(EXAMPLES / "hello-web")
    bundles = [hello, make_bundle("kustomize-app", "shop", kustomize_text())]
    large: list[str] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        helm_python.Chart.load(EXAMPLES / "helm-app" / "chart") as app,
        helm_python.Chart.create("starter", tmp) as starter,
    ):
        app_text = helm_text(app, HELM_APP_VALUES, name="collector", namespace="telemetry")
        starter_text = helm_text(starter, STARTER_VALUES, name="starter", namespace="default")
        bundles.append(make_bundle("helm-app", "telemetry", app_text))
        bundles.append(make_bundle("helm-starter", "default", starter_text))
        for i in range(1, COPIES + 1):
            suffix = f"-{i:02d}"
            large.append(hello_web_text(suffix))
            large.append(kustomize_text(suffix))
            large.append(helm_text(app, HELM_APP_VALUES, name=f"collector{suffix}", namespace="telemetry"))
            large.append(helm_text(starter, STARTER_VALUES, name=f"starter{suffix}", namespace="default"))
    bundles.append(make_bundle(f"large-{COPIES}x", "default", join_documents(large)))
    for bundle in bundles:
        names = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in bundle.objects]
        assert len(names) == len(set(names)), f"{bundle.name}: duplicate objects"
    return bundles


def manifest_of(bundle: Bundle) -> manifests.Manifest:
    variant = manifests.Variant(bundle.namespace, bundle.objects)
    target = manifests.Target("all", variant.deployment_id, cluster_selector=manifests.ClusterSelector())
    return manifests.Manifest(manifests.Kind.BUNDLE, bundle.name, GROUP, 1, ISSUED_AT, (target,), (variant,))


# -- timing -----------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    median: float  # seconds per call
    spread: float  # half the interquartile range over the median


def _batch(fn: Callable[[], object], calls: int) -> float:
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return time.perf_counter() - start
    finally:
        gc.enable()


def time_together(fns: list[Callable[[], object]]) -> list[Timing]:
    """Per-call timings of `fns`, their batches interleaved round-robin."""
    sizes = []
    for fn in fns:
        fn()  # warm up
        calls = 1
        while _batch(fn, calls) < BATCH_SECONDS:
            calls *= 2
        sizes.append(calls)
    samples: list[list[float]] = [[] for _ in fns]
    spent = [0.0 for _ in fns]
    while any(t < MIN_SECONDS or len(s) < MIN_BATCHES for t, s in zip(spent, samples, strict=True)):
        gc.collect()
        for i, fn in enumerate(fns):
            if spent[i] < MIN_SECONDS or len(samples[i]) < MIN_BATCHES:
                elapsed = _batch(fn, sizes[i])
                samples[i].append(elapsed / sizes[i])
                spent[i] += elapsed
    timings = []
    for per_call in samples:
        q1, median, q3 = statistics.quantiles(per_call, n=4)
        timings.append(Timing(median, (q3 - q1) / 2 / median))
    return timings


# -- output -----------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
    print()


def n(value: float) -> str:
    return f"{value:,.0f}"


def pct(fraction: float) -> str:
    return f"±{fraction * 100:.0f}%"


def us(seconds: float) -> str:
    micro = seconds * 1e6
    return f"{micro:,.1f}" if micro < 100 else f"{micro:,.0f}"


def cpu_model() -> str:
    try:
        for entry in Path("/proc/cpuinfo").read_text().splitlines():
            if entry.startswith("model name"):
                return entry.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> None:
    from cryptography.hazmat.backends.openssl.backend import backend

    print("machine")
    print(f"  nproc          {os.cpu_count()}")
    print(f"  cpu            {cpu_model()} ({platform.machine()})")
    print(f"  python         {platform.python_implementation()} {platform.python_version()}")
    print(
        f"  zstandard      {zstandard.__version__} "
        f"(libzstd {'.'.join(map(str, zstandard.ZSTD_VERSION))}, {zstandard.backend} backend)"
    )
    print(f"  zlib           {zlib.ZLIB_RUNTIME_VERSION}")
    print(f"  cryptography   {cryptography.__version__} ({backend.openssl_version_text()})")
    print(f"  msgpack        {'.'.join(map(str, msgpack.version))}")
    sealed_with = ", ".join(f"format {v} {c.value}" for v, c in envelopes.DEFAULT_CODECS.items())
    print(f"  defaults       {sealed_with}, zstd level {codecs.ZSTD_LEVEL}, zlib level {codecs.ZLIB_LEVEL}")
    print()


# -- parts ------------------------------------------------------------------


def sizes(bundles: list[Bundle], signing: keys.SigningKey) -> None:
    print("a) sizes in bytes (sealed = whole envelope on the wire: key id, codec, body, signature)")
    rows = []
    for bundle in bundles:
        manifest = manifest_of(bundle)
        raw = bundle.yaml_text.encode("utf-8")
        gz = gzip.compress(raw, compresslevel=9, mtime=0)
        packed = canonical.encode(manifests.to_wire(manifest, 1))
        zstd_env = envelopes.seal(manifest, signing, version=1, codec=codecs.Codec.ZSTD)
        zlib_env = envelopes.seal(manifest, signing, version=1, codec=codecs.Codec.ZLIB)
        v2_env = envelopes.seal(manifest, signing, version=2)
        rows.append(
            [
                bundle.name,
                n(len(bundle.objects)),
                n(len(raw)),
                n(len(gz)),
                n(len(packed)),
                n(len(zstd_env)),
                n(len(zlib_env)),
                n(len(v2_env)),
                f"{len(v2_env) / len(gz):.2f}",
                "yes" if len(v2_env) <= len(gz) else "no",
            ]
        )
    table(
        [
            "bundle",
            "objects",
            "yaml",
            "yaml gzip-9",
            "msgpack (1)",
            f"format 1 zstd-{codecs.ZSTD_LEVEL}",
            f"format 1 zlib-{codecs.ZLIB_LEVEL}",
            "format 2",
            "2/gzip",
            "2 <= gzip",
        ],
        rows,
    )


EXAMPLE_GROUPS = {
    # Each example for a group it targets; multi-region for both of its regions' variants.
    "hello-web": [targeting.Group("edge/bench", {})],
    "kustomize-app": [targeting.Group("edge/bench", {})],
    "helm-app": [targeting.Group("edge/bench", {})],
    "canary": [targeting.Group("edge/stores", {})],
    "plain-overlays": [targeting.Group("edge/kiosks", {})],
    "multi-region": [
        targeting.Group("edge/us-west", {"region": "us-west"}),
        targeting.Group("edge/eu-central", {}),
    ],
}


def examples(signing: keys.SigningKey) -> None:
    print("e) every example as `edgefleet apply` seals it for one group: all variants and targets")
    print("   (yaml = each variant's objects as YAML documents, one after another)")
    rows = []
    for name, groups in EXAMPLE_GROUPS.items():
        for group in groups:
            with rendering.open_bundle(EXAMPLES / name) as bundle:
                manifest = bundle.plan(group).manifest(bundle.name, generation=1, issued_at=ISSUED_AT)
            text = "".join(
                yaml.safe_dump_all([dict(o) for o in v.objects], sort_keys=False, explicit_start=True)
                for v in manifest.variants
            )
            gz = gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)
            v1 = envelopes.seal(manifest, signing, version=1)
            v2 = envelopes.seal(manifest, signing, version=2)
            rows.append(
                [
                    f"{name} @ {group.name}",
                    n(len(manifest.targets)),
                    n(len(manifest.variants)),
                    n(sum(len(v.objects) for v in manifest.variants)),
                    n(len(text)),
                    n(len(gz)),
                    n(len(v1)),
                    n(len(v2)),
                    f"{len(v2) - len(gz):+,}",
                ]
            )
    table(
        [
            "bundle @ group",
            "targets",
            "variants",
            "objects",
            "yaml",
            "gzip-9",
            "format 1",
            "format 2",
            "2 - gzip",
        ],
        rows,
    )


def compressors() -> list[tuple[str, codecs.Codec, Callable[[bytes], bytes]]]:
    def zstd_at(level: int) -> Callable[[bytes], bytes]:
        return lambda data: zstandard.ZstdCompressor(level=level, write_content_size=True).compress(data)

    def zlib_at(level: int) -> Callable[[bytes], bytes]:
        return lambda data: zlib.compress(data, level)

    def k8s1(data: bytes) -> bytes:
        return codecs.compress(codecs.Codec.ZSTD_K8S1, data)

    out = [(f"zstd-{lv}", codecs.Codec.ZSTD, zstd_at(lv)) for lv in ZSTD_LEVELS]
    out += [(f"zlib-{lv}", codecs.Codec.ZLIB, zlib_at(lv)) for lv in ZLIB_LEVELS]
    out.append((f"zstd-k8s1-{codecs.ZSTD_LEVEL}", codecs.Codec.ZSTD_K8S1, k8s1))
    return out


def codec_table(bundles: list[Bundle]) -> None:
    print("b) codecs on the canonical msgpack of each manifest, format 1 (median µs per call;")
    print("   decompress is wire.codecs.decompress, with its output cap and checks)")
    cap = limits.MAX_MANIFEST_BYTES
    rows = []
    for bundle in bundles:
        packed = canonical.encode(manifests.to_wire(manifest_of(bundle), 1))
        cells = []
        fns: list[Callable[[], object]] = []
        for label, codec, compress in compressors():
            body = compress(packed)
            if label in (f"zstd-{codecs.ZSTD_LEVEL}", f"zlib-{codecs.ZLIB_LEVEL}"):
                assert body == codecs.compress(codec, packed), label  # same bytes as the real path
            assert codecs.decompress(codec, body, max_output=cap) == packed
            cells.append((label, body))
            fns.append(functools.partial(compress, packed))
            fns.append(functools.partial(codecs.decompress, codec, body, max_output=cap))
        timings = time_together(fns)
        for (label, body), t_compress, t_decompress in zip(cells, timings[::2], timings[1::2], strict=True):
            rows.append(
                [
                    bundle.name,
                    n(len(packed)),
                    label,
                    n(len(body)),
                    f"{len(packed) / len(body):.2f}",
                    us(t_compress.median),
                    pct(t_compress.spread),
                    us(t_decompress.median),
                    pct(t_decompress.spread),
                ]
            )
    table(
        ["bundle", "msgpack", "codec", "size", "ratio", "compress µs", "spread", "decompress µs", "spread"],
        rows,
    )


def throughput(bundles: list[Bundle], signing: keys.SigningKey) -> None:
    print("c) envelopes per second, one core (seal = encode + compress + sign;")
    print("   verify = envelopes.verify: parse, Ed25519 check, capped decompress, parse, re-hash)")
    trusted = keys.keyring([signing.verify_key])
    wanted = {"hello-web", f"large-{COPIES}x"}
    rows = []
    for bundle in (b for b in bundles if b.name in wanted):
        manifest = manifest_of(bundle)
        cells = []
        fns: list[Callable[[], object]] = []
        for version, codec in ((1, codecs.Codec.ZSTD), (1, codecs.Codec.ZLIB), (2, codecs.Codec.ZSTD_K8S1)):
            level = codecs.ZLIB_LEVEL if codec is codecs.Codec.ZLIB else codecs.ZSTD_LEVEL
            data = envelopes.seal(manifest, signing, version=version, codec=codec)
            assert envelopes.verify(data, trusted=trusted, group=GROUP, bundle=bundle.name) == manifest
            cells.append((f"{version}: {codec.value}-{level}", data))
            fns.append(functools.partial(envelopes.seal, manifest, signing, version=version, codec=codec))
            fns.append(
                functools.partial(envelopes.verify, data, trusted=trusted, group=GROUP, bundle=bundle.name)
            )
        timings = time_together(fns)
        for (label, data), t_seal, t_verify in zip(cells, timings[::2], timings[1::2], strict=True):
            rows.append(
                [
                    bundle.name,
                    label,
                    n(len(data)),
                    n(1 / t_seal.median),
                    us(t_seal.median),
                    pct(t_seal.spread),
                    n(1 / t_verify.median),
                    us(t_verify.median),
                    pct(t_verify.spread),
                ]
            )
    table(
        [
            "bundle",
            "format: codec",
            "bytes",
            "seal/s",
            "seal µs",
            "spread",
            "verify/s",
            "verify µs",
            "spread",
        ],
        rows,
    )


def overhead(bundles: list[Bundle], signing: keys.SigningKey) -> None:
    print("d) where the bytes of a format 2 envelope go, against gzip -9 of the YAML")
    print("   (framing = envelope fields around the body: format, key id, codec, signature;")
    print("   objects only = zstd-k8s1 on the canonical msgpack of the object list alone)")
    rows = []
    k8s1 = codecs.Codec.ZSTD_K8S1
    for bundle in bundles:
        manifest = manifest_of(bundle)
        sealed = envelopes.seal(manifest, signing, version=2)
        body = codecs.compress(k8s1, canonical.encode(manifests.to_wire(manifest, 2)))
        objects = codecs.compress(k8s1, canonical.encode(list(bundle.objects)))
        gz = gzip.compress(bundle.yaml_text.encode("utf-8"), compresslevel=9, mtime=0)
        rows.append(
            [
                bundle.name,
                n(len(sealed)),
                n(len(sealed) - len(body)),
                n(len(body)),
                n(len(objects)),
                n(len(sealed) - len(objects)),
                n(len(gz)),
                f"{len(sealed) - len(gz):+,}",
            ]
        )
    table(
        ["bundle", "sealed", "framing", "body", "objects only", "sealed - objects", "yaml gzip-9", "vs gzip"],
        rows,
    )


def main() -> None:
    started = time.perf_counter()
    machine()
    bundles = load_bundles()
    signing = keys.SigningKey.generate()
    sizes(bundles, signing)
    codec_table(bundles)
    throughput(bundles, signing)
    overhead(bundles, signing)
    examples(signing)
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
