"""The protocol language: what a technician writes, as pydantic v2 models.

A protocol file is YAML (see ``protocols/``). Each step is a mapping with exactly one key
naming its kind (``rest``, ``hold_current``, ``hold_voltage``, ``dc_polarization``,
``cycle``, ``ccd_ramp``, ``temperature``, ``repeat``). Quantities are floats in the
canonical units of :mod:`controller.units`.

Sign convention: a positive current plates lithium on the working electrode
(``direction: plate``); ``strip`` is negative.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from controller.units import (
    Area,
    ArealCharge,
    Current,
    CurrentDensity,
    Duration,
    Fraction,
    Length,
    Temperature,
    TemperatureDelta,
    TemperatureRate,
    Voltage,
)


class Model(BaseModel):
    """Strict base: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def problem(
    what: str, hint: str, field: str | None = None, *, at_key: bool = False
) -> PydanticCustomError:
    """A rule violation with a hint; the validator prints both.

    ``field`` names the key the problem is about, so that the message points at that key's
    line (at the key itself with ``at_key``, e.g. for a key that does not belong there)
    rather than at the start of the mapping.
    """
    ctx: dict[str, Any] = {"what": what, "hint": hint}
    if field is not None:
        ctx["field"] = field
        ctx["at_key"] = at_key
    return PydanticCustomError("rule", "{what}", ctx)


class Direction(StrEnum):
    PLATE = "plate"  # positive current: lithium plated on the working electrode
    STRIP = "strip"

    @property
    def sign(self) -> int:
        return 1 if self is Direction.PLATE else -1


class ShortAction(StrEnum):
    """What follows a hard short: the next step, a normal end of the run, or an abort."""

    NEXT = "next"
    END = "end"
    ABORT = "abort"


class SoftShortAction(StrEnum):
    """What follows a soft short: by default only an event."""

    EVENT = "event"
    NEXT = "next"
    END = "end"
    ABORT = "abort"


# --------------------------------------------------------------------------- cell


class CellType(StrEnum):
    SYMMETRIC = "symmetric"  # Li|SE|Li
    ANODE_FREE = "anode_free"  # Cu|SE|Li: lithium plated on bare copper
    BLOCKING = "blocking"  # Cu|SE|Cu or Au|SE|Au: ion-blocking, for DC polarization


class Cell(Model):
    """The cell under test; its area turns current densities into currents."""

    id: str = Field(min_length=1, description="sample id, e.g. S07")
    electrolyte: str = Field(min_length=1, description="e.g. LiBH4, LLZO, Li3PS4")
    type: CellType = CellType.SYMMETRIC
    area: Area | None = Field(None, description="electrode area; or give `diameter`")
    diameter: Length | None = Field(None, description="electrode diameter; or give `area`")
    thickness: Length = Field(description="electrolyte thickness, for conductivities")

    @model_validator(mode="after")
    def _one_geometry(self) -> Cell:
        if self.area is None and self.diameter is None:
            raise problem(
                "give the electrode size as `area` or `diameter`",
                "e.g. `area: 0.785 cm^2` or `diameter: 10 mm`",
            )
        if self.area is not None and self.diameter is not None:
            raise problem(
                "give the electrode size as `area` or `diameter`, not both",
                "keep one: the area is computed from the diameter as π·d²/4",
                "diameter",
                at_key=True,
            )
        if self.area is not None and self.area <= 0:
            raise problem("cell area must be positive", "e.g. `area: 0.785 cm^2`", "area")
        if self.diameter is not None and self.diameter <= 0:
            raise problem("cell diameter must be positive", "e.g. `diameter: 10 mm`", "diameter")
        if self.thickness <= 0:
            raise problem(
                "cell thickness must be positive", "e.g. `thickness: 1.0 mm`", "thickness"
            )
        return self

    @property
    def area_cm2(self) -> float:
        if self.area is not None:
            return self.area
        assert self.diameter is not None
        return math.pi * (self.diameter / 2) ** 2


# ------------------------------------------------------------------ safety, record


