"""CCD and cycles-to-short, fed the way the runner will feed them."""

from __future__ import annotations

from pathlib import Path

import pytest
from detect_traces import AREA, Trace

from controller.detect import ChargeCounter, CycleBook, RampBook, ShortDetector, ramp_levels
from controller.protocol import CcdRamp, Protocol
from controller.validate import load_protocol

PROTOCOLS = Path(__file__).resolve().parents[2] / "protocols"


def _protocol(name: str) -> Protocol:
    loaded = load_protocol(PROTOCOLS / name)
    assert loaded.ok, loaded.problems
    assert loaded.protocol is not None
    return loaded.protocol


def test_ccd_is_the_level_at_which_the_cell_shorted() -> None:
    """seeds/000: the voltage rises level after level, then drops at 2.6 mA/cm²."""
    protocol = _protocol("ccd-ramp-125C.yaml")
    ramp = next(s.ccd_ramp for s in protocol.steps if isinstance(s, CcdRamp))
    levels = ramp_levels(ramp)
    assert levels[0] == pytest.approx(0.2e-3)
    assert levels[-1] == pytest.approx(6e-3)
    det = ShortDetector.for_protocol(protocol)
    book = RampBook(levels, protocol.cell.area_cm2)
    dt, half = 10.0, 900.0
    shorted_at = None
    result = None
    t = 0.0
    for k, density in enumerate(levels):
        book.start_level(k, t)
        tr = Trace(t=[t], v=[0.0], i=[0.0], level=[0.0], temp=[125.0], step=[2])
        tr.add(half, density * AREA, dt=dt, step=2).add(60, 0.0, dt=dt, step=2)
        tr.add(half, -density * AREA, dt=dt, step=2).add(60, 0.0, dt=dt, step=2)
        if k == 12:  # 2.6 mA/cm²: shorts 6 min into the plating half
            shorted_at = t + 360.0
            for j, tj in enumerate(tr.t):
                if tj >= shorted_at and tr.i[j] != 0:
                    tr.v[j] = -tr.i[j] * 1.5
        for j in range(1, len(tr)):
            book.add(tr.t[j], tr.i[j])
            for event in det.feed(
                tr.t[j], tr.v[j], tr.i[j], temperature=125.0, level=tr.level[j], step=2
            ):
                if event.kind == "hard_short" and result is None:
                    result = book.result(event)
            if result is not None:
                break
        if result is not None:
            break
        t = tr.t[-1]
    assert result is not None
    assert result.ccd == pytest.approx(2.6e-3)
    assert result.level_index == 12
    assert result.levels_completed == 12
    assert result.half_cycle == "plate"
    assert result.time_s == pytest.approx(shorted_at)
    assert result.time_at_level == pytest.approx(360.0)
    assert result.temperature == 125.0
    # the charge passed at that level before the onset: 2.6 mA/cm² from the first sample
    assert result.areal_capacity == pytest.approx(2.6e-3 * (360.0 - dt), rel=0.01)
    assert "CCD 2.6 mA/cm² at 125.0 °C" in result.describe()


def test_a_ramp_that_never_shorts_reports_ccd_above_its_maximum() -> None:
    book = RampBook([1e-3, 2e-3, 3e-3], AREA)
    for k in range(3):
        book.start_level(k, 100.0 * k)
        for s in range(1, 11):
            book.add(100.0 * k + 10.0 * s, 3e-3 * AREA)
    result = book.result(None)
    assert result.ccd is None
    assert result.levels_completed == 3
    assert "CCD > 3 mA/cm²" in result.describe()
    with pytest.raises(IndexError):
        book.start_level(3, 0.0)


def test_cycles_to_short() -> None:
    protocol = _protocol("control-no-therapy-LiBH4.yaml")
    det = ShortDetector.for_protocol(protocol)
    book = CycleBook(protocol.cell.area_cm2)
    dt, half, rest = 10.0, 1800.0, 300.0
    t = 0.0
    result = None
    for cycle in range(1, 6):
        for direction, sign in (("plate", 1), ("strip", -1)):
            book.start_half(cycle, direction, t)
            tr = Trace(t=[t], v=[0.0], i=[0.0], level=[0.0], temp=[125.0], step=[5])
            tr.add(half, sign * 2e-3 * AREA, dt=dt, step=5).add(rest, 0.0, dt=dt, step=5)
            if cycle == 4 and direction == "strip":
                for j in range(tr.index_at(t + 1000.0), len(tr)):
                    tr.v[j] = -tr.i[j] * 0.8
            for j in range(1, len(tr)):
                book.add(tr.t[j], tr.i[j])
                events = det.feed(tr.t[j], tr.v[j], tr.i[j], temperature=125.0, step=5, cycle=cycle)
                if events and result is None:
                    result = book.result(events[0])
            t = tr.t[-1]
            if result is not None:
                break
        if result is not None:
            break
        book.end_cycle(cycle)
    assert result is not None
    assert result.cycles_to_short == 3  # seeds/000 counts completed cycles ("38 cycles")
    assert result.cycle == 4
    assert result.half_cycle == "strip"
    assert result.event is not None
    assert result.event.cycle == 4
    # 3 full cycles and 1000 s of the fourth's strip, at 2 mA/cm²
    assert result.areal_capacity == pytest.approx(2e-3 * (3 * 2 * half + half + 1000.0), rel=0.01)
    assert "shorted after 3 cycles" in result.describe()
    assert book.result(None).cycles_to_short is None


def test_charge_counter_looks_back_to_the_onset() -> None:
    counter = ChargeCounter()
    counter.restart(0.0)
    for s in range(1, 11):
        counter.add(float(s), 1.0)
    assert counter.charge == pytest.approx(9.0)  # trapezoid from the first sample
    assert counter.charge_at(5.0) == pytest.approx(4.0)
    assert counter.charge_at(5.5) == pytest.approx(4.0)
    assert counter.charge_at(100.0) == pytest.approx(9.0)
    with pytest.raises(ValueError, match="plate"):
        CycleBook(AREA).start_half(1, "sideways", 0.0)
