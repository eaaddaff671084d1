"""The worker machinery (a library call that hangs past its own timeout), the reconnect
policy in virtual time, and building instruments from a rig file."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path

import pytest
from expected_protocol import Script
from firmware_sim.ohmic import OhmicCell
from firmware_sim.rig import SimRig
from wire import bench

from controller.clock import Clock, VirtualTimeLoop
from controller.rig import RigConfig, simulated_rig
from drivers.base import InstrumentError, InstrumentTimeout, LinkLost, WrongInstrument
from drivers.factory import open_instruments, open_source_meter
from drivers.heater_board import HeaterBoardDriver
from drivers.keithley2450 import Keithley2450
from drivers.keysight_b2900 import KeysightB2900
from drivers.reconnect import Backoff, reconnect
from drivers.serial_transport import SerialTransport
from drivers.worker import WorkerTransport


class Hanging(WorkerTransport):
    """A transport whose library call blocks until the test lets it go."""

    def __init__(self) -> None:
        super().__init__("hanging", timeout=0.1, guard=0.1)
        self.release = threading.Event()

    async def query(self, line: str, timeout: float | None = None) -> str:  # noqa: ASYNC109
        return await self._call(lambda: self._blocking(line), self.timeout)

    async def write(self, line: str, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._call(lambda: None, self.timeout)

    def _blocking(self, line: str) -> str:
        self.release.wait(5.0)
        return f"reply to {line}"

    def _close_blocking(self) -> None:
        self.release.set()


async def test_the_guard_fires_when_the_library_call_hangs_and_keeps_the_lock() -> None:
    transport = Hanging()
    start = time.monotonic()
    with pytest.raises(InstrumentTimeout, match="did not return"):
        await transport.query("first")
    assert 0.15 < time.monotonic() - start < 1.0  # timeout + guard, not the 5 s hang
    assert transport.desynced
    assert transport._lock.locked()
    waiting = asyncio.create_task(transport.write("second"))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # the hung worker still owns the link
    transport.release.set()
    await asyncio.wait_for(waiting, 1.0)
    assert transport.discarded == 1  # "reply to first" came too late: dropped
    assert not transport._lock.locked()
    await transport.close()
    with pytest.raises(LinkLost, match="closed"):
        await transport.query("third")


def test_backoff_delays_grow_are_capped_and_jittered_within_bounds() -> None:
    policy = Backoff(attempts=8, initial=1.0, factor=2.0, maximum=10.0, jitter=0.25)
    delays = list(policy.delays(random.Random(1)))
    assert len(delays) == 7
    for delay, base in zip(delays, (1, 2, 4, 8, 10, 10, 10), strict=True):
        assert 0.75 * base <= delay <= 1.25 * base
    assert delays == list(policy.delays(random.Random(1)))  # seeded: deterministic
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=1.5)


def test_reconnect_retries_link_failures_in_virtual_time_then_gives_up() -> None:
    async def main() -> None:
        clock = Clock()
        start = clock.now()
        calls: list[float] = []

        async def flaky() -> str:
            calls.append(clock.now() - start)
            if len(calls) < 3:
                raise LinkLost("gone")
            return "back"

        policy = Backoff(attempts=5, initial=10.0, jitter=0.0)
        assert await reconnect(flaky, policy=policy, sleep=clock.sleep) == "back"
        assert calls == [0.0, 10.0, 30.0]  # waited 10 s, then 20 s: virtual, free

        async def dead() -> str:
            raise InstrumentTimeout("silent")

        with pytest.raises(InstrumentTimeout) as spent:
            await reconnect(dead, policy=Backoff(attempts=3, initial=1.0), sleep=clock.sleep)
        assert "gave up after 3 tries" in (spent.value.__notes__ or [""])[0]

        wrong_calls = 0

        async def wrong() -> str:
            nonlocal wrong_calls
            wrong_calls += 1
            raise WrongInstrument("not a 2450")

        with pytest.raises(WrongInstrument):
            await reconnect(wrong, sleep=clock.sleep)
        assert wrong_calls == 1  # not a link problem: no retry

    loop = VirtualTimeLoop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def test_the_simulated_rig_is_built_from_given_devices() -> None:
    async def main() -> None:
        rig = SimRig(asyncio.get_running_loop().time, cell=OhmicCell())
        config = simulated_rig(Path("data"))
        instruments = await open_instruments(config, smu_device=rig.smu, board_device=rig.board)
        assert isinstance(instruments.smu, Keithley2450)
        assert instruments.smu.current_max == config.smu.current_max
        assert isinstance(instruments.board, HeaterBoardDriver)
        assert (await instruments.board.read()).duty == 0.0
        await instruments.close()
        with pytest.raises(InstrumentError, match="no simulated SMU") as missing:
            await open_source_meter(config.smu)
        assert "--sim" in missing.value.hint

    loop = VirtualTimeLoop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def test_the_b2900_is_chosen_by_the_rig_file() -> None:
    async def main() -> None:
        config = RigConfig.model_validate(
            {
                "rig": "b",
                "smu": {"driver": "keysight_b2900", "resource": "sim", "channel": 2},
                "heater": {"port": "sim"},
            }
        )
        script = Script([("*IDN?", "Keysight Technologies,B2902A,MY1,3.4")])
        smu = await open_source_meter(config.smu, device=script)
        assert isinstance(smu, KeysightB2900)
        assert smu.channel == 2
        script.finished()

    loop = VirtualTimeLoop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


@pytest.mark.wire
async def test_a_rig_file_opens_both_instruments_over_the_real_transports(
    tmp_path: Path,
) -> None:
    with bench(tmp_path) as b:
        config = RigConfig.model_validate(
            {
                "rig": "bench",
                "smu": {"resource": b.resource, "timeout": "300 ms"},
                "heater": {"port": b.port, "timeout": "300 ms"},
            }
        )
        instruments = await open_instruments(config)
        try:
            assert (await instruments.smu.identify()).model == "MODEL 2450"
            assert (await instruments.board.identify()).model == "HCB-1"
            assert instruments.smu.transport.timeout == pytest.approx(0.3)  # type: ignore[attr-defined]
        finally:
            await instruments.close()
        nobody = config.smu.model_copy(update={"resource": "TCPIP::127.0.0.1::1::SOCKET"})
        refused = config.model_copy(update={"smu": nobody})
        with pytest.raises(LinkLost):
            await open_instruments(refused)
        port = await SerialTransport.open(b.port)  # the board opened first was closed again
        await port.close()
