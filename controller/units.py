"""Physical quantities in protocol and rig files.

Every quantity in a file is text with a unit (``2 mA/cm^2``, ``160 degC``), parsed by pint.
Inside the program a quantity is a plain float in one canonical unit per kind, so the
control loop never pays for pint. The canonical units are fixed here and nowhere else:

==================  ===============  ==========================================
kind                canonical unit   note
==================  ===============  ==========================================
duration            s
current             A                sign: + plates the working electrode
current density     A/cm^2
voltage             V
temperature         degC             absolute; ``433.15 K`` is 160 degC
temperature delta   K                a band or a rise; ``0.5 degC`` is 0.5 K
temperature rate    K/s              ``5 degC/min`` is 0.0833 K/s
temperature·time    K*s              runaway integral
length              cm
area                cm^2
charge              C
areal charge        C/cm^2           ``1 mAh/cm^2`` is 3.6 C/cm^2
resistance          ohm
power               W
fraction            1                ``1 %`` is 0.01
==================  ===============  ==========================================

pint is imported lazily: ``heatcycler validate`` must start fast.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    import pint


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of quantity: what it is called, its canonical unit and an example."""

    name: str
    canonical: str
    example: str
    dimension: str  # a unit whose dimensionality defines the kind
    absolute_temperature: bool = False
    temperature_delta: bool = False
    alternatives: tuple[str, ...] = ()  # other units of the same kind, for hints


DURATION = Kind("duration", "s", "30 min", "s", alternatives=("s", "min", "h"))
CURRENT = Kind("current", "A", "100 uA", "A", alternatives=("uA", "mA", "A"))
CURRENT_DENSITY = Kind(
    "current density", "A/cm^2", "2 mA/cm^2", "A/cm^2", alternatives=("uA/cm^2", "mA/cm^2")
)
VOLTAGE = Kind("voltage", "V", "1 V", "V", alternatives=("mV", "V"))
TEMPERATURE = Kind(
    "temperature", "degC", "160 degC", "K", absolute_temperature=True, alternatives=("degC",)
)
TEMPERATURE_DELTA = Kind("temperature difference", "K", "0.5 degC", "K", temperature_delta=True)
TEMPERATURE_RATE = Kind(
    "temperature rate", "K/s", "5 degC/min", "K/s", alternatives=("degC/min", "degC/h")
)
TEMPERATURE_TIME = Kind("temperature-time integral", "K*s", "300 degC*s", "K*s")
LENGTH = Kind("length", "cm", "1.0 mm", "cm", alternatives=("um", "mm", "cm"))
AREA = Kind("area", "cm^2", "0.785 cm^2", "cm^2", alternatives=("mm^2", "cm^2"))
CHARGE = Kind("charge", "C", "0.5 mAh", "C", alternatives=("uAh", "mAh", "C"))
AREAL_CHARGE = Kind("areal capacity", "C/cm^2", "1 mAh/cm^2", "C/cm^2")
RESISTANCE = Kind("resistance", "ohm", "100 ohm", "ohm")
POWER = Kind("power", "W", "100 W", "W")
FRACTION = Kind("fraction", "", "1 %", "")

_NUMBER = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")
_UNIT_FIXES = (("²", "^2"), ("³", "^3"), ("°C", "degC"), ("°F", "degF"), ("°", "deg"), ("μ", "µ"))


@functools.cache
def registry() -> pint.UnitRegistry[Any]:
    """The one unit registry, built on first use (pint costs ~0.3 s to import and build)."""
    import pint

    ureg: pint.UnitRegistry[Any] = pint.UnitRegistry()
    ureg.define("permille = 0.001 = ‰")
    return ureg


def _a(name: str) -> str:
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def _error(kind: Kind, got: object, what: str, hint: str) -> PydanticCustomError:
    return PydanticCustomError(
        "quantity",
        "{what}",
        {"what": what, "hint": hint, "expected": kind.name, "got": repr(got)},
    )


def _example_hint(kind: Kind) -> str:
    return f"write {_a(kind.name)} with its unit, e.g. '{kind.example}'"


