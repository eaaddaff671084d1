"""The dry run: durations, start times, charge and temperatures, step by step."""

from __future__ import annotations

import json

import pytest

from controller.plan import (
    SETTLING_ALLOWANCE,
    TIMEOUT_MARGIN,
    Bounds,
    Plan,
    bounds_text,
    duration_text,
    format_plan,
    make_plan,
)
from controller.rig import RigConfig, simulated_rig

from .factory import valid

SIM = simulated_rig()
MIN = 60.0
H = 3600.0
MAH = 3.6  # C per mAh


def plan(steps: str, rig: RigConfig | None = None, **frame: str) -> Plan:
    return make_plan(valid(steps, rig, **frame), rig)


def fast_rig() -> RigConfig:
    data = SIM.model_dump(mode="json")
    data["rig"] = "fast"
    data["heater"]["max_ramp_up"] = "50 degC/min"
    data["heater"]["max_ramp_down"] = "10 degC/min"
    data["safety"]["setpoint_max"] = "150 degC"
    data["smu"]["current_max"] = "2 mA"
    return RigConfig.model_validate(data)


# --------------------------------------------------------------- temperature


def test_temperature_step_from_ambient_at_its_ramp() -> None:
    p = plan("  - temperature: {setpoint: 125 degC, ramp: 5 degC/min, soak: 1 h}\n")
    [step] = p.steps
    ramp = 100 / 5 * MIN  # 25 -> 125 degC at 5 degC/min
    assert step.duration == Bounds(ramp + SETTLING_ALLOWANCE + H, ramp + TIMEOUT_MARGIN + H)
    assert step.start == Bounds(0, 0)
    assert step.temperature == 125
    assert step.kind == "temperature"
    assert p.thermal_time == step.duration
    assert p.peak_temperature == 125


def test_temperature_step_at_the_rig_rate_and_with_a_timeout() -> None:
    p = plan(
        "  - temperature: {setpoint: 125 degC}\n"  # rig max: 20 degC/min up
        "  - temperature: {setpoint: 100 degC, timeout: 2 h, soak: 10 min}\n"  # 5 degC/min down
    )
    up, down = p.steps
    assert up.duration.min == pytest.approx(100 / 20 * MIN + SETTLING_ALLOWANCE)
    assert down.duration == Bounds(25 / 5 * MIN + SETTLING_ALLOWANCE + 10 * MIN, 2 * H + 10 * MIN)
    assert down.start == up.end
    assert [c.name for c in p.limits][-2:] == ["heating rate", "cooling rate"]


def test_ramps_never_faster_than_the_rig() -> None:
    steps = "  - temperature: {setpoint: 145 degC, ramp: 30 degC/min}\n"
    slow = plan(steps)  # no rig: the simulated rig's 20 degC/min
    assert slow.steps[0].duration.min == pytest.approx(120 / 20 * MIN + SETTLING_ALLOWANCE)
    assert any("heats at most 20 degC/min" in n for n in slow.notes)
    heating = next(c for c in slow.limits if c.name == "heating rate")
    assert (heating.status, heating.wins) == ("note", "rig")
    quick = plan(steps, fast_rig())
    assert quick.steps[0].duration.min == pytest.approx(120 / 30 * MIN + SETTLING_ALLOWANCE)


def test_time_at_each_setpoint_and_thermal_time() -> None:
    p = plan(
        "  - rest: {for: 10 min}\n"
        "  - temperature: {setpoint: 160 degC, ramp: 5 degC/min, soak: 6 h}\n"
        "  - temperature: {setpoint: 125 degC, ramp: 2 degC/min, soak: 3 h}\n"
        "  - rest: {for: 1 h}\n"
    )
    held = {s.setpoint: (s.time, s.soak) for s in p.setpoints}
    assert held[None] == (Bounds(10 * MIN, 10 * MIN), 0)
    assert held[160] == (Bounds(6 * H, 6 * H), 6 * H)
    assert held[125] == (Bounds(4 * H, 4 * H), 3 * H)
    assert p.thermal_time.min == pytest.approx(
        (135 / 5 + 35 / 2) * MIN + 2 * SETTLING_ALLOWANCE + 9 * H
    )
    assert p.steps[3].temperature == 125
    assert p.steps[0].temperature is None


