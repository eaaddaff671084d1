"""One executor per step kind: what to source, when the step ends, what it produced.

An executor is plain bookkeeping, driven by the engine once per sample::

    source = ex.begin(t)              # the first source command (cell convention)
    ... every sample:  change = ex.sample(t, dt, v, i)   # None | Source | End
    ex.result()                       # the step's result (JSON-able)
    ex.state() / ex.restore(state)    # checkpoint and resume

``dt`` is the time since the previous sample *of this step while running* (0 for the first
sample after a start, a pause or a resume), so pauses and crash gaps never count as time
under current. Executors do no I/O; the temperature executor only talks to the thermal
loop's handle (``set_target``/``soak``), which is how it keeps the time already spent in
band across a resume.
"""

from __future__ import annotations

import abc
import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controller import protocol as proto
from controller.detect.ccd import CycleBook, RampBook, ramp_levels
from controller.detect.events import ShortEvent
from controller.runner.channel import CURRENT, VOLTAGE, Source

if TYPE_CHECKING:
    from controller.thermal.loop import ThermalLoop
    from controller.thermal.soak import Soak

MA = 1e3  # A -> mA
MAH = 1.0 / 3.6  # C -> mAh


@dataclass(frozen=True, slots=True)
class End:
    """The step is over: ``outcome`` (completed | timeout | …) and what ended it."""

    outcome: str
    ended_by: str


@dataclass(frozen=True, slots=True)
class Setup:
    """What every executor needs to know about the cell and the rig."""

    area: float  # cm²
    thickness: float  # cm
    compliance: float  # V: a current source's voltage limit (protocol window ∩ rig)
    current_max: float  # A: the rig's largest current
    thermal: ThermalLoop | None


# ---------------------------------------------------------------- conditions


class Conditions:
    """``until:`` of a step (OR of its conditions), evaluated per sample."""

    __slots__ = ("_since", "_window", "active", "capacity", "steady", "voltage")

    def __init__(self, until: proto.Until | None, area: float) -> None:
        #: (name, sign, absolute, threshold, hold): the condition holds while
        #: (|V| if absolute else sign·V) > threshold — `below` is −V > −value
        self.voltage: list[tuple[str, float, bool, float, float]] = []
        self.capacity: float | None = None
        self.steady: proto.Steady | None = None
        if until is not None:
            for name, cond, sign, absolute in (
                ("voltage_above", until.voltage_above, 1.0, False),
                ("voltage_below", until.voltage_below, -1.0, False),
                ("abs_voltage_above", until.abs_voltage_above, 1.0, True),
            ):
                if cond is not None:
                    hold = cond.hold_for or until.hold_for
                    self.voltage.append((name, sign, absolute, sign * cond.value, hold))
            if until.capacity is not None:
                self.capacity = until.capacity * area
            self.steady = until.steady
        self.active = bool(self.voltage or self.capacity is not None or self.steady)
        self._since: dict[str, float] = {}
        self._window: deque[tuple[float, float]] = deque()

    def check(self, elapsed: float, v: float, i: float, charge: float) -> str | None:
        """The condition that holds now (with its debounce), or None."""
        if not self.active:
            return None
        for name, sign, absolute, threshold, hold in self.voltage:
            now = (abs(v) if absolute else sign * v) > threshold
            if self._held(name, now, elapsed) >= hold:
                return name
        if self.capacity is not None and charge >= self.capacity:
            return "capacity"
        if self.steady is not None and steady(self._window, elapsed, i, self.steady):
            return "steady"
        return None

    def _held(self, name: str, now: bool, elapsed: float) -> float:
        """How long the condition has held (−1 when it does not hold now)."""
        if not now:
            self._since.pop(name, None)
            return -1.0
        return elapsed - self._since.setdefault(name, elapsed)


def steady(window: deque[tuple[float, float]], elapsed: float, i: float, s: proto.Steady) -> bool:
    """The current is steady: over the last ``s.window`` s it moved less than
    ``s.tolerance`` of its present value."""
    window.append((elapsed, i))
    while window and window[0][0] < elapsed - s.window:
        window.popleft()
    if elapsed - window[0][0] < s.window * 0.999 or i == 0:
        return False
    return abs(i - window[0][1]) <= s.tolerance * abs(i)


# ----------------------------------------------------------------- executors


