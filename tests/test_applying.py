"""edge_agent.applying against a Kubernetes API (tests.fakekube): order, labels,
namespaces, CRDs, ownership, and the classification of failures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from edge_agent import applying, errors
from edge_agent.store import ObjectRef
from tests import factories
from tests.fakekube import FakeCluster, Fault
from wire import manifests

CRD = factories.crd("Widget")
WIDGET = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}}
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}


def _config_map(name: str, namespace: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"k": "v"}}


def _deployment(name: str = "web", **spec: Any) -> dict[str, Any]:
    base = {
        "replicas": 1,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {**base, **spec},
    }


def _variant(*objects: dict[str, Any], namespace: str = "shop", **options: Any) -> manifests.Variant:
    return manifests.Variant(namespace, objects, options)


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    with FakeCluster(ready_delay=0.0) as running:
        yield running


@pytest.fixture
def applier(cluster: FakeCluster) -> applying.KubeApplier:
    return applying.KubeApplier(cluster.api_client())


def test_applies_namespaces_and_crds_first_and_labels_every_object(
    cluster: FakeCluster, applier: applying.KubeApplier
) -> None:
    variant = _variant(WIDGET, _deployment(), _config_map("settings"), CRD, NAMESPACE)
    refs = applier.apply("shop-app", variant)
    assert [r.kind for r in refs] == [
        "Namespace",
        "ConfigMap",
        "CustomResourceDefinition",
        "Deployment",
        "Widget",
    ]
    widget = cluster.get_object("example.com/v1", "Widget", "shop", "w")
    assert widget is not None and widget["spec"] == {"size": 3}
    for ref in refs:
        live = cluster.get_object(ref.api_version, ref.kind, ref.namespace, ref.name)
        assert live is not None and live["metadata"]["labels"]["edgefleet.io/bundle"] == "shop-app"
        assert any(m["manager"] == "edgefleet" for m in live["metadata"]["managedFields"])
    writes = [path for method, path in cluster.requests if method == "PATCH"]
    assert writes.index("/api/v1/namespaces/shop") < writes.index(
        "/api/v1/namespaces/shop/configmaps/settings"
    )


def test_refs_predict_what_apply_creates(applier: applying.KubeApplier) -> None:
    variant = _variant(NAMESPACE, _config_map("a"), _config_map("b", "other"))
    assert applier.refs("b", variant) == (
        ObjectRef("v1", "Namespace", "", "shop"),
        ObjectRef("v1", "ConfigMap", "shop", "a"),
        ObjectRef("v1", "ConfigMap", "other", "b"),
    )


def test_target_namespace_forces_namespaced_objects_and_refuses_cluster_scoped(
    cluster: FakeCluster, applier: applying.KubeApplier
) -> None:
    applier.apply("b", _variant(NAMESPACE))
    applier.apply("b", _variant(_config_map("a", "elsewhere"), targetNamespace="shop"))
    assert cluster.get_object("v1", "ConfigMap", "shop", "a") is not None
    with pytest.raises(errors.PermanentApplyError, match="cluster-scoped"):
        applier.apply("b", _variant(NAMESPACE, targetNamespace="shop"))


def test_invalid_object_is_a_permanent_error_naming_it(applier: applying.KubeApplier) -> None:
    applier.apply("b", _variant(NAMESPACE))
    broken = _deployment()
    del broken["spec"]["selector"]
    with pytest.raises(errors.PermanentApplyError, match="Deployment shop/web: 422") as caught:
        applier.apply("b", _variant(broken))
    assert caught.value.objects == ("Deployment shop/web",)


def test_missing_namespace_and_missing_crd_are_transient(applier: applying.KubeApplier) -> None:
    with pytest.raises(errors.TransientApplyError, match="404"):  # a namespace other than the bundle's own
        applier.apply("b", _variant(_config_map("a", "elsewhere")))
    with pytest.raises(errors.TransientApplyError, match="no API for Widget"):
        applier.apply("b", _variant(NAMESPACE, WIDGET))


@pytest.mark.parametrize("status", [500, 503, 409, 429])
def test_server_trouble_is_transient_and_passes(
    cluster: FakeCluster, applier: applying.KubeApplier, status: int
) -> None:
    applier.apply("b", _variant(NAMESPACE))
    cluster.inject(Fault.error(status, times=1, method="PATCH"))
    with pytest.raises(errors.TransientApplyError, match=str(status)):
        applier.apply("b", _variant(_config_map("a")))
    assert applier.apply("b", _variant(_config_map("a"))) == (ObjectRef("v1", "ConfigMap", "shop", "a"),)


def test_unreachable_api_is_transient() -> None:
    with FakeCluster() as gone:
        client = gone.api_client()
    with pytest.raises(errors.TransientApplyError, match=r"cannot reach|discovery"):
        applying.KubeApplier(client).apply("b", _variant(NAMESPACE))


def test_remove_deletes_only_objects_still_labelled_ours(
    cluster: FakeCluster, applier: applying.KubeApplier
) -> None:
    refs = applier.apply("b", _variant(NAMESPACE, _config_map("ours"), _config_map("theirs")))
    theirs = cluster.get_object("v1", "ConfigMap", "shop", "theirs")
    assert theirs is not None
    from kubernetes import client as k8s

    k8s.CoreV1Api(cluster.api_client()).patch_namespaced_config_map(
        "theirs", "shop", {"metadata": {"labels": {"edgefleet.io/bundle": "another"}}}
    )
    gone = ObjectRef("v1", "ConfigMap", "shop", "already-gone")
    applier.remove("b", [r for r in refs if r.kind == "ConfigMap"] + [gone])
    assert cluster.get_object("v1", "ConfigMap", "shop", "ours") is None
    assert cluster.get_object("v1", "ConfigMap", "shop", "theirs") is not None


def test_the_default_namespace_is_created_but_not_owned(
    cluster: FakeCluster, applier: applying.KubeApplier
) -> None:
    refs = applier.apply("b", _variant(_config_map("a"), namespace="telemetry"))
    namespace = cluster.get_object("v1", "Namespace", "", "telemetry")
    assert namespace is not None and "edgefleet.io/bundle" not in (namespace["metadata"].get("labels") or {})
    assert refs == (ObjectRef("v1", "ConfigMap", "telemetry", "a"),)  # not in the inventory: never pruned
    applier.apply("b", _variant(_config_map("a"), namespace="telemetry"))  # already there: fine
