"""Temperature control on the simulated block: the tuned loop vs a plain simple-pid.

    uv run python tests/benchmarks/bench_thermal.py [--seeds 0 1 2]

1. ``autotune`` at 160 °C on the simulated block (seed 0): Ku, Tu, the gains;
2. the heat-therapy profile (tests/thermal/therapy_profile.py) with the thermocouple's 0.25 °C
   steps and noise — 25 → 160 °C, 6 h hold, a 50 % heat-loss step, 160 → 125 °C — run by
   heatcycler's loop with the tuned gains, and by simple-pid as its README uses it
   (``PID(kp, ki, kd, setpoint=…, output_limits=(0, 1))``, same gains, same board and
   leases), in one run; the issue's targets checked on the readings, the block's own
   temperature shown beside them;
3. the cost per tick: the whole tick in virtual time (rig physics, drivers, event loop
   and controller), the controller's share (``ThermalLoop.tick`` against a board that
   replays recorded readings: control law, supervisor, soak, coroutine plumbing), and the
   board requests alone; extrapolated to the ≈ 190 h campaign (≈ 684 000 ticks).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
from pathlib import Path

from firmware_sim.rig import SimRig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "thermal"))

from therapy_profile import TARGETS, Figures, run_baseline_profile, run_loop_profile

from controller.clock import Clock, run
from controller.rig import PidGains, simulated_rig
from controller.safe_state import SafeState
from controller.thermal.autotune import Tuning, autotune
from controller.thermal.loop import ThermalLoop
from controller.thermal.supervisor import SafetySupervisor
from drivers.base import BoardStatus, HeaterBoard, Identity, ThermoReading
from drivers.heater_board import HeaterBoardDriver
from drivers.transport import InProcessTransport

CAMPAIGN_TICKS = 190 * 3600
#: the gains controller/rig.py had before autotune
PLACEHOLDER = PidGains(kp=0.08, ki=0.0008)


def tune(seed: int) -> Tuning:
    async def main() -> Tuning:
        clock = Clock()
        rig = SimRig(clock.now, seed=seed)
        config = simulated_rig()
        board = HeaterBoardDriver(InProcessTransport(rig.board, name="board", timeout=0.5))
        supervisor = SafetySupervisor(
            config.safety, clock, SafeState(board, None, clock), board=board
        )
        loop = ThermalLoop(board, clock, config.heater, supervisor)
        await loop.prepare()
        loop.start()
        try:
            return await autotune(loop, 160.0)
        finally:
            await loop.stop()

    return run(main, virtual=True)


class ReplayBoard(HeaterBoard):
    """Recorded readings, no I/O: what is left of a tick is the controller's own work."""

    def __init__(self, readings: list[ThermoReading]) -> None:
        self.readings = readings
        self.i = 0

    async def identify(self) -> Identity:
        return Identity("heatcycler", "HCB-1", "replay", "0")

    async def read(self) -> ThermoReading:
        reading = self.readings[self.i % len(self.readings)]
        self.i += 1
        return reading

    async def set_duty(self, duty: float, ttl: float) -> None:
        return None

    async def set_limits(self, maximum: float, minimum: float) -> None:
        return None

    async def status(self) -> BoardStatus:
        return BoardStatus(False, None, 0.0, 0.0, 185.0, 5.0, 0.0, 0)

    async def reset(self) -> None:
        return None

    async def close(self) -> None:
        return None


def record_readings(n: int) -> list[ThermoReading]:
    """``n`` real board readings at a 160 degC hold, as the loop saw them."""
    out: list[ThermoReading] = []

    async def main() -> None:
        clock = Clock()
        rig = SimRig(clock.now, seed=0)
        config = simulated_rig()
        board = HeaterBoardDriver(InProcessTransport(rig.board, name="board", timeout=0.5))
        supervisor = SafetySupervisor(config.safety, clock, SafeState(board, None, clock))
        loop = ThermalLoop(board, clock, config.heater, supervisor)
        loop.set_target(160.0)
        for _ in range(900):  # heat up and settle
            await loop.tick()
            await asyncio.sleep(1.0)
        for _ in range(n):
            await loop.tick()
            assert loop.reading is not None
            out.append(loop.reading)
            await asyncio.sleep(1.0)

    run(main, virtual=True)
    return out


def controller_cost(ticks: int, gains: PidGains) -> float:
    """Seconds per ``ThermalLoop.tick`` with a replaying board (no I/O)."""
    readings = record_readings(3600)

    async def main() -> float:
        clock = Clock()
        config = simulated_rig()
        heater = config.heater.model_copy(update={"pid": gains})
        board = ReplayBoard(readings)
        supervisor = SafetySupervisor(config.safety, clock, SafeState(board, None, clock))
        loop = ThermalLoop(board, clock, heater, supervisor)
        loop.set_target(160.0)
        loop.soak(0.5, 1e9)
        loop_time = asyncio.get_running_loop()
        assert isinstance(loop_time, asyncio.AbstractEventLoop)
        start = time.perf_counter()
        for _ in range(ticks):
            loop_time.advance(1.0)  # type: ignore[attr-defined]
            await loop.tick()
        took = time.perf_counter() - start
        assert supervisor.trip is None, supervisor.trip
        return took / ticks

    return run(main, virtual=True)


