"""Errors of the controller, as the operator sees them.

    ControllerError             any failure the CLI reports as a message and non-zero exit
    ├── StateError              the state directory is missing, unreadable or inconsistent
    │   └── KeyExists           refusing to overwrite a signing key without --force
    ├── BundleError             a bundle directory that cannot be read or rendered
    ├── PublishError            the broker did not accept a publish (transient: retry)
    └── SecurityError           the broker's security (dynamic security) refused or did not answer

Errors from other layers (wire.errors.WireError, OSError, aiomqtt.MqttError)
are mapped to these at the edge with `raise ... from exc`.
"""

from __future__ import annotations


class ControllerError(Exception):
    """A failure reported to the operator."""


class StateError(ControllerError):
    """The state directory cannot be used."""


class KeyExists(StateError):
    """A signing key is already there; overwriting it would orphan every agent."""


class BundleError(ControllerError):
    """A bundle that cannot be read or rendered; the message names the file."""


class PublishError(ControllerError):
    """The broker did not acknowledge a publish."""


class SecurityError(ControllerError):
    """The broker would not take a credential or rights change (or cannot be asked)."""
