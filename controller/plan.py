"""The dry run: what a protocol will do, how long it takes, what it passes, how hot it gets.

:func:`make_plan` walks a validated protocol as the runner would, without touching an
instrument, and returns plain dataclasses: one :class:`PlannedStep` per executed step
(repeats expanded) with its duration and start-time bounds, so that the runner and the
live console can show ETAs from the same numbers ``heatcycler plan`` prints.

Bounds are honest rather than optimistic: a step that ends on a condition (``until``, a
short, a steady current) ranges from the earliest moment the condition could fire to the
step's upper bound (``for``, ``max_count``, the last ramp level, ``max_duration``). Shorts
the protocol does not expect (outside ``until: short`` and ``ccd_ramp``) are not planned.

Temperature steps: ramp time from the previous setpoint (ambient at the start) at the
step's ramp, never faster than the rig heats or cools, plus a settling allowance, plus the
soak; the upper bound is the timeout (default: ramp time + 30 min) plus the soak.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from controller import protocol as proto
from controller.problems import UserError
from controller.rig import RigConfig, simulated_rig

#: Time the PID loop is allowed to settle into the band after the ramp ends.
SETTLING_ALLOWANCE = 300.0
#: Default temperature timeout beyond the ramp time (TemperatureParams.timeout).
TIMEOUT_MARGIN = 1800.0
MAX_EXECUTED = proto.MAX_EXECUTED_STEPS


@dataclass(frozen=True, slots=True)
class Bounds:
    """A closed interval [min, max] of seconds, coulombs per cm², …"""

    min: float
    max: float

    def __add__(self, other: Bounds) -> Bounds:
        return Bounds(self.min + other.min, self.max + other.max)

    def scaled(self, factor: float) -> Bounds:
        return Bounds(self.min * factor, self.max * factor)

    @property
    def fixed(self) -> bool:
        return math.isclose(self.min, self.max, rel_tol=1e-9, abs_tol=1e-9)


ZERO = Bounds(0.0, 0.0)


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One executed step: where it sits in the file, when it runs and what it passes."""

    index: tuple[int, ...]  # index path in the file, 0-based, through nested repeats
    iteration: tuple[int, ...]  # 0-based iteration of each enclosing repeat
    number: str  # human number: '3' or '3.1' (first step inside repeat 3)
    kind: str
    label: str  # the step's label, or its kind
    depth: int  # nesting depth (0 at the top level)
    duration: Bounds  # s
    start: Bounds  # s since the run started
    charge_per_cm2: Bounds  # C/cm^2 passed through the cell (|I|·t / area)
    temperature: float | None  # degC setpoint while it runs; None before any setpoint
    ends_on: str  # what ends it, in words
    may_end_run: bool  # a designed short here ends the run (on_short: end/abort)

    @property
    def end(self) -> Bounds:
        return self.start + self.duration


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """One step as written in the file; repeats summed over their iterations."""

    index: tuple[int, ...]
    number: str
    kind: str
    label: str
    depth: int
    summary: str  # what it does, in words
    ends_on: str
    executions: int  # how many times it runs (product of the enclosing repeat counts)
    count: int  # a repeat's count; 1 for other steps
    duration: Bounds  # of one execution (over all executions: shortest min, longest max)
    total: Bounds  # summed over its executions
    first_start: Bounds
    charge_per_cm2: Bounds  # summed over its executions


@dataclass(frozen=True, slots=True)
class SetpointTime:
    """Time spent at one setpoint: its soaks and every step run while it holds."""

    setpoint: float | None  # degC; None: before the first temperature step (unheated)
    time: Bounds
    soak: float  # s of soak (inside the band) at this setpoint


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """One limit: what the plan asks for, the protocol's and rig's limits, which wins."""

    name: str
    demand: str
    protocol: str | None
    rig: str | None
    effective: str
    wins: str  # 'protocol', 'rig', 'both' (equal), or 'protocol (no rig)'
    status: str  # 'ok', 'over' or 'note'
    note: str = ""


@dataclass(frozen=True, slots=True)
class Rates:
    heat: float  # K/s, fastest heating the rig allows
    cool: float  # K/s, fastest cooling the block achieves