# -------------------------------------------------------------- electrochem


def test_cycles_by_time() -> None:
    p = plan(
        "  - cycle: {current_density: 2 mA/cm^2, half_cycle: 30 min, rest: 5 min, count: 5}\n",
        geometry="area: 0.785 cm^2",
    )
    [cycle] = p.steps
    assert cycle.duration == Bounds(5 * 70 * MIN, 5 * 70 * MIN)
    # 2 mA/cm^2 for 10 half-cycles of 30 min: 10 mAh/cm^2
    assert cycle.charge_per_cm2.min == pytest.approx(10 * MAH)
    assert cycle.charge_per_cm2.max == pytest.approx(10 * MAH)
    assert cycle.ends_on == "after 5 cycles"


def test_cycles_by_capacity_and_by_current() -> None:
    p = plan(
        "  - cycle: {current: 2 mA, capacity: 1 mAh/cm^2, count: 2}\n", geometry="area: 2 cm^2"
    )
    # 2 mA on 2 cm^2 is 1 mA/cm^2: 1 mAh/cm^2 takes 1 h per half-cycle
    assert p.steps[0].duration == Bounds(4 * H, 4 * H)
    assert p.steps[0].charge_per_cm2.max == pytest.approx(4 * MAH)


def test_cycles_until_short_range_from_zero_to_max_count() -> None:
    p = plan(
        "  - cycle: {current_density: 2 mA/cm^2, half_cycle: 30 min, rest: 5 min,"
        " until: short, max_count: 1000, on_short: end}\n"
    )
    [cycle] = p.steps
    assert cycle.duration == Bounds(0, 1000 * 70 * MIN)
    assert cycle.charge_per_cm2.min == 0
    assert cycle.charge_per_cm2.max == pytest.approx(2000 * MAH)
    assert cycle.may_end_run
    assert cycle.ends_on == "on a short; at the latest after 1000 cycles"


def test_cycles_until_capacity() -> None:
    p = plan(
        "  - cycle: {current_density: 1 mA/cm^2, half_cycle: 1 h, rest: 10 min,"
        " until: {capacity: 2.5 mAh/cm^2}, max_count: 10}\n"
    )
    # 2.5 half-cycles of 1 h: two half-cycles with their rests, then half of the third
    assert p.steps[0].duration == Bounds(2 * 70 * MIN + 30 * MIN, 2 * 70 * MIN + 30 * MIN)
    assert p.steps[0].charge_per_cm2.max == pytest.approx(2.5 * MAH)


def test_hold_current_until_voltage_or_capacity() -> None:
    p = plan(
        "  - hold_current: {current_density: 1 mA/cm^2, direction: plate, for: 4 h,"
        " until: {voltage_above: 0.5 V, hold_for: 10 s}}\n"
        "  - hold_current: {current_density: 1 mA/cm^2, direction: strip, for: 4 h,"
        " until: {capacity: 2 mAh/cm^2}}\n"
    )
    first, second = p.steps
    assert first.duration == Bounds(10, 4 * H)
    assert first.ends_on == "on V above 0.5 V for 10 s; at the latest after 4 h"
    assert second.duration == Bounds(2 * H, 2 * H)
    assert second.start == Bounds(10, 4 * H)
    assert second.charge_per_cm2.max == pytest.approx(2 * MAH)


