"""The systemd notify protocol and a watchdog fed by the control loop, without libsystemd.

Under ``Type=notify`` systemd passes ``$NOTIFY_SOCKET``: a datagram ``AF_UNIX`` socket
(a path, or ``@name`` for the abstract namespace) to which the service sends newline-
separated assignments (``READY=1``, ``STATUS=…``, ``STOPPING=1``, ``WATCHDOG=1``). With
``WatchdogSec=`` set, systemd also passes ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``: the
watchdog is only ours if it names our pid) and restarts the service when no
``WATCHDOG=1`` arrives within that interval. Outside systemd every call is a no-op.

The pings are not sent by a timer that would keep beating while the controller is hung:
:class:`Watchdog` pings at half the interval **only while the control loop's beats are
fresh**. A blocked event loop stops the pinging task with everything else; a control task
that stopped ticking while the loop lives leaves the beats stale, and the pings stop too.
Either way systemd kills (``SIGABRT``: ``faulthandler`` prints every thread's stack to
the journal) and restarts the service, which resumes the run.

The runner's side (see ARCHITECTURE.md, "Deployment")::

    service = Service.from_env(clock)
    watchdog = asyncio.create_task(service.run())
    ...                       # open and verify the instruments
    service.ready("running 20260101T000000Z-rig-01-S07, step 3")
    ...                       # every control tick: service.beat()
    service.stopping("safe state, draining telemetry")
    watchdog.cancel()
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Mapping

from controller.clock import Clock

log = logging.getLogger("heatcycler.service")


def socket_address(value: str) -> str | bytes | None:
    """``$NOTIFY_SOCKET`` as an address for ``sendto``; ``@name`` is the abstract
    namespace (a leading NUL byte). ``None`` when the value is not a unix socket."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # e.g. vsock:… (virtual machines): not for a rig controller


