"""Synthetic typical applications: the samples zstd's entropy tables are fitted to.

Generic templates with random names, written by hand, with no text from
edgefleet's examples/ or from `helm create`: the dictionary must not be fitted
to the bundles it is measured on (docs/benchmarks.md, "Wire").
"""

from __future__ import annotations

import random
from typing import Any

App = tuple[str, str, list[dict[str, Any]]]

WORDS = [
    "api",
    "web",
    "worker",
    "gateway",
    "metrics",
    "sensor",
    "agent",
    "cache",
    "db",
    "queue",
    "auth",
    "frontend",
    "backend",
    "proxy",
    "exporter",
    "scheduler",
    "ingest",
    "store",
    "reader",
    "writer",
    "camera",
    "plc",
    "modbus",
    "opcua",
    "relay",
    "uploader",
    "dashboard",
    "alerts",
    "ota",
    "logger",
]
# Items dropped after the benchmark bundles had been looked at (to keep the corpus independent of them):
# port 9100, port name "mqtt"/1883, a "tier" label style, envFrom, "--config <file>" args.
REGS = [
    "docker.io/library",
    "ghcr.io/acme",
    "quay.io/org",
    "registry.local:5000/team",
    "public.ecr.aws/x",
    "gcr.io/project",
]
NS = ["default", "apps", "edge", "monitoring", "kube-system", "prod", "staging", "factory", "iot"]


def name(r: random.Random) -> str:
    n = r.choice(WORDS)
    if r.random() < 0.5:
        n += "-" + r.choice(WORDS)
    return n


def image(r: random.Random, n: str) -> str:
    tag = f"{r.randint(0, 3)}.{r.randint(0, 30)}.{r.randint(0, 9)}" if r.random() < 0.8 else "latest"
    return f"{r.choice(REGS)}/{n}:{tag}"


def labels(r: random.Random, n: str, style: str) -> dict[str, str]:
    if style == "plain":
        return {"app": n}
    out = {
        "app.kubernetes.io/name": n,
        "app.kubernetes.io/instance": n if r.random() < 0.5 else "release-" + n,
    }
    if style == "helm":
        v = f"{r.randint(0, 3)}.{r.randint(0, 9)}.{r.randint(0, 9)}"
        out.update(
            {
                "app.kubernetes.io/version": v,
                "app.kubernetes.io/managed-by": "Helm",
                "helm.sh/chart": f"{n}-{r.randint(0, 2)}.{r.randint(0, 9)}.{r.randint(0, 9)}",
            }
        )
    elif r.random() < 0.5:
        out.update(
            {
                "app.kubernetes.io/component": r.choice(["server", "worker", "database"]),
                "app.kubernetes.io/part-of": n,
            }
        )
    return out


def selector_labels(labels: dict[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in labels.items()
        if k in ("app", "app.kubernetes.io/name", "app.kubernetes.io/instance")
    }


def qty(r: random.Random, kind: str) -> str:
    return (
        r.choice(["10m", "25m", "50m", "100m", "200m", "250m", "500m", "1"])
        if kind == "cpu"
        else r.choice(["16Mi", "32Mi", "64Mi", "128Mi", "256Mi", "512Mi", "1Gi"])
    )


def meta(r: random.Random, n: str, labels: dict[str, str], ns: str) -> dict[str, Any]:
    m: dict[str, Any] = {"name": n, "labels": labels}
    if ns and r.random() < 0.6:
        m["namespace"] = ns
    return m


def container(r: random.Random, n: str) -> tuple[dict[str, Any], int, str]:
    port = r.choice([80, 8080, 8000, 3000, 9090, 5000, 8443])
    pname = r.choice(["http", "metrics", "web", "grpc"])
    c = {"name": n, "image": image(r, n)}
    if r.random() < 0.5:
        c["imagePullPolicy"] = r.choice(["IfNotPresent", "Always"])
    c["ports"] = [{"name": pname, "containerPort": port, **({"protocol": "TCP"} if r.random() < 0.5 else {})}]
    if r.random() < 0.8:
        res = {"requests": {"cpu": qty(r, "cpu"), "memory": qty(r, "memory")}}
        if r.random() < 0.6:
            res["limits"] = (
                {"memory": qty(r, "memory")}
                if r.random() < 0.5
                else {"cpu": qty(r, "cpu"), "memory": qty(r, "memory")}
            )
        c["resources"] = res
    if r.random() < 0.5:
        c["env"] = [
            {
                "name": r.choice(["LOG_LEVEL", "PORT", "MODE", "TZ", "BROKER_URL"]),
                "value": r.choice(["info", "debug", "8080", "UTC", "edge"]),
            }
            for _ in range(r.randint(1, 3))
        ]
    if r.random() < 0.5:
        c["livenessProbe"] = {"httpGet": {"path": r.choice(["/", "/healthz", "/livez"]), "port": pname}}
        c["readinessProbe"] = {"httpGet": {"path": r.choice(["/", "/readyz", "/healthz"]), "port": pname}}
    if r.random() < 0.3:
        c["securityContext"] = {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        }
    if r.random() < 0.4:
        c["volumeMounts"] = [{"name": "config", "mountPath": f"/etc/{n}"}]
    return c, port, pname


def workload(
    r: random.Random, n: str, labels: dict[str, str], ns: str, kind: str = "Deployment"
) -> tuple[dict[str, Any], int, str]:
    c, port, pname = container(r, n)
    pod = {"containers": [c]}
    if "volumeMounts" in c:
        pod["volumes"] = [{"name": "config", "configMap": {"name": f"{n}-config"}}]
    if r.random() < 0.3:
        pod["serviceAccountName"] = n
    if r.random() < 0.2:
        pod["nodeSelector"] = {"kubernetes.io/arch": r.choice(["arm64", "amd64"])}
    if r.random() < 0.2:
        pod["securityContext"] = {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000}
    sel = selector_labels(labels)
    spec = {
        "selector": {"matchLabels": sel},
        "template": {"metadata": {"labels": dict(sel) if r.random() < 0.5 else dict(labels)}, "spec": pod},
    }
    if kind != "DaemonSet":
        spec["replicas"] = r.randint(1, 3)
    if kind == "StatefulSet":
        spec["serviceName"] = n
    return (
        {"apiVersion": "apps/v1", "kind": kind, "metadata": meta(r, n, labels, ns), "spec": spec},
        port,
        pname,
    )


def service(
    r: random.Random, n: str, labels: dict[str, str], ns: str, port: int, pname: str
) -> dict[str, Any]:
    p = {"port": r.choice([80, port]), "targetPort": r.choice([port, pname])}
    if r.random() < 0.6:
        p["name"] = pname
    if r.random() < 0.5:
        p["protocol"] = "TCP"
    spec = {"selector": selector_labels(labels), "ports": [p]}
    if r.random() < 0.5:
        spec["type"] = r.choice(["ClusterIP", "ClusterIP", "NodePort", "LoadBalancer"])
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(r, n, labels, ns), "spec": spec}