def _bare_number_hint(kind: Kind, number: str) -> str:
    units = kind.alternatives or (kind.example.split(" ", 1)[1],)
    options = [f"'{number} {u}'" for u in units]
    if len(options) == 1:
        return f"write {options[0]} if that is what you mean"
    listed = ", ".join(options[:-1]) + f" or {options[-1]}"
    return f"write {listed}, whichever you mean"


# The units technicians write, as (kind, unit) -> (scale, offset) into the kind's canonical
# unit: canonical = magnitude * scale + offset. Parsing these needs no pint (which costs
# ~0.35 s to import and build, most of `heatcycler validate`'s time); tests check every
# entry against pint, and any other unit goes to pint.
_C_OFFSET = -273.15
FAST_UNITS: dict[tuple[str, str], tuple[float, float]] = {
    **{("duration", u): (1.0, 0.0) for u in ("s", "sec", "second", "seconds")},
    **{("duration", u): (60.0, 0.0) for u in ("min", "minute", "minutes")},
    **{("duration", u): (3600.0, 0.0) for u in ("h", "hr", "hour", "hours")},
    **{("duration", u): (86400.0, 0.0) for u in ("d", "day", "days")},
    ("duration", "ms"): (1e-3, 0.0),
    ("current", "A"): (1.0, 0.0),
    ("current", "mA"): (1e-3, 0.0),
    ("current", "uA"): (1e-6, 0.0),
    ("current", "µA"): (1e-6, 0.0),
    ("current", "nA"): (1e-9, 0.0),
    ("current density", "A/cm^2"): (1.0, 0.0),
    ("current density", "mA/cm^2"): (1e-3, 0.0),
    ("current density", "uA/cm^2"): (1e-6, 0.0),
    ("current density", "µA/cm^2"): (1e-6, 0.0),
    ("current density", "nA/cm^2"): (1e-9, 0.0),
    ("voltage", "V"): (1.0, 0.0),
    ("voltage", "mV"): (1e-3, 0.0),
    ("voltage", "uV"): (1e-6, 0.0),
    ("voltage", "µV"): (1e-6, 0.0),
    ("temperature", "degC"): (1.0, 0.0),
    ("temperature", "K"): (1.0, _C_OFFSET),
    ("temperature difference", "degC"): (1.0, 0.0),
    ("temperature difference", "K"): (1.0, 0.0),
    ("temperature difference", "delta_degC"): (1.0, 0.0),
    ("temperature rate", "degC/s"): (1.0, 0.0),
    ("temperature rate", "degC/min"): (1 / 60, 0.0),
    ("temperature rate", "degC/h"): (1 / 3600, 0.0),
    ("temperature rate", "K/s"): (1.0, 0.0),
    ("temperature rate", "K/min"): (1 / 60, 0.0),
    ("temperature rate", "K/h"): (1 / 3600, 0.0),
    ("length", "cm"): (1.0, 0.0),
    ("length", "mm"): (0.1, 0.0),
    ("length", "um"): (1e-4, 0.0),
    ("length", "µm"): (1e-4, 0.0),
    ("area", "cm^2"): (1.0, 0.0),
    ("area", "mm^2"): (0.01, 0.0),
    ("charge", "C"): (1.0, 0.0),
    ("charge", "mC"): (1e-3, 0.0),
    ("charge", "mAh"): (3.6, 0.0),
    ("charge", "uAh"): (3.6e-3, 0.0),
    ("charge", "µAh"): (3.6e-3, 0.0),
    ("areal capacity", "C/cm^2"): (1.0, 0.0),
    ("areal capacity", "mC/cm^2"): (1e-3, 0.0),
    ("areal capacity", "mAh/cm^2"): (3.6, 0.0),
    ("areal capacity", "uAh/cm^2"): (3.6e-3, 0.0),
    ("areal capacity", "µAh/cm^2"): (3.6e-3, 0.0),
    ("resistance", "ohm"): (1.0, 0.0),
    ("resistance", "kohm"): (1e3, 0.0),
    ("power", "W"): (1.0, 0.0),
    ("power", "mW"): (1e-3, 0.0),
    ("fraction", "%"): (0.01, 0.0),
    ("fraction", "percent"): (0.01, 0.0),
}

