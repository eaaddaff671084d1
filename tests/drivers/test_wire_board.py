"""The heater-board driver over pyserial and a real pseudo-terminal to the board emulator."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from wire import Bench, bench

from drivers.base import (
    BoardTripped,
    GarbledReply,
    InstrumentError,
    InstrumentTimeout,
    LinkLost,
    ThermocoupleFault,
)
from drivers.heater_board import HeaterBoardDriver, frame
from drivers.serial_transport import SerialTransport

pytestmark = pytest.mark.wire


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Bench]:
    with bench(tmp_path) as b:
        yield b


@pytest.fixture
async def board(rig: Bench) -> AsyncIterator[HeaterBoardDriver]:
    driver = HeaterBoardDriver(await SerialTransport.open(rig.port, timeout=0.3))
    yield driver
    await driver.close()


async def test_identify_read_and_status_over_the_pty(board: HeaterBoardDriver) -> None:
    ident = await board.identify()
    assert (ident.model, ident.serial, ident.firmware) == ("HCB-1", "B0042", "1.2.0")
    reading = await board.read()
    assert reading.temperature == pytest.approx(25.0, abs=0.5)
    assert reading.faults == ThermocoupleFault.NONE
    await board.set_limits(185.0, 5.0)
    status = await board.status()
    assert (status.limit_max, status.limit_min, status.tripped) == (185.0, 5.0, False)


async def test_the_lease_expires_when_refreshes_stop(rig: Bench, board: HeaterBoardDriver) -> None:
    await board.set_duty(0.8, 1.0)
    for _ in range(5):  # refreshed every 0.5 s: the heater stays on
        rig.clock.advance(0.5)
        assert (await board.read()).duty == 0.8
        await board.set_duty(0.8, 1.0)
    rig.clock.advance(0.9)
    assert (await board.status()).lease_left == pytest.approx(0.1, abs=1e-3)
    rig.clock.advance(0.2)  # refreshes stopped 1.1 s ago: the board dropped the heater
    assert (await board.read()).duty == 0.0
    status = await board.status()
    assert (status.duty, status.lease_left, status.tripped) == (0.0, 0.0, False)
    assert rig.rig.heater_duty == 0.0


async def test_a_corrupt_checksum_is_retried_then_raised(
    rig: Bench, board: HeaterBoardDriver
) -> None:
    rig.rig.faults.inject("board_crc", 2)
    assert not math.isnan((await board.read()).temperature)
    assert board.corrupt_replies == 2
    rig.rig.faults.inject("board_crc", 3)
    with pytest.raises(GarbledReply, match="after 3 tries"):
        await board.read()
    assert (await board.read()).duty == 0.0  # the next request is clean again


async def test_a_tripped_board_refuses_heat_but_takes_the_safe_state(
    rig: Bench, board: HeaterBoardDriver
) -> None:
    rig.rig.faults.inject("tc_open")
    rig.clock.advance(0.5)
    assert (await board.status()).trip_reason == "tcfault"
    with pytest.raises(BoardTripped):
        await board.set_duty(0.5, 3.0)
    await board.set_duty(0.0, 3.0)


async def test_a_silent_board_times_out_and_the_link_recovers(
    rig: Bench, board: HeaterBoardDriver
) -> None:
    rig.rig.faults.inject("board_silent")
    start = time.monotonic()
    with pytest.raises(InstrumentTimeout):
        await board.read()
    assert 0.25 < time.monotonic() - start < 1.0
    rig.rig.faults.clear("board_silent")
    assert (await board.read()).temperature == pytest.approx(25.0, abs=0.5)


async def test_a_late_reply_is_dropped(rig: Bench, board: HeaterBoardDriver) -> None:
    rig.board_link.arm(frame("STATUS?").encode(), 0.4)
    with pytest.raises(InstrumentTimeout):
        await board.status()
    reading = await board.read()  # resyncs on ID?: the late STATUS reply is dropped
    assert reading.faults == ThermocoupleFault.NONE
    assert isinstance(board.transport, SerialTransport)
    assert board.transport.discarded >= 1


async def test_the_pty_vanishing_mid_run_is_a_link_loss_without_a_hang(
    rig: Bench, board: HeaterBoardDriver
) -> None:
    async def control_loop() -> int:
        reads = 0
        while True:
            await board.read()
            await board.set_duty(0.2, 3.0)
            reads += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(control_loop())
    await asyncio.sleep(0.1)
    rig.rig.faults.inject("serial_unplug")
    start = time.monotonic()
    with pytest.raises(LinkLost) as lost:
        await asyncio.wait_for(task, 5.0)
    assert time.monotonic() - start < 1.0
    assert "heater.port" in lost.value.hint
    with pytest.raises(LinkLost):
        await board.read()  # stays lost: reopening is the caller's decision


async def test_a_missing_port_is_a_link_loss_and_the_port_is_exclusive(
    rig: Bench, tmp_path: Path
) -> None:
    with pytest.raises(LinkLost, match="cannot open"):
        await SerialTransport.open(str(tmp_path / "no-such-port"), timeout=0.3)
    first = await SerialTransport.open(rig.port, timeout=0.3)
    try:
        with pytest.raises(InstrumentError, match="in use") as busy:
            await SerialTransport.open(rig.port, timeout=0.3)
        assert "another heatcycler" in busy.value.hint
    finally:
        await first.close()
    again = await SerialTransport.open(rig.port, timeout=0.3)  # closed: free again
    await again.close()