class VoltageWindow(Model):
    min: Voltage
    max: Voltage

    @model_validator(mode="after")
    def _ordered(self) -> VoltageWindow:
        if self.min >= self.max:
            raise problem(
                f"voltage window min ({self.min:g} V) must be below max ({self.max:g} V)",
                "swap them, e.g. `voltage: {min: -1 V, max: 1 V}`",
                "min",
            )
        return self


class ProtocolSafety(Model):
    """The protocol's own limits. The rig's limits win where they are tighter."""

    voltage: VoltageWindow = Field(description="compliance window; leaving it is a voltage limit")
    temperature_max: Temperature = Field(description="hard maximum for this cell")
    current_density_max: CurrentDensity | None = Field(
        None, description="refuse any step above this current density"
    )


class Record(Model):
    """What is stored. Detection and safety always see every sample."""

    sample_period: Duration = Field(1.0, description="how often V and I are measured")
    every: Duration = Field(10.0, description="store a sample at least this often")
    delta_voltage: Voltage | None = Field(
        0.001, description="…or when the voltage moved this much since the last stored sample"
    )
    delta_current: Current | None = Field(
        None, description="…or when the current moved this much since the last stored sample"
    )

    @model_validator(mode="after")
    def _positive(self) -> Record:
        if self.sample_period <= 0:
            raise problem(
                "sample_period must be positive", "e.g. `sample_period: 1 s`", "sample_period"
            )
        if self.every < self.sample_period:
            raise problem(
                f"every ({self.every:g} s) is shorter than the sample period "
                f"({self.sample_period:g} s)",
                "a sample cannot be stored more often than it is measured: make `every` at "
                "least `sample_period`",
                "every",
            )
        return self


class ShortDetection(Model):
    """Thresholds of the short detector (controller/detect, docs/short-detection.md).

    The defaults suit mA/cm² tests of Li|SE|Li cells sampled every 0.1–10 s. A hard short
    needs `confirm_samples` consecutive collapsed samples spanning `confirm_time`; soft
    shorts are events, never aborts (unless a step's `on_soft_short` says so).
    """

    current_min: Current = Field(
        1e-6,
        description="the cell is under current when |I| is at least this; below it (rests, "
        "output off) nothing is decided",
    )
    resistance_fraction: Fraction = Field(
        0.2,
        description="hard short: V/I below this fraction of the running resistance (the "
        "median of the last 3 samples of the same polarity)",
    )
    voltage_floor: Voltage = Field(
        0.001,
        description="hard short without a running resistance (first current at a new "
        "temperature): |V| below this; and a cell expected below it is never judged",
    )
    confirm_samples: int = Field(
        2, ge=1, le=10, description="consecutive collapsed samples that confirm a hard short"
    )
    confirm_time: Duration = Field(
        0.25,
        description="…which must also span at least this long (rejects contact bounces at "
        "fast sampling); also the minimum span of a soft short",
    )
    settle: Duration = Field(
        10.0,
        description="a collapse that begins within this long after the current starts, "
        "reverses or jumps must hold still until then (the polarisation left from before "
        "relaxes meanwhile); a cell that answers the change like a wire is confirmed at once",
    )
    soft_drop_fraction: Fraction = Field(
        0.3,
        description="soft short: |V| drops by at least this fraction of the level's running "
        "value (and by `noise_factor` times its noise), then recovers",
    )
    noise_factor: float = Field(
        8.0,
        gt=1,
        description="a soft dip must also exceed this many times the level's sample-to-sample "
        "noise",
    )
    soft_window: int = Field(
        9,
        ge=3,
        le=51,
        description="samples of the same level that give its running value and noise "
        "(odd; no soft decision before the level has this many)",
    )
    soft_gap: Duration = Field(
        5.0,
        description="a soft episode ends after this long (and at least 3 samples) without a dip",
    )
    soft_max_duration: Duration = Field(
        120.0,
        description="a partial collapse that has not recovered after this long is reported "
        "(persistent soft short) and becomes the level's new normal",
    )
    temperature_tolerance: TemperatureDelta = Field(
        2.0,
        description="references learned further than this from the present temperature are "
        "not used; soft decisions pause while the block moves more than this within the window",
    )
    reference_max_age: Duration = Field(
        7200.0, description="references older than this are not used (the cell may have changed)"
    )
    level_tolerance: Fraction = Field(
        0.02,
        description="without a commanded level (offline CSV), a current change larger than "
        "this fraction starts a new level",
    )
    limit_margin: Voltage = Field(
        0.01,
        description="voltage limit: the voltage within this of the protocol's window edge for "
        "`confirm_samples` samples",
    )

    @field_validator("resistance_fraction", "soft_drop_fraction")
    @classmethod
    def _fraction(cls, value: float, info: ValidationInfo) -> float:
        if not 0 < value < 1:
            raise problem(
                "must be between 0 and 100 %",
                "e.g. `resistance_fraction: 20 %` (a collapse to a fifth of the resistance)"
                if info.field_name == "resistance_fraction"
                else "e.g. `soft_drop_fraction: 30 %`",
            )
        return value

    @field_validator("soft_window")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise problem(
                f"must be odd (got {value})",
                "its median is then one of the samples, e.g. `soft_window: 9`",
            )
        return value

    @field_validator(
        "current_min",
        "voltage_floor",
        "temperature_tolerance",
        "soft_max_duration",
        "reference_max_age",
    )
    @classmethod
    def _positive(cls, value: float, info: ValidationInfo) -> float:
        if value <= 0:
            raise problem("must be positive", "leave it out for the default")
        return value

    @field_validator("confirm_time", "settle", "soft_gap", "limit_margin", "level_tolerance")
    @classmethod
    def _not_negative(cls, value: float, info: ValidationInfo) -> float:
        if value < 0:
            raise problem("must not be negative", "leave it out for the default")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ShortDetection:
        if 1 - self.soft_drop_fraction <= self.resistance_fraction:
            raise problem(
                "a soft dip must be shallower than a hard collapse: need "
                "1 - soft_drop_fraction > resistance_fraction",
                "e.g. `resistance_fraction: 20 %` with `soft_drop_fraction: 30 %`",
            )
        return self