class Notifier:
    """Sends notify messages to ``$NOTIFY_SOCKET``; does nothing when it is not set.

    Sending never blocks the event loop (non-blocking socket) and never raises: a lost
    notification is logged once; the controller must not fail because systemd is busy.
    """

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._target = socket_address(address) if address else None
        self._sock: socket.socket | None = None
        self._warned = False
        self.sent: list[str] = []  # what went out (tests, ``status`` output)
        if address and self._target is None:
            log.warning("NOTIFY_SOCKET=%s is not a unix socket; systemd notify is off", address)

    @property
    def enabled(self) -> bool:
        return self._target is not None

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=value`` assignments in one datagram; True if it went out."""
        if self._target is None or not assignments:
            return False
        message = "\n".join(a.replace("\n", " ") for a in assignments)
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message.encode("utf-8", "replace"), self._target)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("cannot notify systemd at %s: %s", self.address, exc)
            return False
        self.sent.append(message)
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str], pid: int | None = None) -> float | None:
    """The watchdog interval in seconds from ``$WATCHDOG_USEC``, or None (off, or meant
    for another process: ``$WATCHDOG_PID`` names a different pid)."""
    raw = environ.get("WATCHDOG_USEC")
    if not raw:
        return None
    try:
        usec = int(raw)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number; watchdog off", raw)
        return None
    if usec <= 0:
        return None
    owner = environ.get("WATCHDOG_PID")
    if owner:
        try:
            if int(owner) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            return None
    return usec / 1e6


class Watchdog:
    """Pings ``WATCHDOG=1`` every ``interval / 2`` while the control loop's beats are fresh.

    ``stale_after`` (default: half the interval) is how old the last :meth:`beat` may be
    for the loop to count as alive; it must exceed the longest legitimate gap between two
    beats (a control tick plus an instrument timeout), or a healthy run gets restarted.
    """

    def __init__(
        self,
        notifier: Notifier,
        interval: float | None,
        clock: Clock,
        *,
        stale_after: float | None = None,
    ) -> None:
        self.notifier = notifier
        self.interval = interval if notifier.enabled else None
        self.clock = clock
        self.ping_every = self.interval / 2 if self.interval else None
        self.stale_after = stale_after if stale_after is not None else self.ping_every
        self.last_beat: float | None = None
        self.pings = 0
        self.withheld = 0  # pings not sent because the beats had gone stale
        self._stalled = False

    @property
    def enabled(self) -> bool:
        return self.interval is not None

    def beat(self) -> None:
        """The control loop is alive (call every control tick); free when unsupervised."""
        if self.interval is not None:
            self.last_beat = self.clock.now()

    def fresh(self) -> bool:
        if self.last_beat is None or self.stale_after is None:
            return False
        return self.clock.now() - self.last_beat <= self.stale_after

    def ping_if_alive(self) -> bool:
        """One watchdog decision: ping if the beats are fresh; True if pinged."""
        if self.fresh():
            if self._stalled:
                self._stalled = False
                log.warning("control loop beating again; watchdog pings resume")
            self.notifier.send("WATCHDOG=1")
            self.pings += 1
            return True
        if self.last_beat is None:
            return False  # not started yet: READY has not been sent, nothing to judge
        self.withheld += 1
        if not self._stalled:
            self._stalled = True
            age = self.clock.now() - self.last_beat
            log.error(
                "control loop stalled: last beat %.1f s ago (> %.1f s); watchdog pings "
                "withheld, systemd will restart the service",
                age,
                self.stale_after or 0.0,
            )
            self.notifier.send(f"STATUS=control loop stalled for {age:.0f} s")
        return False

    async def run(self) -> None:
        """The pinging task; returns at once when there is no watchdog."""
        if self.ping_every is None:
            return
        while True:
            self.ping_if_alive()
            await self.clock.sleep(self.ping_every)


class Service:
    """What a long-running heatcycler process tells systemd (a no-op outside systemd)."""

    def __init__(self, notifier: Notifier, watchdog: Watchdog) -> None:
        self.notifier = notifier
        self.watchdog = watchdog
        self.is_ready = False
        self.last_status: str | None = None

    @classmethod
    def from_env(
        cls,
        clock: Clock | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        stale_after: float | None = None,
    ) -> Service:
        """From ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID``."""
        env = os.environ if environ is None else environ
        notifier = Notifier(env.get("NOTIFY_SOCKET") or None)
        interval = watchdog_interval(env)
        watchdog = Watchdog(notifier, interval, clock or Clock(), stale_after=stale_after)
        return cls(notifier, watchdog)

    @property
    def supervised(self) -> bool:
        """Whether systemd is listening (``$NOTIFY_SOCKET`` set)."""
        return self.notifier.enabled

    def ready(self, status: str | None = None) -> None:
        """Start-up is complete (instruments verified): systemd's start job succeeds and
        its watchdog starts counting. Counts as a beat."""
        self.watchdog.beat()
        self.is_ready = True
        if status is not None:
            self.last_status = status
            self.notifier.send("READY=1", f"STATUS={status}")
        else:
            self.notifier.send("READY=1")

    def status(self, text: str) -> None:
        """One line for ``systemctl status`` (sent only when it changes)."""
        if text != self.last_status:
            self.last_status = text
            self.notifier.send(f"STATUS={text}")

    def beat(self) -> None:
        self.watchdog.beat()

    def extend_timeout(self, seconds: float) -> None:
        """Ask for more start-up (or shutdown) time than ``TimeoutStartSec=``."""
        self.notifier.send(f"EXTEND_TIMEOUT_USEC={max(1, round(seconds * 1e6))}")

    def stopping(self, status: str | None = None) -> None:
        """Shutdown has begun (safe state, drain): systemd waits ``TimeoutStopSec=``."""
        assignments = ["STOPPING=1"] + ([f"STATUS={status}"] if status else [])
        self.notifier.send(*assignments)

    async def run(self) -> None:
        """The watchdog task (``asyncio.create_task(service.run())``); cancel it at the end."""
        try:
            await self.watchdog.run()
        finally:
            with contextlib.suppress(Exception):
                self.notifier.close()
