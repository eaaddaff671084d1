"""SCPI instruments over VISA (pyvisa), off the event loop.

``VisaTransport.open(resource, backend="@py", timeout=2.0)`` opens a resource on the
instrument's own worker thread (:mod:`drivers.worker`): ``TCPIP::host::port::SOCKET``
(a raw socket, e.g. port 5025; newline-terminated both ways) or ``…::INSTR``
(``USB0::0x05E6::0x2450::<serial>::INSTR`` over USBTMC, VXI-11, GPIB; END asserted on
writes). The backend is pyvisa's: ``@py`` (pyvisa-py, which needs ``pyusb`` for USB) or
``@ivi`` (a vendor VISA library).

Errors are the driver's types: pyvisa's timeout → :class:`InstrumentTimeout`; a closed,
refused or reset connection, an I/O error, a resource that vanished → :class:`LinkLost`;
a reply that is not ASCII → :class:`GarbledReply`. pyvisa-py does not notice a socket the
instrument closed (it reads nothing until its timeout), so after a timeout the socket is
checked for end-of-file and that becomes a link loss.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import time
from typing import Any

from drivers.base import GarbledReply, InstrumentError, InstrumentTimeout, LinkLost
from drivers.worker import GUARD, WorkerTransport

#: the longest run of stale lines a resync drops before giving up
RESYNC_MAX_LINES = 100

_USB_HINT = (
    "pyvisa-py needs pyusb and the system's libusb (apt install libusb-1.0-0), and a udev "
    "rule giving this user the device (deploy/99-heatcycler.rules), for USB resources; "
    "or set smu.visa_backend: '@ivi' to use a vendor VISA library, or use the "
    "instrument's LAN port: TCPIP::<address>::5025::SOCKET"
)


def resource_kwargs(resource: str, timeout: float) -> dict[str, Any]:
    """The attributes every resource is opened with (newline framing, the timeout)."""
    kind = resource.rsplit("::", 1)[-1].upper()
    if kind not in ("SOCKET", "INSTR"):
        raise InstrumentError(
            f"VISA resource {resource!r} is neither a ::SOCKET nor an ::INSTR resource",
            "write e.g. TCPIP::192.168.1.50::5025::SOCKET or "
            "USB0::0x05E6::0x2450::04412345::INSTR (smu.resource in the rig file)",
        )
    kwargs: dict[str, Any] = {
        "read_termination": "\n",
        "write_termination": "\n",
        "timeout": max(1, round(timeout * 1000)),
        "encoding": "ascii",
    }
    if kind == "INSTR":
        kwargs["send_end"] = True  # USBTMC/VXI-11/GPIB: END with the last byte
    return kwargs


def _raw_socket(inst: Any) -> socket.socket | None:
    """pyvisa-py's socket behind a ``::SOCKET`` resource (None for any other)."""
    with contextlib.suppress(Exception):
        sock = inst.visalib.sessions[inst.session].interface
        if isinstance(sock, socket.socket):
            return sock
    return None