@dataclass
class Plan:
    """The whole dry run."""

    name: str
    rig: str  # rig id, or 'sim defaults' when no rig was given
    rig_given: bool
    area_cm2: float
    ambient: float  # degC
    rates: Rates
    steps: list[PlannedStep]  # every executed step, in order
    timeline: list[TimelineRow]  # every step as written, in file order
    duration: Bounds
    charge_per_cm2: Bounds
    peak_temperature: float  # degC: the highest setpoint (ambient if none)
    thermal_time: Bounds  # s spent in temperature steps
    setpoints: list[SetpointTime]
    limits: list[LimitCheck]
    notes: list[str] = field(default_factory=list)

    def remaining(self, position: int) -> Bounds:
        """Time left from the start of executed step ``position`` to the end of the run."""
        if not 0 <= position < len(self.steps):
            return ZERO
        start = self.steps[position].start
        return Bounds(
            max(0.0, self.duration.min - start.min), max(0.0, self.duration.max - start.max)
        )

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


# ------------------------------------------------------------------ one step


@dataclass(frozen=True, slots=True)
class _Estimate:
    duration: Bounds
    charge: Bounds  # C/cm^2
    ends_on: str
    summary: str
    short_ends: bool = False  # a short is one of its designed ends
    min_if_continues: float | None = None  # earliest end that lets the run go on
    charge_if_continues: float | None = None  # C/cm^2 passed by then

    @property
    def continue_min(self) -> float:
        return self.duration.min if self.min_if_continues is None else self.min_if_continues

    @property
    def continue_charge(self) -> float:
        return self.charge.min if self.charge_if_continues is None else self.charge_if_continues


def _fmt_q(value: float, unit: str, scale: float = 1.0) -> str:
    return f"{value * scale:.4g} {unit}"


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.3g} %"


def _density_text(density: float) -> str:
    if density < 1e-3:
        return _fmt_q(density, "uA/cm^2", 1e6)
    return _fmt_q(density, "mA/cm^2", 1e3)


def _current_text(amps: float) -> str:
    if amps < 1e-3:
        return _fmt_q(amps, "uA", 1e6)
    return _fmt_q(amps, "mA", 1e3)


def _condition_min(until: proto.Until | None) -> tuple[float | None, list[str]]:
    """Earliest time a non-short, non-capacity condition could end the step, and words."""
    if until is None:
        return None, []
    earliest: float | None = None
    words: list[str] = []

    def seen(t: float, text: str) -> None:
        nonlocal earliest
        earliest = t if earliest is None else min(earliest, t)
        words.append(text)

    for name, text in (
        ("voltage_above", "V above"),
        ("voltage_below", "V below"),
        ("abs_voltage_above", "|V| above"),
    ):
        threshold: proto.Threshold | None = getattr(until, name)
        if threshold is not None:
            hold = threshold.hold_for or until.hold_for
            seen(
                hold,
                f"{text} {threshold.value:g} V" + (f" for {duration_text(hold)}" if hold else ""),
            )
    if until.steady is not None:
        seen(
            until.steady.window,
            f"a steady current ({_percent(until.steady.tolerance)} over "
            f"{duration_text(until.steady.window)})",
        )
    return earliest, words


def _bounded(
    upper: float,
    until: proto.Until | None,
    charge_at: Callable[[float], float],
    summary: str,
    *,
    fixed_end: str,
) -> _Estimate:
    """A step that runs at most ``upper`` seconds and may end earlier on ``until``."""
    cond_min, words = _condition_min(until)
    short = until is not None and until.short
    if short:
        words.append("a short")
    lower = upper
    if cond_min is not None:
        lower = min(lower, cond_min)
    continue_min = lower
    if short:
        lower = 0.0
    ends = fixed_end if not words else f"on {' or '.join(words)}; at the latest {fixed_end}"
    return _Estimate(
        Bounds(lower, upper),
        Bounds(charge_at(lower), charge_at(upper)),
        ends,
        summary,
        short_ends=short,
        min_if_continues=continue_min,
        charge_if_continues=charge_at(continue_min),
    )


def _on_time(t: float, half: float, rest: float) -> float:
    """Seconds of current within the first ``t`` s of half-cycles separated by rests."""
    period = half + rest
    if period <= 0:
        return 0.0
    full = math.floor(t / period)
    return full * half + min(t - full * period, half)


def _timed(p: proto.TimedBase, density: float, summary: str) -> _Estimate:
    assert p.duration is not None
    upper = p.duration
    fixed_end = f"after {duration_text(upper)}"
    if p.until is not None and p.until.capacity is not None and density > 0:
        cap_time = p.until.capacity / density
        if cap_time < upper:
            upper = cap_time
            fixed_end = (
                f"when {_fmt_q(p.until.capacity, 'mAh/cm^2', 1 / 3.6)} has passed "
                f"({duration_text(upper)})"
            )
    return _bounded(upper, p.until, lambda t: density * t, summary, fixed_end=fixed_end)