class Executor:
    """Base: elapsed time and charge of the step; a rest source for the engine."""

    kind = "step"

    def __init__(self, params: Any, setup: Setup) -> None:
        self.params = params
        self.setup = setup
        self.elapsed = 0.0  # s under this step's control (pauses and gaps excluded)
        self.charge = 0.0  # C, ∫|I|dt in this step
        self.ended_by = ""
        self.source: Source = Source(CURRENT, 0.0, 1e-6, setup.compliance)
        self.cycles_started = 0  # full cycles begun, for the run's cycle count
        self.last_v = math.nan

    def begin(self, t: float) -> Source:
        return self.source

    def sample(self, t: float, dt: float, v: float, i: float) -> Source | End | None:
        self.elapsed += dt
        self.charge += abs(i) * dt
        self.last_v = v
        return None

    def short(self, event: ShortEvent, temperature: float | None) -> None:
        """A hard short ended the step (the engine has switched the output off)."""
        self.ended_by = "short"

    def result(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "duration_s": self.elapsed,
            "ended_by": self.ended_by,
            "charge_mAh_per_cm2": self.charge * MAH / self.setup.area,
            "final_voltage_V": None if math.isnan(self.last_v) else self.last_v,
        }

    def state(self) -> dict[str, Any]:
        return {"elapsed": self.elapsed, "charge": self.charge}

    def restore(self, state: dict[str, Any]) -> None:
        self.elapsed = float(state.get("elapsed", 0.0))
        self.charge = float(state.get("charge", 0.0))

    def catch_up(self, rows: tuple[tuple[float, float, float | None], ...], t0: float) -> None:
        """On resume: account for the samples stored after the checkpoint (t, I, T)."""
        prev = t0
        for t, i, temperature in rows:
            dt = max(0.0, t - prev)
            prev = t
            self.replayed(dt, i, temperature)

    def replayed(self, dt: float, i: float, temperature: float | None) -> None:
        self.elapsed += dt
        self.charge += abs(i) * dt

    def interrupted_outcome(self) -> str | None:
        """On resume: None to continue the step, or the outcome it ends with."""
        return None

    def detail(self) -> str:
        return ""

    def current_range(self) -> float:
        return self.source.range


def _amps(p: Any, area: float) -> float:
    return float(p.current) if p.current is not None else float(p.current_density) * area


def _range(amps: float) -> float:
    return max(abs(amps), 1e-6)


class Timed(Executor):
    """rest, hold_current, hold_voltage: for a duration, until a condition."""

    def __init__(self, kind: str, params: Any, setup: Setup) -> None:
        super().__init__(params, setup)
        self.kind = kind
        self.until = Conditions(params.until, setup.area)
        if kind == "hold_current":
            amps = _amps(params, setup.area) * params.direction.sign
            self.source = Source(CURRENT, amps, _range(amps), setup.compliance)
        elif kind == "hold_voltage":
            self.source = Source(
                VOLTAGE, params.voltage, max(abs(params.voltage), 1e-3), params.current_limit
            )

    def sample(self, t: float, dt: float, v: float, i: float) -> Source | End | None:
        Executor.sample(self, t, dt, v, i)
        hit = self.until.check(self.elapsed, v, i, self.charge)
        if hit is not None:
            self.ended_by = hit
            return End("completed", hit)
        if self.elapsed >= self.params.duration - 1e-9:
            self.ended_by = "for"
            return End("completed", "for")
        return None

    def detail(self) -> str:
        return f"{_dur(self.elapsed)} of {_dur(self.params.duration)}"


#: one phase of a cycle or ramp: (source, duration or None, charge in C or None, name)
PhaseSpec = tuple[Source, float | None, float | None, str]


