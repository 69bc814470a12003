"""From what the cluster shows to what the status document says (pure).

A bundle's state uses Fleet's names and meanings: ErrApplied (the apply
itself failed: set by the agent's worker, not here) > WaitApplied (received,
not yet applied) > Modified (an object we manage was changed or deleted
behind our back) > NotReady (applied, some object not ready, or failed for
good like a failed Job: Fleet counts those as not ready too, with the error
in the message) > Ready. At most ten non-ready and ten modified objects are
listed, each with a reason, and one line sums it up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import wire
from edge_agent import drift, readiness
from edge_agent.store import ObjectRef
from wire import agent_config, envelopes, status

# Objects listed per bundle and kind of trouble (the message carries the count).
MAX_LISTED = 10


@dataclass(frozen=True)
class Observed:
    """One object of a bundle as applied (labelled, namespaced) and as it is now (None: missing).

    Here, not in edge_agent.applying, so that reporting (and the simulator) never
    load the Kubernetes client.
    """

    ref: ObjectRef
    desired: Mapping[str, Any]
    live: Mapping[str, Any] | None


@dataclass(frozen=True)
class Health:
    """What observing a bundle's objects found."""

    state: status.State
    message: str = ""
    non_ready: tuple[status.ObjectRef, ...] = ()
    modified: tuple[status.ObjectRef, ...] = ()
    drifted: tuple[ObjectRef, ...] = field(default=())


def object_ref(ref: ObjectRef, message: str) -> status.ObjectRef:
    return status.ObjectRef(
        api_version=ref.api_version, kind=ref.kind, namespace=ref.namespace, name=ref.name, message=message
    )


def _summary(what: str, entries: Sequence[status.ObjectRef]) -> str:
    shown = "; ".join(
        f"{e['kind']} {e['namespace'] + '/' if e['namespace'] else ''}{e['name']}: {e['message']}"
        for e in entries[:3]
    )
    more = f" (+{len(entries) - 3} more)" if len(entries) > 3 else ""
    return f"{len(entries)} {what}: {shown}{more}"


def health(observed: Sequence[Observed]) -> Health:
    non_ready: list[status.ObjectRef] = []
    modified: list[status.ObjectRef] = []
    drifted: list[ObjectRef] = []
    for item in observed:
        if item.live is None:
            modified.append(object_ref(item.ref, "missing"))
            drifted.append(item.ref)
            continue
        changed = drift.differences(item.desired, item.live)
        if changed:
            shown = ", ".join(changed[:3]) + (f" (+{len(changed) - 3})" if len(changed) > 3 else "")
            modified.append(object_ref(item.ref, f"changed {shown}"))
            drifted.append(item.ref)
        assessed = readiness.assess(item.live)
        if assessed.failed:
            non_ready.append(object_ref(item.ref, f"failed: {assessed.message or 'no reason given'}"))
        elif not assessed.ready:
            non_ready.append(object_ref(item.ref, assessed.message or "not ready"))
    if modified:
        state, message = status.State.MODIFIED, _summary("modified", modified)
    elif non_ready:
        state, message = status.State.NOT_READY, _summary("not ready", non_ready)
    else:
        state, message = status.State.READY, ""
    return Health(state, message, tuple(non_ready[:MAX_LISTED]), tuple(modified[:MAX_LISTED]), tuple(drifted))


def bundle_status(
    state: status.State,
    *,
    generation: int,
    deployment_id: str | None,
    applied_deployment_id: str | None,
    message: str = "",
    non_ready: Sequence[status.ObjectRef] = (),
    modified: Sequence[status.ObjectRef] = (),
) -> status.BundleStatus:
    return status.BundleStatus(
        state=state.value,
        generation=generation,
        deployment_id=deployment_id,
        applied_deployment_id=applied_deployment_id,
        message=message[:500],
        non_ready=list(non_ready[:MAX_LISTED]),
        modified=list(modified[:MAX_LISTED]),
    )


def document(
    config: agent_config.AgentConfig,
    *,
    session: int,
    seq: int,
    ts: float,
    node: status.NodeFacts,
    bundles: Mapping[str, status.BundleStatus],
    agent_errors: Sequence[str] = (),
) -> status.StatusDocument:
    document = status.StatusDocument(
        cluster=config.cluster,
        group=config.group,
        labels=dict(config.labels),
        agent_version=wire.__version__,
        session=session,
        seq=seq,
        ts=ts,
        node=node,
        bundles=dict(sorted(bundles.items())),
        envelope_formats=sorted(envelopes.SUPPORTED_VERSIONS),
    )
    if agent_errors:  # absent when all is well, as from agents that predate the field
        shown = agent_errors[: status.MAX_AGENT_ERRORS]
        document["agent_errors"] = [problem[: status.MAX_AGENT_ERROR_CHARS] for problem in shown]
    return document