def test_rest_hold_voltage_and_dc_polarization() -> None:
    p = plan(
        "  - rest: {for: 10 min}\n"
        "  - hold_voltage: {voltage: 0.1 V, current_limit: 1 mA, for: 1 h}\n"
        "  - dc_polarization: {voltage: 0.1 V, current_limit: 1 mA, min_duration: 1 h,"
        " max_duration: 48 h}\n"
    )
    rest, hold, dc = p.steps
    assert rest.duration == Bounds(600, 600)
    assert rest.charge_per_cm2 == Bounds(0, 0)
    assert hold.charge_per_cm2 == Bounds(0, pytest.approx(1e-3 * H))
    assert dc.duration == Bounds(H, 48 * H)
    assert dc.start == Bounds(70 * MIN, 70 * MIN)
    assert p.duration == Bounds(H + 70 * MIN, 48 * H + 70 * MIN)


def test_ccd_ramp_ends_at_the_short_or_after_the_last_level() -> None:
    p = plan(
        "  - ccd_ramp: {start: 0.2 mA/cm^2, step: 0.2 mA/cm^2, max: 1 mA/cm^2,"
        " half_cycle: 15 min, rest: 1 min, on_short: next}\n"
        "  - rest: {for: 1 h}\n"
    )
    ramp, rest = p.steps
    assert ramp.duration == Bounds(0, 5 * 2 * 16 * MIN)
    # sum over levels of 2 half-cycles of 15 min: (0.2+0.4+…+1.0) mA/cm^2 × 0.5 h
    assert ramp.charge_per_cm2.max == pytest.approx(3.0 * 0.5 * MAH)
    assert not ramp.may_end_run  # on_short: next
    assert rest.start == Bounds(0, 160 * MIN)
    assert p.duration == Bounds(H, 160 * MIN + H)


def test_one_way_ramp() -> None:
    p = plan(
        "  - ccd_ramp: {mode: one_way, start: 10 uA/cm^2, step: 10 uA/cm^2, max: 300 uA/cm^2,"
        " per_level: 10 min}\n"
    )
    assert p.steps[0].duration == Bounds(0, 30 * 10 * MIN)
    assert p.steps[0].charge_per_cm2.max == pytest.approx(sum(range(10, 301, 10)) * 1e-6 * 600)


def test_a_short_that_ends_the_run_bounds_the_total() -> None:
    p = plan(
        "  - cycle: {current_density: 1 mA/cm^2, half_cycle: 1 h, until: short, max_count: 2,"
        " on_short: abort}\n"
        "  - rest: {for: 1 h}\n"
    )
    cycle, rest = p.steps
    assert cycle.may_end_run
    # the rest runs only if the cycling did not short, i.e. after all 2 cycles
    assert rest.start == Bounds(4 * H, 4 * H)
    assert p.duration == Bounds(0, 5 * H)
    assert p.remaining(1) == Bounds(0, H)
    assert p.remaining(5) == Bounds(0, 0)


# ----------------------------------------------------------------- repeats


NESTED = (
    "  - repeat:\n"
    "      label: outer\n"
    "      count: 3\n"
    "      steps:\n"
    "        - temperature: {setpoint: 140 degC, soak: 10 min}\n"
    "        - repeat:\n"
    "            count: 2\n"
    "            steps:\n"
    "              - hold_current: {current_density: 1 mA/cm^2, direction: plate, for: 10 min}\n"
    "              - rest: {for: 1 min}\n"
    "        - temperature: {setpoint: 120 degC, soak: 5 min}\n"
)


def test_repeats_expand_into_executed_steps() -> None:
    p = plan(NESTED)
    assert len(p.steps) == 3 * (1 + 2 * 2 + 1)
    assert [(s.number, s.iteration) for s in p.steps[:6]] == [
        ("1.1", (0,)),
        ("1.2.1", (0, 0)),
        ("1.2.2", (0, 0)),
        ("1.2.1", (0, 1)),
        ("1.2.2", (0, 1)),
        ("1.3", (0,)),
    ]
    assert p.steps[6].iteration == (1,)
    for before, after in zip(p.steps, p.steps[1:], strict=False):
        assert after.start == before.end
    # the first warm-up starts from ambient, later ones from 120 degC
    warmups = [s for s in p.steps if s.number == "1.1"]
    assert warmups[0].duration.min == pytest.approx(115 / 20 * MIN + SETTLING_ALLOWANCE + 600)
    assert warmups[1].duration.min == pytest.approx(20 / 20 * MIN + SETTLING_ALLOWANCE + 600)
    assert p.steps[1].depth == 2
    assert p.steps[1].label == "hold_current"