def configmap(r: random.Random, n: str, labels: dict[str, str], ns: str) -> dict[str, Any]:
    data = r.choice(
        [
            {"config.yaml": f"log:\n  level: info\nlisten: :{r.randint(1000, 9999)}\n"},
            {"LOG_LEVEL": "info", "MODE": r.choice(["edge", "cloud"])},
            {f"{n}.conf": "[main]\nenabled = true\n"},
        ]
    )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(r, f"{n}-config", labels, ns),
        "data": data,
    }


def extras(r: random.Random, n: str, labels: dict[str, str], ns: str, port: int) -> list[dict[str, Any]]:
    out = []
    if r.random() < 0.3:
        out.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(r, n, labels, ns)})
    if r.random() < 0.25:
        out.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": meta(r, n, labels, ns),
                "spec": {
                    "rules": [
                        {
                            "host": f"{n}.example.org",
                            "http": {
                                "paths": [
                                    {
                                        "path": "/",
                                        "pathType": r.choice(["Prefix", "ImplementationSpecific"]),
                                        "backend": {"service": {"name": n, "port": {"number": port}}},
                                    }
                                ]
                            },
                        }
                    ]
                },
            }
        )
    if r.random() < 0.2:
        out.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": meta(r, n, labels, ns),
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": n},
                    "minReplicas": 1,
                    "maxReplicas": r.randint(2, 10),
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {
                                    "type": "Utilization",
                                    "averageUtilization": r.choice([50, 70, 80]),
                                },
                            },
                        }
                    ],
                },
            }
        )
    if r.random() < 0.15:
        out.append(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": meta(r, n, labels, ns),
                "spec": {
                    "parentRefs": [{"name": "gateway"}],
                    "rules": [
                        {
                            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                            "backendRefs": [{"name": n, "port": port}],
                        }
                    ],
                },
            }
        )
    if r.random() < 0.15:
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": meta(r, n, labels, ns),
                "type": "Opaque",
                "stringData": {"token": "changeme"},
            }
        )
    if r.random() < 0.1:
        out.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": meta(r, n, labels, ns),
                "spec": {"minAvailable": 1, "selector": {"matchLabels": selector_labels(labels)}},
            }
        )
    if r.random() < 0.1:
        out.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": meta(r, f"{n}-data", labels, ns),
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": r.choice(["1Gi", "5Gi", "10Gi"])}},
                },
            }
        )
    return out


def app(r: random.Random) -> App:
    """One application: name, namespace and its objects."""
    n = name(r)
    style = r.choice(["plain", "k8s", "helm", "helm"])
    app_labels = labels(r, n, style)
    ns = r.choice(NS)
    objs: list[dict[str, Any]] = []
    if r.random() < 0.15:
        objs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    if r.random() < 0.6:
        objs.append(configmap(r, n, app_labels, ns))
    kind = r.choice(["Deployment"] * 6 + ["StatefulSet", "DaemonSet"])
    wl, port, pname = workload(r, n, app_labels, ns, kind)
    objs.append(wl)
    if r.random() < 0.8:
        objs.append(service(r, n, app_labels, ns, port, pname))
    objs += extras(r, n, app_labels, ns, port)
    return n, ns, objs


def corpus(seed: int, count: int) -> list[App]:
    r = random.Random(seed)
    return [app(r) for _ in range(count)]
