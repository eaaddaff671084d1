"""What a long virtual campaign costs the software rig.

    uv run python tests/benchmarks/bench_sim.py

1. the heater block alone: 150 h with the duty changed every second (as a 1 s PID loop
   does), and 150 h in one call;
2. the rig's physics (block + cell + board trips + lease) advanced 1 s at a time for 150 h
   at ≈ 125 °C, the heater on a refreshed lease, the cell cycled at ±2 mA/cm² (30 min
   half-cycles) — with the ohmic cell (the rig's own cost) and with the cell model;
3. the same driven through the wire protocol, in-process: every second `T?`, `DUTY` and
   `:READ?` as the controller sends them; measured over 10 h and reported per request and
   extrapolated to 150 h.
"""

from __future__ import annotations

import math
import platform
import time

from firmware_sim.board import frame
from firmware_sim.ohmic import OhmicCell
from firmware_sim.rig import ManualClock, SimRig
from firmware_sim.thermal import HeaterBlock

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


def main() -> None:
    print(f"python {platform.python_version()} on {platform.machine()}, {HOURS} h virtual")
    t = best_of(3, thermal_1s)
    print(f"heater block, duty changed every 1 s : {t:6.2f} s  ({t / SECONDS * 1e6:.2f} µs/s)")
    t = best_of(5, thermal_one_call)
    print(f"heater block, one 150 h call         : {t * 1e6:6.1f} µs")
    for name, make in (("ohmic cell", OhmicCell), ("cell model", lambda: None)):
        t = best_of(2, lambda make=make: rig_physics(make()))
        short = f"; hard short at {SHORTS[-1]:.1f} h, then output off" if SHORTS else ""
        print(
            f"rig physics, 1 s steps, {name:10} : {t:6.2f} s  ({t / SECONDS * 1e6:.2f} µs/s{short})"
        )
        SHORTS.clear()
    hours = 10
    for name, make in (("ohmic cell", OhmicCell), ("cell model", lambda: None)):
        t0 = time.perf_counter()
        n = wire(hours, make())
        t = time.perf_counter() - t0
        print(
            f"wire, T?+DUTY+READ? 1/s, {name:10}: {t / n * 1e6:6.1f} µs/request; "
            f"{hours} h in {t:.2f} s -> {HOURS} h ≈ {t * HOURS / hours:.0f} s"
        )


if __name__ == "__main__":
    main()
