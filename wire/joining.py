"""The join string: everything a new device needs to register, in one line.

`edgefleet token create` prints it; `edgefleet-agent join` reads it. It carries
the broker URL, the token (id and secret), the controller key fingerprint the
agent pins before it trusts any reply, the deployment's topic prefix, and,
for a broker whose certificate no public CA signs, that CA (DER) so TLS is
pinned too. It is a secret: whoever holds it can ask to join the group.

Shape: `edgefleet-join-v1:` + base64url (no padding) of a small JSON map.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass

from wire import errors, topics, urls

PREFIX = "edgefleet-join-v1:"
# A join string with an embedded CA is about 1 KB; anything past this is not one.
MAX_JOIN_STRING = 16 * 1024

_TOKEN_ID = re.compile(r"[a-z0-9]{8,32}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{32,128}")
_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


@dataclass(frozen=True)
class JoinString:
    broker: str
    token_id: str
    secret: str
    fingerprint: str  # of the controller signing key, as `edgefleet keys show` prints it
    topic_prefix: str = "fleet"
    ca_der: bytes | None = None  # the broker's CA certificate, pinned for mqtts://

    def __post_init__(self) -> None:
        urls.BrokerUrl.parse(self.broker)
        if not _TOKEN_ID.fullmatch(self.token_id):
            raise errors.Malformed(f"join string: token id {self.token_id[:40]!r} is not one")
        if not _SECRET.fullmatch(self.secret):
            raise errors.Malformed("join string: the token secret is not one")
        if not _FINGERPRINT.fullmatch(self.fingerprint):
            raise errors.Malformed(f"join string: fingerprint {self.fingerprint[:60]!r} is not SHA256:...")
        topics.Topics(self.topic_prefix)

    def encode(self) -> str:
        document: dict[str, str] = {
            "broker": self.broker,
            "token": self.token_id,
            "secret": self.secret,
            "fingerprint": self.fingerprint,
            "prefix": self.topic_prefix,
        }
        if self.ca_der is not None:
            document["ca"] = base64.b64encode(self.ca_der).decode()
        raw = json.dumps(document, separators=(",", ":")).encode()
        return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def parse(cls, text: str) -> JoinString:
        """Parse a join string; raise a WireError that says what is wrong with it."""
        text = text.strip()
        if len(text) > MAX_JOIN_STRING:
            raise errors.TooLarge(f"join string is {len(text)} characters; a real one is about 1 KB")
        if not text.startswith(PREFIX):
            raise errors.Malformed(f"not a join string: it must start with {PREFIX!r}")
        body = text[len(PREFIX) :]
        try:
            document = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (ValueError, RecursionError) as exc:  # binascii.Error is a ValueError
            raise errors.Malformed(f"join string is damaged (copy it again in full): {exc}") from exc
        if not isinstance(document, dict):
            raise errors.Malformed("join string is damaged: its content is not a map")
        fields = ("broker", "token", "secret", "fingerprint", "prefix")
        missing = [key for key in fields if not isinstance(document.get(key), str)]
        if missing:
            raise errors.Malformed(f"join string lacks {', '.join(missing)}")
        ca = document.get("ca")
        if ca is not None and not isinstance(ca, str):
            raise errors.Malformed("join string: 'ca' must be base64 DER")
        try:
            ca_der = base64.b64decode(ca, validate=True) if ca is not None else None
        except ValueError as exc:
            raise errors.Malformed(f"join string: 'ca' is not base64: {exc}") from exc
        return cls(
            broker=document["broker"],
            token_id=document["token"],
            secret=document["secret"],
            fingerprint=document["fingerprint"],
            topic_prefix=document["prefix"],
            ca_der=ca_der,
        )
