"""Quantities with units: parsing, canonical units, and the errors that name the unit."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic_core import PydanticCustomError

from controller import units
from controller.units import (
    AREA,
    AREAL_CHARGE,
    CHARGE,
    CURRENT,
    CURRENT_DENSITY,
    DURATION,
    FAST_UNITS,
    FRACTION,
    LENGTH,
    TEMPERATURE,
    TEMPERATURE_DELTA,
    TEMPERATURE_RATE,
    VOLTAGE,
    Kind,
    format_quantity,
    parse,
)

ROOT = Path(__file__).resolve().parents[2]
KINDS = {k.name: k for k in vars(units).values() if isinstance(k, Kind)}


def error(value: object, kind: Kind) -> tuple[str, str]:
    with pytest.raises(PydanticCustomError) as info:
        parse(value, kind)
    ctx = info.value.context or {}
    return str(ctx["what"]), str(ctx["hint"])


@pytest.mark.parametrize("text", ["100 uA", "100 µA", "100 μA", "0.1 mA", "1e-4 A", "100uA"])
def test_micro_amps_any_spelling(text: str) -> None:
    assert parse(text, CURRENT) == pytest.approx(1e-4, rel=1e-12)


def test_micro_amps_per_area() -> None:
    assert parse("10 uA/cm^2", CURRENT_DENSITY) == pytest.approx(1e-5)
    assert parse("10 µA/cm²", CURRENT_DENSITY) == pytest.approx(1e-5)
    assert parse("2 mA/cm^2", CURRENT_DENSITY) == pytest.approx(2e-3)
    assert parse("20 A/m^2", CURRENT_DENSITY) == pytest.approx(2e-3)  # through pint


@pytest.mark.parametrize(
    ("text", "celsius"),
    [("160 degC", 160.0), ("160 °C", 160.0), ("433.15 K", 160.0), ("320 degF", 160.0)],
)
def test_absolute_temperatures_are_celsius(text: str, celsius: float) -> None:
    assert parse(text, TEMPERATURE) == pytest.approx(celsius)


@pytest.mark.parametrize(
    ("text", "kelvin"), [("0.5 degC", 0.5), ("0.5 K", 0.5), ("0.5 °C", 0.5), ("0.9 degF", 0.5)]
)
def test_a_band_is_a_difference_never_an_offset(text: str, kelvin: float) -> None:
    """`0.5 degC` as a band is 0.5 K wide, not 273.65 K."""
    assert parse(text, TEMPERATURE_DELTA) == pytest.approx(kelvin)


@pytest.mark.parametrize(
    ("text", "k_per_s"),
    [("5 degC/min", 5 / 60), ("5 K/min", 5 / 60), ("300 degC/h", 1 / 12), ("0.1 degC/s", 0.1)],
)
def test_rates(text: str, k_per_s: float) -> None:
    assert parse(text, TEMPERATURE_RATE) == pytest.approx(k_per_s)


def test_areal_capacity_and_charge() -> None:
    assert parse("1 mAh/cm^2", AREAL_CHARGE) == pytest.approx(3.6)
    assert parse("3.6 C/cm^2", AREAL_CHARGE) == pytest.approx(3.6)
    assert parse("0.5 mAh", CHARGE) == pytest.approx(1.8)


def test_durations_lengths_areas() -> None:
    assert parse("30 min", DURATION) == 1800
    assert parse("6 h", DURATION) == 21600
    assert parse("1.5 d", DURATION) == 129600
    assert parse("1.0 mm", LENGTH) == pytest.approx(0.1)
    assert parse("78.5 mm^2", AREA) == pytest.approx(0.785)


def test_fractions() -> None:
    assert parse("1 %", FRACTION) == pytest.approx(0.01)
    assert parse(0.01, FRACTION) == 0.01
    assert parse("0.01", FRACTION) == 0.01


@pytest.mark.parametrize(
    ("value", "kind", "suggestion"),
    [
        (160, TEMPERATURE, "'160 degC'"),
        ("160", TEMPERATURE, "'160 degC'"),
        (30, DURATION, "'30 s', '30 min' or '30 h'"),
        (2, CURRENT_DENSITY, "'2 uA/cm^2' or '2 mA/cm^2'"),
        (1.5, VOLTAGE, "'1.5 mV' or '1.5 V'"),
        (5, TEMPERATURE_RATE, "'5 degC/min' or '5 degC/h'"),
        (1, AREAL_CHARGE, "'1 mAh/cm^2'"),
    ],
)
def test_bare_numbers_name_the_expected_unit(value: object, kind: Kind, suggestion: str) -> None:
    what, hint = error(value, kind)
    assert what == f"{value!r} has no unit; {units._a(kind.name)} needs one"
    assert suggestion in hint


@pytest.mark.parametrize(
    ("text", "kind", "is_", "hint"),
    [
        ("2 mA", CURRENT_DENSITY, "is a current", "'2 mA/cm^2'"),
        ("6 degC", DURATION, "is a temperature", "'30 min'"),
        ("30 min", TEMPERATURE, "is a duration", "'160 degC'"),
        ("1 V", CURRENT, "is a voltage", "'100 uA'"),
        ("1 mAh", AREAL_CHARGE, "is a charge", "'1 mAh/cm^2'"),
    ],
)
def test_wrong_dimensions_name_the_expected_unit(
    text: str, kind: Kind, is_: str, hint: str
) -> None:
    what, got_hint = error(text, kind)
    assert what.startswith(f"{text!r} is not a")
    assert kind.name in what
    assert is_ in what
    assert hint in got_hint


@pytest.mark.parametrize(
    ("text", "kind", "fixed"),
    [
        ("160 C", TEMPERATURE, "'160 degC'"),
        ("0.5 C", TEMPERATURE_DELTA, "'0.5 degC'"),
        ("5 C/min", TEMPERATURE_RATE, "'5 degC/min'"),
    ],
)
def test_c_is_the_coulomb(text: str, kind: Kind, fixed: str) -> None:
    _, hint = error(text, kind)
    assert hint == f"`C` is the coulomb, a charge; for degrees Celsius write {fixed}"


def test_unknown_units_suggest_a_spelling() -> None:
    what, hint = error("10 minz", DURATION)
    assert what == "unknown unit 'minz' in '10 minz'"
    assert hint == "did you mean '10 min'?"
    what, hint = error("10 blorbs", DURATION)
    assert what == "unknown unit 'blorbs' in '10 blorbs'"
    assert hint == "write a duration with its unit, e.g. '30 min'"


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("hot", "'hot' does not start with a number"),
        ("1e999 s", "'1e999 s' is not a finite number"),
        ("1e308 min", "'1e308 min' is too large"),
        (None, "expected a duration, got None"),
        (True, "expected a duration, got True"),
        ([1, 2], "expected a duration as text such as '30 min'"),
        ("3.6 and 4.0 mA", "unknown unit 'and 4.0 mA' in '3.6 and 4.0 mA'"),
    ],
)
def test_odd_values(value: object, what: str) -> None:
    assert error(value, DURATION)[0] == what


@pytest.mark.parametrize(("kind_name", "unit"), sorted(FAST_UNITS))
def test_fast_units_agree_with_pint(kind_name: str, unit: str) -> None:
    """The table that spares `validate` importing pint gives pint's answers."""
    kind = KINDS[kind_name]
    for magnitude in (0.0, 1.0, 2.5, -7.25, 160.0, 1e-3, 433.15):
        fast = parse(f"{magnitude!r} {unit}", kind)
        slow = units._parse_with_pint(f"{magnitude!r} {unit}", kind, magnitude, "", unit)
        assert fast == pytest.approx(slow, rel=1e-12, abs=1e-12), (kind_name, unit, magnitude)


