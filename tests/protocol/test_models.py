"""The protocol and rig models: every cross-field rule, and the limits against the rig."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from controller import protocol as proto
from controller.problems import UserError
from controller.rig import RigConfig, simulated_rig
from controller.validate import limit_problems, load_rig

from .factory import load, problems, valid

SIM = simulated_rig()


def rig(**changes: object) -> RigConfig:
    """The simulated rig with some settings changed (dotted keys: 'smu.current_max')."""
    data = SIM.model_dump(mode="json")
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value
    return RigConfig.model_validate(data)


def one(steps: str, rig: RigConfig | None = None, **frame: str) -> tuple[str, str]:
    found = problems(steps, rig, **frame)
    assert len(found) == 1, found
    return found[0]


# ------------------------------------------------------------------- cell


@pytest.mark.parametrize(
    ("geometry", "path", "message"),
    [
        ("electrolyte2: x", "cell.electrolyte2", "unknown key 'electrolyte2'"),
        ("area: 1 cm^2, diameter: 10 mm", "cell.diameter", "not both"),
        ("area: 0 cm^2", "cell.area", "cell area must be positive"),
        ("diameter: -1 mm", "cell.diameter", "cell diameter must be positive"),
    ],
)
def test_cell_geometry(geometry: str, path: str, message: str) -> None:
    found = problems("  - rest: {for: 1 min}\n", geometry=geometry)
    assert any(p == path and message in m for p, m in found), found


def test_cell_needs_a_size() -> None:
    found = problems("  - rest: {for: 1 min}\n", geometry="type: blocking")
    assert found == [("cell", "give the electrode size as `area` or `diameter`")]


def test_cell_area_from_diameter() -> None:
    p = valid("  - rest: {for: 1 min}\n", geometry="diameter: 10 mm")
    assert p.cell.area_cm2 == pytest.approx(math.pi * 0.25)
    assert valid("  - rest: {for: 1 min}\n").cell.area_cm2 == 1.0


def test_cell_thickness_positive() -> None:
    loaded = load("  - rest: {for: 1 min}\n", geometry="area: 1 cm^2, thickness: 0 mm")
    # the frame gives thickness too: a duplicate key is a syntax error, located
    assert loaded.problems[0].message == "YAML syntax: duplicate key 'thickness'"
    data = {
        "id": "x",
        "electrolyte": "LLZO",
        "area": "1 cm^2",
        "thickness": "0 mm",
    }
    with pytest.raises(ValueError, match="cell thickness must be positive"):
        proto.Cell.model_validate(data)


# ------------------------------------------------------------ safety, record


@pytest.mark.parametrize(("vmin", "vmax"), [("1 V", "-1 V"), ("1 V", "1 V"), ("2 V", "1000 mV")])
def test_voltage_window_ordered(vmin: str, vmax: str) -> None:
    path, message = one("  - rest: {for: 1 min}\n", vmin=vmin, vmax=vmax)
    assert path == "safety.voltage.min"
    assert message.startswith("voltage window min (")
    assert message.endswith("must be below max (1 V)") or "must be below max" in message


def test_record_rules() -> None:
    assert one("  - rest: {for: 1 min}\n", record="{sample_period: 0 s}") == (
        "record.sample_period",
        "sample_period must be positive",
    )
    assert one("  - rest: {for: 1 min}\n", record="{sample_period: 10 s, every: 5 s}") == (
        "record.every",
        "every (5 s) is shorter than the sample period (10 s)",
    )
    p = valid("  - rest: {for: 1 min}\n", record="{every: 1 min, delta_current: 1 nA}")
    assert p.record.every == 60
    assert p.record.delta_current == pytest.approx(1e-9)


# -------------------------------------------------------------- terminations


def test_until_shorthands() -> None:
    p = valid(
        "  - hold_current: {current: 1 mA, direction: plate, for: 1 h, until: short}\n"
        "  - hold_voltage: {voltage: 0.1 V, current_limit: 1 mA, for: 1 h, until: steady}\n"
        "  - rest: {for: 1 h, until: {steady: true}}\n"
        "  - rest: {for: 1 h, until: {voltage_above: 0.5 V, hold_for: 5 s}}\n"
        "  - rest: {for: 1 h, until: {voltage_below: {value: -0.5 V, hold_for: 2 s}}}\n"
    )
    steps = [proto.params(s) for s in p.steps]
    assert steps[0].until is not None
    assert steps[0].until.short
    assert steps[1].until is not None
    assert steps[1].until.steady == proto.Steady()
    assert steps[2].until is not None
    assert steps[2].until.steady is not None
    u3, u4 = steps[3].until, steps[4].until
    assert u3 is not None
    assert u3.voltage_above is not None
    assert (u3.voltage_above.value, u3.voltage_above.hold_for, u3.hold_for) == (0.5, 0, 5)
    assert u4 is not None
    assert u4.voltage_below is not None
    assert (u4.voltage_below.value, u4.voltage_below.hold_for) == (-0.5, 2)


def test_steady_rules() -> None:
    assert one("  - rest: {for: 1 h, until: {steady: {window: 0 s}}}\n") == (
        "steps[0].rest.until.steady.window",
        "window must be positive",
    )
    assert one("  - rest: {for: 1 h, until: {steady: {tolerance: 100 %}}}\n") == (
        "steps[0].rest.until.steady.tolerance",
        "tolerance must be between 0 and 100 %",
    )


def test_timed_steps_need_a_positive_for_and_a_real_until() -> None:
    assert one("  - rest: {label: x}\n") == (
        "steps[0].rest",
        "this step has no `for:`, so it might never end",
    )
    assert one("  - rest: {for: 0 s}\n") == (
        "steps[0].rest.for",
        "`for` must be a positive duration",
    )
    assert one("  - rest: {for: 1 h, until: {hold_for: 1 s}}\n") == (
        "steps[0].rest.until",
        "`until:` names no condition",
    )


# ------------------------------------------------------------------- steps


def test_hold_current_level() -> None:
    assert one("  - hold_current: {direction: plate, for: 1 h}\n") == (
        "steps[0].hold_current",
        "give the level as `current` or `current_density`",
    )
    assert one(
        "  - hold_current: {current: 1 mA, current_density: 1 mA/cm^2, direction: plate, "
        "for: 1 h}\n"
    ) == (
        "steps[0].hold_current.current",
        "give the level as `current` or `current_density`, not both",
    )
    path, message = one("  - hold_current: {current: -1 mA, direction: plate, for: 1 h}\n")
    assert path == "steps[0].hold_current.current"
    assert message.startswith("give the magnitude as a positive value")
    assert one("  - hold_current: {current: 1 mA, for: 1 h}\n") == (
        "steps[0].hold_current",
        "missing required key 'direction'",
    )


def test_direction_sign() -> None:
    assert proto.Direction.PLATE.sign == 1
    assert proto.Direction.STRIP.sign == -1


def test_hold_voltage_current_limit() -> None:
    assert one("  - hold_voltage: {voltage: 0.1 V, current_limit: 0 mA, for: 1 h}\n") == (
        "steps[0].hold_voltage.current_limit",
        "current_limit must be positive",
    )


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ("voltage: 0 V, current_limit: 1 mA, max_duration: 2 h", "voltage", "must not be 0 V"),
        ("voltage: 0.1 V, current_limit: 0 A, max_duration: 2 h", "current_limit", "positive"),
        (
            "voltage: 0.1 V, current_limit: 1 mA, min_duration: -1 min, max_duration: 2 h",
            "min_duration",
            "must not be negative",
        ),
        (
            "voltage: 0.1 V, current_limit: 1 mA, min_duration: 2 h, max_duration: 1 h",
            "max_duration",
            "max_duration (1 h) must be longer than min_duration (2 h)",
        ),
        (
            "voltage: 0.1 V, current_limit: 1 mA, max_duration: 30 s",
            "max_duration",
            "max_duration (0.5 min) must be longer than min_duration (1 min)",
        ),
    ],
)
def test_dc_polarization_rules(fields: str, path: str, message: str) -> None:
    got_path, got = one(f"  - dc_polarization: {{{fields}}}\n")
    assert got_path == f"steps[0].dc_polarization.{path}"
    assert message in got


CYCLE = "current_density: 2 mA/cm^2, half_cycle: 30 min"


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ("half_cycle: 30 min, count: 5", "", "give the level as `current` or `current_density`"),
        (
            "current: 1 mA, current_density: 1 mA/cm^2, half_cycle: 30 min, count: 5",
            ".current",
            "not both",
        ),
        ("current_density: 2 mA/cm^2, count: 5", "", "give the length of each half-cycle"),
        (
            "current_density: 2 mA/cm^2, half_cycle: 30 min, capacity: 1 mAh/cm^2, count: 5",
            ".capacity",
            "give `half_cycle` or `capacity`, not both",
        ),
        (f"{CYCLE.replace('30 min', '0 s')}, count: 5", ".half_cycle", "positive duration"),
        (
            "current_density: 2 mA/cm^2, capacity: 0 mAh/cm^2, count: 5",
            ".capacity",
            "`capacity` must be positive",
        ),
        (f"{CYCLE}, rest: -1 min, count: 5", ".rest", "rest must not be negative"),
        (CYCLE, "", "a cycle step needs `count:` or `until:` (with `max_count:`)"),
        (f"{CYCLE}, count: 5, max_count: 10", ".max_count", "not both"),
        (f"{CYCLE}, until: short", ".until", "might never end"),
        (f"{CYCLE}, until: {{hold_for: 1 s}}, max_count: 5", ".until", "names no condition"),
        (f"{CYCLE}, count: 0", ".count", "greater than or equal to 1"),
    ],
)
def test_cycle_rules(fields: str, path: str, message: str) -> None:
    got_path, got = one(f"  - cycle: {{{fields}}}\n")
    assert got_path == f"steps[0].cycle{path}"
    assert message in got


def test_cycle_bound() -> None:
    p = valid(
        f"  - cycle: {{{CYCLE}, count: 5}}\n"
        f"  - cycle: {{{CYCLE}, until: short, max_count: 7}}\n"
        f"  - cycle: {{{CYCLE}, until: short, count: 3}}\n"
    )
    bounds = [proto.params(s).cycle_bound for s in p.steps]  # type: ignore[union-attr]
    assert bounds == [5, 7, 3]


RAMP = "start: 0.2 mA/cm^2, step: 0.2 mA/cm^2, max: 1 mA/cm^2"


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        (
            "start: 0 mA/cm^2, step: 0.2 mA/cm^2, max: 1 mA/cm^2, half_cycle: 1 min",
            ".start",
            "positive",
        ),
        (
            "start: 1 mA/cm^2, step: -1 mA/cm^2, max: 2 mA/cm^2, half_cycle: 1 min",
            ".step",
            "positive",
        ),
        (
            "start: 2 mA/cm^2, step: 0.2 mA/cm^2, max: 1 mA/cm^2, half_cycle: 1 min",
            ".max",
            "ccd_ramp max (1 mA/cm^2) is below start (2 mA/cm^2)",
        ),
        (f"{RAMP}, per_level: 10 min", ".per_level", "`per_level` belongs to one_way ramps"),
        (f"{RAMP}", "", "give the length of each half-cycle"),
        (f"{RAMP}, mode: one_way, half_cycle: 1 min", ".half_cycle", "belongs to symmetric"),
        (
            f"{RAMP}, mode: one_way, per_level: 1 min, cycles_per_level: 2",
            ".cycles_per_level",
            "belongs to symmetric",
        ),
        (f"{RAMP}, mode: one_way", "", "give the length of each per-level"),
        (f"{RAMP}, half_cycle: 1 min, rest: -1 s", ".rest", "rest must not be negative"),
        (
            "start: 1 uA/cm^2, step: 1 uA/cm^2, max: 2 mA/cm^2, half_cycle: 1 min",
            ".step",
            "this ramp has 2000 levels",
        ),
        (f"{RAMP}, half_cycle: 1 min, mode: upward", ".mode", "'upward' is not one of"),
    ],
)
def test_ccd_ramp_rules(fields: str, path: str, message: str) -> None:
    got_path, got = one(f"  - ccd_ramp: {{{fields}}}\n")
    assert got_path == f"steps[0].ccd_ramp{path}"
    assert message in got


def test_ccd_ramp_levels() -> None:
    p = valid(f"  - ccd_ramp: {{{RAMP}, half_cycle: 1 min}}\n")
    ramp = proto.params(p.steps[0])
    assert isinstance(ramp, proto.CcdRampParams)
    assert ramp.levels == 5
    assert [ramp.level_density(i) for i in range(5)] == pytest.approx(
        [2e-4, 4e-4, 6e-4, 8e-4, 1e-3]
    )
    uneven = valid(
        "  - ccd_ramp: {start: 1 mA/cm^2, step: 0.3 mA/cm^2, max: 2 mA/cm^2, half_cycle: 1 min}\n"
    )
    assert proto.params(uneven.steps[0]).levels == 4  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ("setpoint: 125 degC, ramp: 0 degC/min", ".ramp", "ramp rate must be positive"),
        ("setpoint: 125 degC, ramp: -5 degC/min", ".ramp", "ramp rate must be positive"),
        ("setpoint: 125 degC, band: 0 K", ".band", "band must be positive"),
        ("setpoint: 125 degC, soak: -1 s", ".soak", "soak must not be negative"),
        ("setpoint: 125 degC, timeout: 0 s", ".timeout", "timeout must be positive"),
        ("soak: 1 h", "", "missing required key 'setpoint'"),
    ],
)
def test_temperature_rules(fields: str, path: str, message: str) -> None:
    got_path, got = one(f"  - temperature: {{{fields}}}\n")
    assert got_path == f"steps[0].temperature{path}"
    assert message in got


def test_temperature_defaults() -> None:
    p = proto.params(valid("  - temperature: {setpoint: 125 degC}\n").steps[0])
    assert isinstance(p, proto.TemperatureParams)
    assert (p.ramp, p.band, p.soak, p.timeout) == (None, 0.5, 0.0, None)


def test_repeat_rules() -> None:
    assert (
        one("  - repeat: {count: 0, steps: [{rest: {for: 1 s}}]}\n")[0] == "steps[0].repeat.count"
    )
    assert one("  - repeat: {count: 100001, steps: [{rest: {for: 1 s}}]}\n")[0] == (
        "steps[0].repeat.count"
    )
    assert one("  - repeat: {count: 2, steps: []}\n") == (
        "steps[0].repeat.steps",
        "must not be empty",
    )


def test_step_shape_rules() -> None:
    assert one("  - rest: {for: 1 s}\n    cycle: {}\n") == (
        "steps[0]",
        "one list item holds several steps (rest, cycle)",
    )
    assert one("  - rest: {for: 1 s}\n    label: x\n") == (
        "steps[0].label",
        "'label' is beside the step kind 'rest', not inside it",
    )
    assert one("  - {}\n") == ("steps[0]", "empty step `{}`")
    assert one("  - reset: {for: 1 s}\n") == ("steps[0].reset", "unknown step kind 'reset'")
    assert one("  - 5\n") == (
        "steps[0]",
        "a step must be a mapping such as `rest: {for: 1 h}`, got 5",
    )


def test_walk_and_number_nested_steps() -> None:
    p = valid(
        "  - rest: {for: 1 s}\n"
        "  - repeat:\n"
        "      count: 2\n"
        "      steps:\n"
        "        - rest: {for: 1 s}\n"
        "        - repeat: {count: 3, steps: [{rest: {for: 2 s}}, {rest: {for: 3 s}}]}\n"
    )
    walked = [(i, proto.step_kind(s)) for i, s in proto.walk_steps(p.steps)]
    assert walked == [
        ((0,), "rest"),
        ((1,), "repeat"),
        ((1, 0), "rest"),
        ((1, 1), "repeat"),
        ((1, 1, 0), "rest"),
        ((1, 1, 1), "rest"),
    ]
    assert proto.step_number((1, 1, 0)) == "2.2.1"
    assert proto.step_loc((1, 1, 0)) == ("steps", 1, "repeat", "steps", 1, "repeat", "steps", 0)
    assert proto.executed_count(list(p.steps)) == 1 + 2 * (1 + 3 * 2)
    assert isinstance(proto.params(p.steps[1]), proto.RepeatParams)
    assert proto.step_kind({"rest": {}}) == "rest"
    assert proto.step_kind({"rest": {}, "cycle": {}}) is None
    assert proto.step_kind("rest") is None


# ------------------------------------------------------- phase 2: the limits


def test_voltage_holds_inside_the_window() -> None:
    assert one("  - hold_voltage: {voltage: 1.5 V, current_limit: 1 mA, for: 1 h}\n") == (
        "steps[0].hold_voltage.voltage",
        "1.5 V is outside the protocol's voltage window [-1 V, 1 V]",
    )
    assert one(
        "  - dc_polarization: {voltage: -2 V, current_limit: 1 mA, max_duration: 2 h}\n"
    ) == (
        "steps[0].dc_polarization.voltage",
        "-2 V is outside the protocol's voltage window [-1 V, 1 V]",
    )


@pytest.mark.parametrize(
    ("step", "path"),
    [
        (f"cycle: {{{CYCLE.replace('2 mA', '4 mA')}, count: 1}}", "cycle.current_density"),
        (
            "hold_current: {current_density: 4 mA/cm^2, direction: plate, for: 1 h}",
            "hold_current.current_density",
        ),
        (
            "ccd_ramp: {start: 1 mA/cm^2, step: 1 mA/cm^2, max: 4 mA/cm^2, half_cycle: 1 min}",
            "ccd_ramp.max",
        ),
    ],
)
def test_protocol_current_density_max(step: str, path: str) -> None:
    found = one(f"  - {step}\n", density_max="3 mA/cm^2")
    assert found == (
        f"steps[0].{path}",
        "4 mA/cm^2 is above safety.current_density_max (3 mA/cm^2)",
    )


def test_protocol_temperature_max_and_cold_setpoints() -> None:
    assert one("  - temperature: {setpoint: 176 degC}\n") == (
        "steps[0].temperature.setpoint",
        "setpoint 176 degC is above this protocol's safety.temperature_max (175 degC)",
    )
    loaded = load("  - temperature: {setpoint: 398.15 K}\n")
    assert loaded.ok  # 398.15 K is 125 degC: kelvin is fine when it is meant
    cold = load("  - temperature: {setpoint: 160 K}\n").problems
    assert [p.hint for p in cold] == [
        "`K` means kelvin: 160 K is -113.15 degC; for degrees Celsius write `160 degC`"
    ]
    chilly = load("  - temperature: {setpoint: 10 degC}\n").problems
    assert chilly[0].message.startswith("setpoint 10 degC is too cold for a heater-only block")
    assert chilly[0].hint.startswith("the block only heats")


def test_rig_setpoint_cap_wins() -> None:
    steps = "  - temperature: {setpoint: 172 degC}\n"
    assert load(steps).ok
    assert one(steps, SIM) == (
        "steps[0].temperature.setpoint",
        "setpoint 172 degC is above the setpoint cap of rig 'sim' (170 degC)",
    )
    tight = rig(safety__setpoint_max="150 degC")
    assert one("  - temperature: {setpoint: 160 degC}\n", tight)[1].endswith("(150 degC)")


def test_rig_current_range_for_this_cell_area() -> None:
    steps = f"  - cycle: {{{CYCLE.replace('2 mA', '20 mA')}, count: 1}}\n"
    assert load(steps, SIM).ok  # 20 mA/cm^2 × 1 cm^2 = 20 mA: fine
    assert one(steps, SIM, geometry="area: 10 cm^2") == (
        "steps[0].cycle.current_density",
        "20 mA/cm^2 × 10 cm^2 = 200 mA is more than rig 'sim' may source (100 mA)",
    )
    assert one("  - hold_current: {current: 150 mA, direction: strip, for: 1 s}\n", SIM) == (
        "steps[0].hold_current.current",
        "150 mA is more than rig 'sim' may source (100 mA)",
    )
    small = rig(smu__current_max="1 mA")
    assert one(
        f"  - ccd_ramp: {{{RAMP.replace('max: 1', 'max: 2')}, half_cycle: 1 min}}\n", small
    ) == (
        "steps[0].ccd_ramp.max",
        "2 mA/cm^2 × 1 cm^2 = 2 mA is more than rig 'sim' may source (1 mA)",
    )
    assert one("  - hold_voltage: {voltage: 0.1 V, current_limit: 5 mA, for: 1 h}\n", small) == (
        "steps[0].hold_voltage.current_limit",
        "current_limit 5 mA is more than rig 'sim' may source (1 mA)",
    )


def test_rig_compliance_bounds_the_window() -> None:
    found = problems("  - rest: {for: 1 s}\n", SIM, vmin="-21 V", vmax="5 V")
    assert found == [
        (
            "safety.voltage.min",
            "voltage window min -21 V is beyond the compliance limit of rig 'sim' (±20 V)",
        )
    ]


def test_ramps_are_checked_per_direction() -> None:
    heat = "  - temperature: {setpoint: 125 degC, ramp: 21 degC/min}\n"
    assert load(heat).ok
    assert one(heat, SIM) == (
        "steps[0].temperature.ramp",
        "ramp 21 degC/min from 25 to 125 degC is faster than rig 'sim' can heat (20 degC/min)",
    )
    cool = (
        "  - temperature: {setpoint: 160 degC, ramp: 10 degC/min}\n"
        "  - temperature: {setpoint: 125 degC, ramp: 10 degC/min}\n"
    )
    assert one(cool, SIM) == (
        "steps[1].temperature.ramp",
        "ramp 10 degC/min from 160 to 125 degC is faster than rig 'sim' can cool (5 degC/min)",
    )


def test_repeats_cool_on_their_second_iteration() -> None:
    """The second pass of a repeat starts from where its body ended (160 -> 125 degC)."""
    steps = (
        "  - repeat:\n"
        "      count: 2\n"
        "      steps:\n"
        "        - temperature: {setpoint: 125 degC, ramp: 10 degC/min}\n"
        "        - temperature: {setpoint: 160 degC, ramp: 10 degC/min}\n"
    )
    assert one(steps, SIM) == (
        "steps[0].repeat.steps[0].temperature.ramp",
        "ramp 10 degC/min from 160 to 125 degC is faster than rig 'sim' can cool (5 degC/min)",
    )
    assert load(steps.replace("count: 2", "count: 1"), SIM).ok


def test_timeouts_must_allow_the_ramp() -> None:
    steps = "  - temperature: {setpoint: 125 degC, ramp: 2 degC/min, timeout: 49 min}\n"
    assert one(steps) == (
        "steps[0].temperature.timeout",
        "timeout 49 min is shorter than the ramp from 25 to 125 degC takes (50 min at 2 degC/min)",
    )
    assert load(steps.replace("49 min", "51 min")).ok
    # without a ramp, the rig's rate decides (only known with a rig)
    no_ramp = "  - temperature: {setpoint: 125 degC, timeout: 4 min}\n"
    assert load(no_ramp).ok
    assert one(no_ramp, SIM)[0] == "steps[0].temperature.timeout"


def test_too_many_executed_steps() -> None:
    steps = (
        "  - repeat:\n"
        "      count: 1000\n"
        "      steps: [{repeat: {count: 101, steps: [{rest: {for: 1 s}}]}}]\n"
    )
    assert one(steps) == (
        "steps[0].repeat.count",
        "this protocol runs 101000 steps once its repeats are expanded (nested repeats "
        "multiply); at most 100000 are allowed",
    )


def test_limit_problems_is_pure() -> None:
    """Phase 2 on a model: (key path, what, hint) tuples, the rig only when given."""
    p = valid("  - temperature: {setpoint: 172 degC}\n")
    assert limit_problems(p, None) == []
    [(loc, what, hint)] = limit_problems(p, SIM)
    assert loc == ("steps", 0, "temperature", "setpoint")
    assert "170 degC" in what
    assert hint.startswith("use at most 170 degC")


# --------------------------------------------------------------------- rig


def test_simulated_rig() -> None:
    assert SIM.rig == "sim"
    assert SIM.simulated
    assert SIM.smu.current_max == pytest.approx(0.1)
    assert SIM.smu.voltage_max == 20
    assert SIM.heater.max_ramp_up == pytest.approx(20 / 60)
    assert SIM.heater.max_ramp_down == pytest.approx(5 / 60)
    assert SIM.safety.setpoint_max == 170
    assert SIM.safety.temperature_max == 185
    assert SIM.smu.output_off_mode == "himp"


def test_rig_safety_limits_ordered() -> None:
    with pytest.raises(ValueError, match=r"setpoint_max \(190 degC\) must be below"):
        rig(safety__setpoint_max="190 degC")
    with pytest.raises(ValueError, match="temperature_min must be below setpoint_max"):
        rig(safety__temperature_min="171 degC")


def test_load_rig_file(tmp_path: Path) -> None:
    good = tmp_path / "rig.yaml"
    good.write_text(
        "rig: bench-2\n"
        "smu: {resource: 'TCPIP::10.0.0.5::5025::SOCKET', current_max: 10 mA, voltage_max: 5 V}\n"
        "heater: {port: /dev/ttyUSB0, max_ramp_up: 10 degC/min}\n"
        "safety: {setpoint_max: 150 degC}\n",
        encoding="utf-8",
    )
    r = load_rig(good)
    assert (r.rig, r.smu.current_max, r.heater.max_ramp_up) == (
        "bench-2",
        0.01,
        pytest.approx(1 / 6),
    )
    assert not r.simulated
    bad = tmp_path / "bad-rig.yaml"
    bad.write_text("rig: bench 2\nsmu: {resource: x, curent_max: 1 A}\n", encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_rig(bad)
    found = [(p.line, p.path, p.message) for p in info.value.problems]
    assert (1, "", "missing required key 'heater'") in found
    assert (1, "rig", "'bench 2' has characters that are not allowed here") in found
    assert (2, "smu.curent_max", "unknown key 'curent_max'") in found