def _cycle(p: proto.CycleParams, area: float) -> _Estimate:
    density = p.current_density if p.current_density is not None else (p.current or 0) / area
    half = p.half_cycle if p.half_cycle is not None else (p.capacity or 0) / density
    period = 2 * (half + p.rest)
    n = p.cycle_bound
    upper = n * period
    level = _density_text(density) + f" ({_current_text(density * area)})"
    shape = (
        f"plate/strip {duration_text(half)} each"
        if p.first is proto.Direction.PLATE
        else f"strip/plate {duration_text(half)} each"
    )
    rest = f", rest {duration_text(p.rest)} after each" if p.rest else ""
    summary = f"{shape}{rest}, at {level}"
    fixed_end = f"after {n} cycle{'s' * (n != 1)}"
    if p.until is not None and p.until.capacity is not None:
        halves = p.until.capacity / (density * half)
        whole = math.floor(halves)
        cap_time = whole * (half + p.rest) + (halves - whole) * half
        if cap_time < upper:
            upper = cap_time
            fixed_end = f"when {_fmt_q(p.until.capacity, 'mAh/cm^2', 1 / 3.6)} has passed"
    summary = f"{n if p.until is None else f'up to {n}'} cycles: {summary}"
    return _bounded(
        upper,
        p.until,
        lambda t: density * _on_time(t, half, p.rest),
        summary,
        fixed_end=fixed_end,
    )


def _ccd_ramp(p: proto.CcdRampParams, area: float) -> _Estimate:
    total_time = 0.0
    total_charge = 0.0
    for i in range(p.levels):
        d = p.level_density(i)
        if p.mode is proto.RampMode.SYMMETRIC:
            half = p.half_cycle if p.half_cycle is not None else (p.capacity or 0) / d
            total_time += p.cycles_per_level * 2 * (half + p.rest)
            total_charge += p.cycles_per_level * 2 * d * half
        else:
            per = p.per_level if p.per_level is not None else (p.capacity or 0) / d
            total_time += per + p.rest
            total_charge += d * per
    last = p.level_density(p.levels - 1)
    if p.mode is proto.RampMode.SYMMETRIC:
        per_text = (
            f"{duration_text(p.half_cycle)} half-cycles"
            if p.half_cycle is not None
            else f"{_fmt_q(p.capacity or 0, 'mAh/cm^2', 1 / 3.6)} half-cycles"
        )
        if p.cycles_per_level != 1:
            per_text = f"{p.cycles_per_level} cycles of {per_text}"
    else:
        way = "plating" if p.direction is proto.Direction.PLATE else "stripping"
        per_text = f"one-way {way}, " + (
            f"{duration_text(p.per_level)} per level"
            if p.per_level is not None
            else f"{_fmt_q(p.capacity or 0, 'mAh/cm^2', 1 / 3.6)} per level"
        )
    rest = f", rest {duration_text(p.rest)}" if p.rest else ""
    summary = (
        f"{p.levels} levels {_density_text(p.start)} → {_density_text(last)} "
        f"(+{_density_text(p.step)}; {_current_text(last * area)} at the top), {per_text}{rest}"
    )
    cond_min, words = _condition_min(p.until)
    return _Estimate(
        Bounds(0.0, total_time),
        Bounds(0.0, total_charge),
        "on " + " or ".join(["the short (the CCD)", *words]) + "; at the latest after the "
        f"last level ({_density_text(last)})",
        summary,
        short_ends=True,
        min_if_continues=total_time if cond_min is None else min(cond_min, total_time),
        charge_if_continues=total_charge if cond_min is None else 0.0,
    )


def _estimate(step: Any, area: float) -> _Estimate:
    p = proto.params(step)
    if isinstance(p, proto.RestParams):
        return _timed(p, 0.0, "open circuit (0 A)")
    if isinstance(p, proto.HoldCurrentParams):
        density = p.current_density if p.current_density is not None else (p.current or 0) / area
        summary = (
            f"{p.direction.value} at {_density_text(density)} ({_current_text(density * area)})"
        )
        return _timed(p, density, summary)
    if isinstance(p, proto.HoldVoltageParams):
        summary = f"{p.voltage:g} V, current limit {_current_text(p.current_limit)}"
        est = _timed(p, p.current_limit / area, summary)
        # the current is the cell's answer: anything from 0 to the limit
        return replace(est, charge=Bounds(0.0, est.charge.max), charge_if_continues=0.0)
    if isinstance(p, proto.DcPolarizationParams):
        summary = (
            f"{p.voltage:g} V until the current is steady ({_percent(p.steady.tolerance)} over "
            f"{duration_text(p.steady.window)}), current limit {_current_text(p.current_limit)}"
        )
        limit = p.current_limit / area
        # steady needs a whole window of data, and never before min_duration
        earliest = min(max(p.min_duration, p.steady.window), p.max_duration)
        return _Estimate(
            Bounds(earliest, p.max_duration),
            Bounds(0.0, limit * p.max_duration),
            f"when the current is steady, after at least {duration_text(earliest)}; "
            f"at the latest after {duration_text(p.max_duration)}",
            summary,
        )
    if isinstance(p, proto.CycleParams):
        return _cycle(p, area)
    if isinstance(p, proto.CcdRampParams):
        return _ccd_ramp(p, area)
    raise TypeError(f"no estimate for {type(p).__name__}")  # temperature/repeat: see _Walker


