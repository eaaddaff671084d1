"""The experiment's answers from a hard short: the CCD of a ramp, cycles-to-short of cycling.

CCD (seeds/000): the current density is raised level by level; "the voltage first increases
as the current density increases, and then suddenly drops at 2.6 mA cm⁻². Hence the CCD
at 125 °C is determined as 2.6 mA cm⁻²." So the CCD is the density of the level *at which*
the hard short occurred (not the last level survived), reported with the areal capacity
passed at that level before the short, the temperature and the time.

Cycles to short (seeds/000: 38 cycles without heat therapy, > 130 with it): the number of
full plate/strip cycles completed before the short, with the cycle and half-cycle in which
it happened.

The runner owns the bookkeeping objects (one per step) and feeds them the samples it also
feeds the detector; these are plain classes with no I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from controller.detect.events import ShortEvent
from controller.protocol import CcdRampParams
from controller.units import mA_per_cm2, mAh


class ChargeCounter:
    """∫|I|dt since ``restart`` (trapezoid between samples), with a short history so the
    charge at a past sample (a short's onset) can be looked up."""

    __slots__ = ("_history", "_last_i", "_last_t", "charge", "start_t")

    def __init__(self, history: int = 64) -> None:
        self._history: deque[tuple[float, float]] = deque(maxlen=history)
        self.restart(0.0)

    def restart(self, t: float) -> None:
        self.charge = 0.0  # C
        self.start_t = t
        self._last_t: float | None = None
        self._last_i = 0.0
        self._history.clear()

    def add(self, t: float, current: float) -> None:
        if self._last_t is not None and t > self._last_t:
            self.charge += 0.5 * (abs(current) + abs(self._last_i)) * (t - self._last_t)
        self._last_t = t
        self._last_i = current
        self._history.append((t, self.charge))

    def charge_at(self, t: float) -> float:
        """The charge counted up to the last sample at or before ``t``."""
        if not self._history:
            return self.charge
        q = self._history[0][1]  # older than the history: the oldest value known
        for tk, qk in self._history:
            if tk > t:
                break
            q = qk
        return q

    @property
    def last_t(self) -> float:
        return self._last_t if self._last_t is not None else self.start_t


def ramp_levels(params: CcdRampParams) -> list[float]:
    """The ramp's current densities (A/cm²), level 0 first."""
    return [params.level_density(k) for k in range(params.levels)]


@dataclass(frozen=True, slots=True)
class CcdResult:
    """A ramp's result. ``ccd`` is None when the cell did not short up to the last level."""

    ccd: float | None  # A/cm²: the density of the level at which the hard short occurred
    level_index: int | None  # 0-based index of that level
    levels_completed: int  # levels passed without a short
    areal_capacity: float  # C/cm² passed at the shorting (or last) level before the onset
    time_at_level: float  # s from the level's start to the onset (or to the ramp's end)
    temperature: float | None  # degC at the onset
    time_s: float | None  # test time of the onset
    half_cycle: str | None  # "plate" | "strip": the direction of the current at the onset
    max_density: float  # A/cm²: the ramp's last level
    event: ShortEvent | None

    def describe(self) -> str:
        if self.ccd is None:
            return (
                f"no short up to {mA_per_cm2(self.max_density):.3g} mA/cm² "
                f"({self.levels_completed} levels): CCD > {mA_per_cm2(self.max_density):.3g} "
                "mA/cm²"
            )
        temp = f" at {self.temperature:.1f} °C" if self.temperature is not None else ""
        return (
            f"CCD {mA_per_cm2(self.ccd):.3g} mA/cm²{temp}: hard short "
            f"{self.time_at_level / 60:.3g} min into level {(self.level_index or 0) + 1} "
            f"({self.half_cycle}), after {mAh(self.areal_capacity):.3g} mAh/cm² at that level"
        )


class RampBook:
    """Bookkeeping of a ``ccd_ramp`` step: which level runs and what passed at it."""

    def __init__(self, levels: list[float], area_cm2: float) -> None:
        if not levels:
            raise ValueError("a ramp needs at least one level")
        if area_cm2 <= 0:
            raise ValueError("cell area must be positive")
        self.levels = levels
        self.area = area_cm2
        self.index = -1
        self.level_start = 0.0
        self.counter = ChargeCounter()

    def start_level(self, index: int, t: float) -> None:
        """Call when level ``index`` (0-based) starts, before its first sample."""
        if not 0 <= index < len(self.levels):
            raise IndexError(f"level {index} outside the ramp's {len(self.levels)} levels")
        self.index = index
        self.level_start = t
        self.counter.restart(t)

    def add(self, t: float, current: float) -> None:
        """Every sample of the level (rests included: they add no charge)."""
        self.counter.add(t, current)

    def result(self, event: ShortEvent | None, temperature: float | None = None) -> CcdResult:
        """The CCD from the hard short ``event`` (or None: the ramp ended without one)."""
        if self.index < 0:
            raise RuntimeError("no level started")
        if event is None:
            return CcdResult(
                ccd=None,
                level_index=None,
                levels_completed=self.index + 1,
                areal_capacity=self.counter.charge / self.area,
                time_at_level=self.counter.last_t - self.level_start,
                temperature=temperature,
                time_s=None,
                half_cycle=None,
                max_density=self.levels[-1],
                event=None,
            )
        onset = event.onset_s
        return CcdResult(
            ccd=self.levels[self.index],
            level_index=self.index,
            levels_completed=self.index,
            areal_capacity=self.counter.charge_at(onset) / self.area,
            time_at_level=onset - self.level_start,
            temperature=event.temperature if event.temperature is not None else temperature,
            time_s=onset,
            half_cycle="plate" if event.current > 0 else "strip",
            max_density=self.levels[-1],
            event=event,
        )


@dataclass(frozen=True, slots=True)
class CyclesToShort:
    """A ``cycle`` step's result. ``cycles_to_short`` is None when the cell did not short."""

    cycles_to_short: int | None  # full cycles completed before the short
    cycle: int | None  # 1-based cycle in which the short occurred
    half_cycle: str | None  # "plate" | "strip"
    cycles_completed: int  # full cycles completed in the step
    areal_capacity: float  # C/cm² moved (|I| dt, both directions) in the step before the onset
    temperature: float | None
    time_s: float | None  # test time of the onset
    event: ShortEvent | None

    def describe(self) -> str:
        if self.cycles_to_short is None:
            return f"no short in {self.cycles_completed} cycles"
        temp = f" at {self.temperature:.1f} °C" if self.temperature is not None else ""
        return (
            f"shorted after {self.cycles_to_short} cycles{temp} (during the {self.half_cycle} "
            f"half of cycle {self.cycle}; {mAh(self.areal_capacity):.3g} mAh/cm² cycled)"
        )


class CycleBook:
    """Bookkeeping of a ``cycle`` step: which cycle runs and how much charge has moved."""

    def __init__(self, area_cm2: float) -> None:
        if area_cm2 <= 0:
            raise ValueError("cell area must be positive")
        self.area = area_cm2
        self.cycle = 0  # 1-based once started
        self.half: str | None = None
        self.completed = 0
        self.counter = ChargeCounter()
        self._started = False

    def start_half(self, cycle: int, half: str, t: float) -> None:
        """Call when a half-cycle starts: ``cycle`` 1-based, ``half`` "plate" | "strip"."""
        if half not in ("plate", "strip"):
            raise ValueError(f"half must be 'plate' or 'strip', got {half!r}")
        if cycle < 1:
            raise ValueError("cycles count from 1")
        if not self._started:
            self.counter.restart(t)
            self._started = True
        if cycle > self.cycle and self.cycle > 0:
            self.completed = cycle - 1
        self.cycle = cycle
        self.half = half

    def end_cycle(self, cycle: int) -> None:
        """Call when cycle ``cycle`` (1-based) has finished both halves (and its rests)."""
        self.completed = max(self.completed, cycle)

    def add(self, t: float, current: float) -> None:
        self.counter.add(t, current)

    def result(self, event: ShortEvent | None, temperature: float | None = None) -> CyclesToShort:
        if event is None:
            return CyclesToShort(
                cycles_to_short=None,
                cycle=None,
                half_cycle=None,
                cycles_completed=self.completed,
                areal_capacity=self.counter.charge / self.area,
                temperature=temperature,
                time_s=None,
                event=None,
            )
        half = self.half or ("plate" if event.current > 0 else "strip")
        return CyclesToShort(
            cycles_to_short=max(self.cycle - 1, 0),
            cycle=self.cycle,
            half_cycle=half,
            cycles_completed=max(self.cycle - 1, 0),
            areal_capacity=self.counter.charge_at(event.onset_s) / self.area,
            temperature=event.temperature if event.temperature is not None else temperature,
            time_s=event.onset_s,
            event=event,
        )
