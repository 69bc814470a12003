"""A fake Kubernetes API server that the official client talks to over real HTTP.

No kube-apiserver can be installed where our tests run, so this package plays
one: a `ThreadingHTTPServer` on 127.0.0.1 (a free port), speaking the real
wire protocol, with a simulated kubelet that makes workloads ready. It exists
only for tests and must stay faithful: where it models something, it models
what a real (k3s v1.31) server does, down to Status bodies and messages.

    with FakeCluster(ready_delay=0.0) as cluster:
        api = cluster.api_client()                       # or cluster.write_kubeconfig(path)
        ...                                              # CoreV1Api(api), DynamicClient(api), ...
        cluster.objects(kind="Deployment")               # copies of stored objects
        cluster.get_object("apps/v1", "Deployment", "default", "web")
        cluster.keep_failing("Deployment", "default", "web", message="...")
        cluster.set_ready_delay(0.5)
        cluster.inject(Fault.error(500, times=2, method="PATCH"))   # or Fault.slow(1.0, ...)
        cluster.clear_faults()
        cluster.requests                                 # [(method, path), ...] as they arrive
        cluster.exchanges                                # answered: method, path, began, ended, code

What it models
--------------
- Discovery: /version, /api, /api/v1, /apis, /apis/{g}, /apis/{g}/{v}, with
  namespaced/kind/verbs/singularName/shortNames and `{plural}/status`
  subresources. Built-ins: Namespace, ConfigMap, Secret, Service,
  ServiceAccount, Pod, PersistentVolumeClaim; apps/v1 Deployment,
  StatefulSet, DaemonSet, ReplicaSet; batch/v1 Job, CronJob;
  networking.k8s.io/v1 Ingress, NetworkPolicy; rbac.authorization.k8s.io/v1
  Role, RoleBinding, ClusterRole, ClusterRoleBinding; apiextensions.k8s.io/v1
  CustomResourceDefinition. A CRD's served versions appear in discovery and
  become servable when the simulated controller marks it Established (after
  `ready_delay`), and vanish when it is deleted (its objects with it).
- CRUD on namespaced and cluster-scoped paths: GET, LIST (all namespaces via
  `/{plural}`; `labelSelector` with =, ==, !=, in, notin, key, !key, >, <;
  `fieldSelector` on metadata.name, metadata.namespace and a few per-kind
  fields; `limit`/`continue`), POST, PUT (stale resourceVersion -> 409,
  none -> unconditional), PATCH (merge, JSON patch, strategic merge subset: see
  `patching`; strategic on custom resources -> 415 as on a real server),
  server-side apply, DELETE (the object or a Status, per kind, as the real
  storage does), DELETE on a collection, `dryRun=All` on every write.
- Server-side apply (`apply`, `managedfields`, `fieldsets`): fieldManager
  required (422 with the real PatchOptions message), `force`, managedFields
  per manager in the real FieldsV1 format, apply/update semantics from
  structured-merge-diff: conflicts (409 naming fields and managers), shared
  ownership of equal values, forced takeover, removal of fields a manager
  stops applying unless someone else owns them, create-on-apply (201),
  no-op applies that keep the resourceVersion. Lists merge by the real keys
  for the common built-in fields (containers, env, ports, volumes, volume
  mounts, conditions, ...; see `schema`); all other lists, and every list of a
  custom resource outside metadata, are atomic.
- Metadata: uid, resourceVersion (one increasing counter across the cluster),
  generation for the kinds whose real strategy keeps it (workloads, Ingress,
  NetworkPolicy, CRDs, custom resources; not ConfigMaps, Services, ...),
  creationTimestamp, namespace from the URL, name/namespace mismatch -> 400,
  generateName, finalizers (DELETE sets deletionTimestamp; removing the last
  finalizer deletes), namespace lifecycle (Terminating for `ready_delay`,
  creating inside it -> 403, re-creating it -> 409, protected namespaces).
- Status subresource: /status GET/PUT/PATCH/apply change only status; main
  resource writes ignore status for kinds that have the subresource.
- Errors: real Status bodies and codes (400, 403, 404, 405, 409, 415, 422,
  500), so the client raises `ApiException` / `kubernetes.dynamic.exceptions.*`
  as against a real cluster. Validation and defaulting are documented subsets
  (`validation`, `defaulting`).
- Simulated kubelet/controllers (`kubelet`, `statuses`): ready or stuck status
  for Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, Pod, PVC, CRD and
  LoadBalancer Services, `ready_delay` after each spec change, written as
  manager "k3s" through the status subresource.

What it does not model
----------------------
- Watch: `watch=true` answers 405 MethodNotAllowed. No protobuf/CBOR/Table.
- Authentication, authorization (RBAC objects are stored, never enforced),
  admission webhooks, API priority and fairness, audit.
- Garbage collection (ownerReferences are stored, dependents are never
  deleted), and controllers creating objects: Deployments get no ReplicaSets
  or Pods, Jobs no Pods, CronJobs never run, PVCs bind to no PersistentVolume.
- Scheduling, real containers, probes, scale subresources, ReplicaSet
  revisions beyond a hash in status.
- OpenAPI schema validation, pruning of unknown fields, CRD defaulting and
  conversion webhooks (all served versions share one stored object; only
  apiVersion differs), `x-kubernetes-list-type` in CRD schemas.
- Server-side apply details: user-supplied managedFields are ignored, `null`
  in an applied configuration means "not applied", no managedFields
  compaction of old Update entries, `fieldValidation` is ignored.
- Namespace deletion ignores finalizers of the objects inside; `propagationPolicy`
  and grace periods are accepted and ignored.
"""

from tests.fakekube.cluster import FakeCluster
from tests.fakekube.faults import Armed, Fault
from tests.fakekube.server import Exchange

__all__ = ["Armed", "Exchange", "FakeCluster", "Fault"]
