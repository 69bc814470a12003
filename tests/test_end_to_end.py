"""The core loop end to end, on each real broker: a controller, three agents each on
its own Kubernetes API (tests.fakekube), and a bundle through its whole life."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from controller import delivering, publishing
from tests import fleet as fleets
from tests import mqtt
from wire import envelopes, keys, manifests, urls

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
IMAGE = "registry.example.com/retail/kiosk"


def _copy_example(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle" / "plain-overlays"
    shutil.copytree(EXAMPLES / "plain-overlays", bundle)
    (bundle / "service.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: kiosk, namespace: kiosk}\n"
        "spec: {selector: {app: kiosk}, ports: [{port: 80, targetPort: 8080}]}\n"
    )
    (bundle / "namespace.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: kiosk}\n")
    return bundle


def _set_image(bundle: Path, tag: str) -> None:
    for path in (bundle / "deployment.yaml", bundle / "overlays/prod/deployment_patch.yaml"):
        text = path.read_text()
        path.write_text(
            text.replace(text[text.index(IMAGE) : text.index("\n", text.index(IMAGE))], f"{IMAGE}:{tag}")
        )


def _image(device: fleets.Device) -> str | None:
    deployments = device.cluster.objects(kind="Deployment")
    if not deployments:
        return None
    containers = {c["name"]: c["image"] for c in deployments[0]["spec"]["template"]["spec"]["containers"]}
    return containers["kiosk"]


async def test_bundle_life_on_three_clusters(
    broker_url: urls.BrokerUrl, topic_root: str, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    devices = {
        f"prod-{suffix}": {"env": "prod"},
        f"lab-{suffix}": {"env": "lab"},
        f"old-{suffix}": {"env": "prod", "decommissioned": "2026"},
    }
    bundle = _copy_example(tmp_path)
    async with fleets.fleet(broker_url, tmp_path, topic_root, devices) as fleet:
        prod, lab, old = fleet.devices.values()
        for device in fleet.devices.values():
            fleet.start(device)
        first = await fleet.apply(bundle)
        assert first.generation == 1
        topic = fleets.T.bundle(topic_root, "plain-overlays")
        generation_one = (await mqtt.retained(broker_url, topic, expect=1))[
            topic
        ]  # recorded by a rogue client

        # Each cluster holds exactly the objects of the variant its labels select.
        await fleet.until(
            lambda: _image(prod) == f"{IMAGE}:5.0.2" and _image(lab) == f"{IMAGE}:5.0.1", "apply"
        )
        assert prod.names("ConfigMap") == lab.names("ConfigMap") == {"kiosk-config"}
        prod_config = prod.cluster.get_object("v1", "ConfigMap", "kiosk", "kiosk-config")
        assert prod_config is not None and prod_config["data"]["LOG_LEVEL"] == "warn"
        lab_deployment = lab.cluster.get_object("apps/v1", "Deployment", "kiosk", "kiosk")
        assert lab_deployment is not None
        assert (
            lab_deployment["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"] == "FEATURE_FLAGS"
        )
        assert lab_deployment["metadata"]["labels"]["edgefleet.io/bundle"] == "plain-overlays"
        assert prod.names("Service") == {"kiosk"} and prod.names("Namespace") >= {"kiosk"}
        await fleet.until(
            lambda: old.agent is not None and old.agent.store.applied("plain-overlays").generation == 1,
            "the retired cluster to record the generation",
        )
        assert old.cluster.objects(kind="Deployment") == [] and old.cluster.objects(kind="ConfigMap") == []
        uid = prod.cluster.get_object("apps/v1", "Deployment", "kiosk", "kiosk")["metadata"]["uid"]  # type: ignore[index]

        # An image tag change updates the objects in place.
        _set_image(bundle, "5.1.0")
        await fleet.apply(bundle)
        await fleet.until(lambda: _image(prod) == _image(lab) == f"{IMAGE}:5.1.0", "the new image")
        assert prod.cluster.get_object("apps/v1", "Deployment", "kiosk", "kiosk")["metadata"]["uid"] == uid  # type: ignore[index]

        # An object removed from the bundle is pruned.
        (bundle / "service.yaml").unlink()
        await fleet.apply(bundle)
        await fleet.until(
            lambda: not prod.names("Service") and not lab.names("Service"), "the service to be pruned"
        )
        assert prod.names("Deployment") == {"kiosk"}

        # An agent offline during two updates comes back on the latest generation only.
        await fleet.stop(lab)
        _set_image(bundle, "5.2.0")
        await fleet.apply(bundle)
        _set_image(bundle, "5.3.0")
        latest = await fleet.apply(bundle)
        await fleet.until(lambda: _image(prod) == f"{IMAGE}:5.3.0", "prod on the latest")
        seen_requests = len(lab.cluster.requests)
        fleet.start(lab)
        agent = lab.agent
        assert agent is not None
        await fleet.until(
            lambda: agent.store.applied("plain-overlays").generation == latest.generation and not agent.busy,
            "lab back on the latest generation",
        )
        assert _image(lab) == f"{IMAGE}:5.3.0"
        lab_patches = [
            p for m, p in lab.cluster.requests[seen_requests:] if m == "PATCH" and "deployments" in p
        ]
        assert len(lab_patches) == 1  # 5.2.0 was never applied

        # Killing and restarting an agent does not re-apply an unchanged bundle.
        await fleet.stop(prod)
        writes = prod.writes()
        restarted = fleet.start(prod)
        await fleet.until(lambda: restarted.received >= 1, "the restarted agent to see the retained manifest")
        await fleet.until(lambda: not restarted.busy, "the restarted agent to settle")
        assert prod.writes() == writes

        # Rogue messages are never applied: a key nobody trusts, and a replay of generation 1.
        topic = fleets.T.bundle(topic_root, "plain-overlays")
        rogue = manifests.Manifest(manifests.Kind.BUNDLE, "plain-overlays", topic_root, 99, 1.0)
        refused = restarted.refused
        await publishing.publish_retained(
            broker_url, [(topic, envelopes.seal(rogue, keys.SigningKey.generate(), version=2))]
        )
        await fleet.until(lambda: restarted.refused == refused + 1, "the forgery to be refused")
        await publishing.publish_retained(broker_url, [(topic, generation_one)])
        await fleet.until(lambda: restarted.refused == refused + 2, "the replay to be refused")
        assert prod.writes() == writes and _image(prod) == f"{IMAGE}:5.3.0"

        # Deleting the bundle removes its objects everywhere.
        await delivering.delete(fleet.state, fleet.key, broker_url, "plain-overlays", fleets.T)
        await fleet.until(
            lambda: all(
                d.agent is not None
                and not d.agent.busy
                and d.agent.store.applied("plain-overlays").inventory == ()
                for d in (prod, lab)
            ),
            "the bundle to be removed",
        )
        assert not prod.names("Deployment") and not lab.names("Deployment")
        assert not prod.names("ConfigMap") and not lab.names("ConfigMap")


async def test_agents_that_read_format_2_are_sent_it_and_run_it(
    broker_url: urls.BrokerUrl, topic_root: str, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    devices = {f"prod-{suffix}": {"env": "prod"}, f"lab-{suffix}": {"env": "lab"}}
    bundle = _copy_example(tmp_path)
    async with fleets.fleet(broker_url, tmp_path, topic_root, devices) as fleet:
        prod, lab = fleet.devices.values()
        for device in fleet.devices.values():
            fleet.start(device)
        fleet.start_controller()
        await fleet.until(
            lambda: delivering.envelope_formats(fleet.state, [topic_root]) == {topic_root: 2},
            "the controller to record that both agents read format 2",
        )
        await fleet.apply(bundle)
        topic = fleets.T.bundle(topic_root, "plain-overlays")
        sealed = (await mqtt.retained(broker_url, topic, expect=1))[topic]
        assert envelopes.parse(sealed).format_version == 2
        await fleet.until(
            lambda: _image(prod) == f"{IMAGE}:5.0.2" and _image(lab) == f"{IMAGE}:5.0.1", "apply"
        )
        aggregator = fleet.aggregator
        assert aggregator is not None

        def ready() -> bool:
            summary = aggregator.summaries()[fleets.T.summary_bundle("plain-overlays")]
            return summary is not None and (summary["desired"], summary["ready"]) == (2, 2)

        await fleet.until(ready, "the controller to count both clusters ready")