# ------------------------------------------------------------------ the walk


def _temperature(
    p: proto.TemperatureParams, previous: float, rates: Rates, notes: list[str], number: str
) -> _Estimate:
    delta = p.setpoint - previous
    if delta >= 0:
        limit, way = rates.heat, "heats"
    else:
        limit, way = rates.cool, "cools"
    rate = limit if p.ramp is None else min(p.ramp, limit)
    if p.ramp is not None and p.ramp > limit + 1e-12 and abs(delta) > 0:
        notes.append(
            f"step {number}: the block {way} at most {limit * 60:g} degC/min, so the "
            f"{p.ramp * 60:g} degC/min ramp takes longer; planned at {limit * 60:g} degC/min"
        )
    ramp_time = abs(delta) / rate
    timeout = p.timeout if p.timeout is not None else ramp_time + TIMEOUT_MARGIN
    lower = ramp_time + SETTLING_ALLOWANCE + p.soak
    upper = max(timeout + p.soak, lower)
    ramp_words = "at the rig's maximum rate" if p.ramp is None else f"at {rate * 60:g} degC/min"
    summary = (
        f"{previous:g} → {p.setpoint:g} degC {ramp_words} ({duration_text(ramp_time)}), "
        f"band ±{p.band:g} K, soak {duration_text(p.soak)}"
    )
    return _Estimate(
        Bounds(lower, upper),
        ZERO,
        f"after a soak of {duration_text(p.soak)} inside the band; faults if the band is not "
        f"reached within {duration_text(timeout)}",
        summary,
    )


class _Walker:
    """Expands the steps in run order, carrying the setpoint and the time bounds."""

    def __init__(self, protocol: proto.Protocol, rates: Rates, ambient: float) -> None:
        self.area = protocol.cell.area_cm2
        self.rates = rates
        self.setpoint: float | None = None
        self.ambient = ambient
        self.clock = ZERO  # start bounds of the next step, if the run goes on
        self.charge = ZERO
        self.run_end_min = math.inf  # earliest end of the run through a designed short
        self.charge_end_min = math.inf
        self.steps: list[PlannedStep] = []
        self.summaries: dict[tuple[int, ...], list[tuple[str, str]]] = {}
        self.notes: list[str] = []
        self.hold: dict[float | None, list[float]] = {}  # setpoint -> [min, max, soak]
        self.asked: dict[str, float] = {}  # 'heat'/'cool' -> fastest ramp asked, K/s

    def walk(self, steps: list[Any], prefix: tuple[int, ...], iteration: tuple[int, ...]) -> None:
        for i, step in enumerate(steps):
            index = (*prefix, i)
            if isinstance(step, proto.Repeat):
                for k in range(step.repeat.count):
                    self.walk(step.repeat.steps, index, (*iteration, k))
                continue
            self.one(step, index, iteration)

    def one(self, step: Any, index: tuple[int, ...], iteration: tuple[int, ...]) -> None:
        kind = proto.step_kind(step)
        assert kind is not None
        p = proto.params(step)
        number = proto.step_number(index)
        if isinstance(p, proto.TemperatureParams):
            previous = self.ambient if self.setpoint is None else self.setpoint
            est = _temperature(p, previous, self.rates, self.notes, number)
            if p.setpoint != previous:
                way = "heat" if p.setpoint > previous else "cool"
                rate = p.ramp if p.ramp is not None else getattr(self.rates, way)
                self.asked[way] = max(self.asked.get(way, 0.0), rate)
            self.setpoint = p.setpoint
            slot = self.hold.setdefault(p.setpoint, [0.0, 0.0, 0.0])
            slot[0] += p.soak
            slot[1] += p.soak
            slot[2] += p.soak
        else:
            est = _estimate(step, self.area)
            slot = self.hold.setdefault(self.setpoint, [0.0, 0.0, 0.0])
            slot[0] += est.duration.min
            slot[1] += est.duration.max
        on_short = getattr(p, "on_short", None)
        may_end = est.short_ends and on_short in (proto.ShortAction.END, proto.ShortAction.ABORT)
        self.steps.append(
            PlannedStep(
                index=index,
                iteration=iteration,
                number=number,
                kind=kind,
                label=p.label or kind,
                depth=len(index) - 1,
                duration=est.duration,
                start=self.clock,
                charge_per_cm2=est.charge,
                temperature=self.setpoint,
                ends_on=est.ends_on,
                may_end_run=may_end,
            )
        )
        texts = self.summaries.setdefault(index, [])
        if (est.summary, est.ends_on) not in texts and len(texts) < 3:
            texts.append((est.summary, est.ends_on))
        if may_end:
            self.run_end_min = min(self.run_end_min, self.clock.min + est.duration.min)
            self.charge_end_min = min(self.charge_end_min, self.charge.min + est.charge.min)
            # if the run goes on, the short that would have ended it did not happen here
            self.clock = Bounds(
                self.clock.min + est.continue_min, self.clock.max + est.duration.max
            )
            self.charge = Bounds(
                self.charge.min + est.continue_charge, self.charge.max + est.charge.max
            )
        else:
            self.clock = self.clock + est.duration
            self.charge = self.charge + est.charge


