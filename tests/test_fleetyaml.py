"""Reading fleet.yaml: Fleet's keys, warnings for the unsupported ones, errors for the unknown."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller import errors, fleetyaml
from wire import manifests


def _bundle(tmp_path: Path, text: str, name: str = "fleet.yaml", directory: str = "app") -> Path:
    root = tmp_path / directory
    root.mkdir(exist_ok=True)
    (root / name).write_text(text)
    return root


def test_plain_directory_is_a_bundle_named_after_it(tmp_path: Path) -> None:
    root = tmp_path / "hello-web"
    root.mkdir()
    spec = fleetyaml.read(root)
    assert spec.name == "hello-web"
    assert spec.targets == () and spec.customizations == ()


def test_reads_fleet_keys(tmp_path: Path) -> None:
    root = _bundle(
        tmp_path,
        """
name: pos
defaultNamespace: shop
namespace: forced
labels: {team: retail, tier: '1'}
helm:
  chart: ./chart
  releaseName: pos
  values: {image: {tag: "1.0"}}
  valuesFiles: [base-values.yaml]
kustomize: {dir: overlays/prod}
yaml: {overlays: [a, b]}
keepResources: true
correctDrift: {enabled: true}
diff: {comparePatches: [{kind: Deployment, name: pos, jsonPointers: [/spec/replicas]}]}
paused: true
dependsOn: [{name: database}]
targets:
  - name: stores
    clusterGroupSelector: {matchLabels: {region: us-west}}
targetCustomizations:
  - name: prod
    clusterSelector:
      matchLabels: {env: prod}
      matchExpressions: [{key: tier, operator: In, values: [gold]}]
    helm: {values: {replicas: 3}}
  - clusterName: pi-7
    doNotDeploy: true
