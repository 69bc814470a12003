"""URL paths of the Kubernetes API, parsed into what they address.

/version  /healthz  /readyz  /livez
/api                                  APIVersions
/apis                                 APIGroupList
/apis/{group}                         APIGroup
/api/v1, /apis/{group}/{version}      APIResourceList
{prefix}/{plural}[/{name}[/{sub}]]                        cluster-scoped, or all namespaces
{prefix}/namespaces/{ns}/{plural}[/{name}[/{sub}]]        namespaced
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

_NAMESPACE_SUBRESOURCES = ("status", "finalize")


@dataclass(frozen=True)
class Route:
    kind: str  # version | health | api | groups | group | resources | resource
    group: str = ""
    version: str = ""
    plural: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    in_namespace: bool = False  # the path went through /namespaces/{ns}/


def parse(path: str) -> Route | None:
    parts = [unquote(part) for part in path.split("/") if part]
    if parts == ["version"]:
        return Route("version")
    if parts in (["healthz"], ["readyz"], ["livez"]):
        return Route("health")
    if parts == ["api"]:
        return Route("api")
    if parts[:1] == ["api"]:
        if parts[1:2] != ["v1"]:
            return None
        group, version, rest = "", "v1", parts[2:]
    elif parts[:1] == ["apis"]:
        if len(parts) == 1:
            return Route("groups")
        if len(parts) == 2:
            return Route("group", group=parts[1])
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return Route("resources", group=group, version=version)
    in_namespace = False
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in _NAMESPACE_SUBRESOURCES:
        namespace, rest, in_namespace = rest[1], rest[2:], True
    if len(rest) > 3:
        return None
    plural, name, subresource = [*rest, "", ""][:3]
    return Route(
        "resource",
        group=group,
        version=version,
        plural=plural,
        namespace=namespace,
        name=name,
        subresource=subresource,
        in_namespace=in_namespace,
    )
