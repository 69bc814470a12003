"""Render benchmark: how long the controller takes to render a bundle's variants.

Run with `.venv/bin/python bench/render.py`. It prints plain-text tables;
docs/benchmarks.md records a run of them.

Part a renders every example bundle from scratch: `bundles.open_bundle` (reads
fleet.yaml) plus `Bundle.all_variants()` (the base and every
targetCustomization). A Bundle memoizes its renders, so each repetition opens
a fresh one. Each bundle is timed on its own, after one untimed warm-up run,
for at least `MIN_RUNS` runs and at least `MIN_SECONDS`; the table gives the
median and p90 of the runs, the median divided by the number of rendered
variants (doNotDeploy variants render nothing and are not counted), and the
number of objects over all rendered variants.

Part b runs the bundles again (the same number of runs each) with
`controller.kustomize.build` and `controller.helm.render` wrapped, to count
how often each runs per render and how much of the render time is spent in
them, then the median of each kubectl run by itself. The rest ("python") is
our own code: reading fleet.yaml and the manifests, the sandbox copy, YAML
parsing, normalising and hashing.

Part c times the external steps alone: one `kubectl kustomize` of
examples/kustomize-app/overlays/prod; one of a one-object kustomization that
does nothing (about the floor of a kubectl run: process start-up); one of a
Deployment with a JSON patch and one with a strategic-merge patch (the two
kinds of patch plain-overlays and multi-region apply); and one helm-python-sdk
render of examples/helm-app/chart, with and without `Chart.load`.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Python puts bench/ first on sys.path, and bench/wire.py is there: without this,
# the `import wire` inside controller would import that script instead of the package.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

from bench.reporting import command_first_line, cpu_model, median, ms, p90, table  # noqa: E402
from controller import bundles, helm, kustomize  # noqa: E402

EXAMPLES = ROOT / "examples"
BUNDLES = ("hello-web", "kustomize-app", "helm-app", "multi-region", "canary", "plain-overlays")
MIN_RUNS = 15
MIN_SECONDS = 3.0
# A bundle gets at most this many runs, so a very fast one cannot run for long.
MAX_RUNS = 5000

KUSTOMIZE_RUNS = 15
HELM_RUNS = 30
KUSTOMIZE_OVERLAY = EXAMPLES / "kustomize-app" / "overlays" / "prod"
HELM_CHART = EXAMPLES / "helm-app" / "chart"
# The base values of examples/helm-app/fleet.yaml, rendered as the controller does.
HELM_VALUES = {"replicaCount": 1, "sampleIntervalSeconds": 15}
HELM_RELEASE = "collector"
HELM_NAMESPACE = "telemetry"

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: minimal
spec:
  replicas: 1
  selector:
    matchLabels: {app: minimal}
  template:
    metadata:
      labels: {app: minimal}
    spec:
      containers:
        - name: app
          image: registry.example.com/minimal:1.0.0
"""
# Small kustomizations that isolate what a kubectl run costs: its start-up (one
# object, nothing to do), and a patch of each kind the example bundles apply.
KUSTOMIZATIONS = {
    "one ConfigMap, no transformation": {
        "kustomization.yaml": "resources:\n  - base.yaml\n",
        "base.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: minimal\ndata:\n  key: value\n",
    },
    "one Deployment + JSON patch": {
        "kustomization.yaml": (
            "resources:\n  - base.yaml\npatches:\n  - path: patch.yaml\n"
            "    target: {group: apps, version: v1, kind: Deployment, name: minimal}\n"
        ),
        "base.yaml": DEPLOYMENT,
        "patch.yaml": "- op: replace\n  path: /spec/replicas\n  value: 2\n",
    },
    "one Deployment + strategic-merge patch": {
        "kustomization.yaml": "resources:\n  - base.yaml\npatches:\n  - path: patch.yaml\n",
        "base.yaml": DEPLOYMENT,
        "patch.yaml": (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: minimal\nspec:\n  replicas: 2\n"
        ),
    },
}


# -- helpers ------------------------------------------------------------------