_CELSIUS_AS_COULOMB = re.compile(r"(?<![A-Za-z_])C(?![A-Za-z_])")


@functools.cache
def _parse_units(text: str) -> Any:
    return registry().parse_units(text)


def parse(value: object, kind: Kind) -> float:
    """Parse a quantity written with a unit into a float in ``kind.canonical``.

    Raises ``PydanticCustomError('quantity', …)`` carrying ``hint`` in its context, so
    that the validator reports what is wrong and how to fix it.
    """
    if isinstance(value, bool) or value is None:
        raise _error(kind, value, f"expected {_a(kind.name)}, got {value!r}", _example_hint(kind))
    if isinstance(value, int | float):
        if kind is FRACTION:
            return float(value)
        raise _error(
            kind,
            value,
            f"{value!r} has no unit; {_a(kind.name)} needs one",
            _bare_number_hint(kind, repr(value)),
        )
    if not isinstance(value, str):
        raise _error(
            kind,
            value,
            f"expected {_a(kind.name)} as text such as '{kind.example}'",
            _example_hint(kind),
        )
    match = _NUMBER.match(value)
    if match is None:
        raise _error(kind, value, f"{value!r} does not start with a number", _example_hint(kind))
    magnitude = float(match.group(1))
    unit_text = match.group(2)
    for old, new in _UNIT_FIXES:
        unit_text = unit_text.replace(old, new)
    if not math.isfinite(magnitude):
        raise _error(kind, value, f"{value!r} is not a finite number", _example_hint(kind))
    if not unit_text:
        if kind is FRACTION:
            return magnitude
        raise _error(
            kind,
            value,
            f"{value!r} has no unit; {_a(kind.name)} needs one",
            _bare_number_hint(kind, match.group(1)),
        )
    fast = FAST_UNITS.get((kind.name, unit_text))
    if fast is not None:
        result = magnitude * fast[0] + fast[1]
    else:
        result = _parse_with_pint(value, kind, magnitude, match.group(1), unit_text)
    if not math.isfinite(result):
        raise _error(kind, value, f"{value!r} is too large", _example_hint(kind))
    return result


def _parse_with_pint(
    value: str, kind: Kind, magnitude: float, number: str, unit_text: str
) -> float:
    import pint

    try:
        units = _parse_units(unit_text)
    except Exception as exc:  # pint's parser raises many kinds of error on odd text
        # (UndefinedUnitError, DefinitionSyntaxError, tokenize.TokenError, ValueError, …)
        known = [u for (k, u) in FAST_UNITS if k == kind.name]
        guess = difflib.get_close_matches(unit_text, known, n=1, cutoff=0.6)
        hint = f"did you mean '{number} {guess[0]}'?" if guess else _example_hint(kind)
        raise _error(kind, value, f"unknown unit {unit_text!r} in {value!r}", hint) from exc
    ureg = registry()
    try:
        if kind.absolute_temperature:
            return float(ureg.Quantity(magnitude, units).to("degC").magnitude)
        if kind.temperature_delta:
            units = _delta_of(units)
        target = kind.canonical or "dimensionless"
        return float(ureg.Quantity(magnitude, units).to(target).magnitude)
    except (pint.errors.DimensionalityError, pint.errors.OffsetUnitCalculusError) as exc:
        hint = _example_hint(kind)
        temperature_kinds = (TEMPERATURE, TEMPERATURE_DELTA, TEMPERATURE_RATE, TEMPERATURE_TIME)
        if kind in temperature_kinds and _CELSIUS_AS_COULOMB.search(unit_text):
            fixed = _CELSIUS_AS_COULOMB.sub("degC", unit_text)
            hint = f"`C` is the coulomb, a charge; for degrees Celsius write '{number} {fixed}'"
        raise _error(
            kind,
            value,
            f"{value!r} is not {_a(kind.name)} (its unit {unit_text!r} is "
            f"{_describe_dimension(units)})",
            hint,
        ) from exc


