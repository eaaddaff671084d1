"""Soft shorts before the hard short, and the physics-level rehearsal harness itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from firmware_sim import cell_calibration as cal
from firmware_sim.rehearse import main, rehearse

from controller import protocol as proto
from controller.validate import load_protocol

CYCLE = 70 * 60  # s: two 30 min half-cycles and two 5 min rests


def bundled(protocols_dir: Path, name: str) -> proto.Protocol:
    loaded = load_protocol(protocols_dir / f"{name}.yaml")
    assert loaded.protocol is not None, loaded.problems
    return loaded.protocol


def test_soft_shorts_come_before_the_hard_short_and_more_often_near_it(
    protocols_dir: Path,
) -> None:
    protocol = bundled(protocols_dir, "control-no-therapy-LiBH4")
    near, earlier = 0, 0
    for seed in range(5):
        run = rehearse(protocol, seed=seed)
        hard = run.hard_short_time
        assert hard is not None
        soft = [e for e in run.cell.events if e.kind == "soft_short"]
        assert len(soft) >= 2, seed
        assert all(e.time < hard for e in soft)
        assert all(e.time > hard / 2 for e in soft)  # not while the filament is short
        reaches = [e.reach for e in soft]
        assert reaches == sorted(reaches)  # each one nearer the counter electrode
        near += sum(1 for e in soft if hard - e.time < 2 * CYCLE)
        earlier += sum(1 for e in soft if 2 * CYCLE <= hard - e.time < 6 * CYCLE)
    assert near > earlier  # two cycles hold more soft shorts than the four before


def test_a_soft_short_is_a_partial_collapse_that_recovers(protocols_dir: Path) -> None:
    run = rehearse(bundled(protocols_dir, "control-no-therapy-LiBH4"), seed=0, trace_every=1.0)
    by_time = {round(s.time): s for s in run.trace}
    soft = [e for e in run.cell.events if e.kind == "soft_short"]
    checked = 0
    for event in soft:
        onset = int(event.time) + 1
        before, at, after = by_time.get(onset - 2), by_time.get(onset), by_time.get(onset + 120)
        if before is None or at is None or after is None:
            continue
        if not before.current == at.current == after.current != 0:
            continue  # at a current change, or overlapping another event
        if any(0 < e.time - event.time < 130 for e in soft):
            continue
        assert 0.15 < at.voltage / before.voltage < 0.75  # partial: 25-85 % lost
        assert after.voltage == pytest.approx(before.voltage, rel=0.01)  # recovered
        checked += 1
    assert checked >= 3


def test_soft_short_times_do_not_depend_on_how_time_is_cut(protocols_dir: Path) -> None:
    protocol = bundled(protocols_dir, "control-no-therapy-LiBH4")
    fine = rehearse(protocol, seed=2, chunk=10)
    coarse = rehearse(protocol, seed=2, chunk=600)
    a = [e.time for e in fine.cell.events]
    b = [e.time for e in coarse.cell.events]
    assert len(a) == len(b)
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 120
    assert fine.step("no-therapy").cycles == coarse.step("no-therapy").cycles


def test_temperature_profile_is_ramp_then_soak(protocols_dir: Path) -> None:
    run = rehearse(bundled(protocols_dir, "heat-therapy-LiBH4"), seed=0)
    warm_up, therapy, settle = run.steps[0], run.steps[2], run.steps[3]
    assert warm_up.end == pytest.approx((125 - 25) / 5 * 60 + 3600)
    assert therapy.end - therapy.start == pytest.approx((160 - 125) / 5 * 60 + 6 * 3600)
    assert settle.end - settle.start == pytest.approx((160 - 125) / 2 * 60 + 3 * 3600)


def test_leaving_the_voltage_window_stops_the_run() -> None:
    # below the LiBH4 transition the cell cannot carry 0.2 mA/cm² inside ±1 V
    run = rehearse(cal.ccd_protocol(100.0), seed=0)
    assert run.outcome == "voltage_limit"
    assert run.step("ccd").outcome == "voltage_limit"
    assert not run.cell.hard_shorted


def test_until_voltage_ends_a_hold() -> None:
    text = """
name: until-voltage
cell: {id: L1, electrolyte: LLZO, area: 0.785 cm^2, thickness: 1.0 mm}
safety: {voltage: {min: -8 V, max: 8 V}, temperature_max: 120 degC}
steps:
  - temperature: {setpoint: 100 degC, soak: 10 min}
  - hold_current:
      label: plate
      current_density: 1 mA/cm^2
      direction: plate
      for: 24 h
      until: {voltage_below: {value: -3.5 V, hold_for: 30 s}}
  - rest: {label: after, for: 10 min}
"""
    loaded = load_protocol("until.yaml", text=text)
    assert loaded.protocol is not None, loaded.problems
    run = rehearse(loaded.protocol, seed=0)
    plate = run.step("plate")
    assert plate.outcome == "voltage"
    assert 1 * 3600 < plate.end - plate.start < 24 * 3600
    assert run.step("after").outcome == "done"
    assert run.outcome == "completed"


def test_cli_rehearses_a_bundled_protocol(
    protocols_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(protocols_dir / "ccd-ramp-125C.yaml"), "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "ccd-ramp-125C (seed 0): completed" in out
    assert "short" in out
    assert "CCD 2.60 mA/cm^2" in out


def test_cli_reports_a_bad_protocol_with_its_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\n"
        "cell: {id: X, electrolyte: LiBH4, area: 0.785 cm^2, thickness: 1 mm}\n"
        "safety: {voltage: {min: -1 V, max: 1 V}, temperature_max: 175 degC}\n"
        "steps:\n"
        "  - rest: {for: 10}\n"
    )
    assert main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:5:" in err
    assert "unit" in err
