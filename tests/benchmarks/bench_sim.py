"""What a long virtual campaign costs the software rig.

    uv run python tests/benchmarks/bench_sim.py

1. the heater block alone: 150 h with the duty changed every second (as a 1 s PID loop
   does), and 150 h in one call;
2. the rig's physics (block + cell + board trips + lease) advanced 1 s at a time for 150 h,
   the heater on a refreshed lease and 2 mA/cm² through the cell;
3. the same hours driven through the wire protocol, in-process: every second `T?`,
   `DUTY` and `:READ?` as the controller sends them; measured over 10 h and reported per
   request and extrapolated to 150 h.
"""

from __future__ import annotations

import math
import platform
import time

from firmware_sim.board import frame
from firmware_sim.rig import ManualClock, SimRig
from firmware_sim.thermal import HeaterBlock

HOURS = 150
SECONDS = HOURS * 3600


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


def rig_physics() -> None:
    clock = ManualClock()
    rig = SimRig(clock)
    rig.smu_firmware.source_function = "CURRent"
    rig.smu_firmware.sources["CURRent"].level = 1.57e-3
    rig.smu_firmware.sources["CURRent"].range = 10e-3
    rig.smu_firmware.output = True
    board = rig.board_firmware
    for i in range(1, SECONDS + 1):
        assert board.trip is None
        board.permille = int(135 + 20 * math.sin(i / 60.0))  # ≈ 160 °C
        board.lease_until = i + 3.0
        rig.advance_to(float(i))


def wire(hours: int) -> int:
    clock = ManualClock()
    rig = SimRig(clock)
    smu, heater = rig.smu, rig.board
    for line in (
        b":SOUR:FUNC CURR;:SOUR:CURR:RANG 1e-2;:SOUR:CURR 1.57e-3;:SOUR:CURR:VLIM 5",
        b':SENS:FUNC "VOLT";:SENS:VOLT:RSEN ON;:OUTP:CURR:SMOD HIMP;:OUTP ON',
    ):
        smu.handle(line)
    duties = [frame(f"DUTY {p} 3000") for p in range(1001)]
    t_query = frame("T?")
    read = b':READ? "defbuffer1", READ, SOUR, REL'
    requests = 0
    for i in range(1, hours * 3600 + 1):
        clock.set(float(i))
        heater.handle(t_query)
        heater.handle(duties[int(135 + 20 * math.sin(i / 60.0))])
        smu.handle(read)
        requests += 3
    return requests


def main() -> None:
    print(f"python {platform.python_version()} on {platform.machine()}, {HOURS} h virtual")
    t = best_of(3, thermal_1s)
    print(f"heater block, duty changed every 1 s : {t:6.2f} s  ({t / SECONDS * 1e6:.2f} µs/s)")
    t = best_of(5, thermal_one_call)
    print(f"heater block, one 150 h call         : {t * 1e6:6.1f} µs")
    t = best_of(2, rig_physics)
    print(f"rig physics (block+cell+board), 1 s  : {t:6.2f} s  ({t / SECONDS * 1e6:.2f} µs/s)")
    hours = 10
    t0 = time.perf_counter()
    n = wire(hours)
    t = time.perf_counter() - t0
    per = t / n
    print(
        f"wire, T? + DUTY + READ? every 1 s    : {per * 1e6:6.1f} µs/request; "
        f"{hours} h in {t:.2f} s -> {HOURS} h ≈ {t * HOURS / hours:.0f} s"
    )


if __name__ == "__main__":
    main()