class Phases(Executor, abc.ABC):
    """A sequence of constant-current phases (half-cycles and rests), by time or charge.

    ``phase`` indexes the phase running now; ``phase_elapsed``/``phase_charge`` are what
    it has done — a resumed cycle continues the interrupted half with the rest of its
    time or charge. ``book`` (the subclass's CycleBook/RampBook) sees every sample."""

    book: CycleBook | RampBook

    def __init__(self, params: Any, setup: Setup) -> None:
        super().__init__(params, setup)
        self.phase = 0
        self.phase_elapsed = 0.0
        self.phase_charge = 0.0
        self.until = Conditions(getattr(params, "until", None), setup.area)
        self._spec: PhaseSpec | None = None  # phase_at(self.phase), kept off the sample path

    @abc.abstractmethod
    def phase_at(self, k: int) -> PhaseSpec | None:
        """Phase ``k``, or None after the last (the phase list is implicit)."""

    def enter(self, k: int, t: float) -> None:
        """Bookkeeping when phase ``k`` starts."""

    def begin(self, t: float) -> Source:
        spec = self.phase_at(self.phase)
        assert spec is not None
        self.enter(self.phase, t)
        self._spec = spec
        self.source = spec[0]
        return self.source

    def sample(self, t: float, dt: float, v: float, i: float) -> Source | End | None:
        Executor.sample(self, t, dt, v, i)
        self.phase_elapsed += dt
        self.phase_charge += abs(i) * dt
        self.book.add(t, i)
        hit = self.until.check(self.elapsed, v, i, self.charge)
        if hit is not None:
            self.ended_by = hit
            return End("completed", hit)
        spec = self._spec
        assert spec is not None
        _, duration, charge, _ = spec
        if (duration is not None and self.phase_elapsed >= duration - 1e-9) or (
            charge is not None and self.phase_charge >= charge
        ):
            self.phase += 1
            self.phase_elapsed = self.phase_charge = 0.0
            nxt = self.phase_at(self.phase)
            if nxt is None:
                self.ended_by = self.ended_by or "count"
                return End("completed", self.ended_by)
            self.enter(self.phase, t)
            self._spec = nxt
            self.source = nxt[0]
            return self.source
        return None

    def replayed(self, dt: float, i: float, temperature: float | None) -> None:
        super().replayed(dt, i, temperature)
        self.phase_elapsed += dt
        self.phase_charge += abs(i) * dt

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "phase": self.phase,
            "phase_elapsed": self.phase_elapsed,
            "phase_charge": self.phase_charge,
            "cycles_started": self.cycles_started,
        }

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        self.phase = int(state.get("phase", 0))
        self.phase_elapsed = float(state.get("phase_elapsed", 0.0))
        self.phase_charge = float(state.get("phase_charge", 0.0))
        self.cycles_started = int(state.get("cycles_started", 0))


class CycleRun(Phases):
    """``cycle``: plate/strip half-cycles (first direction first), a rest after each."""

    kind = "cycle"
    book: CycleBook

    def __init__(self, params: proto.CycleParams, setup: Setup) -> None:
        super().__init__(params, setup)
        self.amps = _amps(params, setup.area)
        self.first = params.first.sign
        self.halves_per_cycle = 4 if params.rest > 0 else 2
        self.book = CycleBook(setup.area)
        self.short_result: dict[str, Any] | None = None
        self._limit = Source(CURRENT, 0.0, _range(self.amps), setup.compliance)

    def phase_at(self, k: int) -> PhaseSpec | None:
        p = self.params
        per = self.halves_per_cycle
        cycle, within = divmod(k, per)
        if cycle >= p.cycle_bound:
            return None
        rest = per == 4 and within % 2 == 1
        if rest:
            return (self._limit, p.rest, None, "rest")
        second = within >= (2 if per == 4 else 1)
        sign = -self.first if second else self.first
        charge = p.capacity * self.setup.area if p.capacity is not None else None
        source = Source(CURRENT, sign * self.amps, _range(self.amps), self.setup.compliance)
        return (source, p.half_cycle, charge, "plate" if sign > 0 else "strip")

    def enter(self, k: int, t: float) -> None:
        per = self.halves_per_cycle
        cycle, within = divmod(k, per)
        if within == 0:
            if cycle > 0:
                self.book.end_cycle(cycle)
            self.cycles_started = cycle + 1
        spec = self.phase_at(k)
        if spec is not None and spec[3] != "rest":
            self.book.start_half(cycle + 1, spec[3], t)

    def sample(self, t: float, dt: float, v: float, i: float) -> Source | End | None:
        out = super().sample(t, dt, v, i)
        if isinstance(out, End) and self.phase >= self.halves_per_cycle * self.params.cycle_bound:
            self.book.end_cycle(self.params.cycle_bound)
        return out

    def short(self, event: ShortEvent, temperature: float | None) -> None:
        super().short(event, temperature)
        self.short_result = _cycles_dict(self.book.result(event, temperature))

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        per = self.halves_per_cycle
        cycle, _ = divmod(self.phase, per)
        self.book.completed = cycle
        self.book.counter.charge = float(state.get("book_charge", 0.0))
        self.book._started = True  # begin() must not restart the counter: keep that charge

    def replayed(self, dt: float, i: float, temperature: float | None) -> None:
        super().replayed(dt, i, temperature)
        self.book.counter.charge += abs(i) * dt

    def state(self) -> dict[str, Any]:
        return {**super().state(), "book_charge": self.book.counter.charge}

    def result(self) -> dict[str, Any]:
        base = super().result()
        data = self.short_result or _cycles_dict(self.book.result(None))
        data["current_density_mA_per_cm2"] = self.amps / self.setup.area * MA
        return {**base, **data}

    def detail(self) -> str:
        spec = self.phase_at(self.phase)
        name = spec[3] if spec else "done"
        cycle = self.phase // self.halves_per_cycle + 1
        bound = self.params.cycle_bound
        of = f"of {bound}" if self.params.count is not None else f"of ≤ {bound}"
        return f"cycle {cycle} {of}, {name}"