def _socket_closed(sock: socket.socket | None) -> bool:
    """Whether the far end has closed (end-of-file pending) or reset the connection."""
    if sock is None:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class VisaTransport(WorkerTransport):
    """One VISA resource: one worker thread, one lock, a timeout on every call."""

    def __init__(
        self,
        resource: str,
        *,
        backend: str = "@py",
        timeout: float = 2.0,
        name: str | None = None,
        guard: float = GUARD,
    ) -> None:
        super().__init__(name or resource, timeout, guard)
        self.resource = resource
        self.backend = backend
        self.open_kwargs = resource_kwargs(resource, timeout)
        self._rm: Any = None
        self._inst: Any = None
        self._sock: socket.socket | None = None
        self._timeout_ms = self.open_kwargs["timeout"]

    @classmethod
    async def open(
        cls,
        resource: str,
        *,
        backend: str = "@py",
        timeout: float = 2.0,
        name: str | None = None,
        guard: float = GUARD,
    ) -> VisaTransport:
        transport = cls(resource, backend=backend, timeout=timeout, name=name, guard=guard)
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
        await self._call(lambda: self._write_blocking(line, wait), wait)

    async def resync(self, marker: str, expect: str, timeout: float | None = None) -> int:
        wait = self.timeout if timeout is None else timeout
        dropped = await self._call(lambda: self._resync_blocking(marker, expect, wait), wait)
        self.discarded += dropped
        self.desynced = False
        return dropped

    # -- on the worker thread --------------------------------------------------------

    def _open_blocking(self) -> None:
        import pyvisa

        try:
            self._rm = pyvisa.ResourceManager(self.backend)
        except (ValueError, OSError) as exc:
            raise InstrumentError(
                f"VISA backend {self.backend!r} is not available: {exc}",
                "smu.visa_backend: '@py' (pyvisa-py) or '@ivi' (a vendor VISA library)",
            ) from exc
        try:
            self._inst = self._rm.open_resource(
                self.resource, open_timeout=self.open_kwargs["timeout"], **self.open_kwargs
            )
        except ValueError as exc:  # pyvisa-py without pyusb says so with a ValueError
            if "no device" in str(exc).lower() and self.resource.upper().startswith("USB"):
                hint = (
                    "is the SMU connected by USB, switched on, and readable by this user "
                    "(deploy/99-heatcycler.rules)? check the serial number in smu.resource"
                )
            else:
                hint = _USB_HINT if "usb" in str(exc).lower() else "check smu.resource"
            raise InstrumentError(f"{self.name}: cannot open: {exc}", hint) from exc
        except pyvisa.errors.VisaIOError as exc:
            raise LinkLost(
                f"{self.name}: cannot open: {exc}", "is the instrument on and reachable?"
            ) from exc
        except Exception as exc:  # pyvisa-py raises a bare Exception for a failed connect
            raise LinkLost(
                f"{self.name}: cannot open: {exc}", "is the instrument on and reachable?"
            ) from exc
        self._sock = _raw_socket(self._inst)
        if self._sock is not None:
            error = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:  # pyvisa-py reports success for a refused connection
                raise LinkLost(
                    f"{self.name}: connection failed: {errno.errorcode.get(error, error)}",
                    "is the instrument on, on the network, and its port right (5025)?",
                )
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def _set_timeout(self, seconds: float) -> None:
        ms = max(1, round(seconds * 1000))
        if ms != self._timeout_ms:
            self._inst.timeout = ms
            self._timeout_ms = ms

    def _query_blocking(self, line: str, timeout: float) -> str:
        self._write_blocking(line, timeout)
        return self._read_blocking(line)

    def _write_blocking(self, line: str, timeout: float) -> None:
        try:
            self._set_timeout(timeout)
            self._inst.write(line)
        except Exception as exc:
            raise self._translate(exc, line) from exc

    def _read_blocking(self, request: str) -> str:
        try:
            reply: str = self._inst.read()
        except UnicodeDecodeError as exc:  # the whole line was read: still in step
            raise GarbledReply(
                f"{self.name}: the reply to {request!r} is not ASCII", "check the link"
            ) from exc
        except Exception as exc:
            raise self._translate(exc, request) from exc
        return reply

    def _resync_blocking(self, marker: str, expect: str, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        self._write_blocking(marker, timeout)
        for dropped in range(RESYNC_MAX_LINES):
            self._set_timeout(max(0.001, deadline - time.monotonic()))
            try:
                reply = self._read_blocking(marker)
            except GarbledReply:
                continue
            if reply.startswith(expect):
                self._set_timeout(self.timeout)
                return dropped
        raise GarbledReply(f"{self.name}: no reply to the resync marker {marker!r}")

    def _translate(self, exc: Exception, request: str) -> InstrumentError:
        import pyvisa

        if isinstance(exc, pyvisa.errors.VisaIOError):
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                if _socket_closed(self._sock):
                    return LinkLost(
                        f"{self.name}: the instrument closed the connection",
                        "check the network cable and the instrument; then reconnect",
                    )
                return InstrumentTimeout(
                    f"{self.name}: no reply to {request!r} within {self._timeout_ms / 1000:g} s",
                    "a query the instrument rejects gets no reply: read its error queue; "
                    "else check that it is on and not busy",
                )
            return LinkLost(f"{self.name}: {exc}", "check the link; then reconnect")
        if isinstance(exc, (OSError, pyvisa.errors.InvalidSession)):
            return LinkLost(f"{self.name}: {exc}", "check the link; then reconnect")
        return InstrumentError(f"{self.name}: {type(exc).__name__}: {exc}")

    def _close_blocking(self) -> None:
        for thing in (self._inst, self._rm):
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.close()
        self._inst = self._rm = self._sock = None