def board_cost(ticks: int) -> float:
    """Seconds per tick for the two board requests alone (driver + in-process rig)."""

    async def main() -> float:
        clock = Clock()
        rig = SimRig(clock.now, seed=0)
        board = HeaterBoardDriver(InProcessTransport(rig.board, name="board", timeout=0.5))
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        for i in range(ticks):
            loop.advance(1.0)  # type: ignore[attr-defined]
            reading = await board.read()
            await board.set_duty(0.3 if reading.temperature < 160 else 0.135, 3.0)
            del i
        return (time.perf_counter() - start) / ticks

    return run(main, virtual=True)


def loop_cost(hours: int) -> float:
    """Seconds of wall time per tick of the real thing: ThermalLoop (task, watchdog,
    supervisor) on the software rig, holding 160 degC for ``hours`` in virtual time."""

    async def main() -> float:
        clock = Clock()
        rig = SimRig(clock.now, seed=0)
        config = simulated_rig()
        board = HeaterBoardDriver(InProcessTransport(rig.board, name="board", timeout=0.5))
        supervisor = SafetySupervisor(
            config.safety, clock, SafeState(board, None, clock), board=board
        )
        loop = ThermalLoop(board, clock, config.heater, supervisor)
        await loop.prepare()
        loop.set_target(160.0)
        start = time.perf_counter()
        loop.start()
        await asyncio.sleep(hours * 3600.0)
        await loop.stop()
        assert supervisor.trip is None, supervisor.trip
        return (time.perf_counter() - start) / loop.ticks

    return run(main, virtual=True)


def row(f: Figures) -> str:
    meets = f.meets()

    def mark(key: str) -> str:
        return "" if meets[key] else " ✗"

    return (
        f"| {f.name} | {f.overshoot:.2f} ({f.overshoot_block:.2f}){mark('overshoot')} "
        f"| {f.settle / 60:.1f}{mark('settle')} "
        f"| {f.hold_error:.2f} ({f.hold_error_block:.2f}){mark('hold_error')} "
        f"| {f.hold_rms:.3f} ({f.hold_rms_block:.3f}) "
        f"| {f.loss_dip:.2f} / {f.loss_recovery:.0f}{mark('loss_recovery')} "
        f"| {f.undershoot:.2f} ({f.undershoot_block:.2f}){mark('undershoot')} "
        f"| {f.tripped or '-'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}")

    t0 = time.perf_counter()
    tuning = tune(0)
    print(f"\nautotune at 160 degC, seed 0 ({time.perf_counter() - t0:.2f} s wall):")
    print(tuning.summary())
    gains = tuning.gains

    print(
        "\n| controller | overshoot K | settle min | hold max abs(e) K | hold rms K "
        "| loss step dip K / back in s | undershoot K | trip |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| target | ≤ {TARGETS['overshoot']} | ≤ {TARGETS['settle'] / 60:g} "
        f"| ≤ {TARGETS['hold_error']} | | – / ≤ {TARGETS['loss_recovery']:g} "
        f"| ≤ {TARGETS['undershoot']} | none |"
    )
    for seed in args.seeds:
        runs = [
            run_loop_profile(gains=gains, seed=seed, name=f"heatcycler, 20 degC/min, s{seed}"),
            run_loop_profile(
                gains=gains, seed=seed, ramp=5 / 60, name=f"heatcycler, 5 degC/min, s{seed}"
            ),
            run_baseline_profile(gains, seed=seed, name=f"simple-pid, tuned gains, s{seed}"),
            run_baseline_profile(
                PLACEHOLDER, seed=seed, name=f"simple-pid, old placeholder gains, s{seed}"
            ),
        ]
        for figures, _ in runs:
            print(row(figures))

    whole = min(loop_cost(10) for _ in range(3))
    board = min(board_cost(20_000) for _ in range(3))
    ours = min(controller_cost(20_000, gains) for _ in range(3))
    print("\ncost per tick (best of 3):")
    print(f"  whole tick, virtual time (rig, drivers, event loop, ours): {whole * 1e6:.1f} µs")
    print(f"  board requests alone (T? + DUTY: driver + in-process rig): {board * 1e6:.1f} µs")
    print(f"  controller's share (ThermalLoop.tick on a replaying board): {ours * 1e6:.1f} µs")
    print(
        f"  ≈ 190 h campaign ({CAMPAIGN_TICKS} ticks): controller {ours * CAMPAIGN_TICKS:.1f} s, "
        f"whole loop {whole * CAMPAIGN_TICKS:.0f} s of CPU"
    )


if __name__ == "__main__":
    main()
