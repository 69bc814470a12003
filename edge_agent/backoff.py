"""Exponential backoff with full jitter: the one schedule for every retry.

Used for broker reconnects and for transient apply failures, so a thousand
devices that lost the same broker do not come back in lockstep. Pure: the
random source is passed in, so tests pin the schedule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    # First retry within a second: most link drops and API hiccups are short.
    initial: float = 1.0
    # Five minutes at most: a device that lost its broker still notices it is back soon.
    maximum: float = 300.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt: uniform in [0, min(max, initial*factor^n)]."""
        ceiling = min(self.maximum, self.initial * self.factor**self.attempts)
        self.attempts += 1
        return self.rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempts = 0
