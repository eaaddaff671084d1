"""Blocking instrument I/O off the event loop: one worker thread and one lock per instrument.

pyvisa and pyserial block. :class:`WorkerTransport` runs every blocking call on the
instrument's own single worker thread under the instrument's own asyncio lock, so calls
never interleave on the wire and the loop keeps running (a 1 s PID task stays on time
while samples stream). Every call has two timeouts: the library's own (pyvisa's
``timeout`` in ms, pyserial's ``timeout``), which normally fires, and an asyncio guard a
little later, for a library call that hangs anyway.

Cancellation safety: if the awaiting task is cancelled (or the guard fires) while the
worker is still blocked, the lock is *not* released until the worker returns; whatever
the worker then reads is discarded, and the link is marked ``desynced`` so that the next
request resynchronises first. A late reply can therefore never be taken as the answer to
the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from drivers.base import InstrumentTimeout, LinkLost
from drivers.transport import Transport

T = TypeVar("T")

#: how much longer than the library's own timeout the asyncio guard waits, s
GUARD = 1.0


class WorkerTransport(Transport):
    """The worker/lock/timeout machinery shared by the VISA and serial transports."""

    def __init__(self, name: str, timeout: float, guard: float = GUARD) -> None:
        if not timeout > 0:
            raise ValueError("a transport's timeout must be positive")
        self.name = name
        self.timeout = timeout
        self.guard = guard
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"io {name}")
        self._lock = asyncio.Lock()
        self._closed = False
        #: replies read after their caller gave up (timeout, cancellation), then dropped
        self.discarded = 0

    @property
    def closed(self) -> bool:
        return self._closed

    async def _call(self, fn: Callable[[], T], timeout: float) -> T:
        """Run ``fn`` on the worker under the lock, guarded by ``timeout`` + ``guard``."""
        if self._closed:
            raise LinkLost(f"{self.name}: transport is closed", "reopen the instrument")
        loop = asyncio.get_running_loop()
        await self._lock.acquire()
        handed_over = False
        try:
            future = loop.run_in_executor(self._executor, fn)
            try:
                return await asyncio.wait_for(asyncio.shield(future), timeout + self.guard)
            except TimeoutError:
                handed_over = self._hand_over(future)
                self.desynced = True
                raise InstrumentTimeout(
                    f"{self.name}: the I/O call did not return within {timeout + self.guard:g} s",
                    "the driver library hangs: check the link; the instrument is resynchronised "
                    "before the next request",
                ) from None
            except asyncio.CancelledError:
                handed_over = self._hand_over(future)
                if handed_over:
                    self.desynced = True
                raise
            except InstrumentTimeout:
                self.desynced = True
                raise
        finally:
            if not handed_over:
                self._lock.release()

    def _hand_over(self, future: asyncio.Future[T]) -> bool:
        """If the worker is still busy, let it release the lock when it returns."""
        if future.done():
            if not future.cancelled():
                future.exception()  # retrieved: no "never retrieved" warning
            return False

        def release(done: asyncio.Future[T]) -> None:
            if not done.cancelled() and done.exception() is None:
                self.discarded += 1  # a late reply nobody waits for any more
            self._lock.release()

        future.add_done_callback(release)
        return True

    async def close(self) -> None:
        """Close the link after any call in flight (bounded by its guard), then the worker."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._close_blocking)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(future), self.timeout + 2 * self.guard)
        self._executor.shutdown(wait=False)

    def _close_blocking(self) -> None:
        raise NotImplementedError
