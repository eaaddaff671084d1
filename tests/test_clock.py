"""The one clock: virtual time jumps to the next timer; threads freeze it."""

from __future__ import annotations

import asyncio
import time

from controller.clock import Clock, Periodic, VirtualTimeLoop, run


def test_virtual_time_runs_hours_in_milliseconds() -> None:
    async def main() -> float:
        clock = Clock()
        await clock.sleep(3600 * 150)
        return clock.now()

    wall = time.perf_counter()
    assert run(main, virtual=True) == 3600 * 150
    assert time.perf_counter() - wall < 1.0


def test_periodic_ticks_do_not_drift_and_skip_missed_ticks() -> None:
    async def main() -> tuple[list[float], int]:
        clock = Clock()
        ticker = Periodic(clock, 1.0, start=0.0)
        ticks = [await ticker.tick() for _ in range(3)]
        await clock.sleep(3.5)  # a stall until 5.5: ticks 3 and 4 are missed, not made up
        ticks.append(await ticker.tick())  # tick 5 fires late, at once
        ticks.append(await ticker.tick())
        return ticks, ticker.missed

    ticks, missed = run(main, virtual=True)
    assert ticks == [0.0, 1.0, 2.0, 5.0, 6.0]
    assert missed == 2


def test_virtual_time_stands_still_while_a_worker_thread_runs() -> None:
    async def main() -> tuple[float, float]:
        clock = Clock()
        timer = asyncio.create_task(clock.sleep(10.0))
        before = clock.now()
        await asyncio.to_thread(time.sleep, 0.05)
        during = clock.now() - before
        await timer
        return during, clock.now()

    during, end = run(main, virtual=True)
    assert during == 0.0
    assert end == 10.0


def test_unix_time_follows_virtual_time() -> None:
    async def main() -> float:
        clock = Clock()
        start = clock.unix()
        await clock.sleep(60)
        return clock.unix() - start

    assert run(main, virtual=True) == 60.0
    assert isinstance(VirtualTimeLoop().time(), float)