def test_every_kind_has_fast_units_for_its_example() -> None:
    for kind in KINDS.values():
        if kind is FRACTION or kind.name == "temperature-time integral":
            continue
        unit = kind.example.split(" ", 1)[1]
        assert (kind.name, unit) in FAST_UNITS, kind.name
        for alternative in kind.alternatives:
            assert (kind.name, alternative) in FAST_UNITS, (kind.name, alternative)


@pytest.mark.parametrize("kind", list(KINDS.values()), ids=list(KINDS))
def test_round_trip_through_text(kind: Kind) -> None:
    for value in (0.0, 1.5, 160.0, 2e-3):
        back = parse(format_quantity(value, kind), kind)
        assert math.isclose(back, value, rel_tol=1e-9, abs_tol=1e-12)


def test_common_units_do_not_import_pint() -> None:
    """pint (and numpy behind it) cost ~0.35 s: validating a bundled file needs neither."""
    code = (
        "import sys\n"
        "from controller.validate import load_protocol\n"
        "assert load_protocol('protocols/heat-therapy-LiBH4.yaml').ok\n"
        "assert load_protocol('protocols/one-way-plating-ramp.yaml').ok\n"
        "assert load_protocol('protocols/dc-polarization.yaml').ok\n"
        "print(sorted(m for m in ('pint', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
