"""A certificate authority and a server certificate for 127.0.0.1, for TLS tests.

The product's own development CA (controller.tlsca), so tests exercise the
certificates `edgefleet server --tls` hands out, on Mosquitto too.
"""

from __future__ import annotations

from pathlib import Path

from controller import tlsca

TlsFiles = tlsca.Files


def make(directory: Path) -> TlsFiles:
    """A fresh CA and server certificate under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    return tlsca.ensure(directory, ["127.0.0.1"])