def _cycles_dict(r: Any) -> dict[str, Any]:
    return {
        "cycles_completed": r.cycles_completed,
        "cycles_to_short": r.cycles_to_short,
        "cycle": r.cycle,
        "half_cycle": r.half_cycle,
        "areal_capacity_mAh_per_cm2": r.areal_capacity * MAH,
        "temperature_degC": r.temperature,
        "time_s": r.time_s,
        "short": r.event.as_dict() if r.event is not None else None,
    }


class RampRun(Phases):
    """``ccd_ramp``: levels of rising current density until the cell shorts (seeds/000).

    Symmetric: ``cycles_per_level`` × (plate, rest, strip, rest) per level. One way: one
    phase per level in ``direction`` and a rest after it (seeds/001)."""

    kind = "ccd_ramp"
    book: RampBook

    def __init__(self, params: proto.CcdRampParams, setup: Setup) -> None:
        super().__init__(params, setup)
        self.levels = ramp_levels(params)
        self.book = RampBook(self.levels, setup.area)
        self.symmetric = params.mode is proto.RampMode.SYMMETRIC
        rest = params.rest > 0
        self.per_level = (
            (4 if rest else 2) * params.cycles_per_level if self.symmetric else (2 if rest else 1)
        )
        self.short_result: dict[str, Any] | None = None
        self.peak = self.levels[-1] * setup.area

    def _split(self, k: int) -> tuple[int, int]:
        return divmod(k, self.per_level)

    def phase_at(self, k: int) -> PhaseSpec | None:
        p = self.params
        level, within = self._split(k)
        if level >= len(self.levels):
            return None
        amps = self.levels[level] * self.setup.area
        rng = _range(amps)
        rest_source = Source(CURRENT, 0.0, rng, self.setup.compliance)
        charge = p.capacity * self.setup.area if p.capacity is not None else None
        if self.symmetric:
            rest = p.rest > 0
            per_cycle = 4 if rest else 2
            w = within % per_cycle
            if rest and w % 2 == 1:
                return (rest_source, p.rest, None, "rest")
            second = w >= (2 if rest else 1)
            sign = -p.direction.sign if second else p.direction.sign
            return (
                Source(CURRENT, sign * amps, rng, self.setup.compliance),
                p.half_cycle,
                charge,
                "plate" if sign > 0 else "strip",
            )
        if within == 1:
            return (rest_source, p.rest, None, "rest")
        sign = p.direction.sign
        return (
            Source(CURRENT, sign * amps, rng, self.setup.compliance),
            p.per_level,
            charge,
            "plate" if sign > 0 else "strip",
        )

    def enter(self, k: int, t: float) -> None:
        level, within = self._split(k)
        if within == 0:
            self.book.start_level(level, t)
        if self.symmetric:
            per_cycle = 4 if self.params.rest > 0 else 2
            if within % per_cycle == 0:
                self.cycles_started += 1

    def short(self, event: ShortEvent, temperature: float | None) -> None:
        super().short(event, temperature)
        self.short_result = self._ramp_dict(self.book.result(event, temperature))

    def _ramp_dict(self, r: Any) -> dict[str, Any]:
        return {
            "ccd_mA_per_cm2": None if r.ccd is None else r.ccd * MA,
            "level_index": r.level_index,
            "levels_completed": r.levels_completed,
            "levels_mA_per_cm2": [x * MA for x in self.levels],
            "areal_capacity_mAh_per_cm2": r.areal_capacity * MAH,
            "time_at_level_s": r.time_at_level,
            "temperature_degC": r.temperature,
            "time_s": r.time_s,
            "half_cycle": r.half_cycle,
            "max_mA_per_cm2": r.max_density * MA,
            "short": r.event.as_dict() if r.event is not None else None,
        }

    def result(self) -> dict[str, Any]:
        base = super().result()
        if self.short_result is not None:
            return {**base, **self.short_result}
        if self.book.index < 0:
            self.book.start_level(0, 0.0)
        return {**base, **self._ramp_dict(self.book.result(None))}

    def interrupted_outcome(self) -> str | None:
        # the cell's history changed (it rested, maybe cooled): a ramp is not continued
        return "interrupted"

    def detail(self) -> str:
        level, _ = self._split(self.phase)
        level = min(level, len(self.levels) - 1)
        spec = self.phase_at(self.phase)
        name = spec[3] if spec else "done"
        return (
            f"level {level + 1} of {len(self.levels)}: {self.levels[level] * MA:.3g} mA/cm², {name}"
        )


