"""SCPI over a raw TCP socket, as a LAN instrument serves it on port 5025.

Each ``\\n``-terminated line (a ``\\r`` before it is dropped) goes to the device; a reply
goes back with ``\\n``. pyvisa reaches it as ``TCPIP::<host>::<port>::SOCKET`` with
``read_termination="\\n"``. While the link is unplugged (a fault), connections are cut and
new ones are closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib

from firmware_sim.faults import DeviceUnplugged, Wire

#: lines longer than this are cut off (an instrument's input buffer is finite)
MAX_LINE = 64 * 1024


class ScpiTcpServer:
    def __init__(self, device: Wire, host: str = "127.0.0.1", port: int = 0) -> None:
        self.device = device
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def resource(self) -> str:
        """The VISA resource string of this instrument."""
        return f"TCPIP::{self.host}::{self.port}::SOCKET"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_LINE)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.drop_connections()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)

    def drop_connections(self) -> None:
        """Cut every client (as an unplugged cable does, seen from the host's end)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def poll(self) -> None:
        if self.device.unplugged:
            self.drop_connections()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.device.unplugged:
            writer.transport.abort()
            return
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.LimitOverrunError:
                    await reader.read(MAX_LINE)  # discard the overlong line
                    continue
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                try:
                    reply = self.device.handle(line.rstrip(b"\r\n"))
                except DeviceUnplugged:
                    writer.transport.abort()
                    return
                if reply is not None:
                    writer.write(reply + b"\n")
                    await writer.drain()
        except ConnectionError:
            return
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()