def _rows(protocol: proto.Protocol, walker: _Walker) -> list[TimelineRow]:
    by_index: dict[tuple[int, ...], list[PlannedStep]] = {}
    # a repeat's executions: (its index, the iterations of the repeats around it) -> sums
    blocks: dict[tuple[int, ...], dict[tuple[int, ...], list[Bounds]]] = {}
    for s in walker.steps:
        by_index.setdefault(s.index, []).append(s)
        for k in range(1, len(s.index)):
            run = blocks.setdefault(s.index[:k], {}).setdefault(s.iteration[: k - 1], [])
            if not run:
                run += [s.start, ZERO, ZERO]
            run[1] = run[1] + s.duration
            run[2] = run[2] + s.charge_per_cm2

    rows: list[TimelineRow] = []
    for index, step in proto.walk_steps(protocol.steps):
        kind = proto.step_kind(step)
        assert kind is not None
        p = proto.params(step)
        common = {
            "index": index,
            "number": proto.step_number(index),
            "kind": kind,
            "label": p.label or kind,
            "depth": len(index) - 1,
        }
        if isinstance(step, proto.Repeat):
            runs = list(blocks.get(index, {}).values())
            count = step.repeat.count
            n_inner = len(step.repeat.steps)
            rows.append(
                TimelineRow(
                    **common,
                    summary=f"{count} × the {n_inner} step{'s' * (n_inner != 1)} below",
                    ends_on=f"after {count} iteration{'s' * (count != 1)}",
                    executions=len(runs),
                    count=count,
                    duration=_envelope([r[1] for r in runs]),
                    total=_sum(r[1] for r in runs),
                    first_start=runs[0][0] if runs else ZERO,
                    charge_per_cm2=_sum(r[2] for r in runs),
                )
            )
            continue
        executed = by_index.get(index, [])
        texts = walker.summaries.get(index, [("", "")])
        summary = texts[0][0]
        if len(texts) > 1:
            summary += " (first run; then " + "; ".join(t[0] for t in texts[1:]) + ")"
        rows.append(
            TimelineRow(
                **common,
                summary=summary,
                ends_on=texts[0][1],
                executions=len(executed),
                count=1,
                duration=_envelope([s.duration for s in executed]),
                total=_sum(s.duration for s in executed),
                first_start=executed[0].start if executed else ZERO,
                charge_per_cm2=_sum(s.charge_per_cm2 for s in executed),
            )
        )
    return rows


def _envelope(items: list[Bounds]) -> Bounds:
    """The shortest minimum and the longest maximum."""
    if not items:
        return ZERO
    return Bounds(min(b.min for b in items), max(b.max for b in items))


def _sum(items: Iterable[Bounds]) -> Bounds:
    total = ZERO
    for b in items:
        total = total + b
    return total


# ------------------------------------------------------------------ limits


