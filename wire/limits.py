"""Size limits of the protocol, one place, each with its reason.

The agent runs on small ARM devices and reads from a broker that any
authenticated client may write to (within its ACL), so every input is capped
before it is parsed and every expansion is capped while it happens.
"""

from __future__ import annotations

from dataclasses import dataclass

# Mosquitto's default message_size_limit is far larger; 4 MiB keeps a retained
# bundle well inside what every broker in the scale path stores comfortably and
# still holds several MiB of manifests (they compress 1.7x for one small app to
# 30x for many similar objects, docs/benchmarks.md).
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024

# Kubernetes itself refuses objects over ~1.5 MiB (etcd's request limit); a
# bundle of many such objects beyond 64 MiB would not fit a Pi's memory budget.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024

# A status document lists at most 10+10 objects per bundle; 256 KiB leaves room
# for hundreds of bundles while bounding what the controller parses per message.
MAX_STATUS_BYTES = 256 * 1024

# DNS-1123 label length: bundle and cluster names become Kubernetes label values.
MAX_NAME_LENGTH = 63

# A group is a topic root of a few levels ("edge/us-west/stores"); 128 bytes
# keeps every derived topic well below MQTT's 65,535-byte topic limit.
MAX_GROUP_LENGTH = 128

# Levels in a group name: deep hierarchies buy nothing and cost subscriptions.
MAX_GROUP_LEVELS = 8


@dataclass(frozen=True)
class Limits:
    """Limits applied while opening an envelope; tests and benches shrink them."""

    max_envelope_bytes: int = MAX_ENVELOPE_BYTES
    max_manifest_bytes: int = MAX_MANIFEST_BYTES


DEFAULT = Limits()

# Nesting of a manifest value: CRD OpenAPI schemas run ~40 levels deep; 100
# leaves room and keeps recursive walks far from Python's recursion limit.
MAX_DEPTH = 100
