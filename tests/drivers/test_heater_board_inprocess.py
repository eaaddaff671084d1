"""The heater-board driver against the software rig's firmware, in process (same bytes)."""

from __future__ import annotations

import asyncio
import math

import pytest
from firmware_sim.rig import SimRig

from controller.clock import VirtualTimeLoop
from drivers.base import (
    BoardTripped,
    GarbledReply,
    InstrumentTimeout,
    LinkLost,
    OutOfRange,
    ThermocoupleFault,
)
from drivers.heater_board import HeaterBoardDriver, crc16, frame, unframe
from drivers.transport import InProcessTransport


def test_crc_matches_the_protocol_check_value() -> None:
    assert crc16(b"123456789") == 0x29B1
    assert frame("T?") == "T?*18C8"
    assert unframe("T?*18C8") == "T?"
    assert unframe("T?*18C9") is None
    assert unframe("T?") is None


def _board(rig: SimRig) -> HeaterBoardDriver:
    return HeaterBoardDriver(InProcessTransport(rig.board, name="board", timeout=0.5))


def _run(main: object) -> None:
    loop = VirtualTimeLoop()
    try:
        loop.run_until_complete(main)  # type: ignore[arg-type]
    finally:
        loop.close()


def test_identify_read_and_heat_with_a_lease() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        rig = SimRig(loop.time, seed=1)
        board = _board(rig)
        ident = await board.identify()
        assert ident.model == "HCB-1"
        cold = await board.read()
        assert 20 < cold.temperature < 30
        assert cold.faults == ThermocoupleFault.NONE
        await board.set_duty(1.0, 3.0)
        for _ in range(60):  # keep the lease alive for a minute at full power
            await asyncio.sleep(1.0)
            await board.set_duty(1.0, 3.0)
        hot = await board.read()
        assert hot.temperature > cold.temperature + 20  # ~100 W into ~90 J/K
        assert hot.duty == 1.0
        await asyncio.sleep(5.0)  # refreshes stop: the lease runs out on the board
        assert (await board.read()).duty == 0.0
        status = await board.status()
        assert status.lease_left == 0.0
        assert not status.tripped

    _run(main())


def test_out_of_range_requests_raise_before_sending() -> None:
    async def main() -> None:
        rig = SimRig(asyncio.get_running_loop().time)
        board = _board(rig)
        with pytest.raises(OutOfRange):
            await board.set_duty(1.2, 3.0)
        with pytest.raises(OutOfRange):
            await board.set_duty(0.5, 60.0)
        with pytest.raises(OutOfRange) as refused:
            await board.set_limits(300.0, 0.0)
        assert "safety.temperature_max" in refused.value.hint
        assert (await board.status()).duty == 0.0

    _run(main())


def test_corrupt_replies_are_retried_then_raised() -> None:
    async def main() -> None:
        rig = SimRig(asyncio.get_running_loop().time)
        board = _board(rig)
        rig.faults.inject("board_crc", 2)
        assert not math.isnan((await board.read()).temperature)
        assert board.corrupt_replies == 2
        rig.faults.inject("board_crc", 3)
        with pytest.raises(GarbledReply, match="after 3 tries"):
            await board.read()

    _run(main())


def test_open_thermocouple_trips_the_board_until_reset_after_the_cause_is_gone() -> None:
    async def main() -> None:
        rig = SimRig(asyncio.get_running_loop().time)
        board = _board(rig)
        rig.faults.inject("tc_open")
        await asyncio.sleep(1.0)
        reading = await board.read()
        assert reading.faults & ThermocoupleFault.OPEN
        assert math.isnan(reading.temperature)
        status = await board.status()
        assert status.tripped
        assert status.trip_reason == "tcfault"
        with pytest.raises(BoardTripped, match="tcfault"):
            await board.set_duty(0.5, 3.0)
        await board.set_duty(0.0, 3.0)  # the safe-state action works on a tripped board
        with pytest.raises(BoardTripped, match="persists"):
            await board.reset()
        rig.faults.clear("tc_open")
        await asyncio.sleep(1.0)
        await board.reset()
        assert not (await board.status()).tripped

    _run(main())


def test_unplugged_board_is_a_link_loss() -> None:
    async def main() -> None:
        rig = SimRig(asyncio.get_running_loop().time)
        board = _board(rig)
        rig.faults.inject("serial_unplug")
        with pytest.raises(LinkLost):
            await board.read()

    _run(main())


def test_a_silent_board_times_out_then_the_next_request_resyncs_first() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        rig = SimRig(loop.time)
        board = _board(rig)
        rig.faults.inject("board_silent")
        start = loop.time()
        with pytest.raises(InstrumentTimeout):
            await board.read()
        assert loop.time() - start == pytest.approx(0.5)  # the transport's timeout
        assert board.transport.desynced
        rig.faults.clear("board_silent")
        sent = rig.board.requests
        assert (await board.read()).duty == 0.0
        assert rig.board.requests == sent + 2  # ID? (the marker), then T?
        assert not board.transport.desynced

    _run(main())


def test_a_reply_to_another_request_marks_the_link_for_resync() -> None:
    class Stale:
        """Answers T? once with a DUTY echo (someone else's late reply), then honestly."""

        def __init__(self, device: object) -> None:
            self.device = device
            self.stale = True

        def handle(self, line: bytes) -> bytes | None:
            if self.stale and line.startswith(b"T?"):
                self.stale = False
                return frame("OK DUTY 0 3000").encode()
            return self.device.handle(line)  # type: ignore[attr-defined,no-any-return]

    async def main() -> None:
        rig = SimRig(asyncio.get_running_loop().time)
        board = HeaterBoardDriver(InProcessTransport(Stale(rig.board), name="board"))
        with pytest.raises(GarbledReply, match="unexpected reply"):
            await board.read()
        assert board.transport.desynced
        assert (await board.read()).faults == ThermocoupleFault.NONE

    _run(main())
