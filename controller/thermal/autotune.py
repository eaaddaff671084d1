"""Autotune: a biased relay experiment at the setpoint, and PI gains from it.

**The experiment** (Åström–Hägglund relay feedback, with Marlin M303's bias): heat at full
power to the setpoint, then switch the heater between ``bias + d`` and ``bias − d`` each
time the reading leaves ``setpoint ± hysteresis``. A heater block heats several times
faster than it cools, so a relay around 0…full power oscillates lopsidedly; after every
cycle the bias moves by ``d·(t_high − t_low)/(t_high + t_low)`` (Marlin's rule) until the
heating and cooling halves last equally long — the bias is then the holding duty and the
oscillation is symmetric, which is what the describing function assumes.

**From the oscillation to the plant.** A heater block is lag-dominated: its time constant
C/G (≈ 900 s) dwarfs the dead time of sensor lag, SSR window and sampling (≈ 3 s), so at
the relay's frequency it is an integrator with dead time, G(s) = k'·e^{−θs}/s. Under the
balanced relay such a plant draws a triangle: the reading rises and falls at ±k'·d about
the bias, and each half cycle lasts θ + (2ε + θ·r_other)/r. The slopes r are fitted by
least squares on the straight part of every half cycle (many readings: robust against the
thermocouple's 0.25 K steps, where the peak-to-peak amplitude a describing function needs
is not — one step is a third of a ±0.75 K oscillation), the period comes from the switching
times; k' and θ follow, and so does the model's ultimate point, Ku = π/(2k'θ), Tu = 4θ.
The relay's describing-function point, 4d/(π·√(a² − ε²)) at the relay period, is reported
alongside; with the hysteresis it is a softer, slower point than the ultimate one.

**Gains: Tyreus–Luyben PI**, Kc = Ku/3.2, Ti = 2.2·Tu. Ziegler–Nichols (Marlin, Klipper)
aims at a quarter-decay response: on a lag-dominated plant that is ringing and overshoot,
and its derivative would act on 0.25 K thermocouple steps. Tyreus–Luyben was made for such
(chemical-process) loops; on the integrator-with-dead-time model it coincides with SIMC
at τc = θ (Kc = Ku/π, Ti = 2·Tu), Skogestad's robust setting. No derivative: it buys little
on a plant this lag-dominated and amplifies the sensor's quantisation.

**Guards**: the reading more than ``overshoot_limit`` (15 K) above the setpoint, no
finished oscillation within ``time_limit``, or a safety trip abort the experiment in the
safe state.
"""

from __future__ import annotations

import asyncio
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from controller.rig import PidGains
from controller.thermal.loop import SetpointRefused, ThermalLoop

#: Tyreus–Luyben PI: Kc = Ku / KC_DIVISOR, Ti = TI_FACTOR · Tu
KC_DIVISOR = 3.2
TI_FACTOR = 2.2
#: the relay's bias stays within this (Marlin: 20…235 of 255)
BIAS_RANGE = (0.02, 0.9)
#: readings skipped after a half cycle's turning point before its slope is fitted
TURN_SKIP = 2


