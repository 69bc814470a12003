"""Recovery times of the fault matrix (docs/reliability.md): measured, printed, never asserted.

A fault test notes how long the fleet took to get back to where it should be
(`record`); the session's terminal summary lists every figure, and with
EDGEFLEET_RECOVERY_JSON set they are also written there as JSON. Tests assert
*that* the fleet recovers, within a generous deadline; how fast is a number
for the document, not a pass/fail line, since a loaded CI machine would make
it flaky.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Recovery:
    fault: str  # the row of the fault matrix
    what: str  # what "recovered" means in this measurement
    seconds: float


RECORDED: list[Recovery] = []


def record(fault: str, what: str, seconds: float) -> None:
    RECORDED.append(Recovery(fault, what, round(seconds, 2)))


@contextmanager
def timed(fault: str, what: str) -> Iterator[None]:
    """Record how long the body takes (it waits for the recovery) if it completes."""
    began = time.monotonic()
    yield
    record(fault, what, time.monotonic() - began)


def report_lines() -> list[str]:
    width = max((len(r.fault) for r in RECORDED), default=0)
    return [f"{r.fault:<{width}}  {r.seconds:7.2f} s  {r.what}" for r in RECORDED]


def write_json() -> None:
    path = os.environ.get("EDGEFLEET_RECOVERY_JSON")
    if path:
        with open(path, "w") as out:
            json.dump([asdict(r) for r in RECORDED], out, indent=1)