def _delta_of(units: Any) -> Any:
    """A lone ``degC``/``degF`` in a difference means a difference, never an offset."""
    text = str(units)
    if text == "degree_Celsius":
        return registry().parse_units("delta_degC")
    if text == "degree_Fahrenheit":
        return registry().parse_units("delta_degF")
    return units


# What a unit's dimension is called, by a unit of that dimension (compared as pint
# dimensionalities: their text form depends on pint's ordering).
_DIMENSION_NAMES = (
    ("s", "a duration"),
    ("A", "a current"),
    ("A/cm^2", "a current density"),
    ("V", "a voltage"),
    ("K", "a temperature"),
    ("K/s", "a temperature rate"),
    ("cm", "a length"),
    ("cm^2", "an area"),
    ("C", "a charge"),
    ("C/cm^2", "an areal capacity"),
    ("ohm", "a resistance"),
    ("W", "a power"),
    ("K*s", "a temperature-time integral"),
    ("", "dimensionless"),
)


def _describe_dimension(units: Any) -> str:
    ureg = registry()
    dim = ureg.Quantity(1, units).dimensionality
    for unit, name in _DIMENSION_NAMES:
        if ureg.Quantity(1, unit or "dimensionless").dimensionality == dim:
            return name
    return f"of dimension {dim}"


def format_quantity(value: float, kind: Kind) -> str:
    """Canonical float back to text that ``parse`` accepts (round trip for model dumps)."""
    if kind is FRACTION:
        return f"{value:g}"
    return f"{value:.12g} {kind.canonical}"


def _annotated(kind: Kind, description: str) -> Any:
    schema: dict[str, Any] = {
        "type": "string",
        "description": f"{description} ({kind.name} with unit, e.g. '{kind.example}')",
        "pattern": r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*\S.*$",
        "examples": [kind.example],
    }
    if kind is FRACTION:
        schema = {
            "anyOf": [{"type": "number"}, {"type": "string"}],
            "description": f"{description} (a fraction: 0.01 or '1 %')",
            "examples": ["1 %"],
        }
    return Annotated[
        float,
        BeforeValidator(functools.partial(parse, kind=kind)),
        PlainSerializer(functools.partial(format_quantity, kind=kind), return_type=str),
        WithJsonSchema(schema),
    ]


if TYPE_CHECKING:  # to the type checker a quantity is the float it holds
    Duration = float
    Current = float
    CurrentDensity = float
    Voltage = float
    Temperature = float
    TemperatureDelta = float
    TemperatureRate = float
    TemperatureTime = float
    Length = float
    Area = float
    Charge = float
    ArealCharge = float
    Resistance = float
    Power = float
    Fraction = float
else:
    Duration = _annotated(DURATION, "a duration")
    Current = _annotated(CURRENT, "a current")
    CurrentDensity = _annotated(CURRENT_DENSITY, "a current density")
    Voltage = _annotated(VOLTAGE, "a voltage")
    Temperature = _annotated(TEMPERATURE, "an absolute temperature")
    TemperatureDelta = _annotated(TEMPERATURE_DELTA, "a temperature difference")
    TemperatureRate = _annotated(TEMPERATURE_RATE, "a rate of temperature change")
    TemperatureTime = _annotated(TEMPERATURE_TIME, "a temperature-time integral")
    Length = _annotated(LENGTH, "a length")
    Area = _annotated(AREA, "an area")
    Charge = _annotated(CHARGE, "a charge or capacity")
    ArealCharge = _annotated(AREAL_CHARGE, "an areal capacity")
    Resistance = _annotated(RESISTANCE, "a resistance")
    Power = _annotated(POWER, "a power")
    Fraction = _annotated(FRACTION, "a fraction")


def mA_per_cm2(value_a_per_cm2: float) -> float:  # noqa: N802 - unit name
    """For display: canonical A/cm^2 to mA/cm^2."""
    return value_a_per_cm2 * 1e3


def mAh(value_c: float) -> float:  # noqa: N802 - unit name
    """For display: coulombs to mAh."""
    return value_c / 3.6
