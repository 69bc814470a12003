"""Fault injection: make chosen requests fail or stall, as a flaky apiserver would.

A fault applies to the next `times` requests that match it (method and a
substring of the request target, path plus query, both optional). Faults are
consumed in the order they were injected; a matching request consumes one use
of the first live fault only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    """What to do to matching requests: delay them `delay` seconds, then fail them with `status` (if set)."""

    status: int | None = 500
    delay: float = 0.0
    times: int = 1
    method: str | None = None
    path_contains: str | None = None
    message: str = "injected fault"

    @classmethod
    def error(
        cls,
        status: int = 500,
        *,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
        message: str = "injected fault",
    ) -> Fault:
        return cls(status=status, times=times, method=method, path_contains=path_contains, message=message)

    @classmethod
    def slow(
        cls, seconds: float, *, times: int = 1, method: str | None = None, path_contains: str | None = None
    ) -> Fault:
        return cls(status=None, delay=seconds, times=times, method=method, path_contains=path_contains)

    def matches(self, method: str, target: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains is None or self.path_contains in target


class Armed:
    """An injected fault and how many uses it has left."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self._remaining = fault.times
        self._lock = threading.Lock()

    @property
    def remaining(self) -> int:
        with self._lock:
            return self._remaining

    def _consume(self) -> bool:
        with self._lock:
            if self._remaining <= 0:
                return False
            self._remaining -= 1
            return True


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[Armed] = []

    def inject(self, fault: Fault) -> Armed:
        armed = Armed(fault)
        with self._lock:
            self._armed.append(armed)
        return armed

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def take(self, method: str, target: str) -> Fault | None:
        """The fault this request suffers, if any, using it up."""
        with self._lock:
            for armed in self._armed:
                if armed.fault.matches(method, target) and armed._consume():
                    return armed.fault
            self._armed = [armed for armed in self._armed if armed.remaining > 0]
        return None
