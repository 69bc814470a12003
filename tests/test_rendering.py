"""Rendering with the real tools: Helm (helm-python-sdk), Kustomize (kubectl kustomize),
their combination, plain overlays, and every way a bundle can be wrong."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from controller import bundles, errors, helm, kustomize, plain, targeting
from tests import chartrepo
from wire import canonical

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HELM_SHIM = Path(__file__).resolve().parent / "helm_shim.py"
GROUP = targeting.Group("default")


def _objects(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _by_identity(objects: Any) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): canonical.normalize(o)
        for o in objects
    }


def _variant(directory: Path, *, labels: dict[str, str] | None = None, group: targeting.Group = GROUP) -> Any:
    with bundles.open_bundle(directory) as bundle:
        view = bundle.for_cluster(group, cluster="c", labels=labels or {})
    assert view.variant is not None, view.selection.reason
    return view.variant


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


# -- Helm ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "values"),
    [
        ({}, {"replicaCount": 1, "sampleIntervalSeconds": 15}),
        ({"env": "prod"}, {"replicaCount": 2, "sampleIntervalSeconds": 5}),
    ],
)
def test_helm_output_matches_direct_render_object_by_object(
    labels: dict[str, str], values: dict[str, Any]
) -> None:
    chart = helm_python.Chart.load(EXAMPLES / "helm-app/chart")
    direct = chart.render(values, name="collector", namespace="telemetry", is_install=True)
    expected = _by_identity(
        o for path, text in direct.items() if path.endswith(".yaml") for o in _objects(text)
    )
    variant = _variant(EXAMPLES / "helm-app", labels=labels)
    assert _by_identity(variant.objects) == expected
    assert variant.namespace == "telemetry"


def test_values_files_of_a_customization_land_over_the_base() -> None:
    variant = _variant(EXAMPLES / "helm-app", labels={"env": "dev"})
    deployment = next(o for o in variant.objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith(":2.2.0-dev")
    assert container["resources"]["limits"]["memory"] == "256Mi"
    assert deployment["spec"]["replicas"] == 1  # from the base's inline values


def test_chart_at_bundle_root_with_crds_and_test_hooks(tmp_path: Path) -> None:
    root = _write(
        tmp_path / "rooted",
        {
            "Chart.yaml": "apiVersion: v2\nname: rooted\nversion: 0.1.0\n",
            "crds/widget.yaml": "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
            "metadata: {name: widgets.example.com}\nspec: {group: example.com}\n",
            "templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ .Release.Name }}-cm'}\n",
            "templates/test.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: t\n  annotations: {helm.sh/hook: test}\n",
        },
    )
    kinds = sorted(o["kind"] for o in _variant(root).objects)
    assert kinds == ["ConfigMap", "CustomResourceDefinition"]


def test_chart_from_an_http_repository(tmp_path: Path) -> None:
    chart = _write(
        tmp_path / "src/remote-app",
        {
            "Chart.yaml": "apiVersion: v2\nname: remote-app\nversion: 1.2.3\n",
            "templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-repo}\n"
            "data: {v: '{{ .Chart.Version }}'}\n",
        },
    )
    with chartrepo.serve([chart], tmp_path / "repo") as url:
        root = _write(
            tmp_path / "bundle", {"fleet.yaml": f"helm: {{repo: {url}, chart: remote-app, version: 1.2.3}}\n"}
        )
        [obj] = _variant(root).objects
        assert (obj["metadata"]["name"], obj["data"]["v"]) == ("from-repo", "1.2.3")
        url_bundle = _write(
            tmp_path / "by-url", {"fleet.yaml": f"helm: {{chart: {url}/remote-app-1.2.3.tgz}}\n"}
        )
        assert _variant(url_bundle).objects[0]["metadata"]["name"] == "from-repo"


def test_unreachable_chart_repository_is_a_clear_error(tmp_path: Path) -> None:
    port = _closed_port()
    root = _write(
        tmp_path / "app", {"fleet.yaml": f"helm: {{repo: 'http://127.0.0.1:{port}', chart: gone}}\n"}
    )
    with pytest.raises(errors.BundleError, match=r"bundle app, target base: cannot download chart 'gone'"):
        _variant(root)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_chart_that_fails_to_render_names_bundle_target_and_chart(tmp_path: Path) -> None:
    root = _write(
        tmp_path / "broken",
        {
            "fleet.yaml": "helm: {chart: ./chart}\ntargetCustomizations: [{name: prod, clusterSelector: {}}]\n",
            "chart/Chart.yaml": "apiVersion: v2\nname: broken-chart\nversion: 0.1.0\n",
            "chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: {{ .Values.x.y }}}\n",
        },
    )
    with pytest.raises(errors.BundleError) as caught:
        _variant(root)
    message = str(caught.value)
    assert "bundle broken, target " in message and "broken-chart" in message


def test_helm_binary_is_used_when_the_sdk_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    expected = _variant(EXAMPLES / "helm-app", labels={"env": "prod"})
    binary = tmp_path / "bin" / "helm"  # a `helm` command line over the same Helm library
    binary.parent.mkdir()
    binary.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HELM_SHIM}" "$@"\n')
    binary.chmod(0o755)
    monkeypatch.setattr(helm, "_sdk", lambda: None)
    monkeypatch.setenv("PATH", f"{binary.parent}{os.pathsep}{os.environ['PATH']}")
    assert _variant(EXAMPLES / "helm-app", labels={"env": "prod"}).deployment_id == expected.deployment_id


def test_missing_helm_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helm, "_sdk", lambda: None)
    monkeypatch.setattr(shutil, "which", lambda name, path=None: None)
    with pytest.raises(errors.BundleError, match="helm-python-sdk is not installed"):
        _variant(EXAMPLES / "helm-app")


# -- Kustomize ------------------------------------------------------------------


def test_kustomize_output_matches_the_tool_object_by_object() -> None:
    tool = subprocess.run(
        [*kustomize.command(), str(EXAMPLES / "kustomize-app/overlays/prod")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert _by_identity(_variant(EXAMPLES / "kustomize-app").objects) == _by_identity(_objects(tool))


def test_helm_output_is_fed_to_the_kustomization_per_region() -> None:
    west = targeting.Group("edge/us-west", {"region": "us-west"})
    objects = _by_identity(_variant(EXAMPLES / "multi-region", group=west).objects)
    assert set(objects) == {("ConfigMap", "", "usw-pos-settings"), ("Deployment", "", "usw-pos")}
    deployment = objects[("Deployment", "", "usw-pos")]
    assert deployment["metadata"]["labels"]["region"] == "us-west"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"] == (
        "usw-pos-settings"  # kustomize rewrote the reference along with the name
    )
    assert objects[("ConfigMap", "", "usw-pos-settings")]["data"] == {"CURRENCY": "USD"}
    eu = _by_identity(_variant(EXAMPLES / "multi-region", group=targeting.Group("edge/eu-central")).objects)
    assert eu[("Deployment", "", "euc-pos")]["spec"]["replicas"] == 2
    assert eu[("ConfigMap", "", "euc-pos-settings")]["data"] == {"CURRENCY": "EUR"}


@pytest.mark.parametrize(
    ("kustomization", "message"),
    [
        ("resources: [../../outside]\n", "points outside the bundle directory"),
        (
            "resources: [deployment.yaml]\npatches: [{path: ../../../etc/passwd}]\n",
            "points outside the bundle directory",
        ),
        ("resources: ['https://github.com/org/repo//base?ref=v1']\n", "remote reference"),
        ("resources: ['github.com/org/repo/base']\n", "remote reference"),
        ("helmCharts: [{name: x}]\n", "helm support is off"),
        ("resources: [missing.yaml]\n", "'missing.yaml' is not in the bundle"),
        ("Resources: [../../outside]\n", "points outside the bundle directory"),  # kustomize ignores case
        ("resources: [!!binary Li4vLi4vb3V0c2lkZQ==]\n", "not a JSON-shaped value"),
        ("resources: [5]\n", "must be plain strings"),
        ("resources: ['github.com:org/repo//base']\n", "remote references are not supported"),
        ("resources: ['GitHub.com/org/repo']\n", "remote references are not supported"),
        ("resources: ['deploy@evil.example.com:org/repo.git']\n", "remote references are not supported"),
        (
            "patches: [{path: deployment.yaml}]\nconfigMapGenerator: [{name: c, files: [k=../../x]}]\n",
            "outside",
        ),
        ("- a list\n", "a kustomization is one map"),
        ("resources: deployment.yaml\n", "could not build the kustomization"),
    ],
)
def test_bad_kustomizations_are_refused_with_the_file_named(
    tmp_path: Path, kustomization: str, message: str
) -> None:
    (tmp_path / "outside").mkdir()
    root = _write(
        tmp_path / "app",
        {
            "fleet.yaml": "kustomize: {dir: overlay}\n",
            "overlay/kustomization.yaml": kustomization,
            "overlay/deployment.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        },
    )
    with pytest.raises(errors.BundleError, match=message) as caught:
        _variant(root)
    assert "bundle app, target base" in str(caught.value)


def test_symlink_out_of_the_bundle_is_refused(tmp_path: Path) -> None:
    secret = _write(
        tmp_path / "secret", {"token.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"}
    )
    root = _write(tmp_path / "app", {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"})
    (root / "stolen.yaml").symlink_to(secret / "token.yaml")
    with pytest.raises(errors.BundleError, match="symlink points outside the bundle directory"):
        _variant(root)


def test_missing_kustomize_tool_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, path=None: None)
    with pytest.raises(errors.BundleError, match="neither `kubectl` nor `kustomize` is on PATH"):
        _variant(EXAMPLES / "kustomize-app")


# -- plain YAML and overlays ----------------------------------------------------------


def test_plain_bundle_reads_subdirectories_and_skips_other_bundles_and_non_yaml(tmp_path: Path) -> None:
    root = _write(
        tmp_path / "app",
        {
            "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\n"
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
            "sub/c.yml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
            "sub/d.json": '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}}',
            "README.md": "not yaml",
            "other/fleet.yaml": "{}\n",
            "other/e.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: e}\n",
            "chart/Chart.yaml": "apiVersion: v2\nname: c\nversion: 0.1.0\n",
        },
    )
    assert sorted(o["metadata"]["name"] for o in _variant(root).objects) == ["a", "b", "c", "d"]


def test_overlays_replace_and_patch_base_files() -> None:
    prod = _by_identity(_variant(EXAMPLES / "plain-overlays", labels={"env": "prod"}).objects)
    assert prod[("ConfigMap", "kiosk", "kiosk-config")]["data"]["LOG_LEVEL"] == "warn"  # replaced file
    deployment = prod[("Deployment", "kiosk", "kiosk")]
    assert deployment["spec"]["replicas"] == 2
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert containers["kiosk"]["image"].endswith(":5.0.2")
    assert containers["kiosk"]["ports"] == [{"containerPort": 8080}]  # strategic merge kept the rest
    assert "log-shipper" in containers
    lab = _by_identity(_variant(EXAMPLES / "plain-overlays", labels={"env": "lab"}).objects)
    lab_kiosk = lab[("Deployment", "kiosk", "kiosk")]["spec"]["template"]["spec"]["containers"][0]
    assert lab_kiosk["env"] == [{"name": "FEATURE_FLAGS", "value": "all"}]  # JSON patch


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.yaml": "key: [unclosed\n"}, r"a\.yaml: not valid YAML"),
        ({"a.yaml": "- just\n- a list\n"}, "not a Kubernetes object"),
        ({"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n"}, "no metadata.name"),
        (
            {
                "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
                "b.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            },
            "ConfigMap x appears twice",
        ),
        (
            {
                "fleet.yaml": "yaml: {overlays: [nope]}\n",
                "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            },
            "overlays/nope/ holds no manifests",
        ),
        (
            {"fleet.yaml": "yaml: {overlays: [o]}\n", "overlays/o/b_patch.yaml": "data: {}\n"},
            "patches b.yaml",
        ),
    ],
)
def test_bad_plain_bundles_are_clear_errors(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(errors.BundleError, match=message):
        _variant(_write(tmp_path / "app", files))


def test_billion_laughs_is_refused_quickly(tmp_path: Path) -> None:
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, current in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{current}: &{current} [" + ",".join([f"*{previous}"] * 9) + "]")
    root = _write(
        tmp_path / "app",
        {
            "bomb.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  "
            + "\n  ".join(levels)
            + "\n"
        },
    )
    with pytest.raises(errors.BundleError, match="billion laughs"):
        _variant(root)
    with pytest.raises(errors.BundleError, match="billion laughs"):
        plain.documents_to_objects("\n".join(levels), source="values")


# -- variants -------------------------------------------------------------------------


def test_identical_renders_share_one_variant_and_order_is_stable(tmp_path: Path) -> None:
    root = _write(
        tmp_path / "app",
        {
            "fleet.yaml": "targetCustomizations:\n"
            "  - {name: same, clusterSelector: {matchLabels: {env: a}}, namespace: ''}\n"
            "  - {name: other-ns, clusterSelector: {matchLabels: {env: b}}, defaultNamespace: b}\n",
            "z.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: z}\n",
            "a.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {}\n",
        },
    )
    with bundles.open_bundle(root) as bundle:
        plan = bundle.plan(GROUP)
    ids = [t.deployment_id for t in plan.targets]
    assert ids[0] == ids[2] != ids[1]  # "same" renders exactly like the base
    assert len(plan.variants) == 2
    assert [o["kind"] for o in plan.variants[0].objects] == ["ConfigMap", "Deployment"]  # canonical order
    with bundles.open_bundle(root) as again:
        assert again.plan(GROUP) == plan


def test_a_failing_customization_fails_the_whole_plan(tmp_path: Path) -> None:
    root = _write(
        tmp_path / "app",
        {
            "fleet.yaml": "targetCustomizations: [{name: broken, clusterSelector: {}, yaml: {overlays: [missing]}}]\n",
            "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
        },
    )
    with bundles.open_bundle(root) as bundle, pytest.raises(errors.BundleError, match="target broken"):
        bundle.plan(GROUP)


def test_chart_as_a_tgz_inside_the_bundle(tmp_path: Path) -> None:
    root = tmp_path / "packaged"
    root.mkdir()
    archive = helm_python.package(EXAMPLES / "helm-app/chart", destination=root)
    (root / "fleet.yaml").write_text(f"helm: {{chart: ./{Path(archive).name}, releaseName: collector}}\n")
    names = sorted(o["metadata"]["name"] for o in _variant(root).objects)
    assert names == ["collector", "collector", "collector-config"]


def test_chart_path_outside_the_bundle_is_refused(tmp_path: Path) -> None:
    root = _write(tmp_path / "app", {"fleet.yaml": "helm: {chart: ../../elsewhere}\n"})
    with pytest.raises(errors.BundleError, match="points outside the bundle directory"):
        _variant(root)


# -- hostile and unusual bundles (each was once a crash or a hole) ------------------------


def test_descriptor_symlinked_from_outside_is_refused(tmp_path: Path) -> None:
    secret = _write(tmp_path / "secret", {"creds.yaml": "db_password: hunter2\n"})
    root = tmp_path / "app"
    root.mkdir()
    (root / "fleet.yaml").symlink_to(secret / "creds.yaml")
    with pytest.raises(errors.BundleError, match="symlink points outside the bundle directory") as caught:
        _variant(root)
    assert "hunter2" not in str(caught.value) and "db_password" not in str(caught.value)


@pytest.mark.parametrize("layout", ["loop", "ancestor"])
def test_symlink_loops_and_directory_links_are_refused(tmp_path: Path, layout: str) -> None:
    root = _write(tmp_path / "app", {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"})
    if layout == "loop":
        (root / "b").symlink_to(root / "c")
        (root / "c").symlink_to(root / "b")
        message = "symlink does not resolve"
    else:
        (root / "self").symlink_to(root)
        message = "symlinks to directories are not supported"
    with pytest.raises(errors.BundleError, match=message):
        _variant(root)


def test_yaml_is_typed_as_kubernetes_types_it(tmp_path: Path) -> None:
    root = _write(
        tmp_path / "app",
        {
            "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  annotations: {built: 2024-01-02T03:04:05Z}\n"
            "data: {1: one, true: yes}\n",
        },
    )
    [obj] = _variant(root).objects
    assert obj["metadata"]["annotations"] == {"built": "2024-01-02T03:04:05Z"}
    assert obj["data"] == {"1": "one", "true": True}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data: !!binary aGVsbG8=\n", "bytes is not a JSON-shaped value"),
        ("data: {n: 123456789012345678901234567890}\n", "does not fit in 64 bits"),
        ('data: {s: "\\ud800"}\n', "not representable as JSON"),
    ],
)
def test_values_json_cannot_hold_are_refused(tmp_path: Path, text: str, message: str) -> None:
    root = _write(
        tmp_path / "app", {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n" + text}
    )
    with pytest.raises(errors.BundleError, match=message):
        _variant(root)


def test_alias_budget_covers_all_documents_of_a_file(tmp_path: Path) -> None:
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, current in zip("abcde", "bcdef", strict=True):
        levels.append(f"{current}: &{current} [" + ",".join([f"*{previous}"] * 9) + "]")
    document = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  " + "\n  ".join(levels) + "\n"
    # One document expands to ~600k nodes, under the budget; two of them are over it.
    with pytest.raises(errors.BundleError, match="billion laughs"):
        plain.documents_to_objects(document + "---\n" + document, source="many")


def test_oversized_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    root = _write(tmp_path / "app", {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"})
    with (root / "huge.yaml").open("wb") as handle:
        handle.truncate(40 << 30)  # sparse: 40 GiB that take no disk
    with pytest.raises(errors.BundleError, match="over the 33554432-byte limit"):
        _variant(root)


def test_nul_in_a_path_is_a_clear_error(tmp_path: Path) -> None:
    root = _write(tmp_path / "app", {"fleet.yaml": 'kustomize: {dir: "a\\0b"}\n', "cm.yaml": "{}\n"})
    with pytest.raises(errors.BundleError, match=r"kustomize\.dir .* is not a usable path"):
        _variant(root)


def test_only_reachable_variants_are_rendered(tmp_path: Path) -> None:
    # Fleet's multi-cluster kustomize layout: no kustomization at the root, one per environment.
    root = _write(
        tmp_path / "mck",
        {
            "fleet.yaml": "targets: [{clusterSelector: {matchExpressions: [{key: env, operator: In, values: [dev, prod]}]}}]\n"
            "targetCustomizations:\n"
            "  - {name: dev, clusterSelector: {matchLabels: {env: dev}}, kustomize: {dir: overlays/dev}}\n"
            "  - {name: prod, clusterSelector: {matchLabels: {env: prod}}, kustomize: {dir: overlays/prod}}\n",
            "base/kustomization.yaml": "resources: [cm.yaml]\n",
            "base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n",
            "overlays/dev/kustomization.yaml": "resources: [../../base]\nnameSuffix: -dev\n",
            "overlays/prod/kustomization.yaml": "resources: [../../base]\nnameSuffix: -prod\n",
        },
    )
    assert _variant(root, labels={"env": "dev"}).objects[0]["metadata"]["name"] == "app-dev"
    with bundles.open_bundle(root) as bundle:
        plan = bundle.plan(GROUP)
        named = dict(bundle.all_variants())
    assert [t.name for t in plan.targets] == ["dev", "prod"]  # the base is shadowed: never rendered
    assert len(plan.variants) == 2
    assert isinstance(named["base"], errors.BundleError)


def test_helm_test_hooks_are_dropped_before_kustomize_too(tmp_path: Path) -> None:
    root = _write(
        tmp_path / "hk",
        {
            "fleet.yaml": "helm: {chart: ./chart}\nkustomize: {dir: k}\n",
            "chart/Chart.yaml": "apiVersion: v2\nname: c\nversion: 0.1.0\n",
            "chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n",
            "chart/templates/test.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: t\n  annotations: {helm.sh/hook: test}\n",
            "k/kustomization.yaml": '# kept as written\nnamePrefix: k-\ncommonLabels: {x: "y", enabled: "yes"}\nresources:\n  - extra.yaml\n',
            "k/extra.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n",
        },
    )
    objects = _variant(root).objects
    assert sorted(o["metadata"]["name"] for o in objects) == ["k-cm", "k-extra"]
    assert objects[0]["metadata"]["labels"] == {"x": "y", "enabled": "yes"}


@pytest.mark.parametrize(
    ("kustomization", "expected"),
    [
        ("namePrefix: p-\n", ["p-cm"]),
        ("namePrefix: p-\nresources: [extra.yaml]\n", ["p-cm", "p-extra"]),
        ("namePrefix: p-\nresources: []\n", ["p-cm"]),
        ("- not a map\n", "a kustomization is one map"),
        ("resources: 5\n", "must be plain strings"),
    ],
)
def test_helm_output_joins_the_kustomization_as_written(
    tmp_path: Path, kustomization: str, expected: list[str] | str
) -> None:
    root = _write(
        tmp_path / "hk",
        {
            "fleet.yaml": "helm: {chart: ./chart}\nkustomize: {dir: k}\n",
            "chart/Chart.yaml": "apiVersion: v2\nname: c\nversion: 0.1.0\n",
            "chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n",
            "k/kustomization.yaml": kustomization,
            "k/extra.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n",
        },
    )
    if isinstance(expected, str):
        with pytest.raises(errors.BundleError, match=expected):
            _variant(root)
        return
    assert sorted(o["metadata"]["name"] for o in _variant(root).objects) == expected


@pytest.mark.parametrize(
    ("base", "patch", "message"),
    [
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: [x]\n", "data: {}\n", "no metadata.name"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
            "metadata: [1]\n",
            "metadata must be a map",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
            "$patch: delete\n",
            "must leave exactly one object",
        ),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", "just text\n", "a patch is a map"),
    ],
)
def test_bad_overlay_patches_are_clear_errors(tmp_path: Path, base: str, patch: str, message: str) -> None:
    root = _write(
        tmp_path / "app",
        {
            "fleet.yaml": "yaml: {overlays: [o]}\n",
            "c.yaml": base,
            "overlays/o/c_patch.yaml": patch,
        },
    )
    with pytest.raises(errors.BundleError, match=message):
        _variant(root)


def test_current_directory_is_a_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES / "hello-web")
    with bundles.open_bundle(Path(".")) as bundle:
        assert bundle.name == "hello-web"


def test_a_chart_that_never_finishes_rendering_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _write(
        tmp_path / "slow",
        {
            "Chart.yaml": "apiVersion: v2\nname: slow\nversion: 0.1.0\n",
            # About a second of template work: past the deadline set below, then over.
            "templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
            "data: {n: '{{ range $i := until 5000 }}{{ range $j := until 5000 }}{{ end }}{{ end }}'}\n",
        },
    )
    monkeypatch.setattr(helm, "TEMPLATE_TIMEOUT", 0.1)
    with pytest.raises(errors.BundleError, match=r"did not render chart slow within 0s"):
        _variant(root)