def header() -> None:
    started = time.perf_counter()
    try:
        import helm_python
    except (ImportError, OSError) as exc:
        helm_line = f"helm-python-sdk not loadable ({exc}); Helm renders use the helm binary"
    else:
        loaded = time.perf_counter() - started
        version = getattr(helm_python, "helm_sdk_version", None)
        sdk = version() if callable(version) else "unknown"
        package = getattr(helm_python, "__version__", "?")
        helm_line = f"helm-python-sdk {package}, Helm SDK {sdk} (import took {ms(loaded)} ms)"
    print("Render benchmark (bench/render.py)")
    print(f"  date:     {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"  nproc:    {command_first_line(['nproc'])} (os.cpu_count() = {os.cpu_count()})")
    print(f"  CPU:      {cpu_model()} ({platform.machine()})")
    print(f"  Python:   {platform.python_implementation()} {platform.python_version()}")
    print(f"  kubectl:  {command_first_line(['kubectl', 'version', '--client'])}")
    print(f"  kustomize command used by the controller: {' '.join(kustomize.command())}")
    print(f"  helm:     {helm_line}")
    print(f"  load avg: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min) at start")
    print()


# -- a) rendering from scratch ----------------------------------------------------


@dataclass
class Result:
    name: str
    runs: int
    times: list[float]
    variants: int
    skipped: int
    objects: int


def render_once(directory: Path) -> tuple[float, list[tuple[str, Any]]]:
    start = time.perf_counter()
    with bundles.open_bundle(directory) as bundle:
        variants = bundle.all_variants()
    return time.perf_counter() - start, variants


def fingerprint(variants: list[tuple[str, Any]]) -> list[tuple[str, str | None]]:
    return [(name, None if v is None else v.deployment_id) for name, v in variants]


def runs_for(estimate: float) -> int:
    return min(MAX_RUNS, max(MIN_RUNS, math.ceil(MIN_SECONDS / max(estimate, 1e-6))))


def measure_bundle(name: str) -> Result:
    directory = EXAMPLES / name
    # Warm-up: the first render pays one-off costs (imports, the Helm library, disk cache).
    _, variants = render_once(directory)
    expected = fingerprint(variants)
    estimate = median([render_once(directory)[0] for _ in range(3)])
    runs = runs_for(estimate)
    times = []
    for _ in range(runs):
        elapsed, variants = render_once(directory)
        times.append(elapsed)
        # Every render from scratch must give the same variants.
        assert fingerprint(variants) == expected, f"{name}: render is not deterministic"
    rendered = [v for _, v in variants if v is not None]
    return Result(
        name=name,
        runs=runs,
        times=times,
        variants=len(rendered),
        skipped=len(variants) - len(rendered),
        objects=sum(len(v.objects) for v in rendered),
    )


def report_renders(results: list[Result]) -> None:
    print("a) Render all variants from scratch (open_bundle + all_variants), times in ms")
    print()
    rows = []
    for r in results:
        med = median(r.times)
        variants = f"{r.variants}" + (f" (+{r.skipped} doNotDeploy)" if r.skipped else "")
        rows.append(
            [r.name, f"{r.runs}", ms(med), ms(p90(r.times)), ms(med / r.variants), variants, f"{r.objects}"]
        )
    headers = ["bundle", "runs", "median", "p90", "per variant", "variants", "objects"]
    print(table(headers, rows, right={1, 2, 3, 4, 6}))
    print()


# -- b) where the render time goes ------------------------------------------------


@dataclass
class Tally:
    calls: int = 0
    seconds: float = 0.0
    # Seconds of each call, by its `source` argument (which names bundle, target and directory).
    by_source: dict[str, list[float]] = field(default_factory=dict)


@contextmanager
def tallied(module: Any, attribute: str, tally: Tally) -> Iterator[None]:
    original: Callable[..., Any] = getattr(module, attribute)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            tally.seconds += elapsed
            tally.calls += 1
            tally.by_source.setdefault(str(kwargs.get("source", "?")), []).append(elapsed)

    setattr(module, attribute, wrapper)
    try:
        yield
    finally:
        setattr(module, attribute, original)


def breakdown(results: list[Result]) -> None:
    print("b) Where one render goes: time inside kustomize.build (one kubectl subprocess each)")
    print("   and helm.render (helm-python-sdk load + render), per render of all variants;")
    print("   the same number of runs as in a), medians of the per-run figures, times in ms")
    print()
    rows = []
    calls: dict[str, list[float]] = {}
    for r in results:
        directory = EXAMPLES / r.name
        totals: list[float] = []
        kubectl_times: list[float] = []
        helm_times: list[float] = []
        counts: set[tuple[int, int]] = set()
        for _ in range(r.runs):
            k, h = Tally(), Tally()
            with tallied(kustomize, "build", k), tallied(helm, "render", h):
                elapsed, _ = render_once(directory)
            totals.append(elapsed)
            kubectl_times.append(k.seconds)
            helm_times.append(h.seconds)
            counts.add((k.calls, h.calls))
            for source, seconds in k.by_source.items():
                calls.setdefault(source, []).extend(seconds)
        assert len(counts) == 1, f"{r.name}: the number of external calls varies: {counts}"
        [(kubectl_calls, helm_calls)] = counts
        rest = [t - k - h for t, k, h in zip(totals, kubectl_times, helm_times, strict=True)]
        total = median(totals)
        external = median([(k + h) / t for t, k, h in zip(totals, kubectl_times, helm_times, strict=True)])
        rows.append(
            [
                r.name,
                ms(total),
                f"{kubectl_calls}",
                ms(median(kubectl_times)),
                f"{helm_calls}",
                ms(median(helm_times)),
                ms(median(rest)),
                f"{external:.0%}",
            ]
        )
    headers = ["bundle", "total", "kubectl runs", "kubectl", "helm renders", "helm", "python", "external"]
    print(table(headers, rows))
    print()
    print("   Each kubectl run above (one kustomize.build call), median ms over the runs of its bundle:")
    print()
    call_rows = [[source.removeprefix("bundle "), f"{len(t)}", ms(median(t))] for source, t in calls.items()]
    print(table(["call (bundle, target: kustomization)", "runs", "median"], call_rows))
    print()


# -- c) the external steps alone --------------------------------------------------


def time_kubectl(directory: Path, runs: int) -> list[float]:
    argv = [*kustomize.command(), str(directory)]
    subprocess.run(argv, capture_output=True, check=True, timeout=60)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, timeout=60)
        times.append(time.perf_counter() - start)
    return times