class AutotuneAborted(Exception):
    """The experiment stopped without a result; the heater is in the safe state."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True, slots=True)
class RelayCycle:
    """One full relay cycle: heating half, then cooling half."""

    t_high: float  # s with the heater at bias + d
    t_low: float  # s at bias − d
    high: float  # degC, peak of the cycle
    low: float  # degC, trough of the cycle
    bias: float
    d: float
    rise: float  # K/s, slope of the reading from the trough to the switch-off
    fall: float  # K/s (negative), from the peak to the switch-on

    @property
    def period(self) -> float:
        return self.t_high + self.t_low

    @property
    def amplitude(self) -> float:
        return 0.5 * (self.high - self.low)


@dataclass(frozen=True, slots=True)
class Tuning:
    """What autotune measured and derived (units: K, s, duty 0..1, W)."""

    setpoint: float
    hysteresis: float
    cycles: tuple[RelayCycle, ...]  # the ones analysed
    relay_period: float  # s, the relay oscillation's period (median)
    relay_amplitude: float  # K, half its peak-to-peak (median)
    relay_d: float  # duty, the relay's half swing
    relay_gain: float  # describing function 4d/(π√(a² − ε²)), for comparison
    rise: float  # K/s, median slope of the heating halves
    fall: float  # K/s, median slope of the cooling halves (negative)
    bias: float  # duty that holds the setpoint (the balanced relay's centre)
    plant_gain: float  # k', K/s per unit duty
    dead_time: float  # θ, s
    ultimate_gain: float  # Ku, duty per K
    ultimate_period: float  # Tu, s
    gains: PidGains
    heat_capacity: float  # J/K, power / k'
    loss: float  # W/K, bias · power / (setpoint − ambient)
    ambient: float  # degC, mean cold-junction temperature
    duration: float  # s the experiment took (heat-up included)

    def summary(self) -> str:
        g = self.gains
        return "\n".join(
            [
                f"relay: bias {self.bias:.3f} ± {self.relay_d:.3f} duty, hysteresis "
                f"±{self.hysteresis:g} K → oscillation ±{self.relay_amplitude:.2f} K, period "
                f"{self.relay_period:.1f} s, slopes {self.rise:+.3f}/{self.fall:+.3f} K/s "
                f"({len(self.cycles)} cycles analysed; describing-function gain "
                f"{self.relay_gain:.3f} /K)",
                f"plant: {self.plant_gain:.3f} K/s per unit duty (heat capacity "
                f"{self.heat_capacity:.0f} J/K), dead time {self.dead_time:.2f} s, holding duty "
                f"{self.bias:.3f} (loss {self.loss:.3f} W/K to {self.ambient:.1f} degC)",
                f"ultimate gain Ku = {self.ultimate_gain:.3f} /K, ultimate period "
                f"Tu = {self.ultimate_period:.1f} s",
                f"Tyreus–Luyben PI: kp = {g.kp:.4g} /K, ki = {g.ki:.4g} /(K·s), kd = {g.kd:g}",
            ]
        )


def analyse(
    cycles: list[RelayCycle],
    *,
    setpoint: float,
    hysteresis: float,
    power: float,
    ambient: float,
    duration: float,
) -> Tuning:
    """Plant model and Tyreus–Luyben gains from the measured relay cycles (module doc)."""
    if not cycles:
        raise AutotuneAborted("no complete relay cycle to analyse")
    period = statistics.median(c.period for c in cycles)
    amplitude = statistics.median(c.amplitude for c in cycles)
    d = statistics.median(c.d for c in cycles)
    bias = statistics.median(c.bias for c in cycles)
    up = statistics.median(c.rise for c in cycles)
    down = -statistics.median(c.fall for c in cycles)
    eps = hysteresis
    if not (amplitude > eps > 0 and period > 0 and d > 0 and up > 0 and down > 0):
        raise AutotuneAborted(
            f"the oscillation (±{amplitude:.2f} K, {period:.1f} s, slopes {up:+.3f}/"
            f"{-down:+.3f} K/s) is not one a relay with ±{eps:g} K hysteresis makes",
            "check the thermocouple's noise; try a larger --hysteresis",
        )
    # the triangle an integrator with dead time draws under the relay: slopes ±k'·d
    # (about the bias), and each half cycle lasts θ + (2ε + θ·other slope)/slope
    plant_gain = (up + down) / (2 * d)
    dead_time = (period - 2 * eps * (1 / up + 1 / down)) / (2 + down / up + up / down)
    if not dead_time > 0:
        raise AutotuneAborted(
            f"no dead time in the oscillation (period {period:.1f} s, slopes {up:+.3f}/"
            f"{-down:+.3f} K/s): the hysteresis ±{eps:g} K hides it",
            "try a smaller --hysteresis",
        )
    ultimate_gain = math.pi / (2 * plant_gain * dead_time)
    ultimate_period = 4 * dead_time
    kc = ultimate_gain / KC_DIVISOR
    ti = TI_FACTOR * ultimate_period
    gains = PidGains(kp=round(kc, 4), ki=round(kc / ti, 6), kd=0.0)
    above = setpoint - ambient
    return Tuning(
        setpoint=setpoint,
        hysteresis=hysteresis,
        cycles=tuple(cycles),
        relay_period=period,
        relay_amplitude=amplitude,
        relay_d=d,
        relay_gain=4 * d / (math.pi * math.sqrt(amplitude**2 - eps**2)),
        rise=up,
        fall=-down,
        bias=bias,
        plant_gain=plant_gain,
        dead_time=dead_time,
        ultimate_gain=ultimate_gain,
        ultimate_period=ultimate_period,
        gains=gains,
        heat_capacity=power / plant_gain,
        loss=bias * power / above if above > 0 else 0.0,
        ambient=ambient,
        duration=duration,
    )


class RelayControl:
    """The relay as a control law the :class:`ThermalLoop` runs (Klipper's way: the loop
    keeps reading, leasing and feeding the supervisor; only the law changes)."""

    mode = "relay"
    coasting_down = False

    def __init__(
        self,
        setpoint: float,
        *,
        bias: float,
        hysteresis: float,
        overshoot_limit: float,
        cycles: int,
    ) -> None:
        self.setpoint: float | None = setpoint
        self.target: float | None = setpoint
        self.move = -1  # never a HeaterControl move number: the supervisor starts afresh
        self.hysteresis = hysteresis
        self.overshoot_limit = overshoot_limit
        self.wanted = cycles
        self.bias = min(max(bias, BIAS_RANGE[0]), BIAS_RANGE[1])
        self.d = min(self.bias, 1.0 - self.bias)
        self.heating = True
        self.approaching = True  # the first heat-up, at full power
        self.cycles: list[RelayCycle] = []
        self.failure: str | None = None
        self.finished = asyncio.Event()
        self.duty = 1.0
        self._switch: float | None = None
        self._t_high: float | None = None
        self._low = math.inf
        self._high = -math.inf
        self._cycle_low = math.inf
        self._samples: list[tuple[float, float]] = []  # this half cycle's readings
        self._rise = math.nan
        self._ambient_sum = 0.0
        self._ambient_n = 0

    @property
    def ambient(self) -> float:
        return self._ambient_sum / self._ambient_n if self._ambient_n else math.nan

    def off(self) -> None:
        self.setpoint = self.target = None
        self.duty = 0.0
        self.move = -2
        self.finished.set()

    def update(self, now: float, temperature: float, ambient: float) -> float:
        if self.finished.is_set() or self.setpoint is None:
            self.duty = 0.0
            return 0.0
        setpoint = self.setpoint
        if temperature > setpoint + self.overshoot_limit:
            self.failure = (
                f"overshoot: {temperature:.2f} degC is more than {self.overshoot_limit:g} K "
                f"above the autotune setpoint {setpoint:g} degC"
            )
            self.finished.set()
            self.duty = 0.0
            return 0.0
        self._ambient_sum += ambient
        self._ambient_n += 1
        eps = self.hysteresis
        self._samples.append((now, temperature))
        if self.heating:
            if temperature < self._low:
                self._low = temperature
            if temperature > setpoint + eps:
                self.heating = False
                if not self.approaching and self._switch is not None:
                    self._t_high = now - self._switch
                    self._rise = _slope_after_extreme(self._samples, lowest=True)
                self.approaching = False
                self._switch = now
                self._cycle_low = self._low
                self._high = temperature
                self._samples = [(now, temperature)]
        else:
            if temperature > self._high:
                self._high = temperature
            if temperature < setpoint - eps:
                self.heating = True
                assert self._switch is not None
                t_low = now - self._switch
                if self._t_high is not None:
                    fall = _slope_after_extreme(self._samples, lowest=False)
                    self._cycle_done(self._t_high, t_low, fall)
                self._switch = now
                self._low = temperature
                self._samples = [(now, temperature)]
        if self.approaching:
            self.duty = 1.0
        else:
            self.duty = self.bias + self.d if self.heating else self.bias - self.d
        return self.duty

    def _cycle_done(self, t_high: float, t_low: float, fall: float) -> None:
        self.cycles.append(
            RelayCycle(
                t_high, t_low, self._high, self._cycle_low, self.bias, self.d, self._rise, fall
            )
        )
        # Marlin's bias rule: equal heating and cooling halves
        self.bias += self.d * (t_high - t_low) / (t_high + t_low)
        self.bias = min(max(self.bias, BIAS_RANGE[0]), BIAS_RANGE[1])
        self.d = min(self.bias, 1.0 - self.bias)
        if len(self.cycles) >= self.wanted:
            self.finished.set()


def _slope_after_extreme(samples: list[tuple[float, float]], *, lowest: bool) -> float:
    """Least-squares slope of the readings from the half cycle's extreme (where the
    reading turned) to its end, skipping the turn itself: the straight part of the
    triangle, whose slope is the plant gain times the relay's push."""
    values = [v for _, v in samples]
    extreme = min(values) if lowest else max(values)
    start = max(i for i, v in enumerate(values) if v == extreme)
    skip = TURN_SKIP if len(samples) - start - TURN_SKIP >= 3 else 0
    part = samples[start + skip :]
    if len(part) < 2:
        return math.nan
    n = len(part)
    mean_t = sum(t for t, _ in part) / n
    mean_v = sum(v for _, v in part) / n
    sxx = sum((t - mean_t) ** 2 for t, _ in part)
    sxy = sum((t - mean_t) * (v - mean_v) for t, v in part)
    return sxy / sxx if sxx > 0 else math.nan


