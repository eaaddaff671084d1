"""Cost of the cell physics: what the SMU emulator pays per 1 s sample, and per long step.

    uv run python tests/benchmarks/bench_cell.py

1. A 150 h heat-therapy campaign (warm-up, 5 pre-cycles at 2 mA/cm², 6 h at 160 °C, 3 h at
   125 °C, cycling at 2 mA/cm² and 125 °C) in 1 s steps: one ``advance(1 s)`` and one
   ``voltage()`` per step, as an emulator sampling once a second would call them.
2. The same pair in the regimes that leave the closed-form fast path: a soft short in
   progress, a hard-shorted cell, lost contact (LLZO at 100 °C on the -4 V plateau), and
   ``current_for`` (potentiostat) on a blocking cell.
3. Whole campaigns in one ``advance`` call per segment (the rehearsal harness).
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Iterator

from firmware_sim.cell import Cell
from firmware_sim.cell_calibration import bundled
from firmware_sim.physics import CellSpec
from firmware_sim.rehearse import rehearse

AREA = 0.785
J2 = 2e-3 * AREA


def therapy_schedule() -> Iterator[tuple[float, float, float]]:
    """(seconds, current A, degC) segments of the heat-therapy campaign."""
    for t in range(25, 125):  # warm-up ramp at 5 K/min, 12 s per kelvin
        yield 12.0, 0.0, t + 0.5
    yield 3600.0, 0.0, 125.0
    for _ in range(5):
        yield from ((1800.0, J2, 125.0), (300.0, 0.0, 125.0), (1800.0, -J2, 125.0))
        yield 300.0, 0.0, 125.0
    for t in range(125, 160):
        yield 12.0, 0.0, t + 0.5
    yield 6 * 3600.0, 0.0, 160.0
    for t in range(160, 125, -1):
        yield 30.0, 0.0, t - 0.5
    yield 3 * 3600.0, 0.0, 125.0
    while True:
        yield from ((1800.0, J2, 125.0), (300.0, 0.0, 125.0), (1800.0, -J2, 125.0))
        yield 300.0, 0.0, 125.0


def campaign_1s(hours: float) -> tuple[int, float, Cell]:
    cell = Cell(CellSpec(), 0)
    steps = int(hours * 3600)
    done = 0
    advance, voltage = cell.advance, cell.voltage
    start = time.perf_counter()
    for seconds, current, temperature in therapy_schedule():
        n = min(int(seconds), steps - done)
        for _ in range(n):
            advance(1.0, current, temperature)
            voltage(current, temperature)
        done += n
        if done >= steps:
            break
    return done, time.perf_counter() - start, cell


def per_call(cell: Cell, current: float, temperature: float, n: int = 20000) -> float:
    start = time.perf_counter()
    for _ in range(n):
        cell.advance(1.0, current, temperature)
        cell.voltage(current, temperature)
    return (time.perf_counter() - start) / n * 1e6


def regimes() -> dict[str, float]:
    out: dict[str, float] = {}
    normal = Cell(CellSpec(), 0)
    normal.advance(3600, 0.0, 125.0)
    out["cycling, fast path (LiBH4, 2 mA/cm², 125 °C)"] = per_call(normal, J2, 125.0)
    soft = Cell(CellSpec(), 0)
    soft.advance(10, J2, 125.0)
    cost = 0.0
    for _ in range(200):  # 100 s windows, each starting with a fresh soft short
        soft.inject_short("soft")
        cost += per_call(soft, J2, 125.0, 100) / 200
    out["soft short in progress"] = cost
    hard = Cell(CellSpec(), 0)
    hard.inject_short("hard")
    out["hard-shorted cell"] = per_call(hard, J2, 125.0)
    lost = Cell(CellSpec(electrolyte="LLZO"), 0)
    lost.advance(8 * 3600, 1e-3 * AREA, 100.0)  # voids: on the -4 V plateau
    assert lost.voltage(1e-3 * AREA, 100.0) < -3.5
    out["lost contact (LLZO, 100 °C, -4 V plateau)"] = per_call(lost, 1e-3 * AREA, 100.0, 5000)
    blocking = Cell(CellSpec(electrolyte="LLZO", type="blocking"), 0)
    n = 20000
    start = time.perf_counter()
    for _ in range(n):
        current = blocking.current_for(0.1, 25.0)
        blocking.advance(1.0, current, 25.0)
    out["potentiostat: current_for + advance (blocking)"] = (time.perf_counter() - start) / n * 1e6
    return out


def whole_campaigns() -> dict[str, float]:
    out: dict[str, float] = {}
    for name, label in (
        ("heat-therapy-LiBH4", "heat therapy (≈ 197 h)"),
        ("control-no-therapy-LiBH4", "control (≈ 52 h)"),
    ):
        protocol = bundled(name)
        start = time.perf_counter()
        rehearse(protocol, seed=0, chunk=1e9)
        out[f"{label}, one advance per segment"] = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        rehearse(protocol, seed=0, chunk=60.0)
        out[f"{label}, 60 s chunks"] = (time.perf_counter() - start) * 1e3
    return out


def main() -> int:
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.system()}")
    bundled("heat-therapy-LiBH4")  # load the protocol library outside the timings
    hours = 150.0
    steps, seconds, cell = campaign_1s(hours)
    print(
        f"\n150 h heat-therapy campaign in 1 s steps: {steps} advance+voltage pairs in "
        f"{seconds:.2f} s = {seconds / steps * 1e6:.1f} µs per pair "
        f"(at 150 h: filament reach {cell.reach:.3f}, {len(cell.events)} short events)"
    )
    print("\nµs per advance(1 s) + voltage() pair, by regime:")
    for name, us in regimes().items():
        print(f"  {name:<52} {us:8.1f}")
    print("\nwhole rehearsals (ms of wall time):")
    for name, ms in whole_campaigns().items():
        print(f"  {name:<52} {ms:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