""",
    )
    (root / "base-values.yaml").write_text("image: {repository: r, tag: '0.9'}\nreplicas: 1\n")
    spec = fleetyaml.read(root)
    assert spec.name == "pos"
    assert spec.labels == {"team": "retail", "tier": "1"}
    assert spec.paused and spec.depends_on == ({"name": "database"},)
    options = spec.options
    assert (options.default_namespace, options.namespace, options.kustomize_dir) == (
        "shop",
        "forced",
        "overlays/prod",
    )
    assert options.overlays == ("a", "b") and options.keep_resources
    assert options.correct_drift == {"enabled": True}
    assert options.helm is not None
    # valuesFiles are folded under the inline values, as Fleet's bundle reader does
    assert options.helm.values == {"image": {"repository": "r", "tag": "1.0"}, "replicas": 1}
    [stores] = spec.targets
    assert stores.criteria.cluster_group_selector == manifests.ClusterSelector({"region": "us-west"})
    prod, pinned = spec.customizations
    assert prod.criteria.cluster_selector == manifests.ClusterSelector(
        {"env": "prod"}, (manifests.Requirement("tier", "In", ("gold",)),)
    )
    assert pinned.name == "target001" and pinned.do_not_deploy and pinned.criteria.cluster_name == "pi-7"


def test_bundle_yaml_is_accepted_and_override_targets_is_an_alias(tmp_path: Path) -> None:
    root = _bundle(tmp_path, "overrideTargets: [{clusterName: pi-1}]\n", name="bundle.yaml")
    [target] = fleetyaml.read(root).targets
    assert target.criteria.cluster_name == "pi-1"


def test_unknown_key_names_file_key_and_closest_known_key(tmp_path: Path) -> None:
    root = _bundle(tmp_path, "defaultNamspace: shop\n")
    with pytest.raises(errors.BundleError) as caught:
        fleetyaml.read(root)
    message = str(caught.value)
    assert (
        "fleet.yaml" in message
        and "'defaultNamspace'" in message
        and "did you mean 'defaultNamespace'" in message
    )


def test_unknown_nested_key_is_an_error_with_its_path(tmp_path: Path) -> None:
    root = _bundle(tmp_path, "targetCustomizations:\n  - name: x\n    clusterSelecter: {}\n")
    with pytest.raises(
        errors.BundleError, match=r"targetCustomizations\[0\].*'clusterSelecter'.*'clusterSelector'"
    ):
        fleetyaml.read(root)


def test_known_unsupported_keys_warn_and_name_themselves(tmp_path: Path) -> None:
    root = _bundle(tmp_path, "rolloutStrategy: {maxUnavailable: 10%}\nhelm: {atomic: true}\n")
    warnings = fleetyaml.read(root).warnings
    assert any("fleet.yaml.rolloutStrategy" in w for w in warnings)
    assert any("fleet.yaml.helm.atomic" in w for w in warnings)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("defaultNamespace: [a]\n", "defaultNamespace: expected a string"),
        ("paused: yes please\n", "paused: expected true or false"),
        ("targets: {clusterName: x}\n", "targets: expected a list"),
        ("targets: [{clusterSelector: {matchExpressions: [{key: a, operator: Like}]}}]\n", "operator 'Like'"),
        (
            "targets: [{clusterSelector: {matchExpressions: [{key: a, operator: In}]}}]\n",
            "needs at least one value",
        ),
        (
            "targets: [{clusterSelector: {matchExpressions: [{key: a, operator: Exists, values: [x]}]}}]\n",
            "no values",
        ),
        ("dependsOn: [{acceptedStates: [Ready]}]\n", "must give `name` or `selector`"),
        ("targets: [a]\noverrideTargets: [b]\n", "not both"),
        ("name: has space\n", "bundle name"),
        ("a: 1\n---\nb: 2\n", "2 YAML documents"),
        ("key: [unclosed\n", "not valid YAML"),
        ("helm: {valuesFiles: [../../etc/passwd]}\n", "outside the bundle directory"),
        ("helm: {valuesFiles: [missing.yaml]}\n", "does not exist"),
        ('helm: {valuesFiles: ["a\\0b"]}\n', "not a usable path"),
        ('kustomize: {dir: "a\\0b"}\n', None),
        ("labels: {gpu: yes}\n", "quote it"),
        ("targets: [{clusterSelector: {matchLabels: {rev: 1.10}}}]\n", "quote it"),
        (
            "targets: [{clusterSelector: {matchExpressions: [{key: a, operator: In, values: [1]}]}}]\n",
            "expected a string",
        ),
        ("targetCustomizations: [{clusterName: 'Pi 7 (lab)'}]\n", "clusterName"),
    ],
)
def test_malformed_descriptors_are_clear_errors(tmp_path: Path, text: str, message: str | None) -> None:
    root = _bundle(tmp_path, text)
    if message is None:  # only noticed when rendering: see test_rendering
        fleetyaml.read(root)
        return
    with pytest.raises(errors.BundleError, match=message):
        fleetyaml.read(root)


def test_directory_name_that_is_not_a_bundle_name_asks_for_name(tmp_path: Path) -> None:
    root = tmp_path / "My App"
    root.mkdir()
    with pytest.raises(errors.BundleError, match="set `name:`"):
        fleetyaml.read(root)


def test_overlays_on_a_helm_or_kustomize_bundle_warn_that_they_do_nothing(tmp_path: Path) -> None:
    helm_bundle = _bundle(tmp_path, "helm: {chart: ./chart}\nyaml: {overlays: [prod]}\n", directory="h")
    assert any(
        "yaml.overlays only apply to plain manifests" in w for w in fleetyaml.read(helm_bundle).warnings
    )
    kustomize_bundle = _bundle(
        tmp_path,
        "targetCustomizations: [{name: p, clusterSelector: {}, kustomize: {dir: k}, yaml: {overlays: [x]}}]\n",
        directory="k",
    )
    assert any("targetCustomizations p" in w for w in fleetyaml.read(kustomize_bundle).warnings)
    plain = _bundle(tmp_path, "yaml: {overlays: [prod]}\n", directory="p")
    assert fleetyaml.read(plain).warnings == ()