def _winner(protocol_limit: float | None, rig_limit: float | None) -> str:
    """Which limit applies: the lower one (both when equal, none when neither is set)."""
    if protocol_limit is None and rig_limit is None:
        return "none"
    if rig_limit is None:
        return "protocol"
    if protocol_limit is None:
        return "rig"
    if math.isclose(protocol_limit, rig_limit, rel_tol=1e-9):
        return "both"
    return "protocol" if protocol_limit < rig_limit else "rig"


def _status(demand: float, limit: float | None) -> str:
    if limit is None:
        return "ok"
    return "ok" if demand <= limit * (1 + 1e-9) + 1e-12 else "over"


def _peak_current(protocol: proto.Protocol) -> tuple[float, float]:
    """(peak |current| in A, peak current density in A/cm^2) the protocol asks for."""
    area = protocol.cell.area_cm2
    peak_density = 0.0
    peak_amps = 0.0
    for _, s in proto.walk_steps(protocol.steps):
        p = proto.params(s)
        density: float | None = None
        if isinstance(p, proto.CcdRampParams):
            density = p.level_density(p.levels - 1)
        elif isinstance(p, proto.CycleParams | proto.HoldCurrentParams):
            density = (
                p.current_density if p.current_density is not None else (p.current or 0) / area
            )
        elif isinstance(p, proto.HoldVoltageParams | proto.DcPolarizationParams):
            peak_amps = max(peak_amps, p.current_limit)
        if density is not None:
            peak_density = max(peak_density, density)
            peak_amps = max(peak_amps, density * area)
    return peak_amps, peak_density


def _limits(protocol: proto.Protocol, rig: RigConfig | None, peak: float) -> list[LimitCheck]:
    area = protocol.cell.area_cm2
    safety = protocol.safety
    checks: list[LimitCheck] = []

    # setpoints: the protocol's maximum vs the rig's setpoint cap
    cap = rig.safety.setpoint_max if rig else None
    limit = safety.temperature_max if cap is None else min(safety.temperature_max, cap)
    checks.append(
        LimitCheck(
            "setpoint",
            f"peak {peak:g} degC",
            f"{safety.temperature_max:g} degC (safety.temperature_max)",
            f"{cap:g} degC (safety.setpoint_max)" if cap is not None else None,
            f"{limit:g} degC",
            _winner(safety.temperature_max, cap),
            _status(peak, limit),
        )
    )
    # the reading that trips the run
    trip = rig.safety.temperature_max if rig else None
    limit = safety.temperature_max if trip is None else min(safety.temperature_max, trip)
    checks.append(
        LimitCheck(
            "temperature trip",
            f"peak {peak:g} degC + overshoot",
            f"{safety.temperature_max:g} degC (safety.temperature_max)",
            f"{trip:g} degC (safety.temperature_max)" if trip is not None else None,
            f"{limit:g} degC",
            _winner(safety.temperature_max, trip),
            "ok" if peak < limit else "over",
            f"{limit - peak:g} K of headroom above the peak setpoint",
        )
    )
    # the voltage window against the SMU's compliance
    v = safety.voltage
    vmax = rig.smu.voltage_max if rig else None
    lo = v.min if vmax is None else max(v.min, -vmax)
    hi = v.max if vmax is None else min(v.max, vmax)
    held = [
        p.voltage
        for _, s in proto.walk_steps(protocol.steps)
        if isinstance(p := proto.params(s), proto.HoldVoltageParams | proto.DcPolarizationParams)
    ]
    within = vmax is None or (abs(v.min) <= vmax and abs(v.max) <= vmax)
    checks.append(
        LimitCheck(
            "voltage window",
            f"{v.min:g} V … {v.max:g} V"
            + (f", holds at {', '.join(f'{x:g} V' for x in held)}" if held else ""),
            f"{v.min:g} V … {v.max:g} V (safety.voltage)",
            f"±{vmax:g} V (smu.voltage_max)" if vmax is not None else None,
            f"{lo:g} V … {hi:g} V",
            "protocol" if within else "rig",
            "ok" if within and all(lo <= x <= hi for x in held) else "over",
        )
    )
    # the current: the protocol's density limit for this area vs the SMU's range
    amps, density = _peak_current(protocol)
    p_amps = safety.current_density_max * area if safety.current_density_max is not None else None
    r_amps = rig.smu.current_max if rig else None
    given = [a for a in (p_amps, r_amps) if a is not None]
    limit_amps = min(given) if given else None
    checks.append(
        LimitCheck(
            "current",
            f"peak {_current_text(amps)}"
            + (f" ({_density_text(density)} × {area:.4g} cm^2)" if density else ""),
            (
                f"{_current_text(p_amps)} (safety.current_density_max "
                f"{_density_text(safety.current_density_max or 0)} × {area:.4g} cm^2)"
                if p_amps is not None
                else None
            ),
            f"{_current_text(r_amps)} (smu.current_max)" if r_amps is not None else None,
            _current_text(limit_amps) if limit_amps is not None else "none set",
            _winner(p_amps, r_amps),
            _status(amps, limit_amps),
            "" if limit_amps is not None else "--rig or --sim checks it against the SMU's range",
        )
    )
    return checks


