"""Join tokens and broker secrets: creation, hashing and the checks, all pure.

A token lets a device ask to join one group: reusable until it expires, is
revoked, or (with `--max-uses`) runs out. Only a SHA-256 of each secret is
stored. Every secret here is 256 random bits, never a password a person
chose, so a fast hash is as strong as a slow one (nothing to guess) and the
broker can check one on every connect of a 1,000-device join storm.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from controller import errors
from wire import registration

# A week, as Fleet's registration tokens: long enough to image a batch of devices.
DEFAULT_TTL = 7 * 24 * 3600.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


INVALID = "the join token is not valid (unknown, or its secret is wrong)"


class Approval(enum.Enum):
    AUTO = "auto"
    MANUAL = "manual"


@dataclass(frozen=True)
class Token:
    id: str
    secret_hash: str
    group: str
    expires_at: float
    created_at: float
    approval: Approval = Approval.AUTO
    labels: Mapping[str, str] = field(default_factory=dict)
    max_uses: int | None = None
    uses: int = 0
    revoked_at: float | None = None

    @property
    def username(self) -> str:
        """The bootstrap broker account this token stands for."""
        return registration.bootstrap_username(self.id)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def new_id() -> str:
    return secrets.token_hex(8)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def parse_duration(text: str) -> float:
    """`168h`, `7d`, `30m`, `1w2d`... into seconds; ControllerError for anything else."""
    total, position = 0.0, 0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text) or total <= 0:
        raise errors.ControllerError(f"duration {text!r}: use a number and a unit (s, m, h, d, w), e.g. 168h")
    return total


def lapsed(token: Token, now: float) -> str | None:
    """Why `token` no longer counts at all (revoked, expired), or None."""
    if token.revoked_at is not None:
        return f"join token {token.id} was revoked"
    if now >= token.expires_at:
        return f"join token {token.id} has expired"
    return None


def refusal(token: Token | None, secret: str, now: float) -> str | None:
    """Why `secret` may not be used to join now, or None when it may."""
    if token is None or not secret_matches(secret, token.secret_hash):
        return INVALID
    if (why := lapsed(token, now)) is not None:
        return why
    if token.max_uses is not None and token.uses >= token.max_uses:
        return f"join token {token.id} is used up ({token.uses} of {token.max_uses} uses)"
    return None
