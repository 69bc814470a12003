"""Errors of the agent.

    AgentError                 anything the agent reports
    ├── ConfigError            the config file is missing or wrong (the CLI exits)
    ├── StateError             the state directory cannot be read or written
    └── ApplyError             the cluster did not take a bundle
        ├── PermanentApplyError   retrying will not help (invalid object, forbidden,
        │                         field owned by someone else): wait for a new manifest
        └── TransientApplyError   may pass (server error, timeout, missing namespace or
                                  CRD that another bundle may bring): retry with backoff

Kubernetes client errors are mapped to these in edge_agent.applying, the only
module that sees them. `objects` names what failed, for the status report.
"""

from __future__ import annotations


class AgentError(Exception):
    """Something the agent logs and reports."""


class ConfigError(AgentError):
    """The agent's configuration cannot be used."""


class StateError(AgentError):
    """The agent's state directory cannot be read or written."""


class ApplyError(AgentError):
    def __init__(self, message: str, *, objects: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.objects = objects


class PermanentApplyError(ApplyError):
    """Retrying the same manifest will fail the same way."""


class TransientApplyError(ApplyError):
    """The same manifest may apply later."""