def _rate_checks(rig: RigConfig | None, rates: Rates, asked: dict[str, float]) -> list[LimitCheck]:
    source = "" if rig else ", simulated rig's default"
    out = []
    for name, way, limit, key in (
        ("heating rate", "heat", rates.heat, "heater.max_ramp_up"),
        ("cooling rate", "cool", rates.cool, "heater.max_ramp_down"),
    ):
        demand = asked.get(way, 0.0)
        if demand == 0:
            continue
        over = demand > limit * (1 + 1e-9)
        out.append(
            LimitCheck(
                name,
                f"{demand * 60:g} degC/min",
                f"{demand * 60:g} degC/min (ramp)",
                f"{limit * 60:g} degC/min ({key}{source})",
                f"{min(demand, limit) * 60:g} degC/min",
                _winner(demand, limit),
                "note" if over else "ok",
                "planned at the rig's rate: the step takes longer" if over else "",
            )
        )
    return out


# ------------------------------------------------------------------ the plan


def make_plan(protocol: proto.Protocol, rig: RigConfig | None = None) -> Plan:
    """Dry-run ``protocol`` on ``rig`` (without one: the simulated rig's rates and ambient).

    Expects a protocol that passed validation (``load_protocol``); raises ``UserError``
    only when nested repeats expand to more than ``MAX_EXECUTED`` steps.
    """
    n = proto.executed_count(protocol.steps)
    if n > MAX_EXECUTED:
        raise UserError(
            f"this protocol runs {n} steps (nested repeats multiply); plan handles at most "
            f"{MAX_EXECUTED}",
            "lower the repeat counts, or put the repetition into a `cycle` with `count:`",
        )
    defaults = rig if rig is not None else simulated_rig()
    rates = Rates(defaults.heater.max_ramp_up, defaults.heater.max_ramp_down)
    ambient = defaults.sim.ambient if defaults.sim is not None else 25.0
    walker = _Walker(protocol, rates, ambient)
    walker.walk(list(protocol.steps), (), ())
    last_end = walker.clock
    duration = Bounds(min(walker.run_end_min, last_end.min), last_end.max)
    charge = Bounds(min(walker.charge_end_min, walker.charge.min), walker.charge.max)
    setpoints_seen = [s.temperature for s in walker.steps if s.kind == "temperature"]
    peak = max((t for t in setpoints_seen if t is not None), default=ambient)
    thermal = _sum(s.duration for s in walker.steps if s.kind == "temperature")
    holds = [
        SetpointTime(setpoint, Bounds(v[0], v[1]), v[2]) for setpoint, v in walker.hold.items()
    ]
    notes = list(dict.fromkeys(walker.notes))
    if rig is None:
        notes.insert(
            0,
            f"no rig given: ramp rates are the simulated rig's defaults (heat "
            f"{rates.heat * 60:g} degC/min, cool {rates.cool * 60:g} degC/min) and the rig's "
            "limits are not checked; use --rig RIG or --sim",
        )
    notes.append(
        f"temperature steps include {duration_text(SETTLING_ALLOWANCE)} to settle into the "
        f"band; ambient {ambient:g} degC at the start"
    )
    limits = _limits(protocol, rig, peak) + _rate_checks(rig, rates, walker.asked)
    return Plan(
        name=protocol.name,
        rig=rig.rig if rig is not None else "sim defaults",
        rig_given=rig is not None,
        area_cm2=protocol.cell.area_cm2,
        ambient=ambient,
        rates=rates,
        steps=walker.steps,
        timeline=_rows(protocol, walker),
        duration=duration,
        charge_per_cm2=charge,
        peak_temperature=peak,
        thermal_time=thermal,
        setpoints=holds,
        limits=limits,
        notes=notes,
    )


# ------------------------------------------------------------------ formatting


