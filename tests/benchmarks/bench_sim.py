"""What a long virtual campaign costs the software rig.

    uv run python tests/benchmarks/bench_sim.py [--only block,physics,wire,drivers,polling]

1. the heater block alone: 150 h with the duty changed every second (as a 1 s PID loop
   does), and 150 h in one call;
2. the rig's physics (block + cell + board trips + lease) advanced 1 s at a time for 150 h
   at ≈ 125 °C, the heater on a refreshed lease, the cell cycled at ±2 mA/cm² (30 min
   half-cycles) — with the ohmic cell (the rig's own cost) and with the cell model;
3. the same driven through the wire protocol, in-process: every second `T?`, `DUTY` and
   `:READ?` as the controller sends them; measured over 10 h and reported per request and
   extrapolated to 150 h;
4. through the real drivers (`drivers.keithley2450`, `drivers.heater_board` over
   `InProcessTransport`), cell model, the block held at 125 °C, ±2 mA/cm²: per rig-second,
   in a 1 s loop's order, the physics step that the first request after the clock moved
   pays (``rig.sync``: block, cell, board checks), one `Keithley2450.read()` (the cell's
   voltage at the new temperature included) and one board `read()` + `set_duty()`;
5. controller-like polling: 150 h of virtual time on a ``VirtualTimeLoop``, a 1 s
   ``Periodic`` tick that does what the runner's loops do — one SMU ``read()``, one board
   ``read()``, one ``set_duty()`` from a P + feed-forward thermal loop — through the real
   drivers, with the heat-therapy campaign's shape (warm-up to 125 °C, 5 pre-cycles, 6 h at
   160 °C, 3 h at 125 °C, then ±2 mA/cm² half-cycles of 30 min with 5 min rests at 125 °C;
   the error queue read at every step change; output off at a short, as the runner does).
   Reports the wall time, µs per rig-second and a fingerprint of every reading (the same
   fingerprint before and after a change means the same behaviour); then the same loop
   with fixed-answer devices in place of the rig: the loop's and the drivers' own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import platform
import struct
import time
from dataclasses import dataclass

from firmware_sim.board import frame
from firmware_sim.ohmic import OhmicCell
from firmware_sim.rig import ManualClock, SimRig
from firmware_sim.thermal import HeaterBlock

from controller.clock import Clock, Periodic, VirtualTimeLoop
from drivers.base import SourceFunction
from drivers.heater_board import HeaterBoardDriver
from drivers.keithley2450 import Keithley2450
from drivers.transport import InProcessTransport

HOURS = 150
SECONDS = HOURS * 3600
SHORTS: list[float] = []  # hours at which the cell model shorted


def best_of(n: int, fn: object) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def thermal_1s() -> None:
    block = HeaterBlock()
    for i in range(1, SECONDS + 1):
        block.advance(float(i), 0.135 + 0.02 * math.sin(i / 60.0))


def thermal_one_call() -> None:
    block = HeaterBlock()
    block.advance(float(SECONDS), 0.135)


def current(i: int) -> float:
    """±2 mA/cm² on 0.785 cm², 30 min half-cycles (SMU sign)."""
    return 1.57e-3 if (i // 1800) % 2 == 0 else -1.57e-3


def rig_physics(cell: object = None) -> None:
    clock = ManualClock()
    rig = SimRig(clock, cell=cell)  # type: ignore[arg-type]
    rig.smu_firmware.source_function = "CURRent"
    rig.smu_firmware.sources["CURRent"].level = 1.57e-3
    rig.smu_firmware.sources["CURRent"].range = 10e-3
    rig.smu_firmware.output = True
    rig.smu_firmware.sources["CURRent"].offmode = "HIMPedance"
    rig.heater.block = rig.heater.sensor = 125.0  # warmed up, as a protocol does first
    board = rig.board_firmware
    src = rig.smu_firmware.sources["CURRent"]
    for i in range(1, SECONDS + 1):
        assert board.trip is None
        board.permille = int(100 + 10 * math.sin(i / 60.0))  # ≈ 125 °C
        board.lease_until = i + 3.0
        src.level = current(i)
        rig.advance_to(float(i))
        if rig.smu_firmware.output and rig.cell.hard_shorted:
            rig.smu_firmware.output = False  # as the controller does at a hard short
            SHORTS.append(i / 3600)


def wire(hours: int, cell: object = None) -> int:
    clock = ManualClock()
    rig = SimRig(clock, cell=cell)  # type: ignore[arg-type]
    rig.heater.block = rig.heater.sensor = 125.0
    smu, heater = rig.smu, rig.board
    for line in (
        b":SOUR:FUNC CURR;:SOUR:CURR:RANG 1e-2;:SOUR:CURR 1.57e-3;:SOUR:CURR:VLIM 5",
        b':SENS:FUNC "VOLT";:SENS:VOLT:RSEN ON;:OUTP:CURR:SMOD HIMP;:OUTP ON',
    ):
        smu.handle(line)
    duties = [frame(f"DUTY {p} 3000") for p in range(1001)]
    levels = {c: f":SOUR:CURR {c:g}".encode() for c in (1.57e-3, -1.57e-3)}
    t_query = frame("T?")
    read = b':READ? "defbuffer1", READ, SOUR, REL'
    requests = 0
    for i in range(1, hours * 3600 + 1):
        clock.set(float(i))
        heater.handle(t_query)
        heater.handle(duties[int(100 + 10 * math.sin(i / 60.0))])
        if i % 1800 == 0:
            smu.handle(levels[current(i)])
        smu.handle(read)
        requests += 3
    return requests


# ---------------------------------------------------------------- through the drivers

AREA = 0.785
J2 = 2e-3 * AREA  # A, 2 mA/cm² on the bundled cell
LEASE = 3.0  # s, the thermal loop's heater lease
AMBIENT, LOSS, POWER = 25.0, 0.1, 100.0  # the simulated block (BlockParams defaults)


def feed_forward(setpoint: float) -> float:
    """The duty that holds ``setpoint`` for ever (block losses / heater power)."""
    return (setpoint - AMBIENT) * LOSS / POWER


def thermal_step(setpoint: float, temperature: float) -> float:
    """A P + feed-forward heater loop: enough to hold the block within a fraction of a K."""
    duty = feed_forward(setpoint) + 0.05 * (setpoint - temperature)
    return min(1.0, max(0.0, duty))


class _CannedSmu:
    """A LineDevice with fixed 2450 answers and no physics: what the loop and the drivers
    cost on their own (the rig's share is the difference)."""

    def handle(self, line: bytes) -> bytes | None:
        if line.startswith(b":READ?"):
            return b"2.854300E-01,1.570000E-03,1.250000E+01"
        answers = {
            b"*IDN?": b"KEITHLEY INSTRUMENTS,MODEL 2450,04412345,1.7.12b",
            b"*LANG?": b"SCPI",
            b":SYST:ERR?": b'0,"No error;0;0 0"',
            b":OUTP?": b"0",
        }
        return answers.get(line)


class _CannedBoard:
    """The board's framing with fixed answers: ``T`` at 125 °C, ``DUTY`` echoed."""

    def handle(self, line: bytes) -> bytes | None:
        payload = line.rpartition(b"*")[0].decode()
        if payload == "T?":
            return frame("T 125.00 26.5000 00 1 100")
        if payload == "ID?":
            return frame("ID HCB-1 1.2.0 B0042")
        return frame("OK " + payload)


async def drivers_on(
    rig: SimRig, *, canned: bool = False
) -> tuple[Keithley2450, HeaterBoardDriver]:
    if canned:
        smu = Keithley2450(InProcessTransport(_CannedSmu(), name="smu"))
        board = HeaterBoardDriver(InProcessTransport(_CannedBoard(), name="board"))
    else:
        smu = Keithley2450(InProcessTransport(rig.smu, name="smu"))
        board = HeaterBoardDriver(InProcessTransport(rig.board, name="board"))
    await smu.identify()
    await board.identify()
    await board.set_limits(170.0, 0.0)
    await smu.configure(SourceFunction.CURRENT, compliance=5.0, source_range=10e-3)
    await smu.set_level(0.0)
    await smu.output_on()
    return smu, board


def per_driver_call(n: int = 20_000, runs: int = 3) -> dict[str, float]:
    """µs per rig-second through the drivers, in a 1 s loop's order, the clock moved 1 s
    first: the physics step the first request pays (``rig.sync``: block, cell, board
    checks), then ``Keithley2450.read()``, then board ``read()`` + ``set_duty()``. The block
    is held at 125 °C, the cell cycled at ±2 mA/cm² in 30 min half-cycles. Best of
    ``runs``."""

    async def run() -> dict[str, float]:
        clock = ManualClock()
        rig = SimRig(clock)
        rig.heater.block = rig.heater.sensor = 125.0
        smu, board = await drivers_on(rig)
        await smu.set_level(J2)
        physics = smu_read = board_pair = 0.0
        clock_now = time.perf_counter
        for i in range(1, n + 1):
            clock.advance(1.0)
            if i % 1800 == 0:
                await smu.set_level(J2 if (i // 1800) % 2 == 0 else -J2)
            t0 = clock_now()
            rig.sync()
            t1 = clock_now()
            await smu.read()
            t2 = clock_now()
            reading = await board.read()
            await board.set_duty(thermal_step(125.0, reading.temperature), LEASE)
            t3 = clock_now()
            physics += t1 - t0
            smu_read += t2 - t1
            board_pair += t3 - t2
        scale = 1e6 / n
        return {
            "physics": physics * scale,
            "smu": smu_read * scale,
            "board": board_pair * scale,
        }

    results = [asyncio.run(run()) for _ in range(runs)]
    best = min(results, key=lambda r: sum(r.values()))
    best["total"] = sum(best.values())
    return best


@dataclass
class Campaign:
    rig_seconds: float
    wall: float
    requests: int
    short_at: float | None
    cycles: int
    fingerprint: str
    temperature_error: float  # largest |T - setpoint| while cycling, K


def campaign_segments(hours: float) -> list[tuple[float, float, float, float]]:
    """(duration s, SMU current A, setpoint at start, setpoint at end) of the campaign."""
    segments: list[tuple[float, float, float, float]] = [(100 * 12.0, 0.0, 25.0, 125.0)]
    segments.append((3600.0, 0.0, 125.0, 125.0))
    cycle = [(1800.0, J2), (300.0, 0.0), (1800.0, -J2), (300.0, 0.0)]
    segments += [(d, i, 125.0, 125.0) for _ in range(5) for d, i in cycle]
    segments.append((35 * 12.0, 0.0, 125.0, 160.0))
    segments.append((6 * 3600.0, 0.0, 160.0, 160.0))
    segments.append((35 * 30.0, 0.0, 160.0, 125.0))
    segments.append((3 * 3600.0, 0.0, 125.0, 125.0))
    total = sum(s[0] for s in segments)
    while total < hours * 3600:
        for d, i in cycle:
            segments.append((d, i, 125.0, 125.0))
            total += d
    return segments


async def _campaign(hours: float, canned: bool) -> Campaign:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    rig = SimRig(loop.time, seed=0)
    smu, board = await drivers_on(rig, canned=canned)
    clock = Clock()
    ticks = Periodic(clock, 1.0)
    digest = hashlib.blake2b(digest_size=16)
    pack = struct.Struct("<5d").pack
    start = clock.now()
    end = start + hours * 3600
    segments = iter(campaign_segments(hours))
    seg_end = clock.now()
    duration = level = sp0 = sp1 = 0.0
    seg_start = 0.0
    short_at: float | None = None
    half_cycles = 0
    worst = 0.0
    requests = 0
    wall0 = time.perf_counter()
    while True:
        now = await ticks.tick()
        if now >= end:
            break
        if now >= seg_end:
            duration, new_level, sp0, sp1 = next(segments)
            seg_start, seg_end = now, now + duration
            if short_at is None and new_level != level:
                await smu.set_level(new_level)
                requests += 1
                if new_level:
                    half_cycles += 1
            level = new_level
            requests += len(await smu.drain_errors())  # + the final "0,No error"
            requests += 1
        setpoint = sp0 + (sp1 - sp0) * min(1.0, (now - seg_start) / duration)
        m = await smu.read()
        reading = await board.read()
        duty = thermal_step(setpoint, reading.temperature)
        await board.set_duty(duty, LEASE)
        requests += 3
        digest.update(pack(m.voltage, m.current, m.time, reading.temperature, duty))
        if level and short_at is None:
            worst = max(worst, abs(reading.temperature - setpoint))
            if abs(m.voltage) < 0.02:  # a short: the runner stops the current
                short_at = now
                await smu.output_off()
                requests += 2
    wall = time.perf_counter() - wall0
    return Campaign(
        rig_seconds=clock.now() - start,
        wall=wall,
        requests=requests,
        short_at=short_at,
        cycles=half_cycles // 2 - 5,
        fingerprint=digest.hexdigest(),
        temperature_error=worst,
    )


def controller_campaign(hours: float = HOURS, *, canned: bool = False) -> Campaign:
    """The polling campaign; ``canned`` puts fixed-answer devices behind the drivers in
    place of the rig (the loop's and the drivers' own cost)."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(_campaign(hours, canned))


SECTIONS = ("block", "physics", "wire", "drivers", "polling")
CAMPAIGN_HOURS = 190  # issue 5's heat-therapy campaign, to the short


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help="comma-separated: " + ", ".join(SECTIONS)
    )
    only = set(parser.parse_args().only.split(","))
    print(f"python {platform.python_version()} on {platform.machine()}, {HOURS} h virtual")
    if "block" in only:
        t = best_of(3, thermal_1s)
        print(f"heater block, duty changed every 1 s : {t:6.2f} s  ({t / SECONDS * 1e6:.2f} µs/s)")
        t = best_of(5, thermal_one_call)
        print(f"heater block, one 150 h call         : {t * 1e6:6.1f} µs")
    for name, make in (("ohmic cell", OhmicCell), ("cell model", lambda: None)):
        if "physics" not in only:
            break
        t = best_of(2, lambda make=make: rig_physics(make()))
        short = f"; hard short at {SHORTS[-1]:.1f} h, then output off" if SHORTS else ""
        print(
            f"rig physics, 1 s steps, {name:10} : {t:6.2f} s  ({t / SECONDS * 1e6:.2f} µs/s{short})"
        )
        SHORTS.clear()
    hours = 10
    for name, make in (("ohmic cell", OhmicCell), ("cell model", lambda: None)):
        if "wire" not in only:
            break
        t0 = time.perf_counter()
        n = wire(hours, make())
        t = time.perf_counter() - t0
        print(
            f"wire, T?+DUTY+READ? 1/s, {name:10}: {t / n * 1e6:6.1f} µs/request; "
            f"{hours} h in {t:.2f} s -> {HOURS} h ≈ {t * HOURS / hours:.0f} s"
        )
    if "drivers" in only:
        calls = per_driver_call()
        print(
            f"drivers in process, cell model, per rig-second: physics step "
            f"{calls['physics']:.1f} µs + Keithley2450.read() {calls['smu']:.1f} µs + board "
            f"read()+set_duty() {calls['board']:.1f} µs = {calls['total']:.1f} µs "
            f"(-> {CAMPAIGN_HOURS} h ≈ {calls['total'] * CAMPAIGN_HOURS * 3600e-6:.0f} s)"
        )
    if "polling" in only:
        c = controller_campaign()
        short = f"short at {c.short_at / 3600:.1f} h" if c.short_at is not None else "no short"
        per_second = c.wall / c.rig_seconds
        print(
            f"controller-like polling, {c.rig_seconds / 3600:.0f} h virtual: {c.wall:.2f} s "
            f"wall, {per_second * 1e6:.1f} µs per rig-second (-> {CAMPAIGN_HOURS} h ≈ "
            f"{per_second * CAMPAIGN_HOURS * 3600:.0f} s); {c.requests} requests, {c.cycles} "
            f"cycles after therapy, {short}, |T - setpoint| ≤ {c.temperature_error:.2f} K while "
            f"cycling\n  fingerprint of every reading: {c.fingerprint}"
        )
        hours = 20
        alone = controller_campaign(hours, canned=True)
        print(
            f"  the same loop and drivers with canned devices (no rig), {hours} h: "
            f"{alone.wall / alone.rig_seconds * 1e6:.1f} µs per rig-second"
        )


if __name__ == "__main__":
    main()
