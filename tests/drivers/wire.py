"""Helpers for the wire-level driver tests: a served software rig, and a slow link."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from firmware_sim.faults import Wire
from firmware_sim.ohmic import OhmicCell
from firmware_sim.rig import ManualClock, SimRig
from firmware_sim.serve import SimServer, serve_in_thread


class LateReply:
    """The rig's link to one firmware, but the reply to the next request that starts with
    ``trigger`` is held back ``delay`` seconds (a busy instrument): the host times out,
    then the reply arrives anyway, late. The server thread is blocked meanwhile, as the
    instrument would be."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.trigger: bytes | None = None
        self.delay = 0.0

    def arm(self, trigger: bytes, delay: float) -> None:
        self.trigger, self.delay = trigger, delay

    @property
    def unplugged(self) -> bool:
        return self.wire.unplugged

    def handle(self, line: bytes) -> bytes | None:
        reply = self.wire.handle(line)
        if self.trigger is not None and line.startswith(self.trigger):
            self.trigger = None
            time.sleep(self.delay)
        return reply


class Bench:
    def __init__(self, rig: SimRig, clock: ManualClock, server: SimServer) -> None:
        self.rig, self.clock, self.server = rig, clock, server
        # the front-ends talk to the firmware through a link that can be made slow
        self.smu_link = LateReply(rig.smu)
        self.board_link = LateReply(rig.board)
        server.tcp.device = self.smu_link  # type: ignore[assignment]
        server.pty.device = self.board_link  # type: ignore[assignment]

    @property
    def resource(self) -> str:
        return self.server.resource

    @property
    def port(self) -> str:
        assert self.server.pty.link is not None
        return str(self.server.pty.link)


@contextmanager
def bench(tmp_path: Path, *, language: str = "SCPI", **cell: float) -> Iterator[Bench]:
    """A rig (100 Ω ohmic cell, hand-moved clock) served on TCP and a pty."""
    clock = ManualClock()
    rig = SimRig(clock, cell=OhmicCell(**cell), seed=5, language=language)
    with serve_in_thread(rig, link=tmp_path / "heater") as server:
        yield Bench(rig, clock, server)