def duration_text(seconds: float) -> str:
    """Seconds as a technician reads them: '45 s', '12 min 30 s', '6 h', '2 d 3 h'."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        m, sec = divmod(s, 60)
        return f"{m} min" + (f" {sec} s" if sec else "")
    m = round(seconds / 60)
    if m < 72 * 60:
        h, mins = divmod(m, 60)
        return f"{h} h" + (f" {mins} min" if mins else "")
    h = round(seconds / 3600)
    d, hours = divmod(h, 24)
    return f"{d} d" + (f" {hours} h" if hours else "")


def bounds_text(b: Bounds, fmt: Any = duration_text) -> str:
    """'6 h 12 min', '≤ 48 h' (when it may end at once) or '1 h – 2 h'."""
    if b.fixed or fmt(b.min) == fmt(b.max):
        return str(fmt(b.max))
    if b.min <= 0:
        return f"≤ {fmt(b.max)}"
    return f"{fmt(b.min)} – {fmt(b.max)}"


def charge_text(c: float) -> str:
    return f"{c / 3.6:.4g} mAh/cm^2"


def format_plan(plan: Plan, file: str) -> str:
    """The human plan: timeline, totals, temperatures, limits, notes."""
    out: list[str] = []
    rig = f"rig {plan.rig!r}" if plan.rig_given else "no rig (simulated rig's rates)"
    out.append(f"plan: {plan.name} ({file}) on {rig}")
    out.append("")
    out.append("timeline")
    header = f"  {'#':<10}{'step':<34}{'duration':<30}starts at"
    out.append(header)
    for row in plan.timeline:
        indent = "  " * row.depth
        label = f"{row.kind}" + (f" {row.label!r}" if row.label != row.kind else "")
        if row.kind == "repeat":
            label += f" ×{row.count}"
        dur = bounds_text(row.duration)
        if row.executions > 1:
            dur = f"{dur} each"
        if row.kind == "repeat":
            dur = bounds_text(row.total)
            if row.executions > 1:
                dur = f"{bounds_text(row.duration)} each"
        out.append(
            f"  {indent + row.number:<10}{indent + label:<34}{dur:<30}"
            f"{bounds_text(row.first_start) if row.first_start.max > 0 else '0 s'}"
        )
        detail = row.summary if row.kind != "repeat" else ""
        extra = []
        if row.kind not in ("repeat", "temperature") and row.ends_on:
            extra.append(f"ends {row.ends_on}")
        if row.kind == "temperature":
            extra.append(f"ends {row.ends_on}")
        if row.charge_per_cm2.max > 0:
            extra.append(f"passes {bounds_text(row.charge_per_cm2, charge_text)}")
        if row.executions > 1 and row.kind != "repeat":
            extra.append(f"runs {row.executions} times, {bounds_text(row.total)} in all")
        pad = " " * 12 + indent
        if detail:
            out.append(pad + detail)
        if extra:
            out.append(pad + "; ".join(extra))
    out.append("")
    out.append(f"total duration   {bounds_text(plan.duration)}")
    out.append(f"charge per cm^2  {bounds_text(plan.charge_per_cm2, charge_text)}")
    peak = f"{plan.peak_temperature:g} degC"
    if not any(s.kind == "temperature" for s in plan.steps):
        peak += " (ambient: no temperature step)"
    out.append(f"peak temperature {peak}")
    out.append(f"thermal steps    {bounds_text(plan.thermal_time)} (ramps, settling and soaks)")
    out.append("time at each setpoint (soak + the steps that run there)")
    for hold in plan.setpoints:
        where = (
            f"{hold.setpoint:g} degC" if hold.setpoint is not None else "unheated (no setpoint yet)"
        )
        soak = f"  (soak {duration_text(hold.soak)})" if hold.soak else ""
        out.append(f"  {where:<28}{bounds_text(hold.time)}{soak}")
    out.append("")
    out.append("limits (the stricter of protocol and rig wins)")
    for c in plan.limits:
        source = {
            "none": "no limit set",
            "both": "protocol and rig agree",
            "protocol": "the protocol's",
            "rig": "the rig's",
        }.get(c.wins, c.wins)
        if c.wins == "none":
            head = f"asks {c.demand}; no limit set"
        else:
            head = f"asks {c.demand}; limit {c.effective}, {source}"
            if c.wins == "protocol" and not plan.rig_given:
                head += " (no rig given)"
        out.append(f"  {c.status:<5} {c.name:<17} {head}")
        given = [f"protocol {c.protocol}" if c.protocol else "", f"rig {c.rig}" if c.rig else ""]
        detail = " · ".join(g for g in given if g)
        if c.note:
            detail = f"{detail} — {c.note}" if detail else c.note
        if detail:
            out.append(" " * 26 + detail)
    if plan.notes:
        out.append("")
        out.append("notes")
        out += [f"  - {n}" for n in plan.notes]
    return "\n".join(out)
