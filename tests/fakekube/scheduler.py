"""One timer thread for everything the simulated cluster does "later".

Controllers never sleep: they schedule a call at a deadline, and this thread
runs calls in deadline order. Stopping wakes the thread at once, so a cluster
stops in milliseconds however long its pending delays are.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self) -> None:
        self._wakeup = threading.Condition()
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()  # ties run in scheduling order
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="fakekube-controllers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wakeup:
            self._stopped = True
            self._wakeup.notify()
        self._thread.join()

    def call_later(self, delay: float, call: Callable[[], None]) -> None:
        with self._wakeup:
            heapq.heappush(self._queue, (time.monotonic() + max(delay, 0.0), next(self._order), call))
            self._wakeup.notify()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._stopped:
                    wait = self._queue[0][0] - time.monotonic() if self._queue else None
                    if wait is not None and wait <= 0:
                        break
                    self._wakeup.wait(wait)
                if self._stopped:
                    return
                _, _, call = heapq.heappop(self._queue)
            try:
                call()
            except Exception:
                log.exception("simulated controller failed")
