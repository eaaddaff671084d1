"""The heater-board driver against the software rig's firmware, in process (same bytes)."""

from __future__ import annotations

import asyncio
import math

import pytest
from firmware_sim.rig import SimRig

from controller.clock import VirtualTimeLoop
from drivers.base import BoardTripped, GarbledReply, LinkLost, OutOfRange, ThermocoupleFault
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
