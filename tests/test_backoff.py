import random

from edge_agent.backoff import Backoff


def test_delays_grow_exponentially_within_jitter_and_cap() -> None:
    backoff = Backoff(initial=1.0, maximum=10.0, factor=2.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [1, 2, 4, 8, 10, 10, 10, 10]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays[4:]) > 2  # past the first steps the ceiling is reached, not stuck low


def test_reset_starts_over() -> None:
    backoff = Backoff(initial=1.0, maximum=100.0, rng=random.Random(1))
    for _ in range(6):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_jitter_spreads_a_fleet() -> None:
    delays = {round(Backoff(initial=10.0, rng=random.Random(seed)).next_delay(), 3) for seed in range(50)}
    assert len(delays) > 40
