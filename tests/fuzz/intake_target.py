"""atheris target: the controller's status intake (Aggregator.handle, and the socket
splitter in front of it, controller.publishing._ReadAhead) on hostile input.

A finding is an exception out of either, a message that broke `handle` (it logs
one as an error: only WireError is expected), a bad status that was not counted
in `ignored`, or a good status that was not taken afterwards. Three shapes of input,
chosen by the first byte: a topic and a payload; a good status with a stretch of its
JSON replaced; a byte stream as the broker's socket would deliver it.

    python -m tests.fuzz.intake_target -max_total_time=60   (from the repository root)
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys

import atheris

# Coverage from the product's own modules only: instrumenting everything the tests import
# (kubernetes among them) took half a minute before the first input.
with atheris.instrument_imports(include=["wire", "controller"]):
    from controller import aggregating, publishing, readiness_table  # noqa: F401

from tests import test_intake_fuzz as cases  # after the product is instrumented


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.last = self.format(record)


ERRORS = _Errors()
for name in ("controller", "wire"):
    logging.getLogger(name).addHandler(ERRORS)
    logging.getLogger(name).propagate = False

GOOD = json.dumps(cases._document(seq=5)).encode()
TOPICS = [cases.STATUS_TOPIC, cases.PRESENCE_TOPIC, "edge/us-west/bundles/web", "edge/us-west/status/"]


class _Socket:
    def __init__(self, stream: bytes) -> None:
        self.chunks = [stream[at : at + 97] for at in range(0, len(stream), 97)]

    def recv(self, size: int) -> bytes:
        if not self.chunks:
            raise BlockingIOError
        return self.chunks.pop(0)


def one_input(data: bytes) -> None:
    if not data:
        return
    aggregator = cases._aggregator()
    mode, rest = data[0] % 3, data[1:]
    if mode == 2:
        wrapper = publishing._ReadAhead(_Socket(rest), aggregator._intake)  # type: ignore[arg-type]
        while wrapper._sock.chunks or wrapper.pending():  # type: ignore[attr-defined]
            with contextlib.suppress(BlockingIOError):
                wrapper.recv(7)
    else:
        if mode == 0:
            provider = atheris.FuzzedDataProvider(rest)
            topic = TOPICS[data[0] // 3 % len(TOPICS)] + provider.ConsumeUnicodeNoSurrogates(
                provider.ConsumeIntInRange(0, 80)
            )
            payload = provider.ConsumeBytes(provider.remaining_bytes())
        else:
            at = int.from_bytes(rest[:2], "big") % len(GOOD) if len(rest) >= 2 else 0
            cut = rest[2] if len(rest) >= 3 else 0
            topic, payload = cases.STATUS_TOPIC, GOOD[:at] + rest[3:] + GOOD[at + cut :]
        ignored = aggregator.table.ignored
        aggregator.handle(topic, payload)
        if topic == cases.STATUS_TOPIC and not cases._acceptable(payload):
            assert aggregator.table.ignored == ignored + 1, "a bad status was not counted"
    if ERRORS.last is not None:
        raise AssertionError(f"a message broke the controller's handler: {ERRORS.last}")
    cases._takes_a_good_status_afterwards(aggregator)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
