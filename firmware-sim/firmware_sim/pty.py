"""The heater board on a pseudo-terminal: a real ``/dev/pts/N`` that pyserial opens.

The server holds the master end and keeps the slave end open itself (so a host may close
and reopen the port), in raw mode. An optional symlink (``--link``) names the port as a
udev rule would on the Pi. Unplugging (the ``serial_unplug`` fault) closes the pty and
removes the symlink: the host's next read or write fails as it does when a USB serial
adapter is pulled. Plugging back in makes a new pty and points the symlink at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from pathlib import Path

from firmware_sim.faults import DeviceUnplugged, Wire

#: the board's line buffer; longer lines are cut here and answered ERR LONG by the firmware
MAX_LINE = 256


class PtyBoardServer:
    def __init__(self, device: Wire, link: Path | str | None = None) -> None:
        self.device = device
        self.link = Path(link) if link is not None else None
        self.path: str | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._buffer = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def plugged(self) -> bool:
        return self._master is not None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if not self.device.unplugged:
            self._plug()

    async def close(self) -> None:
        self._unplug()

    def poll(self) -> None:
        """Follow the fault state: unplug or plug back in."""
        if self.device.unplugged and self.plugged:
            self._unplug()
        elif not self.device.unplugged and not self.plugged and self._loop is not None:
            self._plug()

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        self._buffer.clear()
        if self.link is not None:
            if self.link.is_symlink():
                self.link.unlink()
            elif self.link.exists():
                raise FileExistsError(f"{self.link} exists and is not a symlink")
            self.link.symlink_to(self.path)
        assert self._loop is not None
        self._loop.add_reader(master, self._readable)

    def _unplug(self) -> None:
        if self._master is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._master)
            for fd in (self._master, self._slave):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        self._master = self._slave = None
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()

    def _readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError:
            self._unplug()
            return
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:  # keep the head: the firmware says ERR LONG
                    del self._buffer[MAX_LINE:]
                return
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            try:
                reply = self.device.handle(line)
            except DeviceUnplugged:
                self._unplug()
                return
            if reply is not None and self._master is not None:
                with contextlib.suppress(BlockingIOError):
                    os.write(self._master, reply + b"\n")