def test_timeline_rows_follow_the_file() -> None:
    p = plan(NESTED)
    rows = {r.number: r for r in p.timeline}
    assert list(rows) == ["1", "1.1", "1.2", "1.2.1", "1.2.2", "1.3"]
    assert (rows["1"].count, rows["1"].executions, rows["1"].label) == (3, 1, "outer")
    assert (rows["1.2"].count, rows["1.2"].executions) == (2, 3)
    assert rows["1.2.1"].executions == 6
    assert rows["1.2.1"].total == Bounds(60 * MIN, 60 * MIN)
    assert rows["1.2.1"].charge_per_cm2.max == pytest.approx(1 * MAH)
    assert rows["1"].total == p.duration
    assert rows["1.2"].duration == Bounds(22 * MIN, 22 * MIN)


def test_format_shows_counts_nesting_and_totals() -> None:
    text = format_plan(plan(NESTED), "nested.yaml")
    lines = text.splitlines()
    assert lines[0] == "plan: test (nested.yaml) on no rig (simulated rig's rates)"
    assert any(line.startswith("  1         repeat 'outer' ×3") for line in lines)
    assert any(line.startswith("    1.2       repeat ×2") for line in lines)
    assert any(line.startswith("      1.2.1     hold_current") for line in lines)
    assert "runs 6 times, 1 h in all" in text
    assert "total duration" in text
    assert "no rig given: ramp rates are the simulated rig's defaults" in text


# ------------------------------------------------------------------ limits


def test_limit_checks_say_which_limit_wins() -> None:
    steps = "  - cycle: {current_density: 1 mA/cm^2, half_cycle: 1 h, count: 1}\n"
    alone = {c.name: c for c in plan(steps, density_max="3 mA/cm^2").limits}
    assert alone["current"].wins == "protocol"
    assert alone["current"].rig is None
    assert alone["setpoint"].wins == "protocol"
    with_rig = {c.name: c for c in plan(steps, fast_rig(), density_max="3 mA/cm^2").limits}
    assert with_rig["current"].wins == "rig"  # 2 mA (SMU) < 3 mA/cm^2 × 1 cm^2
    assert with_rig["current"].effective == "2 mA"
    assert with_rig["current"].status == "ok"
    assert with_rig["setpoint"].wins == "rig"  # 150 degC cap < 175 degC
    assert with_rig["temperature trip"].wins == "protocol"  # 175 < 185 degC
    assert with_rig["voltage window"].effective == "-1 V … 1 V"
    assert all(c.status == "ok" for c in with_rig.values())


def test_plan_is_plain_data() -> None:
    p = plan(NESTED, SIM)
    data = json.loads(json.dumps(p.as_dict()))
    assert data["rig"] == "sim"
    assert data["rig_given"] is True
    assert len(data["steps"]) == len(p.steps)
    assert data["steps"][0]["duration"] == {
        "min": p.steps[0].duration.min,
        "max": p.steps[0].duration.max,
    }


# -------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (45, "45 s"),
        (600, "10 min"),
        (750, "12 min 30 s"),
        (6 * H, "6 h"),
        (5100, "1 h 25 min"),
        (48 * H, "48 h"),
        (1000 * 70 * MIN, "48 d 15 h"),
    ],
)
def test_duration_text(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def test_bounds_text() -> None:
    assert bounds_text(Bounds(H, H)) == "1 h"
    assert bounds_text(Bounds(0, H)) == "≤ 1 h"
    assert bounds_text(Bounds(H, 2 * H)) == "1 h – 2 h"
