"""Waiting on conditions with a deadline: the only way tests wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


def until(
    condition: Callable[[], bool], *, timeout: float, interval: float = 0.02, what: str = "condition"
) -> None:
    """Poll `condition` until it holds; fail the test when `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


async def until_async(
    condition: Callable[[], bool], *, timeout: float, interval: float = 0.02, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def until_checked(
    check: Callable[[], Awaitable[bool]], *, timeout: float, interval: float = 0.05, what: str = "condition"
) -> None:
    """`until_async` for a condition that has to await (read a broker, say)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
