"""Real processes for tests (agents, controllers, `edgefleet apply`): output to a log,
always stopped when the block ends, so no test leaves one behind."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

# A process asked to stop (SIGTERM) gets this long before it is killed.
STOP_TIMEOUT = 20.0


@contextlib.contextmanager
def running(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`argv` running, its output appended to `log` (a restarted process writes on); stopped
    when the block ends (`stop`). A test that kills it itself may."""
    with log.open("ab") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
