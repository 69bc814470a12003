"""Broker URLs: `mqtt://host[:port]` or `mqtts://host[:port]` (TLS).

Parsed once where they enter (CLI, agent config) so connection code never
guesses a port or a scheme.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from wire import errors

_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    # CA bundle that signs the broker's certificate (mqtts://); None: the system's CAs.
    ca_file: str | None = None

    @classmethod
    def parse(cls, text: str, *, ca_file: str | None = None) -> BrokerUrl:
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError as exc:
            raise errors.Malformed(f"broker URL {text!r}: {exc}") from exc
        if parts.scheme not in _DEFAULT_PORTS:
            raise errors.Malformed(f"broker URL {text!r} must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise errors.Malformed(f"broker URL {text!r} has no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise errors.Malformed(f"broker URL {text!r} must not have a path, query or fragment")
        return cls(
            host=parts.hostname,
            port=port or _DEFAULT_PORTS[parts.scheme],
            tls=parts.scheme == "mqtts",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            ca_file=ca_file,
        )

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"
