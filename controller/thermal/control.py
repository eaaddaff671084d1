"""The heater's control law: PI(D) on simple-pid, ramps, feedforward, full-power approach.

One object, :class:`HeaterControl`, turns a temperature reading into a heater duty once per
control period. It is pure (no I/O, no clock of its own: the caller passes the tick's time),
so the same code runs in the 1 s loop, in the benchmarks and in unit tests.

How it avoids simple-pid's traps on a heater with output limits 0..1:

- **Proportional on error**, never on measurement: P-on-M has no proportional "push" at a
  setpoint change and, with the integral clamped to 0..1, settles far below the setpoint.
- **Time from the caller**: every call passes ``dt`` and ``time_fn`` returns the tick's
  time, so simple-pid never reads ``time.monotonic`` (virtual time stays virtual).
- **No windup during the heat-up**: outside the proportional band the loop is not a PID at
  all. Far below the setpoint it heats at full power (:attr:`Mode.FULL`), far above it
  coasts at duty 0 (:attr:`Mode.COAST`); in both the integral is parked at the *expected
  holding duty* (heat balance: learned loss × (setpoint − ambient) / heater power). The band
  edge is where P + that integral saturates, so the switch into PID is bumpless: the output
  is 1 (or 0) on both sides. Inside the band, the integral only moves when the output is not
  saturated in the error's direction (conditional integration).
- **Feedforward**: a ramp needs heat capacity × rate / power of extra duty; the loop adds
  it while the setpoint moves and the integral follows the model's holding duty along the
  ramp, so the PI only corrects model error and there is no kick when a ramp ends.
- **Derivative on a filtered measurement**: ``kd`` acts on the reading through a
  first-order filter (0.25 K thermocouple steps make a raw derivative useless); the tuned
  gains are PI (``kd = 0``).
- **Learning the loss**: while holding near the setpoint the integral *is* the holding
  duty; the loss estimate follows it slowly, so the next preload is right even after the
  room or the insulation changed.
"""

from __future__ import annotations

from enum import StrEnum

from simple_pid import PID

from controller.rig import HeaterConfig

#: s, time constant of the learned heat loss (slow: it must not chase noise)
LEARN_TIME = 600.0
#: K, learn only this close to a setpoint that has stopped moving
LEARN_WITHIN = 1.0
#: K above ambient; closer to the room the heat balance says too little about the loss
LEARN_ABOVE = 20.0
#: control periods of the first-order filter on the measurement seen by the derivative
DERIVATIVE_FILTER = 4.0


class _Pid(PID):
    """simple-pid's PID, its integral declared: conditional integration and the
    integral that follows the model along a ramp write it, and simple-pid has no public
    setter for it (``set_auto_mode(True, last_output)`` is one, used when entering the band,
    but it also resets the rest of the state)."""

    _integral: float
    _proportional: float


class Mode(StrEnum):
    OFF = "off"  # heater off: duty 0, no setpoint
    FULL = "full"  # far below the setpoint: full power, integral parked at the holding duty
    COAST = "coast"  # far above it: duty 0, integral parked
    PID = "pid"  # inside the proportional band