def time_helm(runs: int) -> tuple[list[float], list[float]]:
    import helm_python

    def once() -> tuple[float, float]:
        start = time.perf_counter()
        chart = helm_python.Chart.load(HELM_CHART)
        try:
            loaded = time.perf_counter()
            rendered = chart.render(dict(HELM_VALUES), name=HELM_RELEASE, namespace=HELM_NAMESPACE)
            done = time.perf_counter()
        finally:
            chart.close()
        assert rendered, "helm-app rendered nothing"
        return done - start, done - loaded

    once()  # warm-up
    both = [once() for _ in range(runs)]
    return [b[0] for b in both], [b[1] for b in both]


def external_steps() -> None:
    print("c) The external steps alone, times in ms")
    print()
    rows: list[tuple[str, list[float]]] = []
    overlay = time_kubectl(KUSTOMIZE_OVERLAY, KUSTOMIZE_RUNS)
    rows.append(("kubectl kustomize examples/kustomize-app/overlays/prod", overlay))
    for label, files in KUSTOMIZATIONS.items():
        with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
            for filename, text in files.items():
                Path(tmp, filename).write_text(text, encoding="utf-8")
            times = time_kubectl(Path(tmp), KUSTOMIZE_RUNS)
        rows.append((f"kubectl kustomize, {label}", times))
    try:
        with_load, render_only = time_helm(HELM_RUNS)
    except (ImportError, OSError) as exc:
        print(f"   helm-python-sdk not loadable ({exc}): no Helm figures")
    else:
        rows.append(("helm_python Chart.load + render, examples/helm-app/chart", with_load))
        rows.append(("helm_python render only (chart already loaded)", render_only))
    print(
        table(
            ["step", "runs", "median", "p90", "min"],
            [[name, f"{len(t)}", ms(median(t)), ms(p90(t)), ms(min(t))] for name, t in rows],
        )
    )
    print()


def main() -> None:
    began = time.perf_counter()
    header()
    results = []
    for name in BUNDLES:
        results.append(measure_bundle(name))
    report_renders(results)
    breakdown(results)
    external_steps()
    print(f"load avg: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min) at end")
    print(f"total benchmark time: {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
