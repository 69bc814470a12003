"""The fake API server, exercised only through the official, unmodified client over HTTP."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic import exceptions as dynamic_errors

from tests.fakekube import FakeCluster, Fault
from tests.waiting import until

DEADLINE = 5.0  # seconds; everything here normally settles in milliseconds


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    with FakeCluster(ready_delay=0.0) as fake:
        yield fake


@pytest.fixture
def api(cluster: FakeCluster) -> Iterator[kubernetes.client.ApiClient]:
    client = cluster.api_client()
    yield client
    client.close()


@pytest.fixture
def core(api: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api)


@pytest.fixture
def apps(api: kubernetes.client.ApiClient) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(api)


@pytest.fixture
def dyn(api: kubernetes.client.ApiClient, tmp_path: Path) -> DynamicClient:
    return DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))


def status_of(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body)
    return body


def deployment(
    name: str = "web", *, image: str = "nginx:1.27", replicas: int | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "main", "image": image}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


def configmap(name: str, data: dict[str, str], **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "data": data,
    }


WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


def owners(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["manager"]: entry["fieldsV1"] for entry in obj["metadata"].get("managedFields", [])}


# -- lifecycle and connection -------------------------------------------------


def test_starts_and_stops_well_under_100ms() -> None:
    began = time.monotonic()
    with FakeCluster() as fake:
        started = time.monotonic()
        assert fake.url.startswith("http://127.0.0.1:")
    stopped = time.monotonic()
    assert started - began < 0.1
    assert stopped - started < 0.1


def test_kubeconfig_loads_into_a_working_client(cluster: FakeCluster, tmp_path: Path) -> None:
    path = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(path), client_configuration=configuration)
    with kubernetes.client.ApiClient(configuration) as client:
        names = [ns.metadata.name for ns in kubernetes.client.CoreV1Api(client).list_namespace().items]
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]


def test_api_client_does_not_touch_the_global_configuration(cluster: FakeCluster) -> None:
    before = kubernetes.client.Configuration.get_default_copy().host
    client = cluster.api_client()
    assert client.configuration.host == cluster.url
    assert kubernetes.client.Configuration.get_default_copy().host == before


# -- discovery ------------------------------------------------------------------


def test_serves_discovery_documents(cluster: FakeCluster, api: kubernetes.client.ApiClient) -> None:
    version = kubernetes.client.VersionApi(api).get_code()
    assert version.git_version.startswith("v1.31")
    groups = {
        g.name: g.preferred_version.version for g in kubernetes.client.ApisApi(api).get_api_versions().groups
    }
    assert groups["apps"] == "v1"
    assert groups["apiextensions.k8s.io"] == "v1"
    resources = {r.name: r for r in kubernetes.client.AppsV1Api(api).get_api_resources().resources}
    assert resources["deployments"].kind == "Deployment"
    assert resources["deployments"].namespaced is True
    assert resources["deployments"].singular_name == "deployment"
    assert "patch" in resources["deployments"].verbs
    assert resources["deployments/status"].verbs == ["get", "patch", "update"]
    core = {r.name: r for r in kubernetes.client.CoreV1Api(api).get_api_resources().resources}
    assert core["namespaces"].namespaced is False
    assert "configmaps/status" not in core


def test_dynamic_client_discovers_builtin_kinds(dyn: DynamicClient) -> None:
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.namespaced and deployments.name == "deployments"
    assert "status" in deployments.subresources
    roles = dyn.resources.get(api_version="rbac.authorization.k8s.io/v1", kind="ClusterRole")
    assert roles.namespaced is False
    with pytest.raises(dynamic_errors.ResourceNotFoundError):
        dyn.resources.get(api_version="example.com/v1", kind="Widget")


# -- CRUD and errors -------------------------------------------------------------


def test_typed_client_create_read_replace_delete(core: kubernetes.client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", configmap("settings", {"a": "1"}))
    assert created.metadata.uid and created.metadata.creation_timestamp
    assert created.metadata.generation is None  # the real ConfigMap strategy keeps no generation
    version = int(created.metadata.resource_version)
    created.data["b"] = "2"
    created.metadata.resource_version = None  # no resourceVersion: an unconditional update
    replaced = core.replace_namespaced_config_map("settings", "default", created)
    assert replaced.data == {"a": "1", "b": "2"}
    assert int(replaced.metadata.resource_version) > version
    status = core.delete_namespaced_config_map("settings", "default")  # deletes answer plain dicts
    assert (status["kind"], status["status"]) == ("Status", "Success")
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("settings", "default")
    assert missing.value.status == 404
    assert missing.value.reason == "Not Found"
    assert status_of(missing.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "settings" not found',
        "reason": "NotFound",
        "details": {"name": "settings", "kind": "configmaps"},
        "code": 404,
    }


def test_create_of_existing_object_is_409_already_exists(apps: kubernetes.client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", deployment())
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment("default", deployment())
    assert exc.value.status == 409
    assert status_of(exc.value)["reason"] == "AlreadyExists"
    assert status_of(exc.value)["message"] == 'deployments.apps "web" already exists'


def test_stale_resource_version_is_409_conflict(core: kubernetes.client.CoreV1Api) -> None:
    first = core.create_namespaced_config_map("default", configmap("cm", {"a": "1"}))
    core.patch_namespaced_config_map("cm", "default", {"data": {"a": "2"}})
    first.data["a"] = "3"
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("cm", "default", first)
    assert exc.value.status == 409
    assert status_of(exc.value)["reason"] == "Conflict"
    assert "the object has been modified" in status_of(exc.value)["message"]


def test_create_in_missing_namespace_is_404(core: kubernetes.client.CoreV1Api, dyn: DynamicClient) -> None:
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert exc.value.status == 404
    assert status_of(exc.value)["message"] == 'namespaces "nowhere" not found'
    configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    with pytest.raises(dynamic_errors.NotFoundError):
        configmaps.server_side_apply(
            body={**configmap("x", {}), "metadata": {"name": "x", "namespace": "nowhere"}}, field_manager="t"
        )


def test_clearly_invalid_objects_are_422_with_causes(
    core: kubernetes.client.CoreV1Api, apps: kubernetes.client.AppsV1Api, dyn: DynamicClient
) -> None:
    with pytest.raises(ApiException) as nameless:
        core.create_namespaced_config_map("default", {"metadata": {}})
    assert nameless.value.status == 422
    assert status_of(nameless.value)["details"]["causes"][0]["field"] == "metadata.name"

    mismatched = deployment()
    mismatched["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(ApiException) as selector:
        apps.create_namespaced_deployment("default", mismatched)
    assert status_of(selector.value)["reason"] == "Invalid"
    assert status_of(selector.value)["message"].startswith(
        'Deployment.apps "web" is invalid: spec.template.metadata.labels'
    )

    no_selector = deployment()
    del no_selector["spec"]["selector"]
    imageless = deployment()
    del imageless["spec"]["template"]["spec"]["containers"][0]["image"]
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    for body, field in (
        (no_selector, "spec.selector"),
        (imageless, "spec.template.spec.containers[0].image"),
    ):
        with pytest.raises(dynamic_errors.UnprocessibleEntityError) as exc:
            deployments.create(body=body, namespace="default")
        assert [c["field"] for c in status_of(exc.value)["details"]["causes"]] == [field]


def test_name_or_namespace_mismatching_the_url_is_400(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("right", {}))
    with pytest.raises(ApiException) as name:
        core.replace_namespaced_config_map("right", "default", configmap("wrong", {}))
    assert name.value.status == 400
    assert status_of(name.value)["reason"] == "BadRequest"
    with pytest.raises(ApiException) as namespace:
        core.create_namespaced_config_map("kube-system", configmap("x", {}))
    assert namespace.value.status == 400


def test_namespace_defaults_from_the_url(core: kubernetes.client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("kube-public", {"metadata": {"name": "x"}})
    assert created.metadata.namespace == "kube-public"


def test_label_and_field_selectors(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("a", {}, tier="web", env="prod"))
    core.create_namespaced_config_map("default", configmap("b", {}, tier="db", env="prod"))
    core.create_namespaced_config_map("default", configmap("c", {}, tier="web"))
    core.create_namespace({"metadata": {"name": "other"}})
    core.create_namespaced_config_map("other", {"metadata": {"name": "d", "labels": {"tier": "web"}}})

    def names(selector: str = "", fields: str = "") -> list[str]:
        listing = core.list_config_map_for_all_namespaces(label_selector=selector, field_selector=fields)
        return [item.metadata.name for item in listing.items]

    assert names("tier=web") == ["a", "c", "d"]
    assert names("tier==web,env=prod") == ["a"]
    assert names("env!=prod") == ["c", "d"]  # != matches objects without the label
    assert names("tier in (db, web),env") == ["a", "b"]
    assert names("tier notin (web)") == ["b"]
    assert names("!env") == ["c", "d"]
    assert names(fields="metadata.name=b") == ["b"]
    assert names("tier=web", "metadata.namespace!=default") == ["d"]
    namespaced = core.list_namespaced_config_map("default", label_selector="tier")
    assert [item.metadata.name for item in namespaced.items] == ["a", "b", "c"]
    with pytest.raises(ApiException) as bad:
        names("tier in (web")
    assert bad.value.status == 400
    with pytest.raises(ApiException) as unsupported:
        names(fields="data.x=1")
    assert unsupported.value.status == 400


def test_list_pages_with_limit_and_continue(core: kubernetes.client.CoreV1Api) -> None:
    for name in ("a", "b", "c"):
        core.create_namespaced_config_map("default", configmap(name, {}))
    first = core.list_namespaced_config_map("default", limit=2)
    assert [i.metadata.name for i in first.items] == ["a", "b"]
    assert first.metadata.remaining_item_count == 1
    rest = core.list_namespaced_config_map("default", limit=2, _continue=first.metadata._continue)
    assert [i.metadata.name for i in rest.items] == ["c"]
    assert rest.metadata._continue is None


def test_builtin_list_items_carry_no_kind(dyn: DynamicClient) -> None:
    dyn.resources.get(api_version="v1", kind="ConfigMap").create(body=configmap("x", {}), namespace="default")
    raw = json.loads(dyn.request("get", "/api/v1/namespaces/default/configmaps", serialize=False).data)
    assert (raw["kind"], raw["apiVersion"]) == ("ConfigMapList", "v1")
    assert "kind" not in raw["items"][0]  # as on a real server; the dynamic client fills it in itself


# -- patching -----------------------------------------------------------------


def test_merge_strategic_and_json_patches(apps: kubernetes.client.AppsV1Api, dyn: DynamicClient) -> None:
    body = deployment()
    body["metadata"]["labels"] = {"keep": "1", "drop": "1"}
    body["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "busybox:1"})
    apps.create_namespaced_deployment("default", body)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")

    deployments.patch(
        name="web",
        namespace="default",
        body={"metadata": {"labels": {"drop": None}}},
        content_type="application/merge-patch+json",
    )
    strategic = {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox:2"}]}}}}
    deployments.patch(name="web", namespace="default", body=strategic)  # strategic merge is the default
    deployments.patch(
        name="web",
        namespace="default",
        body=[{"op": "replace", "path": "/spec/replicas", "value": 3}],
        content_type="application/json-patch+json",
    )
    live = apps.read_namespaced_deployment("web", "default")
    assert live.metadata.labels == {"keep": "1"}
    assert [(c.name, c.image) for c in live.spec.template.spec.containers] == [
        ("main", "nginx:1.27"),
        ("side", "busybox:2"),
    ]
    assert live.spec.replicas == 3

    with pytest.raises(dynamic_errors.UnprocessibleEntityError):
        deployments.patch(
            name="web",
            namespace="default",
            body=[{"op": "test", "path": "/spec/replicas", "value": 9}],
            content_type="application/json-patch+json",
        )


def test_typed_patch_defaults_to_strategic_merge(
    core: kubernetes.client.CoreV1Api, cluster: FakeCluster
) -> None:
    core.create_namespaced_config_map("default", configmap("cm", {"a": "1"}))
    core.patch_namespaced_config_map("cm", "default", {"data": {"b": "2"}})
    assert cluster.get_object("v1", "ConfigMap", "default", "cm")["data"] == {"a": "1", "b": "2"}


# -- server-side apply ------------------------------------------------------------


def test_apply_creates_then_reports_conflicts_and_force_moves_ownership(
    dyn: DynamicClient, cluster: FakeCluster
) -> None:
    configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    created = configmaps.server_side_apply(
        body=configmap("cm", {"shared": "x", "mine": "a"}), field_manager="alice"
    )
    assert created.metadata.managedFields[0].operation == "Apply"
    assert "f:mine" in owners(created.to_dict())["alice"]["f:data"]

    # the same value for a field someone else owns: shared, no conflict
    configmaps.server_side_apply(body=configmap("cm", {"shared": "x"}), field_manager="bob")
    shared = cluster.get_object("v1", "ConfigMap", "default", "cm")
    assert "f:shared" in owners(shared)["alice"]["f:data"]
    assert "f:shared" in owners(shared)["bob"]["f:data"]

    with pytest.raises(dynamic_errors.ConflictError) as conflict:
        configmaps.server_side_apply(body=configmap("cm", {"mine": "b"}), field_manager="bob")
    status = status_of(conflict.value)
    assert status["reason"] == "Conflict"
    assert status["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "alice"', "field": ".data.mine"}
    ]
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "alice": .data.mine'
    assert cluster.get_object("v1", "ConfigMap", "default", "cm")["data"]["mine"] == "a"

    forced = configmaps.server_side_apply(
        body=configmap("cm", {"mine": "b"}), field_manager="bob", force_conflicts=True
    )
    assert forced.data.mine == "b"
    fields = owners(forced.to_dict())
    assert "f:mine" in fields["bob"]["f:data"]
    assert "f:mine" not in fields["alice"]["f:data"]


def test_apply_conflicts_with_an_updater_of_the_field(
    dyn: DynamicClient, apps: kubernetes.client.AppsV1Api
) -> None:
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    deployments.server_side_apply(body=deployment(replicas=2), field_manager="agent")
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 5}})  # e.g. someone scaled it
    with pytest.raises(dynamic_errors.ConflictError) as exc:
        deployments.server_side_apply(body=deployment(replicas=2, image="nginx:2"), field_manager="agent")
    message = status_of(exc.value)["message"]
    assert (
        message
        == 'Apply failed with 1 conflict: conflict with "OpenAPI-Generator" using apps/v1: .spec.replicas'
    )
    assert (
        apps.read_namespaced_deployment("web", "default").spec.template.spec.containers[0].image
        == "nginx:1.27"
    )

    unscaled = deployment(image="nginx:2")  # leaving replicas to whoever owns it now
    applied = deployments.server_side_apply(body=unscaled, field_manager="agent")
    assert applied.spec.replicas == 5
    assert applied.spec.template.spec.containers[0].image == "nginx:2"


def test_apply_removes_fields_a_manager_stops_applying(
    dyn: DynamicClient, core: kubernetes.client.CoreV1Api
) -> None:
    configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    configmaps.server_side_apply(
        body=configmap("cm", {"a": "1", "b": "2", "c": "3"}, team="x", gone="y"), field_manager="agent"
    )
    configmaps.server_side_apply(body=configmap("cm", {"c": "3"}), field_manager="other")
    core.patch_namespaced_config_map("cm", "default", {"data": {"d": "4"}})  # an updater owns d

    after = configmaps.server_side_apply(body=configmap("cm", {"a": "1"}, team="x"), field_manager="agent")
    assert after.data.to_dict() == {"a": "1", "c": "3", "d": "4"}  # b removed; c still applied by other
    assert after.metadata.labels.to_dict() == {"team": "x"}


def test_apply_merges_containers_by_name(dyn: DynamicClient, apps: kubernetes.client.AppsV1Api) -> None:
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    with_debug = deployment()
    with_debug["spec"]["template"]["spec"]["containers"].append({"name": "debug", "image": "busybox:1"})
    deployments.server_side_apply(body=with_debug, field_manager="agent")
    sidecar = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"name": "mesh", "image": "envoy:1"}]}}},
    }
    deployments.server_side_apply(body=sidecar, field_manager="injector")
    live = apps.read_namespaced_deployment("web", "default")
    assert [c.name for c in live.spec.template.spec.containers] == ["main", "debug", "mesh"]
    assert live.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"  # server default

    deployments.server_side_apply(body=deployment(), field_manager="agent")  # the agent drops "debug"
    live = apps.read_namespaced_deployment("web", "default")
    assert [c.name for c in live.spec.template.spec.containers] == ["main", "mesh"]


def test_apply_without_field_manager_is_rejected(dyn: DynamicClient) -> None:
    configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    with pytest.raises(dynamic_errors.UnprocessibleEntityError) as exc:
        configmaps.server_side_apply(body=configmap("cm", {}))
    assert "fieldManager: Required value" in status_of(exc.value)["message"]


def test_noop_apply_keeps_resource_version(dyn: DynamicClient) -> None:
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    first = deployments.server_side_apply(body=deployment(), field_manager="agent")
    until(
        lambda: deployments.get(name="web", namespace="default").status.observedGeneration == 1,
        timeout=DEADLINE,
        what="ready",
    )
    settled = deployments.get(name="web", namespace="default")
    again = deployments.server_side_apply(body=deployment(), field_manager="agent")
    assert again.metadata.resourceVersion == settled.metadata.resourceVersion
    assert again.metadata.generation == first.metadata.generation == 1


def test_generation_tracks_spec_and_resource_version_counts_every_write(
    apps: kubernetes.client.AppsV1Api, core: kubernetes.client.CoreV1Api
) -> None:
    created = apps.create_namespaced_deployment("default", deployment())
    assert created.metadata.generation == 1
    labelled = apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"x": "1"}}})
    assert labelled.metadata.generation == 1
    scaled = apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 2}})
    assert scaled.metadata.generation == 2
    other = core.create_namespaced_config_map("default", configmap("cm", {}))
    versions = [int(o.metadata.resource_version) for o in (created, labelled, scaled, other)]
    assert versions == sorted(versions) and len(set(versions)) == 4


def test_status_subresource_is_isolated_from_the_main_resource(
    apps: kubernetes.client.AppsV1Api, dyn: DynamicClient
) -> None:
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    with_status = deployment()
    with_status["status"] = {"replicas": 7}
    created = deployments.create(body=with_status, namespace="default")
    assert created.status.replicas is None  # status on create is reset
    until(
        lambda: deployments.get(name="web", namespace="default").status.observedGeneration == 1,
        timeout=DEADLINE,
        what="ready",
    )

    deployments.patch(
        name="web",
        namespace="default",
        body={"status": {"replicas": 7}},
        content_type="application/merge-patch+json",
    )
    assert apps.read_namespaced_deployment_status("web", "default").status.replicas == 1

    patched = deployments.status.patch(
        name="web",
        namespace="default",
        body={"spec": {"replicas": 5}, "status": {"replicas": 7}},
        content_type="application/merge-patch+json",
    )
    assert patched.status.replicas == 7
    assert patched.spec.replicas == 1
    assert patched.metadata.generation == 1


# -- custom resources -----------------------------------------------------------


def test_crd_registers_its_kind_for_discovery_and_crud(dyn: DynamicClient, cluster: FakeCluster) -> None:
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    cluster.set_ready_delay(600)
    crds.create(body=WIDGET_CRD)
    with pytest.raises(dynamic_errors.ResourceNotFoundError):  # not served before it is Established
        dyn.resources.get(api_version="example.com/v1", kind="Widget")
    cluster.set_ready_delay(0)
    crds.patch(  # a spec change restarts the controller's clock, now with no delay
        name="widgets.example.com",
        body={"spec": {"names": {"categories": ["all"]}}},
        content_type="application/merge-patch+json",
    )

    def established() -> bool:
        conditions = crds.get(name="widgets.example.com").status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    until(established, timeout=DEADLINE, what="CRD established")
    widgets = dyn.resources.get(api_version="example.com/v1", kind="Widget")  # a miss refreshes discovery
    assert widgets.namespaced and widgets.name == "widgets" and "status" in widgets.subresources

    body = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "default"},
        "spec": {"size": 1},
    }
    created = widgets.create(body=body)
    assert created.metadata.generation == 1
    applied = widgets.server_side_apply(
        body={**body, "spec": {"size": 2, "color": "red"}}, field_manager="agent", force_conflicts=True
    )
    assert applied.spec.to_dict() == {"size": 2, "color": "red"}
    assert applied.metadata.generation == 2
    with pytest.raises(dynamic_errors.DynamicApiError) as strategic:
        widgets.patch(name="w", namespace="default", body={"spec": {"size": 3}})
    assert strategic.value.status == 415  # strategic merge is not defined for custom resources
    widgets.patch(
        name="w", namespace="default", body={"spec": {"size": 3}}, content_type="application/merge-patch+json"
    )
    assert [item.spec.size for item in widgets.get(namespace="default").items] == [3]
    assert widgets.get(namespace="default").items[0].kind == "Widget"

    crds.delete(name="widgets.example.com")
    assert cluster.objects(kind="Widget") == []
    with pytest.raises(dynamic_errors.NotFoundError):
        widgets.get(name="w", namespace="default")


# -- simulated kubelet ----------------------------------------------------------


def test_kubelet_makes_a_deployment_ready_after_each_spec_change() -> None:
    with FakeCluster(ready_delay=0.3) as cluster, cluster.api_client() as client:
        apps = kubernetes.client.AppsV1Api(client)
        apps.create_namespaced_deployment("default", deployment(replicas=2))
        assert apps.read_namespaced_deployment_status("web", "default").status.observed_generation is None

        def ready(generation: int) -> bool:
            status = apps.read_namespaced_deployment_status("web", "default").status
            return status.observed_generation == generation and status.ready_replicas == 2

        until(lambda: ready(1), timeout=DEADLINE, what="deployment ready")
        status = apps.read_namespaced_deployment_status("web", "default").status
        assert status.updated_replicas == status.available_replicas == status.replicas == 2
        conditions = {c.type: (c.status, c.reason) for c in status.conditions}
        assert conditions == {
            "Available": ("True", "MinimumReplicasAvailable"),
            "Progressing": ("True", "NewReplicaSetAvailable"),
        }

        apps.patch_namespaced_deployment(
            "web",
            "default",
            {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:2"}]}}}},
        )
        assert apps.read_namespaced_deployment_status("web", "default").status.observed_generation == 1
        until(lambda: ready(2), timeout=DEADLINE, what="new generation ready")
        managers = {
            e.manager: e.subresource
            for e in apps.read_namespaced_deployment("web", "default").metadata.managed_fields
        }
        assert managers["k3s"] == "status"


def test_keep_failing_gives_realistic_stuck_status(
    cluster: FakeCluster, apps: kubernetes.client.AppsV1Api, dyn: DynamicClient
) -> None:
    cluster.keep_failing("Deployment", "default", "web", message="image pull back-off")
    cluster.keep_failing("Job", "default", "once", message="exit code 1")
    apps.create_namespaced_deployment("default", deployment())
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once", "namespace": "default"},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:1"}]}
            }
        },
    }
    jobs = dyn.resources.get(api_version="batch/v1", kind="Job")
    jobs.create(body=job, namespace="default")

    until(
        lambda: apps.read_namespaced_deployment_status("web", "default").status.observed_generation == 1,
        timeout=DEADLINE,
        what="status",
    )
    status = apps.read_namespaced_deployment_status("web", "default").status
    assert status.ready_replicas is None and status.unavailable_replicas == 1
    conditions = {c.type: c for c in status.conditions}
    assert (conditions["Available"].status, conditions["Available"].reason) == (
        "False",
        "MinimumReplicasUnavailable",
    )
    assert conditions["Progressing"].message == "image pull back-off"

    until(
        lambda: bool(jobs.get(name="once", namespace="default").status.conditions),
        timeout=DEADLINE,
        what="job status",
    )
    failed = {c.type: c for c in jobs.get(name="once", namespace="default").status.conditions}
    assert failed["Failed"].status == "True" and failed["Failed"].message == "exit code 1"
    assert "Complete" not in failed


def test_other_kinds_become_ready(cluster: FakeCluster, dyn: DynamicClient) -> None:
    template = {
        "metadata": {"labels": {"app": "x"}},
        "spec": {"containers": [{"name": "main", "image": "busybox:1"}]},
    }
    workload = {"selector": {"matchLabels": {"app": "x"}}, "template": template}
    bodies = [
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {**workload, "serviceName": "db"},
        },
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"}, "spec": workload},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": template["spec"]},
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j"},
            "spec": {"template": {"spec": {**template["spec"], "restartPolicy": "Never"}}},
        },
    ]
    for body in bodies:
        dyn.resources.get(api_version=body["apiVersion"], kind=body["kind"]).create(
            body=body, namespace="default"
        )

    def status(kind: str, name: str) -> dict[str, Any]:
        obj = cluster.get_object(
            {"StatefulSet": "apps/v1", "DaemonSet": "apps/v1", "Job": "batch/v1"}.get(kind, "v1"),
            kind,
            "default",
            name,
        )
        assert obj is not None
        result: dict[str, Any] = obj.get("status") or {}
        return result

    until(
        lambda: status("Service", "lb").get("loadBalancer", {}).get("ingress") is not None,
        timeout=DEADLINE,
        what="lb",
    )
    until(lambda: status("Job", "j").get("succeeded") == 1, timeout=DEADLINE, what="job")
    sts = status("StatefulSet", "db")
    assert sts["readyReplicas"] == sts["currentReplicas"] == sts["updatedReplicas"] == 1
    assert sts["currentRevision"] == sts["updateRevision"] and sts["observedGeneration"] == 1
    ds = status("DaemonSet", "agent")
    assert (
        ds["desiredNumberScheduled"]
        == ds["numberReady"]
        == ds["updatedNumberScheduled"]
        == ds["numberAvailable"]
        == 1
    )
    pod = status("Pod", "p")
    assert pod["phase"] == "Running"
    assert {c["type"]: c["status"] for c in pod["conditions"]}["Ready"] == "True"
    assert status("PersistentVolumeClaim", "data")["phase"] == "Bound"
    assert status("Service", "lb")["loadBalancer"]["ingress"][0]["ip"].startswith("10.0.0.")
    assert {c["type"] for c in status("Job", "j")["conditions"]} >= {"Complete"}


# -- namespaces, finalizers, deletion -------------------------------------------


def test_namespace_deletion_removes_its_contents(
    cluster: FakeCluster, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespace({"metadata": {"name": "team"}})
    core.create_namespaced_config_map("team", {"metadata": {"name": "cm"}})
    core.create_namespaced_secret("team", {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    cluster.set_ready_delay(0.2)
    terminating = core.delete_namespace("team")
    assert terminating["status"]["phase"] == "Terminating"
    assert cluster.get_object("v1", "Namespace", None, "team")["metadata"]["deletionTimestamp"]
    with pytest.raises(ApiException) as forbidden:
        core.create_namespaced_config_map("team", {"metadata": {"name": "late"}})
    assert forbidden.value.status == 403
    until(
        lambda: cluster.get_object("v1", "Namespace", None, "team") is None,
        timeout=DEADLINE,
        what="namespace gone",
    )
    assert cluster.objects(namespace="team") == []
    with pytest.raises(ApiException) as protected:
        core.delete_namespace("default")
    assert protected.value.status == 403


def test_finalizers_hold_deletion_until_removed(
    core: kubernetes.client.CoreV1Api, cluster: FakeCluster
) -> None:
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    )
    core.delete_namespaced_config_map("held", "default")
    pending = cluster.get_object("v1", "ConfigMap", "default", "held")
    assert pending is not None and pending["metadata"]["deletionTimestamp"]
    core.patch_namespaced_config_map("held", "default", {"metadata": {"finalizers": None}})
    assert cluster.get_object("v1", "ConfigMap", "default", "held") is None


def test_secret_string_data_is_stored_as_data(core: kubernetes.client.CoreV1Api) -> None:
    secret = core.create_namespaced_secret(
        "default", {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}
    )
    assert secret.data == {"password": "aHVudGVyMg=="}
    assert secret.string_data is None and secret.type == "Opaque"


def test_dry_run_changes_nothing(core: kubernetes.client.CoreV1Api, cluster: FakeCluster) -> None:
    answer = core.create_namespaced_config_map("default", configmap("cm", {}), dry_run="All")
    assert answer.metadata.name == "cm"
    assert cluster.get_object("v1", "ConfigMap", "default", "cm") is None


def test_delete_collection_by_label(core: kubernetes.client.CoreV1Api, cluster: FakeCluster) -> None:
    core.create_namespaced_config_map("default", configmap("a", {}, prune="yes"))
    core.create_namespaced_config_map("default", configmap("b", {}))
    core.delete_collection_namespaced_config_map("default", label_selector="prune=yes")
    assert [o["metadata"]["name"] for o in cluster.objects(kind="ConfigMap")] == ["b"]


def test_watch_is_refused_with_405(core: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_config_map("default", watch=True, _preload_content=False)
    assert exc.value.status == 405


# -- test hooks -------------------------------------------------------------------


def test_injected_500s_then_recovery(cluster: FakeCluster, core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("cm", {}))
    armed = cluster.inject(Fault.error(500, times=2, method="GET", path_contains="/configmaps/cm"))
    for _ in range(2):
        with pytest.raises(ApiException) as exc:
            core.read_namespaced_config_map("cm", "default")
        assert exc.value.status == 500
        assert status_of(exc.value)["reason"] == "InternalError"
    assert armed.remaining == 0
    assert core.read_namespaced_config_map("cm", "default").metadata.name == "cm"

    cluster.inject(Fault.error(503, times=5))
    cluster.clear_faults()
    assert core.read_namespaced_config_map("cm", "default").metadata.name == "cm"


def test_injected_delay_stalls_matching_requests(
    cluster: FakeCluster, core: kubernetes.client.CoreV1Api
) -> None:
    cluster.inject(Fault.slow(0.3, method="POST"))
    began = time.monotonic()
    core.create_namespaced_config_map("default", configmap("slow", {}))
    assert time.monotonic() - began >= 0.3
    began = time.monotonic()
    core.create_namespaced_config_map("default", configmap("fast", {}))
    assert time.monotonic() - began < 0.3


def test_requests_are_recorded(cluster: FakeCluster, dyn: DynamicClient) -> None:
    configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    configmaps.server_side_apply(body=configmap("cm", {}), field_manager="agent")
    configmaps.get(name="cm", namespace="default")
    methods = [
        method
        for method, path in cluster.requests
        if path.startswith("/api/v1/namespaces/default/configmaps")
    ]
    assert methods == ["PATCH", "GET"]
    assert ("PUT", "/api/v1/namespaces/default/configmaps/cm") not in cluster.requests


def test_objects_snapshot_is_a_copy(cluster: FakeCluster, core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("cm", {"a": "1"}))
    [snapshot] = cluster.objects(api_version="v1", kind="ConfigMap", namespace="default")
    snapshot["data"]["a"] = "changed"
    assert cluster.get_object("v1", "ConfigMap", "default", "cm")["data"] == {"a": "1"}


def test_default_discovery_cache_file_is_removed_with_the_cluster() -> None:
    """The client caches discovery in a temp file named for the host URL alone; a later fake on the
    same port must not inherit it, so the cluster removes it at start and stop."""
    with FakeCluster() as cluster, cluster.api_client() as client:
        digest = hashlib.md5(cluster.url.encode(), usedforsecurity=False).hexdigest()
        cache = Path(tempfile.gettempdir()) / f"osrcp-{digest}.json"
        DynamicClient(client).resources.get(api_version="v1", kind="ConfigMap")
        assert cache.exists()
    assert not cache.exists()