async def autotune(
    loop: ThermalLoop,
    setpoint: float,
    *,
    hysteresis: float = 0.5,
    cycles: int = 12,
    time_limit: float = 2700.0,
    overshoot_limit: float = 15.0,
    progress: Callable[[str], None] | None = None,
) -> Tuning:
    """Run the relay experiment on a running :class:`ThermalLoop` and derive PI gains.

    The loop must be started (``loop.start()``). The first half of the cycles lets the
    bias settle; the second half is analysed. On return the heater is off; on
    :class:`AutotuneAborted` the safe state has been engaged.
    """
    limits = loop.supervisor.limits
    if not (limits.temperature_min < setpoint <= limits.setpoint_max):
        raise SetpointRefused(
            f"autotune setpoint {setpoint:g} degC is outside {limits.temperature_min:g}…"
            f"{limits.setpoint_max:g} degC (rig settings safety.temperature_min / "
            "safety.setpoint_max)"
        )
    if cycles < 4:
        raise ValueError("autotune needs at least 4 relay cycles")
    heater = loop.heater
    clock = loop.clock
    start = clock.now()
    while loop.temperature is None:  # the ambient (cold junction) comes with the first reading
        if loop.supervisor.trip is not None or clock.now() - start > time_limit:
            break
        await clock.sleep(loop.period)
    relay = RelayControl(
        setpoint,
        bias=heater.holding_duty(setpoint, loop.ambient),
        hysteresis=hysteresis,
        overshoot_limit=overshoot_limit,
        cycles=cycles,
    )
    loop.heater.off()
    previous = loop.use(relay)
    tripped = asyncio.ensure_future(loop.supervisor.wait())
    finished = asyncio.ensure_future(relay.finished.wait())
    try:
        remaining = max(0.0, time_limit - (clock.now() - start))
        await asyncio.wait(
            {tripped, finished}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for task in (tripped, finished):
            task.cancel()
        timed_out = not relay.finished.is_set()
        loop.use(previous)
        relay.off()
        loop.off()
    trip = loop.supervisor.trip
    if trip is not None:
        raise AutotuneAborted(f"autotune aborted by a safety trip: {trip.message}")
    reason = relay.failure
    if reason is None and len(relay.cycles) < cycles:
        reason = (
            f"no finished oscillation within {time_limit / 60:g} min ({len(relay.cycles)} of "
            f"{cycles} relay cycles)"
            if timed_out
            else f"the heater was switched off after {len(relay.cycles)} of {cycles} cycles"
        )
    if reason is not None:
        await loop.supervisor.safe_state.engage(f"autotune aborted: {reason}", source="autotune")
        raise AutotuneAborted(
            f"autotune aborted: {reason}",
            "check that the heater heats and the thermocouple sits in the block; a larger "
            "block needs a longer --time-limit",
        )
    if progress is not None:
        progress(f"{len(relay.cycles)} relay cycles in {(clock.now() - start) / 60:.1f} min")
    analysed = relay.cycles[len(relay.cycles) // 2 :]
    return analyse(
        analysed,
        setpoint=setpoint,
        hysteresis=hysteresis,
        power=heater.power,
        ambient=relay.ambient,
        duration=clock.now() - start,
    )