class DcPolarizationRun(Executor):
    """``dc_polarization``: a constant voltage until the current is steady;
    σ_e = I·L / (V·A) (seeds/001: the electronic conductivity of the electrolyte)."""

    kind = "dc_polarization"

    def __init__(self, params: proto.DcPolarizationParams, setup: Setup) -> None:
        super().__init__(params, setup)
        self.source = Source(
            VOLTAGE, params.voltage, max(abs(params.voltage), 1e-3), params.current_limit
        )
        self._window: deque[tuple[float, float]] = deque()
        self._recent: deque[float] = deque(maxlen=9)
        self.steady_reached = False

    def sample(self, t: float, dt: float, v: float, i: float) -> Source | End | None:
        Executor.sample(self, t, dt, v, i)
        p = self.params
        self._recent.append(i)
        is_steady = steady(self._window, self.elapsed, i, p.steady)
        if self.elapsed >= p.min_duration and is_steady:
            self.steady_reached = True
            self.ended_by = "steady"
            return End("completed", "steady")
        if self.elapsed >= p.max_duration - 1e-9:
            self.ended_by = "max_duration"
            return End("timeout", "max_duration")
        return None

    def result(self) -> dict[str, Any]:
        p = self.params
        current = sorted(self._recent)[len(self._recent) // 2] if self._recent else None
        resistance = p.voltage / current if current else None
        sigma = (
            abs(current) * self.setup.thickness / (abs(p.voltage) * self.setup.area)
            if current
            else None
        )
        return {
            **super().result(),
            "voltage_V": p.voltage,
            "steady_current_A": current,
            "steady": self.steady_reached,
            "resistance_ohm": resistance,
            "conductivity_S_per_cm": sigma,
        }

    def detail(self) -> str:
        i = self._recent[-1] if self._recent else math.nan
        return f"{_dur(self.elapsed)}, I = {i * 1e6:.4g} µA"


class TemperatureRun(Executor):
    """``temperature``: move the block to a setpoint and soak inside the band.

    The soak counts only while the reading is inside the band (the thermal loop advances
    it every control period); a resumed step keeps the time already spent there. Not
    reaching the band within ``timeout`` ends the step as ``timeout`` (a fault)."""

    kind = "temperature"

    def __init__(
        self, params: proto.TemperatureParams, setup: Setup, *, timeout: float, rest: Source
    ) -> None:
        super().__init__(params, setup)
        self.timeout = timeout
        self.source = rest
        self.soak: Soak | None = None
        self.soak_elapsed = 0.0
        self.reached_t: float | None = None
        self._sum = 0.0
        self._sum2 = 0.0
        self._n = 0

    def begin(self, t: float) -> Source:
        p = self.params
        thermal = self.setup.thermal
        assert thermal is not None, "a temperature step needs the heater"
        thermal.set_target(p.setpoint, p.ramp)
        self.soak = thermal.soak(p.band, p.soak, elapsed=self.soak_elapsed)
        return self.source

    def sample(self, t: float, dt: float, v: float, i: float) -> Source | End | None:
        Executor.sample(self, t, dt, v, i)
        soak = self.soak
        assert soak is not None
        assert self.setup.thermal is not None
        thermal = self.setup.thermal
        if self.reached_t is None and (
            soak.entered is not None or soak.elapsed > 0 or thermal.in_band(self.params.band)
        ):
            self.reached_t = t  # (a soak of 0 s is never advanced: the band itself counts)
        if self.reached_t is not None:
            temperature = self.setup.thermal.temperature
            if temperature is not None and soak.inside:
                err = temperature - self.params.setpoint
                self._sum += temperature
                self._sum2 += err * err
                self._n += 1
        if soak.done and self.reached_t is not None:
            self.ended_by = "soak"
            return End("completed", "soak")
        if self.reached_t is None and self.elapsed >= self.timeout:
            self.ended_by = "timeout"
            return End("timeout", "timeout")
        return None

    def replayed(self, dt: float, i: float, temperature: float | None) -> None:
        super().replayed(dt, i, temperature)
        p = self.params
        if temperature is not None and abs(temperature - p.setpoint) <= p.band:
            self.soak_elapsed += dt

    def state(self) -> dict[str, Any]:
        soak = self.soak
        return {
            **super().state(),
            "soak_elapsed": soak.elapsed if soak is not None else self.soak_elapsed,
            "reached_t": self.reached_t,
        }

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        self.soak_elapsed = float(state.get("soak_elapsed", 0.0))
        reached = state.get("reached_t")
        self.reached_t = float(reached) if reached is not None else None

    def result(self) -> dict[str, Any]:
        p = self.params
        soak = self.soak
        return {
            "kind": self.kind,
            "duration_s": self.elapsed,
            "ended_by": self.ended_by,
            "setpoint_degC": p.setpoint,
            "band_K": p.band,
            "soak_s": p.soak,
            "time_in_band_s": soak.elapsed if soak is not None else self.soak_elapsed,
            "reached_t": self.reached_t,
            "mean_degC": self._sum / self._n if self._n else None,
            "rms_error_K": math.sqrt(self._sum2 / self._n) if self._n else None,
        }

    def detail(self) -> str:
        p = self.params
        soak = self.soak
        done = soak.elapsed if soak is not None else self.soak_elapsed
        where = "in band" if soak is not None and soak.inside else "approaching"
        return f"{p.setpoint:g} °C ± {p.band:g}: soak {_dur(done)} of {_dur(p.soak)}, {where}"


def summarize(r: dict[str, Any]) -> str:
    """A step result in a few words: 'CCD 2.6 mA/cm² at 125.0 °C', 'shorted after 38
    cycles', '6.00 h in band at 160 °C', 'σ_e = 1.2e-9 S/cm' ('' for plain steps)."""
    kind = r.get("kind")
    if kind == "ccd_ramp":
        ccd, temp = r.get("ccd_mA_per_cm2"), r.get("temperature_degC")
        at = f" at {temp:.1f} °C" if temp is not None else ""
        if ccd is not None:
            return f"CCD {ccd:.3g} mA/cm²{at}"
        return f"no short up to {r.get('max_mA_per_cm2') or 0:.3g} mA/cm²"
    if kind == "cycle":
        n = r.get("cycles_to_short")
        if n is not None:
            return f"shorted after {n} cycles"
        return f"{r.get('cycles_completed')} cycles, no short"
    if kind == "temperature":
        hours = (r.get("time_in_band_s") or 0) / 3600
        return f"{hours:.2f} h in band at {r.get('setpoint_degC'):g} °C"
    if kind == "dc_polarization":
        sigma = r.get("conductivity_S_per_cm")
        return f"σ_e = {sigma:.3g} S/cm" if sigma else "no steady current"
    return ""


def _dur(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def make_executor(step: Any, setup: Setup, *, timeout: float, rest: Source) -> Executor:
    """The executor for one (non-repeat) step model."""
    kind = proto.step_kind(step)
    params = proto.params(step)
    if kind in ("rest", "hold_current", "hold_voltage"):
        ex: Executor = Timed(kind, params, setup)
        if kind == "rest":
            ex.source = rest
        return ex
    if kind == "cycle":
        return CycleRun(params, setup)  # type: ignore[arg-type]
    if kind == "ccd_ramp":
        return RampRun(params, setup)  # type: ignore[arg-type]
    if kind == "dc_polarization":
        return DcPolarizationRun(params, setup)  # type: ignore[arg-type]
    if kind == "temperature":
        return TemperatureRun(params, setup, timeout=timeout, rest=rest)  # type: ignore[arg-type]
    raise ValueError(f"no executor for step kind {kind!r}")
