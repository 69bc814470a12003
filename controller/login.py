"""Which broker account a controller command logs in with.

An explicit `user:password@` in the broker URL wins (for Mosquitto that is
the dynamic-security admin, which the controller also gives its own rights).
Otherwise a command that knows the state directory logs in as the controller
itself, with the password kept there (controller.identities), so the
operator never handles it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from controller import identities
from wire import urls


def login(url: urls.BrokerUrl, state_dir: Path | None) -> urls.BrokerUrl:
    if url.username is not None or state_dir is None or not (state_dir / identities.PASSWORD_FILE).exists():
        return url
    return as_controller(url, state_dir)


def as_controller(url: urls.BrokerUrl, state_dir: Path) -> urls.BrokerUrl:
    """`url` with the controller's own credentials (created on first use)."""
    return dataclasses.replace(
        url, username=identities.CONTROLLER_USERNAME, password=identities.controller_password(state_dir)
    )
