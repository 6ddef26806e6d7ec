"""Background loops stop at shutdown even when one swallows a cancellation."""

from __future__ import annotations

import asyncio

from bot.app import stop_tasks


async def test_a_loop_that_swallows_its_first_cancel_is_still_stopped():
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed == 0:  # what asyncio.wait_for can do on Python 3.11
                    swallowed += 1
                    continue
                raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0.02)
    await asyncio.wait_for(stop_tasks([task]), timeout=5)
    assert task.cancelled() and swallowed == 1
