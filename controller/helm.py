"""Helm rendering: real Helm through helm-python-sdk, or a `helm` binary on PATH.

helm-python-sdk binds Helm's own Go library, so no binary is needed; where it
cannot load (a platform without its shared library), a `helm` binary on PATH
does the same job through `helm template`. Charts come from the bundle (a
directory or a `.tgz`), from an HTTP chart repository (`repo` + `chart` +
`version`), from a chart URL, or from an `oci://` registry; downloads go to a
per-render cache so one chart is fetched once however many variants use it.

Test hooks (`helm.sh/hook: test…`) are dropped, as `helm install` never
creates them; CRDs under `crds/` come first, as Helm installs them first.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controller import errors, fleetyaml, sandbox, tools

# `helm template` of a large chart takes a second or two; two minutes means it hangs.
TEMPLATE_TIMEOUT = 120.0


@dataclass
class ChartCache:
    """Charts downloaded during one render, by (repo, chart, version)."""

    directory: Path
    charts: dict[tuple[str, str, str], Path] = field(default_factory=dict)


def _sdk() -> Any:
    try:
        import helm_python
    except (ImportError, OSError):
        return None
    return helm_python


def chart_path(options: fleetyaml.HelmOptions, root: Path, cache: ChartCache, *, source: str) -> Path:
    """Where the chart to render is on disk, downloading it first if it is remote."""
    ref = options.chart
    if options.repo or ref.startswith(("oci://", "http://", "https://")):
        return _download(options, cache, source=source)
    local = sandbox.resolve_inside(root, ref or ".", what="helm.chart", source=source)
    if local.is_dir() and not (local / "Chart.yaml").is_file():
        raise errors.BundleError(f"{source}: helm.chart {ref or '.'!r} has no Chart.yaml")
    if not local.exists():
        raise errors.BundleError(f"{source}: helm.chart {ref!r} does not exist in the bundle")
    return local


def _download(options: fleetyaml.HelmOptions, cache: ChartCache, *, source: str) -> Path:
    key = (options.repo, options.chart, options.version)
    if key in cache.charts:
        return cache.charts[key]
    what = f"chart {options.chart!r}" + (f" from {options.repo}" if options.repo else "")
    what += f" version {options.version}" if options.version else ""
    sdk = _sdk()
    destination = Path(tempfile.mkdtemp(dir=cache.directory))
    if sdk is not None:
        try:
            sdk.pull(
                options.chart,
                destination=destination,
                version=options.version or None,
                repo_url=options.repo or None,
            )
        except sdk.HelmError as exc:
            raise errors.BundleError(f"{source}: cannot download {what}: {exc}") from exc
    else:
        argv = [_binary(source), "pull", options.chart, "--destination", str(destination)]
        argv += ["--repo", options.repo] if options.repo else []
        argv += ["--version", options.version] if options.version else []
        tools.run(argv, source=source, what=f"download {what}", timeout=TEMPLATE_TIMEOUT)
    archives = sorted(destination.glob("*.tgz"))
    if len(archives) != 1:
        raise errors.BundleError(f"{source}: downloading {what} produced no chart archive")
    cache.charts[key] = archives[0]
    return archives[0]


def render(chart: Path, *, values: Mapping[str, Any], release: str, namespace: str, source: str) -> str:
    """Render `chart` offline; return one YAML stream, CRDs first."""
    sdk = _sdk()
    if sdk is None:
        return _render_with_binary(chart, values=values, release=release, namespace=namespace, source=source)
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["yaml"] = _render_with_sdk(
                sdk, chart, values=values, release=release, namespace=namespace
            )
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    # Helm runs in-process (Go, through ctypes) and cannot be interrupted; a chart
    # whose templates never finish must not hang `apply`, so the wait has a deadline.
    # A daemon thread: a render left behind ends with the process.
    worker = threading.Thread(target=work, name=f"helm-render-{chart.name}", daemon=True)
    worker.start()
    worker.join(TEMPLATE_TIMEOUT)
    if worker.is_alive():
        raise errors.BundleError(
            f"{source}: Helm did not render chart {chart.name} within {TEMPLATE_TIMEOUT:.0f}s"
        )
    error = outcome.get("error")
    if isinstance(error, sdk.HelmError):
        raise errors.BundleError(f"{source}: Helm failed on chart {chart.name}: {error}") from error
    if error is not None:
        raise error
    rendered: str = outcome["yaml"]
    return rendered


def _render_with_sdk(
    sdk: Any, chart: Path, *, values: Mapping[str, Any], release: str, namespace: str
) -> str:
    loaded = sdk.Chart.load(chart)
    try:
        crds = [crd["data"] for crd in sorted(loaded.crds, key=lambda c: c.get("filename", c["name"]))]
        rendered = loaded.render(dict(values), name=release, namespace=namespace, is_install=True)
    finally:
        loaded.close()
    templates = [text for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt")]
    return "\n---\n".join([*crds, *templates])


def _binary(source: str) -> str:
    binary = tools.which("helm")
    if binary is None:
        raise errors.BundleError(
            f"{source}: Helm is needed but helm-python-sdk is not installed "
            "(pip install 'edgefleet[controller]') and no `helm` binary is on PATH"
        )
    return binary


def _render_with_binary(
    chart: Path, *, values: Mapping[str, Any], release: str, namespace: str, source: str
) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", encoding="utf-8") as values_file:
        yaml.safe_dump(dict(values), values_file)
        values_file.flush()
        argv = [
            _binary(source),
            "template",
            release,
            str(chart),
            "--namespace",
            namespace,
            "--values",
            values_file.name,
            "--include-crds",
        ]
        return tools.run(argv, source=source, what=f"render chart {chart.name}", timeout=TEMPLATE_TIMEOUT)


def is_test_hook(obj: Mapping[str, Any]) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    hooks = str(annotations.get("helm.sh/hook", ""))
    return any(hook.strip().startswith("test") for hook in hooks.split(","))
