"""One error tree for everything that crosses the broker.

    WireError                      anything received that must not be used
    ├── InvalidName                a group, bundle or cluster name or topic we refuse
    ├── TooLarge                   over a size limit before or after decompression
    │   └── DecompressionBomb      the body inflates past the output cap
    ├── Malformed                  not the shape the protocol defines
    │   ├── Truncated              the bytes stop before the structure ends
    │   ├── TrailingData           bytes after the structure ends
    │   ├── BadKey                 not an Ed25519 key in the expected encoding
    │   └── IntegrityMismatch      content does not hash to the id it claims
    ├── UnsupportedVersion         a format version or codec this build does not speak
    ├── UnknownKey                 signed by a key id we do not trust
    ├── BadSignature               the signature does not verify
    ├── WrongBinding               valid, but for another group or bundle than its topic
    └── Replayed                   older generation than the one already applied

Callers catch `WireError` to log, count and report; the subclasses exist so
status can say precisely why something was refused and tests can pin it.
"""

from __future__ import annotations


class WireError(Exception):
    """Something received from the broker that must not be used."""


class InvalidName(WireError):
    """A group, bundle, cluster name or topic that the protocol does not allow."""


class TooLarge(WireError):
    """Input or output over a protocol size limit."""


class DecompressionBomb(TooLarge):
    """The compressed body would inflate beyond the decompressed-size cap."""


class Malformed(WireError):
    """Bytes or values that are not the structure the protocol defines."""


class Truncated(Malformed):
    """The input ends before the structure it starts is complete."""


class TrailingData(Malformed):
    """Bytes follow a complete structure; a sealed message has none."""


class BadKey(Malformed):
    """Key material that is not an Ed25519 key in the expected encoding."""


class IntegrityMismatch(Malformed):
    """Content does not hash to the identifier that it carries."""


class UnsupportedVersion(WireError):
    """A format version or codec that this build does not implement."""


class UnknownKey(WireError):
    """The envelope names a signing key that is not in the trusted set."""


class BadSignature(WireError):
    """The signature does not verify under the named trusted key."""


class WrongBinding(WireError):
    """A valid manifest that arrived on a topic of another group or bundle."""


class Replayed(WireError):
    """A manifest older than the generation already applied."""
