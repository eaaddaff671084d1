"""A bench for the thermal tests: the software rig, the real drivers in process, the
thermal loop, the supervisor, the safe state and a real journal — in virtual time.

The assertions look at the *rig* (the board firmware's SSR command, the SMU firmware's
output relay and its off mode), not only at the controller's own variables.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_sim.ohmic import OhmicCell
from firmware_sim.rig import SimRig

from controller.clock import Clock, run
from controller.journal import EventRow, Journal, JournalReader
from controller.rig import HeaterConfig, RigConfig, SafetyLimits, simulated_rig
from controller.safe_state import SafeState, journal_events
from controller.thermal.loop import ThermalLoop
from controller.thermal.supervisor import SafetySupervisor
from drivers.base import SourceFunction
from drivers.heater_board import HeaterBoardDriver
from drivers.keithley2450 import Keithley2450
from drivers.transport import InProcessTransport


def rig_config(
    limits: dict[str, Any] | None = None, heater: dict[str, Any] | None = None
) -> RigConfig:
    """The simulated rig, with some safety limits or heater settings changed (unit text)."""
    base = simulated_rig()
    data = base.model_dump(mode="json")
    if limits:
        data["safety"].update(limits)
    if heater:
        data["heater"].update(heater)
    rig = RigConfig.model_validate(data)
    assert isinstance(rig.safety, SafetyLimits)
    assert isinstance(rig.heater, HeaterConfig)
    return rig


@dataclass
class Bench:
    rig: SimRig
    config: RigConfig
    clock: Clock
    board: HeaterBoardDriver
    smu: Keithley2450
    safe: SafeState
    supervisor: SafetySupervisor
    loop: ThermalLoop
    journal: Journal

    @property
    def now(self) -> float:
        return self.clock.now()

    async def smu_on(self) -> None:
        """A live cell channel: current source at 0 A, output on."""
        await self.smu.configure(SourceFunction.CURRENT, compliance=2.0, source_range=1e-3)
        await self.smu.set_level(0.0)
        await self.smu.output_on()
        assert self.rig.smu_firmware.output

    def heater_commanded(self) -> float:
        """The duty the board drives the SSR with now (0 after a lease expiry or a trip)."""
        self.rig.sync()
        return self.rig.board_firmware.output_duty()

    def smu_safe(self) -> bool:
        """Output relay open, in high impedance for both source functions."""
        fw = self.rig.smu_firmware
        return not fw.output and all(s.offmode == "HIMPedance" for s in fw.sources.values())

    def block(self) -> float:
        self.rig.sync()
        return self.rig.heater.block

    async def until(
        self, predicate: Callable[[], bool], within: float, step: float = 0.05
    ) -> float:
        """Wait (virtual time) until ``predicate()``; returns the seconds waited."""
        start = self.now
        while not predicate():
            if self.now - start > within:
                raise AssertionError(f"condition not met within {within:g} s")
            await asyncio.sleep(step)
        return self.now - start

    async def hold(self, target: float, band: float, duration: float, within: float) -> None:
        """Set a target and soak ``duration`` inside ±``band``; fail on a trip or timeout."""
        self.loop.set_target(target)
        soak = self.loop.soak(band, duration)
        waiter = asyncio.ensure_future(soak.wait())
        tripped = asyncio.ensure_future(self.supervisor.wait())
        await asyncio.wait({waiter, tripped}, timeout=within, return_when="FIRST_COMPLETED")
        waiter.cancel()
        tripped.cancel()
        assert self.supervisor.trip is None, self.supervisor.trip
        assert soak.done, f"soak at {target} not done within {within} s: {soak.elapsed:.0f} s in"

    def events(self) -> list[EventRow]:
        self.journal._commit()
        with JournalReader(self.journal.path) as reader:
            return reader.events()


def run_bench(
    test: Callable[[Bench], Awaitable[None]],
    tmp_path: Path,
    *,
    seed: int = 0,
    limits: dict[str, Any] | None = None,
    heater: dict[str, Any] | None = None,
    start: bool = True,
) -> None:
    """Run ``test(bench)`` on a virtual-time loop, the thermal loop started."""

    async def main() -> None:
        clock = Clock()
        rig = SimRig(clock.now, seed=seed, cell=OhmicCell(resistance=100.0))
        config = rig_config(limits, heater)
        board = HeaterBoardDriver(InProcessTransport(rig.board, name="board", timeout=0.5))
        smu = Keithley2450(
            InProcessTransport(rig.smu, name="smu", timeout=2.0), current_max=0.1, voltage_max=20
        )
        journal = Journal.create(tmp_path / "run.sqlite", {"rig": "sim"}, threaded=False)
        events = journal_events(journal, clock)
        safe = SafeState(board, smu, clock, events=events, lease=config.heater.lease)
        supervisor = SafetySupervisor(config.safety, clock, safe, board=board, events=events)
        loop = ThermalLoop(board, clock, config.heater, supervisor)
        bench = Bench(rig, config, clock, board, smu, safe, supervisor, loop, journal)
        await loop.prepare()
        if start:
            loop.start()
        try:
            await test(bench)
        finally:
            await loop.stop()
            journal.close()

    run(main, virtual=True)