class HeaterControl:
    """Setpoint ramp + PI(D) with feedforward for one heater. Call :meth:`update` each tick.

    The attributes below are plain (read them, do not write them): the safety supervisor
    reads them on every tick, and attribute reads are the cheapest thing Python does.
    """

    def __init__(self, heater: HeaterConfig) -> None:
        gains = heater.pid
        self.power = heater.power
        self.heat_capacity = heater.heat_capacity
        self.loss = heater.loss  # W/K, learned while holding
        self.max_ramp_up = heater.max_ramp_up
        self.max_ramp_down = heater.max_ramp_down
        self.period = heater.period
        self.kd = gains.kd
        self._now = 0.0
        self._pid = _Pid(
            gains.kp,
            gains.ki,
            0.0,  # the derivative is ours, on a filtered measurement
            setpoint=0.0,
            sample_time=None,  # we call once per period and pass dt
            output_limits=(0.0, 1.0),
            auto_mode=False,
            proportional_on_measurement=False,
            differential_on_measurement=True,
            time_fn=self._time,
        )
        self.mode = Mode.OFF
        self.target: float | None = None  # where the current move ends, degC
        self.setpoint: float | None = None  # the ramped setpoint now, degC
        self.rate = 0.0  # K/s, signed: the setpoint's ramp now (0 when it has arrived)
        self.duty = 0.0  # what the last update asked for
        self.move = 0  # +1 for every set_target/off, so observers can tell moves apart
        self.coasting_down = False  # duty 0 while the block cools towards a lower target
        self._up = self.max_ramp_up
        self._down = self.max_ramp_down
        self._direction = 0  # +1 heating move, -1 cooling move, 0 holding
        self._last: float | None = None
        self._filtered = 0.0

    def _time(self) -> float:
        return self._now

    # ------------------------------------------------------------------ commands

    def set_target(self, target: float, ramp: float | None, temperature: float | None) -> None:
        """Move to ``target`` (degC) at ``ramp`` K/s (None: the rig's maximum for that
        direction; faster than the rig allows is capped). The ramp starts from the present
        setpoint, or from ``temperature`` (the latest reading) if the heater was off."""
        if ramp is not None and not ramp > 0:
            raise ValueError(f"ramp must be positive (K/s), not {ramp!r}")
        start = self.setpoint
        if start is None:
            start = temperature  # None before the first reading: the ramp starts there
        self._up = self.max_ramp_up if ramp is None else min(ramp, self.max_ramp_up)
        self._down = self.max_ramp_down if ramp is None else min(ramp, self.max_ramp_down)
        self.setpoint = start
        self.target = target
        self._direction = 0 if start is None else (target > start) - (target < start)
        self.move += 1
        if self.mode is Mode.OFF:
            self.mode = Mode.COAST  # re-enters PID (preloaded) or FULL on the next update

    def off(self) -> None:
        """Heater off: duty 0 from the next update on; the setpoint is forgotten."""
        self.mode = Mode.OFF
        self.target = self.setpoint = None
        self.rate = 0.0
        self.duty = 0.0
        self.coasting_down = False
        self._direction = 0
        self._pid.set_auto_mode(False)
        self.move += 1

    @property
    def gains(self) -> tuple[float, float, float]:
        return self._pid.Kp, self._pid.Ki, self.kd

    @property
    def integral(self) -> float:
        """The integral term (a duty): the holding duty once the loop has settled."""
        return self._pid._integral

    def holding_duty(self, setpoint: float, ambient: float) -> float:
        """Heat balance: what it takes to hold ``setpoint`` with the learned loss."""
        duty = self.loss * (setpoint - ambient) / self.power
        return 0.0 if duty < 0.0 else 1.0 if duty > 1.0 else duty

    # ------------------------------------------------------------------ the tick

    def update(self, now: float, temperature: float, ambient: float) -> float:
        """One control period: the duty (0..1) to apply until the next one."""
        target = self.target
        if self.mode is Mode.OFF or target is None:
            self.duty = 0.0
            self._last = now
            return 0.0
        if self.setpoint is None:  # asked before the first reading: ramp from here
            self.setpoint = temperature
            self._direction = (target > temperature) - (target < temperature)
        last = self._last
        dt = now - last if last is not None and now > last else self.period
        self._last = self._now = now
        # -- the setpoint ramp
        before = self.setpoint
        if before < target:
            setpoint = before + self._up * dt
            if setpoint >= target:
                setpoint = target
            rate = self._up if setpoint < target else 0.0
        elif before > target:
            setpoint = before - self._down * dt
            if setpoint <= target:
                setpoint = target
            rate = -self._down if setpoint > target else 0.0
        else:
            setpoint, rate = target, 0.0
        self.setpoint = setpoint
        self.rate = rate
        feedforward = self.heat_capacity * rate / self.power
        error = setpoint - temperature
        pid = self._pid
        kp = pid.Kp
        if self.mode is not Mode.PID:
            hold = self.holding_duty(setpoint, ambient)
            predicted = kp * error + hold + feedforward
            if predicted >= 1.0:
                return self._saturated(Mode.FULL, 1.0)
            if predicted <= 0.0:
                return self._saturated(Mode.COAST, 0.0)
            # into the band: integral preloaded with the expected holding duty (bumpless:
            # at the band's edge P + preload is the saturated output we came from)
            pid.setpoint = setpoint
            pid.set_auto_mode(True, last_output=hold)
            self._filtered = temperature
            self.mode = Mode.PID
            self.coasting_down = False
        else:
            # the holding duty rises with the setpoint: the integral follows the model
            pid._integral += self.loss * (setpoint - before) / self.power
            # out of the band when both the model and the integral say so (the way back in
            # asks the model only, so the edge does not chatter)
            push = kp * error + feedforward
            hold = self.holding_duty(setpoint, ambient)
            if push + hold >= 1.0 and push + pid._integral >= 1.0:
                return self._saturated(Mode.FULL, 1.0)
            if push + hold <= 0.0 and push + pid._integral <= 0.0:
                return self._saturated(Mode.COAST, 0.0)
        if setpoint == target:
            self._direction = 0  # arrived and regulating: the move is over
        pid.setpoint = setpoint
        integral = pid._integral
        pid(temperature, dt=dt)
        proportional = pid._proportional
        derivative = 0.0
        if self.kd:
            tau = DERIVATIVE_FILTER * self.period
            previous = self._filtered
            self._filtered = previous + (temperature - previous) * dt / (tau + dt)
            derivative = -self.kd * (self._filtered - previous) / dt
        out = proportional + pid._integral + feedforward + derivative
        if (out > 1.0 and error > 0.0) or (out < 0.0 and error < 0.0):
            # conditional integration: no integrating into a saturated output
            pid._integral = integral
            out = proportional + integral + feedforward + derivative
        duty = 0.0 if out < 0.0 else 1.0 if out > 1.0 else out
        self.duty = duty
        if rate == 0.0 and -LEARN_WITHIN < error < LEARN_WITHIN:
            above = setpoint - ambient
            if above > LEARN_ABOVE:
                measured = pid._integral * self.power / above
                self.loss += (measured - self.loss) * min(1.0, dt / LEARN_TIME)
        return duty

    def _saturated(self, mode: Mode, duty: float) -> float:
        if self.mode is Mode.PID:
            self._pid.set_auto_mode(False)
        self.mode = mode
        self.duty = duty
        self.coasting_down = mode is Mode.COAST and self._direction < 0
        return duty
