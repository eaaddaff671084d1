"""Serving a rig on real transports: SCPI over TCP, the board on a pty, a control port.

:class:`SimServer` runs both front-ends on one asyncio loop, ticks the rig ten times a
second (so timed faults and lease expiry happen without traffic) and offers a control
port for fault injection: a line-based TCP socket on localhost.

Control protocol (one request line, one reply line)::

    fault SPEC [SPEC ...]   -> OK <specs as understood> | ERR <what> | <hint>
    clear KIND|all          -> OK
    status                  -> OK <json snapshot of the rig>
    kinds                   -> OK <kind,kind,...>

Tests that want a plain socket client or pyserial in the test thread use
:func:`serve_in_thread`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

from firmware_sim.faults import KINDS, FaultSpecError
from firmware_sim.pty import PtyBoardServer
from firmware_sim.rig import SimRig
from firmware_sim.tcp import ScpiTcpServer

TICK = 0.1  # s, real time


class SimServer:
    def __init__(
        self,
        rig: SimRig,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        link: Path | str | None = None,
        control_port: int | None = 0,
    ) -> None:
        self.rig = rig
        self.tcp = ScpiTcpServer(rig.smu, host, port)
        self.pty = PtyBoardServer(rig.board, link)
        self._control_port = control_port
        self._control: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._client_writers: set[asyncio.StreamWriter] = set()
        self.control_address: tuple[str, int] | None = None

    @property
    def resource(self) -> str:
        return self.tcp.resource

    @property
    def serial_path(self) -> str | None:
        return self.pty.path

    def addresses(self) -> dict[str, object]:
        control = self.control_address
        return {
            "smu": self.resource,
            "heater": self.serial_path,
            "link": str(self.pty.link) if self.pty.link else None,
            "control": f"{control[0]}:{control[1]}" if control else None,
        }

    async def start(self) -> None:
        await self.tcp.start()
        await self.pty.start()
        if self._control_port is not None:
            self._control = await asyncio.start_server(
                self._serve_control, "127.0.0.1", self._control_port
            )
            sock = self._control.sockets[0].getsockname()
            self.control_address = (sock[0], sock[1])
        self._ticker = asyncio.create_task(self._tick())

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._control is not None:
            self._control.close()
            await self._control.wait_closed()
            for writer in list(self._client_writers):
                writer.transport.abort()
            if self._clients:
                await asyncio.wait(self._clients, timeout=2.0)
        await self.tcp.close()
        await self.pty.close()

    async def _tick(self) -> None:
        while True:
            self.poll()
            await asyncio.sleep(TICK)

    def poll(self) -> None:
        """Bring the rig up to the clock and the links in line with the faults."""
        self.rig.sync()
        self.tcp.poll()
        self.pty.poll()

    def control(self, request: str) -> str:
        """Answer one control request (also callable directly)."""
        words = request.split()
        if not words:
            return "ERR empty request | try: status"
        verb, args = words[0].lower(), words[1:]
        try:
            if verb == "fault" and args:
                specs = [self.rig.faults.apply(a) for a in args]
                self.poll()
                return "OK " + " ".join(str(s) for s in specs)
            if verb == "clear" and len(args) == 1:
                if args[0] == "all":
                    self.rig.faults.clear_all()
                else:
                    self.rig.faults.clear(args[0])
                self.poll()
                return "OK"
            if verb == "status" and not args:
                return "OK " + json.dumps(self.rig.snapshot(), default=str)
            if verb == "kinds" and not args:
                return "OK " + ",".join(KINDS)
        except FaultSpecError as exc:
            return f"ERR {exc.message} | {exc.hint}"
        return "ERR unknown request | fault SPEC..., clear KIND|all, status, kinds"

    async def _serve_control(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
            task.add_done_callback(self._clients.discard)
        self._client_writers.add(writer)
        try:
            while line := await reader.readline():
                writer.write(self.control(line.decode("utf-8", "replace")).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._client_writers.discard(writer)
            writer.close()


@contextlib.contextmanager
def serve_in_thread(
    rig: SimRig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    link: Path | str | None = None,
    control_port: int | None = 0,
) -> Iterator[SimServer]:
    """Run a :class:`SimServer` on its own loop in a background thread (for tests)."""
    server = SimServer(rig, host=host, port=port, link=link, control_port=control_port)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: asyncio.Event | None = None
    failure: list[BaseException] = []

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        try:
            await server.start()
        except BaseException as exc:
            failure.append(exc)
            started.set()
            return
        started.set()
        try:
            await stop.wait()
        finally:
            await server.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait()
    try:
        if failure:
            raise failure[0]
        yield server
    finally:
        if stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()
