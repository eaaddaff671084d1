"""The detector on the software rig's cell physics (firmware_sim.cell), an independent
model: its own filaments, soft shorts and hard short, sampled like the runner will sample
it (1 s, SMU-like noise), with the cell's event log as the ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from firmware_sim.cell import Cell
from firmware_sim.physics import CellSpec

from controller.detect import RampBook, ShortDetector, ShortEvent

AREA = 0.785
DT = 1.0


class Bench:
    """A galvanostat and a thermocouple around a simulated cell, feeding the detector."""

    def __init__(self, seed: int) -> None:
        self.cell = Cell(CellSpec("LiBH4", "symmetric", AREA, 0.1), seed)
        self.rng = np.random.default_rng(seed)
        self.detector = ShortDetector(area_cm2=AREA, voltage_window=(-1.0, 1.0))
        self.t = 0.0
        self.events: list[ShortEvent] = []

    def hold(
        self, seconds: float, current: float, cycle: int, book: RampBook | None = None
    ) -> bool:
        """Hold a current; True once a hard short has been confirmed (the runner stops)."""
        for _ in range(round(seconds / DT)):
            self.cell.advance(DT, current, 125.0)
            self.t += DT
            v = self.cell.voltage(current, 125.0)
            v += self.rng.normal(0, 20e-6 + 5e-4 * abs(v))
            i = current * (1 + self.rng.normal(0, 1e-4)) + self.rng.normal(0, 2e-9)
            if book is not None:
                book.add(self.t, i)
            new = self.detector.feed(
                self.t, v, i, temperature=125.0, level=current, step=1, cycle=cycle
            )
            self.events.extend(new)
            if any(e.kind == "hard_short" for e in new):
                return True
        return False


def test_cycling_until_short_without_heat_therapy() -> None:
    """control-no-therapy-LiBH4: 2 mA/cm², 30 min half-cycles, 5 min rests, 125 °C."""
    bench = Bench(seed=0)
    current = 2e-3 * AREA
    cycle = 0
    while cycle < 200:
        cycle += 1
        if (
            bench.hold(1800, current, cycle)
            or bench.hold(300, 0.0, cycle)
            or bench.hold(1800, -current, cycle)
            or bench.hold(300, 0.0, cycle)
        ):
            break
    hard_cell = [e for e in bench.cell.events if e.kind == "hard_short"]
    hard = [e for e in bench.events if e.kind == "hard_short"]
    assert len(hard_cell) == 1
    assert len(hard) == 1
    # the first sample after the physical short is the onset; the next confirms it
    assert hard_cell[0].time < hard[0].onset_s <= hard_cell[0].time + DT
    assert hard[0].latency_samples == 2
    assert 30 <= hard[0].cycle <= 60  # seeds/000: 38 cycles without heat therapy
    assert not [e for e in bench.events if e.kind == "voltage_limit"]
    # soft shorts: the cell's own log is the truth; deep (≥ 35 % lost) and slow enough
    # (recovery τ ≥ 2 samples) ones must be seen, and nothing else may be reported
    soft = [e for e in bench.events if e.kind == "soft_short"]
    truth = [e for e in bench.cell.events if e.kind == "soft_short"]

    def near(t: float) -> bool:
        return any(abs(t - c.time) <= 2 * DT + 1.0 for c in truth)

    assert all(near(e.onset_s) for e in soft), [e.onset_s for e in soft]
    visible = [c for c in truth if c.depth >= 0.35 and c.tau >= 2 * DT]
    assert len(visible) >= 5
    seen = [c for c in visible if any(abs(e.onset_s - c.time) <= 2 * DT + 1.0 for e in soft)]
    assert len(seen) >= 0.8 * len(visible)


def test_ccd_ramp_on_the_simulated_cell_finds_the_calibrated_ccd() -> None:
    """ccd-ramp-125C: 0.2 mA/cm² steps, 15 min half-cycles, 1 min rests; the rig is
    calibrated to seeds/000's 2.6 mA/cm² at 125 °C."""
    bench = Bench(seed=0)
    levels = [0.2e-3 * (k + 1) for k in range(30)]
    book = RampBook(levels, AREA)
    result = None
    for k, density in enumerate(levels):
        book.start_level(k, bench.t)
        current = density * AREA
        for held in ((900, current), (60, 0.0), (900, -current), (60, 0.0)):
            if bench.hold(*held, cycle=k + 1, book=book):
                hard = next(e for e in bench.events if e.kind == "hard_short")
                result = book.result(hard)
                break
        if result is not None:
            break
    assert result is not None
    assert result.ccd is not None
    assert result.ccd == pytest.approx(2.6e-3, abs=0.21e-3)  # within one level
    hard_cell = next(e for e in bench.cell.events if e.kind == "hard_short")
    assert result.time_s == pytest.approx(hard_cell.time, abs=DT)
    assert result.areal_capacity > 0
