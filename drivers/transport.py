"""How drivers reach instruments: one line out, one line back.

A :class:`Transport` sends a request line and returns the reply line, with a timeout on
every call, and raises the typed errors of :mod:`drivers.base` (``InstrumentTimeout``,
``LinkLost``). Real transports (pyvisa, pyserial; ``drivers/visa_transport.py`` and
``drivers/serial_transport.py``) run their blocking calls on one worker thread per
instrument under one lock. :class:`InProcessTransport` hands the same bytes to a
:class:`LineDevice` (the software rig's firmware) for fast virtual-time runs; it uses no
thread, so virtual time stays deterministic.
"""

from __future__ import annotations

import abc
import asyncio
from typing import Protocol

from drivers.base import GarbledReply, InstrumentTimeout, LinkLost


class LineDevice(Protocol):
    """An instrument firmware that takes one request line and returns its reply.

    ``handle`` gets the request without its line terminator and returns the reply line
    without terminator, or ``None`` when the request has no reply (an SCPI command
    without a query) or when the firmware stays silent (an injected timeout). A link that
    is gone raises ``ConnectionError``.
    """

    def handle(self, line: bytes) -> bytes | None: ...


class Transport(abc.ABC):
    """A line-oriented link to one instrument."""

    #: what the link is, for messages: a VISA resource string, a serial device path…
    name: str = "?"
    #: the default per-call timeout, s
    timeout: float = 2.0
    #: set when a request ended without its reply (a timeout, a cancelled call, a reply
    #: that made no sense): a late reply may still be on its way, so the driver must
    #: :meth:`resync` before its next request or it would read that reply as the answer
    desynced: bool = False

    @abc.abstractmethod
    async def query(self, line: str, timeout: float | None = None) -> str:
        """Send ``line`` and return the reply line (without terminator)."""

    @abc.abstractmethod
    async def write(self, line: str, timeout: float | None = None) -> None:
        """Send ``line``; no reply is expected."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def resync(self, marker: str, expect: str, timeout: float | None = None) -> int:
        """Send ``marker`` (a query with a known reply) and drop every line until the reply
        that starts with ``expect``; returns how many stale lines were dropped.

        This default suits links that hold no late replies (one query); the real
        transports override it to read on until the marker's reply comes.
        """
        reply = await self.query(marker, timeout)
        if not reply.startswith(expect):
            self.desynced = True
            raise GarbledReply(
                f"{self.name}: resynchronising: {marker!r} answered {reply!r}",
                "is this the expected instrument, in its expected mode?",
            )
        self.desynced = False
        return 0


class InProcessTransport(Transport):
    """The bytes of a real link, handed to an in-process firmware: no socket, no thread."""

    def __init__(self, device: LineDevice, *, name: str = "sim", timeout: float = 2.0) -> None:
        self.device = device
        self.name = name
        self.timeout = timeout
        self._closed = False
        self._encoded = ("", b"")  # the last line sent and its bytes (mostly :READ?)

    def _send(self, line: str) -> bytes | None:
        if self._closed:
            raise LinkLost(f"{self.name}: transport is closed", "reopen the instrument")
        try:
            return self.device.handle(line.encode("ascii"))
        except ConnectionError as exc:
            raise LinkLost(
                f"{self.name}: link lost ({exc})", "check the cable / USB connection"
            ) from exc

    async def query(self, line: str, timeout: float | None = None) -> str:
        # ``_send`` inlined: a virtual campaign makes millions of these calls
        if self._closed:
            raise LinkLost(f"{self.name}: transport is closed", "reopen the instrument")
        last, data = self._encoded
        if line is not last:
            data = line.encode("ascii")
            self._encoded = (line, data)
        try:
            reply = self.device.handle(data)
        except ConnectionError as exc:
            raise LinkLost(
                f"{self.name}: link lost ({exc})", "check the cable / USB connection"
            ) from exc
        if reply is None:
            wait = self.timeout if timeout is None else timeout
            await asyncio.sleep(wait)  # a silent instrument costs its timeout (virtual: free)
            self.desynced = True  # nothing can be late in process, but drivers resync alike
            raise InstrumentTimeout(
                f"{self.name}: no reply to {line!r} within {wait:g} s",
                "check that the instrument is on and in the expected mode",
            )
        return reply.decode("ascii", errors="replace")

    async def write(self, line: str, timeout: float | None = None) -> None:
        self._send(line)

    async def close(self) -> None:
        self._closed = True
