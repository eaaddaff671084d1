"""What one rig-second of a ``--sim`` campaign costs on the runner's polled path.

    uv run python tests/benchmarks/bench_sample_path.py [--hours 20] [--breakdown]

The exact call sequence the runner makes, minus the runner's own work: the software rig in
process (``SimRig`` on the event loop's clock, cell model, seed 0), the instruments built
by ``drivers.factory.open_instruments`` from ``simulated_rig()`` with the rig's devices,
the real :class:`~controller.thermal.loop.ThermalLoop` (``T?`` + ``DUTY`` lease every 1 s,
control law, safety supervisor and its watchdog task) and a 1 s sampling task calling
``smu.read()``, all on a :class:`~controller.clock.VirtualTimeLoop`. The shape is the
heat-therapy campaign's: warm-up to 125 °C, 5 pre-cycles at ±2 mA/cm² (30 min half-cycles,
5 min rests), 6 h at 160 °C, 3 h at 125 °C, then cycling at 125 °C until the cell shorts
(the sampler turns the output off, as the runner does) or the hours run out.

Reports wall time and µs per rig-second, and a fingerprint of every SMU reading and every
thermal-loop reading and duty: the same fingerprint before and after a change means the
same bytes and the same physics. ``--breakdown`` also times the parts (rig physics in
``SimRig._advance_to`` wherever it falls, ``smu.read()`` without it, ``ThermalLoop.tick``
without it, the rest = event loop, timers, tasks); its wrappers add ≈ 1 µs per rig-second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import platform
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from firmware_sim.rig import SimRig

from controller.clock import Clock, Periodic, VirtualTimeLoop
from controller.rig import simulated_rig
from controller.safe_state import SafeState
from controller.thermal.loop import ThermalLoop
from controller.thermal.supervisor import SafetySupervisor
from drivers.base import SourceFunction
from drivers.factory import open_instruments

AREA = 0.785  # cm², the bundled cell
J2 = 2e-3 * AREA  # A, 2 mA/cm²
CAMPAIGN_HOURS = 190  # issue 5's heat-therapy campaign, to the short


def campaign_segments() -> list[tuple[float, float, float]]:
    """(duration s, SMU current A, thermal target degC) of the campaign, then cycling."""
    cycle = [(1800.0, J2), (300.0, 0.0), (1800.0, -J2), (300.0, 0.0)]
    segments = [(1800.0, 0.0, 125.0)]  # warm-up (20 degC/min) and settle
    segments += [(d, i, 125.0) for _ in range(5) for d, i in cycle]
    segments.append((6 * 3600.0 + 600.0, 0.0, 160.0))  # heat, therapy
    segments.append((3 * 3600.0 + 600.0, 0.0, 125.0))  # cool, rest
    segments += [(d, i, 125.0) for _ in range(10_000) for d, i in cycle]
    return segments


@dataclass
class Timings:
    physics: float = 0.0
    smu: float = 0.0
    thermal: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)


@dataclass
class Result:
    rig_seconds: float
    wall: float
    samples: int
    ticks: int
    short_at: float | None
    fingerprint: str
    timings: Timings | None


def _timed_physics(sim: SimRig, timings: Timings) -> None:
    advance = sim._advance_to
    clock = time.perf_counter

    def timed(t: float) -> None:
        t0 = clock()
        advance(t)
        timings.physics += clock() - t0

    sim._advance_to = timed  # type: ignore[method-assign]


def _timed_tick(thermal: ThermalLoop, timings: Timings) -> None:
    tick = thermal.tick
    clock = time.perf_counter

    async def timed() -> None:
        p0 = timings.physics
        t0 = clock()
        await tick()
        timings.thermal += clock() - t0 - (timings.physics - p0)

    thermal.tick = timed  # type: ignore[method-assign]


async def _campaign(hours: float, breakdown: bool, one_task: bool = False) -> Result:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    clock = Clock()
    config = simulated_rig()
    sim = SimRig(clock.now, seed=0)
    instruments = await open_instruments(config, smu_device=sim.smu, board_device=sim.board)
    smu, board = instruments.smu, instruments.board
    safe = SafeState(board, smu, clock, lease=config.heater.lease)
    supervisor = SafetySupervisor(config.safety, clock, safe, board=board)
    thermal = ThermalLoop(board, clock, config.heater, supervisor)
    await thermal.prepare()
    await smu.configure(SourceFunction.CURRENT, compliance=5.0, source_range=10e-3)
    await smu.set_level(0.0)
    await smu.output_on()
    timings = Timings() if breakdown else None
    if timings is not None:
        _timed_physics(sim, timings)
        _timed_tick(thermal, timings)
    digest = hashlib.blake2b(digest_size=16)
    pack = struct.Struct("<3d").pack
    thermal_pack = struct.Struct("<2dq2d").pack
    segments = iter(campaign_segments())
    ticks = Periodic(clock, 1.0)
    start = clock.now()
    end = start + hours * 3600
    seg_end = start
    level = 0.0
    short_at: float | None = None
    samples = 0
    read = smu.read
    perf = time.perf_counter
    if one_task:  # the sampler ticks the thermal loop itself; the watchdog stays a task
        watchdog = asyncio.ensure_future(supervisor.run())
    else:
        thermal.start()
    wall0 = perf()
    while True:
        now = await ticks.tick()
        if now >= end:
            break
        if now >= seg_end:
            duration, new_level, target = next(segments)
            seg_end = now + duration
            if thermal.target != target:
                thermal.set_target(target)
            if short_at is None and new_level != level:
                await smu.set_level(new_level)
            level = new_level
        if timings is None:
            m = await read()
        else:
            p0 = timings.physics
            t0 = perf()
            m = await read()
            timings.smu += perf() - t0 - (timings.physics - p0)
        supervisor.smu_read_ok()
        samples += 1
        digest.update(pack(m.voltage, m.current, m.time))
        r = thermal.reading
        if r is not None:
            digest.update(
                thermal_pack(r.temperature, r.cold_junction, r.counter, r.duty, thermal.duty)
            )
        if level and short_at is None and abs(m.voltage) < 0.02:
            short_at = now
            await smu.output_off()
        if one_task:  # after the sample, in the order the two tasks run in
            await thermal.tick()
        assert supervisor.trip is None, supervisor.trip
    wall = perf() - wall0
    await thermal.stop()
    if one_task:
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
    await instruments.close()
    return Result(
        rig_seconds=clock.now() - start,
        wall=wall,
        samples=samples,
        ticks=thermal.ticks,
        short_at=short_at,
        fingerprint=digest.hexdigest(),
        timings=timings,
    )


def run_campaign(hours: float, breakdown: bool = False, one_task: bool = False) -> Result:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(_campaign(hours, breakdown, one_task))


def report(r: Result, label: str, out: Callable[[str], Any] = print) -> None:
    per = r.wall / r.rig_seconds * 1e6
    short = f"short at {r.short_at / 3600:.1f} h" if r.short_at is not None else "no short"
    out(
        f"{label}: {r.rig_seconds / 3600:.0f} h virtual in {r.wall:.2f} s wall, "
        f"{per:.1f} µs per rig-second (-> {CAMPAIGN_HOURS} h ≈ "
        f"{per * CAMPAIGN_HOURS * 3600e-6:.1f} s); {r.samples} samples, {r.ticks} thermal "
        f"ticks, {short}\n  fingerprint: {r.fingerprint}"
    )
    if r.timings is not None:
        t = r.timings
        n = r.rig_seconds / 1e6
        rest = r.wall - t.physics - t.smu - t.thermal
        out(
            f"  breakdown per rig-second: physics {t.physics / n:.1f} µs, smu.read() "
            f"{t.smu / n:.1f} µs, ThermalLoop.tick {t.thermal / n:.1f} µs, event loop and "
            f"the rest {rest / n:.1f} µs"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=20.0, help="rig-hours (default 20)")
    parser.add_argument("--runs", type=int, default=1, help="best of this many runs")
    parser.add_argument(
        "--breakdown", action="store_true", help="also time the parts (adds ≈ 1 µs/s)"
    )
    parser.add_argument(
        "--one-task",
        action="store_true",
        help="the sampling task also ticks the thermal loop (one task wake a second "
        "instead of two; the watchdog stays a task)",
    )
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}")
    best = min(
        (run_campaign(args.hours, one_task=args.one_task) for _ in range(args.runs)),
        key=lambda r: r.wall,
    )
    report(best, "polled path" + (", one task" if args.one_task else ""))
    if args.breakdown:
        report(run_campaign(args.hours, breakdown=True), "same, timed by parts")


if __name__ == "__main__":
    main()
