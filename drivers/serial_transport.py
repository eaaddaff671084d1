"""The heater board's serial port (pyserial), off the event loop.

``SerialTransport.open(port, baudrate=115200, timeout=0.5)`` opens the port exclusively
(``flock``: a second heatcycler on the same board is refused, not interleaved) on the
board's own worker thread (:mod:`drivers.worker`). Lines end with ``\\n``; a line not
complete within the call's timeout is an :class:`InstrumentTimeout`.

A USB serial adapter that is pulled shows up as ``EIO``/``ENXIO``/``ENODEV`` on read or
write (pyserial's ``SerialException``), as a port that is "ready" but reads nothing, or
as a device node that is gone: all of them are :class:`LinkLost` at once — never a hang,
never a retry on a dead file descriptor.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from drivers.base import GarbledReply, InstrumentError, InstrumentTimeout, LinkLost
from drivers.worker import GUARD, WorkerTransport

#: a reply line longer than this is noise, not the board
MAX_LINE = 4096
#: the longest run of stale lines a resync drops before giving up
RESYNC_MAX_LINES = 100

_GONE_HINT = "the board's USB serial link is gone: check the cable and the port (heater.port)"


class SerialTransport(WorkerTransport):
    """One serial port: one worker thread, one lock, a timeout on every call."""

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 115200,
        timeout: float = 0.5,
        name: str | None = None,
        guard: float = GUARD,
    ) -> None:
        super().__init__(name or port, timeout, guard)
        self.port = port
        self.baudrate = baudrate
        self._serial: Any = None
        self._buffer = bytearray()

    @classmethod
    async def open(
        cls,
        port: str,
        *,
        baudrate: int = 115200,
        timeout: float = 0.5,
        name: str | None = None,
        guard: float = GUARD,
    ) -> SerialTransport:
        transport = cls(port, baudrate=baudrate, timeout=timeout, name=name, guard=guard)
        try:
            await transport._call(transport._open_blocking, timeout)
        except BaseException:
            await transport.close()
            raise
        return transport

    # -- the calls ----------------------------------------------------------------

    async def query(self, line: str, timeout: float | None = None) -> str:
        wait = self.timeout if timeout is None else timeout
        return await self._call(lambda: self._query_blocking(line, wait), wait)

    async def write(self, line: str, timeout: float | None = None) -> None:
        wait = self.timeout if timeout is None else timeout
        await self._call(lambda: self._write_blocking(line), wait)

    async def resync(self, marker: str, expect: str, timeout: float | None = None) -> int:
        """Drop what has arrived, send an empty line (ends any half line the board holds)
        and the marker, and drop lines until the marker's reply."""
        wait = self.timeout if timeout is None else timeout
        dropped = await self._call(lambda: self._resync_blocking(marker, expect, wait), wait)
        self.discarded += dropped
        self.desynced = False
        return dropped

    # -- on the worker thread --------------------------------------------------------

    def _open_blocking(self) -> None:
        import serial

        port = serial.Serial(
            port=None,
            baudrate=self.baudrate,
            timeout=self.timeout,
            write_timeout=self.timeout,
            exclusive=True,
        )
        port.port = self.port
        try:
            port.open()
        except serial.SerialException as exc:
            if "exclusively lock" in str(exc):
                raise InstrumentError(
                    f"{self.name}: the port is in use by another program",
                    "is another heatcycler (or a terminal program) using the heater board?",
                ) from exc
            raise LinkLost(f"{self.name}: cannot open: {exc}", _GONE_HINT) from exc
        self._serial = port
        self._buffer.clear()

    def _write_blocking(self, line: str) -> None:
        import serial

        try:
            self._serial.write(line.encode("ascii") + b"\n")
        except serial.SerialTimeoutException as exc:
            raise InstrumentTimeout(f"{self.name}: write of {line!r} timed out") from exc
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"{self.name}: {exc}", _GONE_HINT) from exc

    def _readline(self, request: str, deadline: float) -> str:
        import serial

        buffer = self._buffer
        port = self._serial
        while (end := buffer.find(b"\n")) < 0:
            if len(buffer) > MAX_LINE:
                buffer.clear()
                raise GarbledReply(f"{self.name}: a reply longer than {MAX_LINE} bytes")
            if time.monotonic() >= deadline:
                if not os.path.exists(self.port):  # the device node went with the adapter
                    raise LinkLost(f"{self.name}: the port has vanished", _GONE_HINT)
                raise InstrumentTimeout(
                    f"{self.name}: no reply to {request!r} within {self.timeout:g} s",
                    "is the board powered and running its firmware (ID?)?",
                )
            try:
                chunk = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                raise LinkLost(f"{self.name}: {exc}", _GONE_HINT) from exc
            buffer += chunk
        line = bytes(buffer[:end])
        del buffer[: end + 1]
        try:
            return line.rstrip(b"\r").decode("ascii")
        except UnicodeDecodeError:
            raise GarbledReply(f"{self.name}: the reply to {request!r} is not ASCII") from None

    def _query_blocking(self, line: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        self._write_blocking(line)
        return self._readline(line, deadline)

    def _resync_blocking(self, marker: str, expect: str, timeout: float) -> int:
        import serial

        deadline = time.monotonic() + timeout
        dropped = 1 if self._buffer else 0  # bytes already read: a stale (part) line
        self._buffer.clear()
        try:
            if self._serial.in_waiting:
                dropped += 1
            self._serial.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"{self.name}: {exc}", _GONE_HINT) from exc
        self._write_blocking("\n" + marker)
        for _ in range(RESYNC_MAX_LINES):
            try:
                reply = self._readline(marker, deadline)
            except GarbledReply:
                dropped += 1
                continue
            if reply.startswith(expect):
                return dropped
            dropped += 1
        raise GarbledReply(f"{self.name}: no reply to the resync marker {marker!r}")

    def _close_blocking(self) -> None:
        if self._serial is not None:
            with contextlib.suppress(Exception):
                self._serial.close()
        self._serial = None
