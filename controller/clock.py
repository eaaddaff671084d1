"""The one clock of the controller, and virtual time.

Control code never calls ``time.time()``/``time.sleep()``: it asks a :class:`Clock`, which
reads the running event loop's clock. Real runs use asyncio's monotonic clock; tests and
``--sim`` campaigns run the same code on a :class:`VirtualTimeLoop`, whose clock jumps to
the next timer whenever nothing is ready, so a 150-hour campaign takes seconds and is
deterministic for a given seed.

Worker threads in virtual time: while a ``run_in_executor`` job is in flight, virtual time
stands still and the loop waits for it in real time, so thread timing cannot leak into the
(virtual) timeline.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from typing import Any, TypeVar

T = TypeVar("T")

#: 2026-01-01T00:00:00Z: where virtual runs start their unix clock unless told otherwise.
VIRTUAL_EPOCH = 1_767_225_600.0


#: with only the loop's own wake-up pipe registered, a virtual loop looks at it at most
#: this often (s of wall time): the pipe carries signals (``add_signal_handler``) and the
#: wake-ups of ``call_soon_threadsafe``, whose callbacks are queued before the pipe is
#: written, so nothing waits on the poll but a signal — for at most this long
PIPE_POLL = 1e-3


class _VirtualSelector(selectors.DefaultSelector):
    """A selector that, instead of waiting for a timer, jumps the virtual clock to it."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None
        self._poll_after = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self.loop
        if (
            timeout is not None
            and loop is not None
            and not loop.threads_in_flight
            and len(self._fd_to_key) <= 1  # type: ignore[attr-defined]
        ):
            # Timers or ready callbacks only, and no I/O of anyone's but the loop's own
            # pipe: a poll (a system call) per iteration would be most of a virtual
            # second's cost, so the pipe is polled on a wall-clock schedule instead.
            wall = time.monotonic()
            if wall < self._poll_after:
                if timeout > 0:
                    loop.advance(timeout)
                return []
            self._poll_after = wall + PIPE_POLL
        ready = super().select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        if timeout is None or (loop is not None and loop.threads_in_flight):
            # Nothing scheduled (only I/O or threads can wake us), or a worker thread is
            # busy: wait in real time without moving the virtual clock.
            return super().select(None if timeout is None else 0.05)
        assert loop is not None
        loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time: ``time()`` only moves when everything waits."""

    def __init__(self, start: float = 0.0, unix_epoch: float = VIRTUAL_EPOCH) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self._now = start
        self.unix_epoch = unix_epoch - start
        self.threads_in_flight = 0

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def run_in_executor(  # type: ignore[override]
        self, executor: Executor | None, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self.threads_in_flight += 1

        def done(_: asyncio.Future[T]) -> None:
            self.threads_in_flight -= 1

        future.add_done_callback(done)
        return future


class Clock:
    """Monotonic seconds from the running loop, plus the unix time that goes with them."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop or asyncio.get_running_loop()

    @property
    def virtual(self) -> bool:
        return isinstance(self.loop, VirtualTimeLoop)

    def now(self) -> float:
        """Monotonic seconds (the event loop's clock)."""
        return (self._loop or asyncio.get_running_loop()).time()

    def unix(self) -> float:
        """Unix time of ``now()``; virtual runs count from their epoch."""
        loop = self.loop
        if isinstance(loop, VirtualTimeLoop):
            return loop.unix_epoch + loop.time()
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - self.now()))


class Periodic:
    """Fixed-rate ticks without drift: tick n fires at start + n·period.

    A late tick is not made up by a burst: if a tick is missed entirely, the schedule
    skips ahead (and ``missed`` counts it), as a control loop must.
    """

    def __init__(self, clock: Clock, period: float, start: float | None = None) -> None:
        if period <= 0:
            raise ValueError("period must be positive")
        self.clock = clock
        self.period = period
        self.next = clock.now() if start is None else start
        self.missed = 0

    async def tick(self) -> float:
        """Wait for the next tick; returns its scheduled time."""
        clock = self.clock
        loop = clock._loop or asyncio.get_running_loop()
        now = loop.time()
        if now > self.next + self.period:
            skipped = int((now - self.next) // self.period)
            self.missed += skipped
            self.next += skipped * self.period
        scheduled = self.next
        delay = scheduled - now
        if delay > 0:
            # clock.sleep_until(scheduled) without its two layers (asyncio.sleep's timer,
            # set at the same instant: now + delay, as call_later computes it)
            wake: asyncio.Future[None] = asyncio.Future(loop=loop)  # what create_future does
            timer = loop.call_at(now + delay, _wake, wake)
            try:
                await wake
            except BaseException:  # cancelled: the timer has not fired
                timer.cancel()
                raise
        else:
            await asyncio.sleep(0)
        self.next = scheduled + self.period
        return scheduled


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def run(
    main: Callable[[], Coroutine[Any, Any, T]] | Coroutine[Any, Any, T],
    *,
    virtual: bool,
    debug: bool = False,
) -> T:
    """Run a coroutine on a fresh loop, virtual or real."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = VirtualTimeLoop if virtual else None
    coro = main() if callable(main) else main
    with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
        return runner.run(coro)
