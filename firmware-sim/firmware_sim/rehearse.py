"""Rehearse a protocol's electrochemistry on the cell physics alone (no instruments).

A physics-level harness for calibration, plots and quick what-ifs: it walks a validated
:class:`controller.protocol.Protocol` step by step, drives a :class:`firmware_sim.cell.Cell`
with ideal sources (no noise, no compliance other than the protocol's voltage window) and an
idealised block temperature (setpoints reached at the protocol's ramp rate, soak counted from
arrival), and reads shorts from the cell state. It is not the controller: the real runner
reaches the software rig through the drivers and must reproduce these numbers.

    uv run python -m firmware_sim.rehearse protocols/heat-therapy-LiBH4.yaml --seed 0

Reads only the protocol models (``controller.protocol``); the controller never imports this.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from controller import protocol as proto
from firmware_sim.cell import Cell
from firmware_sim.physics import CellSpec

AMBIENT = 25.0  # degC
RAMP_UP_MAX = 20.0 / 60  # K/s, the simulated rig's fastest heating (controller/rig.py)
RAMP_DOWN_MAX = 5.0 / 60  # K/s, passive cooling


class _Stop(Exception):
    """The run ends here (on_short: end/abort, or a voltage limit)."""

    def __init__(self, outcome: str) -> None:
        self.outcome = outcome


class _Short(Exception):
    """A hard short ended the current electrochemical step."""


@dataclass(slots=True)
class StepResult:
    """What one step did. ``cycles`` counts full cycles completed before a short."""

    number: str
    kind: str
    label: str | None
    outcome: str = "done"  # done | short | voltage_limit | steady | timeout | capacity | voltage
    start: float = 0.0  # s
    end: float = 0.0
    cycles: int | None = None
    ccd: float | None = None  # A/cm², the level density at which a ccd_ramp shorted
    sigma_electronic: float | None = None  # S/cm, from a dc_polarization
    soft_shorts: int = 0


@dataclass(slots=True)
class Sample:
    time: float  # s
    temperature: float  # degC
    current: float  # A
    voltage: float  # V


@dataclass(slots=True)
class Rehearsal:
    protocol: str
    seed: int
    outcome: str  # completed | ended | aborted | voltage_limit
    steps: list[StepResult]
    cell: Cell
    trace: list[Sample] = field(default_factory=list)

    @property
    def hard_short_time(self) -> float | None:
        return next((e.time for e in self.cell.events if e.kind == "hard_short"), None)

    def step(self, label: str) -> StepResult:
        """The (last) result of the step with this label."""
        for result in reversed(self.steps):
            if result.label == label:
                return result
        raise KeyError(f"no step labelled {label!r} in {self.protocol}")


def cell_spec(cell: proto.Cell) -> CellSpec:
    return CellSpec(
        electrolyte=cell.electrolyte,
        type=cell.type.value,
        area_cm2=cell.area_cm2,
        thickness_cm=cell.thickness,
    )


def _voltage_done(until: proto.Until, v: float, dt: float, held: dict[str, float]) -> bool:
    """A voltage condition of ``until`` has held for its debounce time."""
    rules = (
        ("above", until.voltage_above, v),
        ("below", until.voltage_below, -v),
        ("abs", until.abs_voltage_above, abs(v)),
    )
    for name, rule, value in rules:
        if rule is None:
            continue
        hit = value > (-rule.value if name == "below" else rule.value)
        held[name] = held.get(name, 0.0) + dt if hit else 0.0
        if hit and held[name] >= (rule.hold_for or until.hold_for) - 1e-9:
            return True
    return False


class _Runner:
    def __init__(
        self,
        protocol: proto.Protocol,
        cell: Cell,
        *,
        ambient: float,
        chunk: float,
        trace_every: float | None,
        potentiostat_chunk: float,
    ) -> None:
        self.p = protocol
        self.cell = cell
        self.temperature = ambient
        self.now = 0.0
        self.chunk = chunk if trace_every is None else min(chunk, trace_every)
        self.trace_every = trace_every
        self.potentiostat_chunk = potentiostat_chunk
        self.trace: list[Sample] = []
        self.results: list[StepResult] = []
        self.window = protocol.safety.voltage
        self.area = protocol.cell.area_cm2

    # ----------------------------------------------------------- primitives

    def _sample(self, current: float) -> float:
        v = self.cell.voltage(current, self.temperature)
        if self.trace_every is not None:
            self.trace.append(Sample(self.now, self.temperature, current, v))
        return v

    def _hold(self, duration: float, current: float, until: proto.Until | None = None) -> str:
        """Galvanostatic hold (0 A is open circuit). Returns why it ended."""
        end = self.now + duration
        voltage_rules = until is not None and bool(
            until.voltage_above or until.voltage_below or until.abs_voltage_above
        )
        step = min(self.chunk, self.p.record.sample_period) if voltage_rules else self.chunk
        held: dict[str, float] = {}
        while self.now < end - 1e-9:
            dt = min(step, end - self.now)
            self.cell.advance(dt, current, self.temperature)
            self.now += dt
            if current != 0.0 and self.cell.hard_shorted:
                self._sample(current)
                raise _Short
            v = self._sample(current)
            if current != 0.0 and not self.window.min <= v <= self.window.max:
                raise _Stop("voltage_limit")
            if until is not None and voltage_rules and _voltage_done(until, v, dt, held):
                return "voltage"
        return "done"

    def _ramp(self, setpoint: float, rate: float | None) -> None:
        if rate is None:
            rate = RAMP_UP_MAX if setpoint > self.temperature else RAMP_DOWN_MAX
        while abs(setpoint - self.temperature) > 1e-9:
            span = setpoint - self.temperature
            # the cell sees a constant temperature per call: cut the ramp into 1 K pieces
            dt = min(self.chunk, abs(span) / rate, 1.0 / rate)
            delta = math.copysign(min(abs(span), rate * dt), span)
            mid = self.temperature + delta / 2
            self.cell.advance(dt, 0.0, mid)
            self.now += dt
            self.temperature = setpoint if abs(span) <= rate * dt else self.temperature + delta
            self._sample(0.0)

    def _potentiostat(
        self,
        voltage: float,
        current_limit: float,
        duration: float,
        steady: proto.Steady | None,
        min_duration: float,
    ) -> tuple[str, float]:
        """Constant voltage; returns (outcome, last current)."""
        end = self.now + duration
        start = self.now
        history: deque[tuple[float, float]] = deque()
        current = 0.0
        while self.now < end - 1e-9:
            current = self.cell.current_for(voltage, self.temperature)
            current = max(-current_limit, min(current_limit, current))
            dt = min(self.potentiostat_chunk, end - self.now)
            self.cell.advance(dt, current, self.temperature)
            self.now += dt
            if self.cell.hard_shorted:
                raise _Short
            current = self.cell.current_for(voltage, self.temperature)
            current = max(-current_limit, min(current_limit, current))
            if self.trace_every is not None:
                self.trace.append(Sample(self.now, self.temperature, current, voltage))
            if steady is None:
                continue
            history.append((self.now, current))
            while history and history[0][0] < self.now - steady.window - 1e-9:
                history.popleft()
            old_t, old_i = history[0]
            if (
                self.now - start >= min_duration
                and self.now - old_t >= steady.window - self.potentiostat_chunk
                and abs(current - old_i) <= steady.tolerance * abs(current)
            ):
                return "steady", current
        return ("timeout" if steady is not None else "done"), current

    # ---------------------------------------------------------------- steps

    def run_steps(self, steps: list[proto.Step], prefix: tuple[int, ...] = ()) -> None:
        for i, step in enumerate(steps):
            index = (*prefix, i)
            if isinstance(step, proto.Repeat):
                for _ in range(step.repeat.count):
                    self.run_steps(step.repeat.steps, index)
                continue
            self.run_step(step, index)

    def run_step(self, step: proto.Step, index: tuple[int, ...]) -> None:
        kind = proto.step_kind(step)
        assert kind is not None
        p = proto.params(step)
        result = StepResult(proto.step_number(index), kind, p.label, start=self.now)
        self.results.append(result)
        soft_before = self._soft_count()
        try:
            if isinstance(p, proto.TemperatureParams):
                self._ramp(p.setpoint, p.ramp)
                self._hold(p.soak, 0.0)
            elif isinstance(p, proto.RestParams):
                assert p.duration is not None
                self._hold(p.duration, 0.0, p.until)
            elif isinstance(p, proto.HoldCurrentParams):
                self._hold_current(p, result)
            elif isinstance(p, proto.HoldVoltageParams):
                assert p.duration is not None
                outcome, _ = self._potentiostat(
                    p.voltage, p.current_limit, p.duration, p.until.steady if p.until else None, 0
                )
                result.outcome = outcome
            elif isinstance(p, proto.DcPolarizationParams):
                outcome, current = self._potentiostat(
                    p.voltage, p.current_limit, p.max_duration, p.steady, p.min_duration
                )
                result.outcome = outcome
                result.sigma_electronic = (
                    abs(current) * self.p.cell.thickness / (abs(p.voltage) * self.area)
                )
            elif isinstance(p, proto.CycleParams):
                self._cycle(p, result)
            elif isinstance(p, proto.CcdRampParams):
                self._ccd_ramp(p, result)
        except _Short:
            result.outcome = "short"
            result.end = self.now
            result.soft_shorts = self._soft_count() - soft_before
            action = getattr(p, "on_short", proto.ShortAction.NEXT)
            if action is proto.ShortAction.END:
                raise _Stop("ended") from None
            if action is proto.ShortAction.ABORT:
                raise _Stop("aborted") from None
            return
        except _Stop as stop:
            result.outcome = stop.outcome
            result.end = self.now
            result.soft_shorts = self._soft_count() - soft_before
            raise
        result.end = self.now
        result.soft_shorts = self._soft_count() - soft_before

    def _soft_count(self) -> int:
        return sum(1 for e in self.cell.events if e.kind == "soft_short")

    def _level(self, current: float | None, density: float | None) -> float:
        if current is not None:
            return current
        assert density is not None
        return density * self.area

    def _hold_current(self, p: proto.HoldCurrentParams, result: StepResult) -> None:
        amps = self._level(p.current, p.current_density) * p.direction.sign
        assert p.duration is not None
        duration = p.duration
        if p.until is not None and p.until.capacity is not None:
            duration = min(duration, p.until.capacity * self.area / abs(amps))
        outcome = self._hold(duration, amps, p.until)
        if outcome == "done" and duration < p.duration:
            outcome = "capacity"
        result.outcome = outcome

    def _half_cycles(self, p: proto.CycleParams) -> tuple[float, float]:
        amps = self._level(p.current, p.current_density)
        if p.half_cycle is not None:
            return amps, p.half_cycle
        assert p.capacity is not None
        return amps, p.capacity * self.area / amps

    def _cycle(self, p: proto.CycleParams, result: StepResult) -> None:
        amps, half = self._half_cycles(p)
        sign = p.first.sign
        result.cycles = 0
        for _ in range(p.cycle_bound):
            for s in (sign, -sign):
                if self._hold(half, s * amps, p.until) == "voltage":
                    result.outcome = "voltage"
                    return
                if p.rest > 0:
                    self._hold(p.rest, 0.0)
            result.cycles += 1

    def _ccd_ramp(self, p: proto.CcdRampParams, result: StepResult) -> None:
        sign = p.direction.sign
        for level in range(p.levels):
            density = p.level_density(level)
            amps = density * self.area
            result.ccd = density  # if the cell shorts at this level, this is the CCD
            if p.mode is proto.RampMode.ONE_WAY:
                self._hold(self._per_level(p.per_level, p.capacity, density), sign * amps, p.until)
                if p.rest > 0:
                    self._hold(p.rest, 0.0)
                continue
            half = self._per_level(p.half_cycle, p.capacity, density)
            for _ in range(p.cycles_per_level):
                for s in (sign, -sign):
                    self._hold(half, s * amps, p.until)
                    if p.rest > 0:
                        self._hold(p.rest, 0.0)
        result.ccd = None  # reached max without a short

    @staticmethod
    def _per_level(duration: float | None, capacity: float | None, density: float) -> float:
        if duration is not None:
            return duration
        assert capacity is not None  # the model requires one of the two
        return capacity / density


def rehearse(
    protocol: proto.Protocol,
    *,
    seed: int = 0,
    cell: Cell | None = None,
    ambient: float = AMBIENT,
    chunk: float = 60.0,
    trace_every: float | None = None,
    potentiostat_chunk: float = 10.0,
) -> Rehearsal:
    """Run ``protocol`` on ``cell`` (default: a fresh cell for the protocol, ``seed``)."""
    if cell is None:
        cell = Cell(cell_spec(protocol.cell), seed)
    runner = _Runner(
        protocol,
        cell,
        ambient=ambient,
        chunk=chunk,
        trace_every=trace_every,
        potentiostat_chunk=potentiostat_chunk,
    )
    outcome = "completed"
    try:
        runner.run_steps(list(protocol.steps))
    except _Stop as stop:
        outcome = stop.outcome
    return Rehearsal(protocol.name, seed, outcome, runner.results, cell, runner.trace)


def load(path: Path | str) -> proto.Protocol:
    """Load and validate a protocol file; a user mistake raises UserError with the problems."""
    from controller.problems import UserError
    from controller.validate import load_protocol

    loaded = load_protocol(path)
    if not loaded.ok or loaded.protocol is None:
        raise UserError(
            f"{path}: the protocol is not valid",
            "fix the problems listed (`heatcycler validate` explains each)",
            loaded.problems,
        )
    return loaded.protocol


def _describe(result: StepResult) -> str:
    parts = [f"step {result.number} {result.kind}", f"{result.label or ''}".strip()]
    parts.append(f"{result.outcome} at {result.end / 3600:.2f} h")
    if result.cycles is not None:
        parts.append(f"{result.cycles} cycles")
    if result.ccd is not None:
        parts.append(f"CCD {result.ccd * 1e3:.2f} mA/cm^2")
    if result.sigma_electronic is not None:
        parts.append(f"sigma_e {result.sigma_electronic:.3g} S/cm")
    if result.soft_shorts:
        parts.append(f"{result.soft_shorts} soft shorts")
    return ", ".join(p for p in parts if p)


def main(argv: list[str] | None = None) -> int:
    from controller.problems import UserError

    parser = argparse.ArgumentParser(
        prog="python -m firmware_sim.rehearse",
        description="Rehearse a protocol's electrochemistry on the simulated cell physics.",
    )
    parser.add_argument("protocol", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        protocol = load(args.protocol)
    except UserError as exc:
        print(exc.format(), file=sys.stderr)
        return 2
    run = rehearse(protocol, seed=args.seed)
    print(f"{run.protocol} (seed {run.seed}): {run.outcome}")
    for result in run.steps:
        print("  " + _describe(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