# -------------------------------------------------------------------- terminations


class Threshold(Model):
    """A voltage condition with its own debounce."""

    value: Voltage
    hold_for: Duration = 0.0


def _threshold(v: Any) -> Any:
    return v if isinstance(v, dict) else {"value": v}


VoltageCondition = Annotated[
    Threshold, Field(description="e.g. `1 V` or `{value: 1 V, hold_for: 5 s}`")
]


class Steady(Model):
    """The current is steady when its relative change over `window` is below `tolerance`."""

    window: Duration = 600.0
    tolerance: Fraction = 0.01

    @model_validator(mode="after")
    def _sane(self) -> Steady:
        if self.window <= 0:
            raise problem("window must be positive", "e.g. `window: 10 min`", "window")
        if not 0 < self.tolerance < 1:
            raise problem(
                "tolerance must be between 0 and 100 %", "e.g. `tolerance: 1 %`", "tolerance"
            )
        return self


class Until(Model):
    """Conditions that end a step; any one of them ends it (OR)."""

    voltage_above: VoltageCondition | None = None
    voltage_below: VoltageCondition | None = None
    abs_voltage_above: VoltageCondition | None = None
    capacity: ArealCharge | None = Field(None, description="areal charge passed in this step")
    short: bool = Field(False, description="end on a hard short (outcome `short`)")
    steady: Steady | None = None
    hold_for: Duration = Field(0.0, description="default debounce for the voltage conditions")

    _wrap = field_validator("voltage_above", "voltage_below", "abs_voltage_above", mode="before")(
        lambda v: _threshold(v) if v is not None else v
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if data == "short":
            return {"short": True}
        if data == "steady":
            return {"steady": {}}
        if isinstance(data, dict) and data.get("steady") is True:
            return {**data, "steady": {}}
        return data

    @property
    def empty(self) -> bool:
        return not (
            self.voltage_above
            or self.voltage_below
            or self.abs_voltage_above
            or self.capacity is not None
            or self.short
            or self.steady
        )


UntilField = Annotated[
    Until | None,
    Field(description="conditions that end the step (OR); `short` alone is a shorthand"),
]


class StepBase(Model):
    label: str | None = Field(None, description="name shown in plans, consoles and reports")


class ElectrochemBase(StepBase):
    on_short: ShortAction = Field(ShortAction.ABORT, description="after a hard short")
    on_soft_short: SoftShortAction = Field(SoftShortAction.EVENT, description="after a soft short")


class TimedBase(ElectrochemBase):
    duration: Duration | None = Field(
        None, alias="for", description="how long; with `until`, the upper bound"
    )
    until: UntilField = None

    @model_validator(mode="after")
    def _bounded(self) -> TimedBase:
        if self.duration is None:
            raise problem(
                "this step has no `for:`, so it might never end",
                "add `for: <duration>` (with `until:` it is the upper bound), e.g. `for: 1 h`",
            )
        if self.duration <= 0:
            raise problem("`for` must be a positive duration", "e.g. `for: 30 min`", "for")
        if self.until is not None and self.until.empty:
            raise problem(
                "`until:` names no condition",
                "e.g. `until: short`, or `until: {voltage_above: 1 V}`",
                "until",
                at_key=True,
            )
        return self


# ------------------------------------------------------------------------- steps


class RestParams(TimedBase):
    """Open circuit: the SMU sources 0 A with its output on and measures the voltage."""

    on_short: ShortAction = ShortAction.NEXT


class HoldCurrentParams(TimedBase):
    """Galvanostatic hold; the direction is explicit."""

    current: Current | None = Field(None, description="magnitude; or give `current_density`")
    current_density: CurrentDensity | None = Field(None, description="magnitude; or `current`")
    direction: Direction

    @model_validator(mode="after")
    def _one_level(self) -> HoldCurrentParams:
        _exactly_one_level(self.current, self.current_density)
        return self


class HoldVoltageParams(TimedBase):
    """Potentiostatic hold."""

    voltage: Voltage
    current_limit: Current = Field(description="compliance current")

    @model_validator(mode="after")
    def _limit(self) -> HoldVoltageParams:
        if self.current_limit <= 0:
            raise problem(
                "current_limit must be positive", "e.g. `current_limit: 1 mA`", "current_limit"
            )
        return self


class DcPolarizationParams(ElectrochemBase):
    """Constant voltage until the current is steady; σ_e = I·L/(V·A) (seeds/001)."""

    voltage: Voltage = Field(description="e.g. 0.1 V on a blocking cell")
    current_limit: Current
    steady: Steady = Steady()
    max_duration: Duration = Field(description="give up (outcome `timeout`) after this long")
    min_duration: Duration = Field(60.0, description="never call the current steady earlier")
    on_short: ShortAction = ShortAction.NEXT

    @model_validator(mode="after")
    def _sane(self) -> DcPolarizationParams:
        if self.voltage == 0:
            raise problem(
                "dc_polarization voltage must not be 0 V", "e.g. `voltage: 0.1 V`", "voltage"
            )
        if self.current_limit <= 0:
            raise problem(
                "current_limit must be positive", "e.g. `current_limit: 1 mA`", "current_limit"
            )
        if self.min_duration < 0:
            raise problem(
                "min_duration must not be negative", "e.g. `min_duration: 1 h`", "min_duration"
            )
        if self.max_duration <= self.min_duration:
            raise problem(
                f"max_duration ({_hours(self.max_duration)}) must be longer than min_duration "
                f"({_hours(self.min_duration)})",
                "raise max_duration (the step gives up then) or lower min_duration",
                "max_duration",
            )
        return self


class CycleParams(ElectrochemBase):
    """Plate/strip half-cycles at constant current, by time or areal capacity."""

    current: Current | None = None
    current_density: CurrentDensity | None = None
    half_cycle: Duration | None = Field(None, description="duration of each half-cycle")
    capacity: ArealCharge | None = Field(None, description="areal charge per half-cycle")
    rest: Duration = Field(0.0, description="open-circuit rest after each half-cycle")
    first: Direction = Direction.PLATE
    count: int | None = Field(None, ge=1, description="number of full cycles")
    until: UntilField = None
    max_count: int | None = Field(None, ge=1, description="upper bound for `until`")

    @model_validator(mode="after")
    def _rules(self) -> CycleParams:
        _exactly_one_level(self.current, self.current_density)
        _time_or_capacity(self.half_cycle, self.capacity, "half_cycle")
        if self.rest < 0:
            raise problem(
                "rest must not be negative", "e.g. `rest: 5 min`, or leave it out", "rest"
            )
        if self.count is None and self.until is None:
            raise problem(
                "a cycle step needs `count:` or `until:` (with `max_count:`)",
                "e.g. `count: 5`, or `until: short` with `max_count: 1000`",
            )
        if self.count is not None and self.max_count is not None:
            raise problem(
                "give `count:` or `max_count:`, not both",
                "`count` runs exactly that many cycles; `max_count` bounds `until`",
                "max_count",
                at_key=True,
            )
        if self.until is not None and self.count is None and self.max_count is None:
            raise problem(
                "`until:` without `count:` or `max_count:` might never end",
                "add `max_count: 1000` as the upper bound",
                "until",
                at_key=True,
            )
        if self.until is not None and self.until.empty:
            raise problem(
                "`until:` names no condition",
                "e.g. `until: short`, or `until: {voltage_above: 1 V}`",
                "until",
                at_key=True,
            )
        return self

    @property
    def cycle_bound(self) -> int:
        return self.count if self.count is not None else (self.max_count or 0)


class RampMode(StrEnum):
    SYMMETRIC = "symmetric"  # plate then strip at each level
    ONE_WAY = "one_way"  # plate (or strip) only, level after level (seeds/001)


class CcdRampParams(ElectrochemBase):
    """Step the current density up until the cell shorts; CCD = the shorting level."""

    mode: RampMode = RampMode.SYMMETRIC
    direction: Direction = Field(Direction.PLATE, description="one_way: which way")
    start: CurrentDensity
    step: CurrentDensity
    max: CurrentDensity
    half_cycle: Duration | None = Field(None, description="symmetric: per half-cycle")
    per_level: Duration | None = Field(None, description="one_way: time at each level")
    capacity: ArealCharge | None = Field(None, description="areal charge per half-cycle/level")
    rest: Duration = 0.0
    cycles_per_level: int = Field(1, ge=1)
    on_short: ShortAction = ShortAction.NEXT
    on_interrupt: ShortAction = Field(
        ShortAction.NEXT,
        description="after a crash or power cut mid-ramp, the ramp ends as `interrupted` "
        "(the cell's history changed); then: next step, end or abort the run",
    )
    until: UntilField = None

    @model_validator(mode="after")
    def _rules(self) -> CcdRampParams:
        for name in ("start", "step"):
            if getattr(self, name) <= 0:
                raise problem(
                    f"ccd_ramp {name} must be a positive current density",
                    "e.g. `start: 0.1 mA/cm^2, step: 0.1 mA/cm^2`",
                    name,
                )
        if self.max < self.start:
            raise problem(
                f"ccd_ramp max ({self.max * 1e3:g} mA/cm^2) is below start "
                f"({self.start * 1e3:g} mA/cm^2)",
                "raise `max` or lower `start`",
                "max",
            )
        if self.mode is RampMode.SYMMETRIC:
            if self.per_level is not None:
                raise problem(
                    "`per_level` belongs to one_way ramps",
                    "in a symmetric ramp use `half_cycle:` (or `capacity:`), or set "
                    "`mode: one_way`",
                    "per_level",
                    at_key=True,
                )
            _time_or_capacity(self.half_cycle, self.capacity, "half_cycle")
        else:
            if self.half_cycle is not None:
                raise problem(
                    "`half_cycle` belongs to symmetric ramps",
                    "in a one_way ramp use `per_level:` (or `capacity:`)",
                    "half_cycle",
                    at_key=True,
                )
            if self.cycles_per_level != 1:
                raise problem(
                    "`cycles_per_level` belongs to symmetric ramps",
                    "remove it from the one_way ramp",
                    "cycles_per_level",
                    at_key=True,
                )
            _time_or_capacity(self.per_level, self.capacity, "per_level")
        if self.rest < 0:
            raise problem("rest must not be negative", "e.g. `rest: 5 min`", "rest")
        if self.levels > 1000:
            raise problem(
                f"this ramp has {self.levels} levels",
                "use a larger `step` or a lower `max` (at most 1000 levels)",
                "step",
            )
        return self

    @property
    def levels(self) -> int:
        return math.floor((self.max - self.start) / self.step + 1e-9) + 1

    def level_density(self, index: int) -> float:
        return self.start + index * self.step


class TemperatureParams(StepBase):
    """Move the block to a setpoint and soak; soak time counts only inside the band."""

    setpoint: Temperature
    ramp: TemperatureRate | None = Field(None, description="setpoint ramp; default: rig maximum")
    band: TemperatureDelta = Field(0.5, description="±band around the setpoint: inside is there")
    soak: Duration = Field(0.0, description="time inside the band before the step ends")
    timeout: Duration | None = Field(
        None, description="fault if the band is not reached in time; default: ramp time + 30 min"
    )

    @model_validator(mode="after")
    def _rules(self) -> TemperatureParams:
        if self.ramp is not None and self.ramp <= 0:
            raise problem(
                "ramp rate must be positive (the direction follows the setpoint)",
                "e.g. `ramp: 5 degC/min`; leave it out for the rig's maximum rate",
                "ramp",
            )
        if self.band <= 0:
            raise problem("band must be positive", "e.g. `band: 0.5 degC`", "band")
        if self.soak < 0:
            raise problem("soak must not be negative", "e.g. `soak: 1 h`, or `soak: 0 s`", "soak")
        if self.timeout is not None and self.timeout <= 0:
            raise problem("timeout must be positive", "e.g. `timeout: 2 h`", "timeout")
        return self


class RepeatParams(StepBase):
    count: int = Field(ge=1, le=100_000)
    steps: list[Step] = Field(min_length=1)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"


def _exactly_one_level(current: float | None, density: float | None) -> None:
    if current is None and density is None:
        raise problem(
            "give the level as `current` or `current_density`",
            "e.g. `current_density: 2 mA/cm^2`",
        )
    if current is not None and density is not None:
        raise problem(
            "give the level as `current` or `current_density`, not both",
            "keep one: the current is the current density times the cell area",
            "current",
            at_key=True,
        )
    name = "current" if current is not None else "current_density"
    level = current if current is not None else density
    assert level is not None
    if level <= 0:
        raise problem(
            "give the magnitude as a positive value; the direction says which way",
            f"e.g. `{name}: 2 {'mA' if name == 'current' else 'mA/cm^2'}` with `direction: strip`",
            name,
        )


def _time_or_capacity(duration: float | None, capacity: float | None, name: str) -> None:
    if duration is None and capacity is None:
        raise problem(
            f"give the length of each {name.replace('_', '-')} as `{name}` (a duration) or "
            "`capacity` (an areal capacity)",
            f"e.g. `{name}: 30 min` or `capacity: 1 mAh/cm^2`",
        )
    if duration is not None and capacity is not None:
        raise problem(
            f"give `{name}` or `capacity`, not both",
            f"keep one: `{name}: 30 min` or `capacity: 1 mAh/cm^2`",
            "capacity",
            at_key=True,
        )
    if duration is not None and duration <= 0:
        raise problem(f"`{name}` must be a positive duration", f"e.g. `{name}: 30 min`", name)
    if capacity is not None and capacity <= 0:
        raise problem("`capacity` must be positive", "e.g. `capacity: 1 mAh/cm^2`", "capacity")


# ------------------------------------------------------------ the step union


class Rest(Model):
    rest: RestParams


class HoldCurrent(Model):
    hold_current: HoldCurrentParams


class HoldVoltage(Model):
    hold_voltage: HoldVoltageParams


class DcPolarization(Model):
    dc_polarization: DcPolarizationParams


class Cycle(Model):
    cycle: CycleParams


class CcdRamp(Model):
    ccd_ramp: CcdRampParams


class TemperatureStep(Model):
    temperature: TemperatureParams


class Repeat(Model):
    repeat: RepeatParams


STEP_KINDS: dict[str, type[Model]] = {
    "rest": Rest,
    "hold_current": HoldCurrent,
    "hold_voltage": HoldVoltage,
    "dc_polarization": DcPolarization,
    "cycle": Cycle,
    "ccd_ramp": CcdRamp,
    "temperature": TemperatureStep,
    "repeat": Repeat,
}

StepParams = (
    RestParams
    | HoldCurrentParams
    | HoldVoltageParams
    | DcPolarizationParams
    | CycleParams
    | CcdRampParams
    | TemperatureParams
    | RepeatParams
)


def step_kind(value: Any) -> str | None:
    """The discriminator: a step is a mapping with exactly one known key."""
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return key if key in STEP_KINDS else None
    if isinstance(value, Model):
        return next(iter(type(value).model_fields))
    return None


Step = Annotated[
    Annotated[Rest, Tag("rest")]
    | Annotated[HoldCurrent, Tag("hold_current")]
    | Annotated[HoldVoltage, Tag("hold_voltage")]
    | Annotated[DcPolarization, Tag("dc_polarization")]
    | Annotated[Cycle, Tag("cycle")]
    | Annotated[CcdRamp, Tag("ccd_ramp")]
    | Annotated[TemperatureStep, Tag("temperature")]
    | Annotated[Repeat, Tag("repeat")],
    Discriminator(
        step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step must be a mapping with exactly one step kind",
    ),
]

RepeatParams.model_rebuild()


def params(step: Model) -> StepParams:
    """The parameters of a step, whatever its kind."""
    kind = step_kind(step)
    assert kind is not None
    value: StepParams = getattr(step, kind)
    return value


# ---------------------------------------------------------------------- protocol


class Protocol(Model):
    """A whole protocol file."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="heatcycler protocol",
        json_schema_extra={"$id": "https://heatcycler.invalid/schema/protocol.json"},
    )

    name: str = Field(min_length=1)
    description: str = ""
    cell: Cell
    safety: ProtocolSafety
    record: Record = Record()
    detection: ShortDetection = ShortDetection()
    steps: list[Step] = Field(min_length=1)


def _walk(steps: list[Any], prefix: tuple[int, ...]) -> Any:
    for i, step in enumerate(steps):
        yield (*prefix, i), step
        if isinstance(step, Repeat):
            yield from _walk(step.repeat.steps, (*prefix, i))


#: At most this many executed steps in a run (repeats expanded; nested repeats multiply).
MAX_EXECUTED_STEPS = 100_000


def executed_count(steps: list[Any]) -> int:
    """How many steps a run executes, repeats expanded (without expanding them)."""
    total = 0
    for step in steps:
        if isinstance(step, Repeat):
            total += step.repeat.count * executed_count(step.repeat.steps)
        else:
            total += 1
    return total


def walk_steps(steps: list[Any]) -> Any:
    """Every step with its index path (nested repeats included), depth first."""
    return _walk(steps, ())


def _loc(index: tuple[int, ...]) -> list[Any]:
    loc: list[Any] = [index[0]]
    for i in index[1:]:
        loc += ["repeat", "steps", i]
    return loc


def step_loc(index: tuple[int, ...]) -> tuple[Any, ...]:
    """The key path of a step in the file, e.g. ('steps', 2, 'repeat', 'steps', 0)."""
    return ("steps", *_loc(index))


def _path(index: tuple[int, ...]) -> str:
    return ".".join(str(i + 1) for i in index)


def step_number(index: tuple[int, ...]) -> str:
    """Human numbering: '3' or '3.1' for the first step inside repeat 3."""
    return _path(index)
