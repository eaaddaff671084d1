"""The runner's integration point: ``Telemetry``.

Usage in ``heatcycler run`` (and ``resume``)::

    telemetry = Telemetry(rig, args.mqtt, journal.path, runner)   # UserError on bad config
    task = asyncio.create_task(telemetry.run())                    # says "journal-only" once
    ...                                                            # the run
    await journal.flush()                                          # everything committed
    remaining = await telemetry.drain()   # ≤ mqtt.drain_timeout; 0, or what goes next time
    await task

The publisher runs on **its own thread with its own real-time event loop**. The control
loop never waits for the network, for TLS handshakes, for SQLite reads of the journal or
for the cursor commits; ``--sim`` runs in virtual time (``VirtualTimeLoop``) keep their
pace and determinism (only a remote command changes a run), while MQTT keepalives,
timeouts and backoff stay in real seconds. Remote
commands cross back to the control loop with ``run_coroutine_threadsafe``: the runner's
``RunControl`` methods always run on the runner's own loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from controller.control import RunControl
from controller.rig import RigConfig
from controller.telemetry.feed import pending
from controller.telemetry.settings import JOURNAL_ONLY, broker_from, mqtt_config

log = logging.getLogger("heatcycler.telemetry")

T = TypeVar("T")

#: extra real seconds ``drain`` waits beyond its timeout for the final status and the
#: clean disconnect before it stops waiting for the telemetry thread
DRAIN_GRACE = 5.0


def software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("heatcycler")
    except PackageNotFoundError:
        return "0+unknown"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class LoopBridge:
    """``RunControl`` on the control loop, awaited from the telemetry loop.

    Cancellation does not cross: if a command times out on the telemetry side, the
    runner's pause/abort still completes on its own loop (never half-done).
    """

    def __init__(self, control: RunControl, loop: asyncio.AbstractEventLoop) -> None:
        self.control = control
        self.loop = loop

    async def _on_control_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError:  # the control loop has closed: the run is over
            coro.close()
            from controller.control import CommandRefused

            raise CommandRefused("the run has ended") from None
        return await asyncio.shield(asyncio.wrap_future(future))

    async def status(self) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            return self.control.status()

        return await self._on_control_loop(call())

    async def pause(self, *, source: str) -> str:
        return await self._on_control_loop(self.control.pause(source=source))

    async def resume(self, *, source: str) -> str:
        return await self._on_control_loop(self.control.resume(source=source))

    async def abort(self, *, source: str, reason: str) -> str:
        return await self._on_control_loop(self.control.abort(source=source, reason=reason))


class Telemetry:
    """MQTT telemetry and remote control for one run.

    ``rig``: the rig configuration (its ``mqtt`` section, id and data directory);
    ``mqtt_url``: ``--mqtt URL`` (``None``: the rig file's broker; ``"off"``: none);
    ``journal_path``: the run's journal; ``control``: the runner (``RunControl``), or
    ``None`` to publish without accepting commands' effects (they are refused).

    Construction checks the configuration and reads the secrets (raises ``UserError``),
    so call it before anything is energised.
    """

    def __init__(
        self,
        rig: RigConfig,
        mqtt_url: str | None,
        journal_path: Path | None,
        control: RunControl | None,
        *,
        notice: Callable[[str], None] | None = None,
        include_backlog: bool = True,
        poll: float = 0.2,
        reconnect_min: float = 0.5,
    ) -> None:
        self.rig = rig
        self.config = mqtt_config(rig, mqtt_url)
        self.broker = broker_from(self.config) if self.config is not None else None
        self.journal_path = Path(journal_path) if journal_path is not None else None
        self.control = control
        self.notice = notice or _stderr
        self.include_backlog = include_backlog
        self.poll = poll
        self.reconnect_min = reconnect_min
        self.version = software_version()
        self.publisher: Any = None  # a Publisher, owned by the telemetry thread
        self._thread: threading.Thread | None = None
        self._tloop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._queued: list[Callable[[Any], None]] = []
        self._done: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._said_journal_only = False

    @property
    def enabled(self) -> bool:
        return self.broker is not None

    @property
    def connected(self) -> bool:
        pub = self.publisher
        return bool(pub is not None and pub.connected.is_set())

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the telemetry thread (idempotent); journal-only runs say so once."""
        if not self.enabled:
            if not self._said_journal_only:
                self._said_journal_only = True
                self.notice(JOURNAL_ONLY)
            return
        if self._thread is not None:
            return
        if self.journal_path is not None and not self.journal_path.exists():
            raise FileNotFoundError(
                f"journal {self.journal_path} does not exist: create it before telemetry starts"
            )
        control_loop = asyncio.get_running_loop() if self.control is not None else None
        self._thread = threading.Thread(
            target=self._thread_main, args=(control_loop,), name="telemetry", daemon=True
        )
        self._thread.start()

    async def run(self) -> None:
        """Publish until :meth:`drain` or :meth:`stop`; returns at once when journal-only.

        Cancelling it stops the publisher (final offline status, no drain).
        """
        self.start()
        if not self.enabled:
            return
        try:
            await asyncio.wrap_future(self._done)
        except asyncio.CancelledError:
            self._call(lambda pub: pub.request_stop())
            raise
        except Exception as exc:  # telemetry never ends a run: the journal has everything
            self.notice(f"telemetry stopped: {type(exc).__name__}: {exc}; the journal keeps all")

    async def drain(self, timeout: float | None = None) -> int:  # noqa: ASYNC109 (real time)
        """Publish what is left in the journal, then stop; at most ``timeout`` seconds
        (default: ``mqtt.drain_timeout``). Returns the number of samples still unpublished
        (0 when everything went out) and says so when it is not 0 — they go out on the
        next start. Call it after the journal was flushed or closed.
        """
        if not self.enabled:
            return 0
        assert self.config is not None
        wait = self.config.drain_timeout if timeout is None else timeout
        self.start()
        self._call(lambda pub: pub.request_drain(wait))
        remaining = await self._wait_done(wait + DRAIN_GRACE)
        if remaining:
            self.notice(
                f"telemetry: {remaining} samples remain unpublished (broker "
                f"{self.broker.url if self.broker else '?'}); they are in the journal and go "
                "out on the next start"
            )
        return remaining

    async def stop(self) -> int:
        """Stop without draining (final offline status, clean disconnect)."""
        if not self.enabled or self._thread is None:
            return self._count_remaining()
        self._call(lambda pub: pub.request_stop())
        return await self._wait_done(DRAIN_GRACE + 10.0)

    def wake(self) -> None:
        """Optional: tell the publisher new rows were committed (lower latency than poll)."""
        self._call(lambda pub: pub.wake())

    # -- internals --------------------------------------------------------------------

    def _call(self, fn: Callable[[Any], None]) -> None:
        """Run ``fn(publisher)`` on the telemetry loop (queued until the publisher exists)."""
        with self._lock:
            loop, pub = self._tloop, self.publisher
            if loop is None or pub is None:
                self._queued.append(fn)
                return
        with contextlib.suppress(RuntimeError):  # the telemetry loop already finished
            loop.call_soon_threadsafe(fn, pub)

    async def _wait_done(self, seconds: float) -> int:
        """Wait in real time for the telemetry thread (virtual time is not involved)."""
        try:
            return await asyncio.wrap_future(self._done_future(seconds))
        except TimeoutError:
            log.warning("telemetry thread did not finish in %.0f s", seconds)
        except Exception as exc:
            log.warning("telemetry thread failed: %s", exc)
        return self._count_remaining()

    def _done_future(self, timeout: float) -> concurrent.futures.Future[int]:
        """A future that resolves with the result, or with TimeoutError after ``timeout``
        real seconds (a timer thread, so that a virtual-time loop cannot skip it)."""
        out: concurrent.futures.Future[int] = concurrent.futures.Future()

        def expire() -> None:
            if not out.done():
                out.set_exception(TimeoutError())

        timer = threading.Timer(timeout, expire)
        timer.daemon = True

        def relay(done: concurrent.futures.Future[int]) -> None:
            timer.cancel()
            if out.done():
                return
            if done.exception() is not None:
                out.set_exception(done.exception())
            else:
                out.set_result(done.result())

        self._done.add_done_callback(relay)
        timer.start()
        return out

    def _count_remaining(self) -> int:
        paths = [self.journal_path] if self.journal_path is not None else []
        total = 0
        for path in paths:
            try:
                total += pending(path)[0]
            except Exception as exc:
                log.warning("cannot count unpublished samples in %s: %s", path, exc)
        return total

    def _thread_main(self, control_loop: asyncio.AbstractEventLoop | None) -> None:
        try:
            remaining = asyncio.run(self._main(control_loop))
        except BaseException as exc:  # never let the thread die silently
            log.exception("telemetry thread failed")
            if not self._done.done():
                self._done.set_exception(exc)
            return
        if not self._done.done():
            self._done.set_result(remaining)

    async def _main(self, control_loop: asyncio.AbstractEventLoop | None) -> int:
        from controller.telemetry.publisher import Publisher

        assert self.broker is not None
        assert self.config is not None
        bridge = (
            LoopBridge(self.control, control_loop)
            if self.control is not None and control_loop is not None
            else None
        )
        pub = Publisher(
            self.broker,
            self.config,
            self.rig.rig,
            journal=self.journal_path,
            data_dir=self.rig.data_dir if self.include_backlog else None,
            run=bridge,
            notice=self.notice,
            version=self.version,
            poll=self.poll,
            reconnect_min=self.reconnect_min,
        )
        with self._lock:
            self._tloop = asyncio.get_running_loop()
            self.publisher = pub
            queued, self._queued = self._queued, []
        for fn in queued:
            fn(pub)
        await pub.run_forever()
        return pub.final_remaining
