"""The control law alone (no I/O): simple-pid's traps avoided, ramps, feedforward, learning.

A small block model (heat capacity, loss, heater power; no sensor lag) stands in for the
plant where a closed loop is needed; the rig-level behaviour is in test_loop.py.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from simple_pid import PID

from controller.rig import HeaterConfig, PidGains
from controller.thermal.control import DERIVATIVE_FILTER, HeaterControl, Mode

AMBIENT = 25.0


def heater(**changes: Any) -> HeaterConfig:
    data: dict[str, Any] = {"port": "sim"}
    data.update(changes)
    return HeaterConfig.model_validate(data)


class Block:
    """C dT/dt = P·duty − G·(T − ambient), integrated exactly enough at 1 s steps."""

    def __init__(self, temperature: float = AMBIENT, *, capacity: float = 90.0, loss: float = 0.1):
        self.t = temperature
        self.capacity = capacity
        self.loss = loss

    def step(self, duty: float, dt: float = 1.0, power: float = 100.0) -> float:
        for _ in range(10):
            self.t += (power * duty - self.loss * (self.t - AMBIENT)) * dt / 10 / self.capacity
        return self.t


def arrive(control: HeaterControl, temperature: float) -> float:
    """Updates at a steady reading until the setpoint has arrived; returns the time."""
    t = 0.0
    while control.setpoint != control.target:
        t += 1.0
        control.update(t, temperature, AMBIENT)
    return t


def test_full_power_far_below_then_pid_with_the_integral_preloaded() -> None:
    control = HeaterControl(heater(max_ramp_up="600 degC/min"))
    control.set_target(160.0, None, 25.0)
    t = arrive(control, 25.0)
    assert control.duty == 1.0
    assert control.mode is Mode.FULL
    hold = control.holding_duty(160.0, AMBIENT)
    assert hold == pytest.approx(0.1 * 135.0 / 100.0)
    kp, ki, _ = control.gains
    duty = control.update(t + 1.0, 159.5, AMBIENT)
    assert control.mode is Mode.PID
    # entering the band: the integral starts at the heat balance's holding duty
    assert control.integral == pytest.approx(hold + ki * 0.5 * 1.0)
    assert duty == pytest.approx(kp * 0.5 + hold + ki * 0.5)


def test_the_switch_into_the_band_is_bumpless() -> None:
    control = HeaterControl(heater(max_ramp_up="600 degC/min"))
    control.set_target(160.0, None, 25.0)
    t = arrive(control, 25.0)
    kp = control.gains[0]
    hold = control.holding_duty(160.0, AMBIENT)
    edge = 160.0 - (1.0 - hold) / kp  # where P + preload saturates
    assert control.update(t + 1.0, edge - 0.05, AMBIENT) == 1.0
    assert control.mode is Mode.FULL
    inside = control.update(t + 2.0, edge + 0.05, AMBIENT)
    assert control.mode is Mode.PID
    assert inside == pytest.approx(1.0, abs=kp * 0.06 + 0.01)


def test_the_integral_does_not_wind_up_while_saturated() -> None:
    """A block that cannot keep up (dead heater) inside the band: simple-pid alone winds
    its integral to the limit; here it stops where the output saturates."""
    gains = PidGains(kp=0.1, ki=0.01)
    control = HeaterControl(heater(pid=gains.model_dump()))
    control.set_target(160.0, None, 159.0)
    plain = PID(0.1, 0.01, 0.0, setpoint=160.0, output_limits=(0.0, 1.0), time_fn=lambda: 0.0)
    for i in range(600):  # 10 min stuck 1.5 K below
        control.update(float(i), 158.5, AMBIENT)
        plain(158.5, dt=1.0)
    assert control.mode is Mode.PID
    assert control.duty == pytest.approx(1.0, abs=0.01)
    assert control.integral == pytest.approx(1.0 - 0.1 * 1.5, abs=0.011)
    assert plain.components[1] == 1.0  # the trap: wound up to the limit
    # the block comes back: our output leaves saturation at once, the plain one does not
    ours = control.update(600.0, 160.5, AMBIENT)
    theirs = plain(160.5, dt=1.0)
    assert ours < 0.85
    assert theirs > 0.9


def test_proportional_on_error_reaches_the_setpoint() -> None:
    """P-on-M (simple-pid's proportional_on_measurement) stalls below the setpoint on a
    heater; the loop uses P on error and gets there."""
    control = HeaterControl(heater(max_ramp_up="600 degC/min"))
    block = Block()
    control.set_target(125.0, None, block.t)
    for i in range(3600):
        block.step(control.update(float(i), block.t, AMBIENT))
    assert block.t == pytest.approx(125.0, abs=0.05)


def test_ramps_up_and_down_at_the_asked_rate_capped_by_the_rig() -> None:
    control = HeaterControl(heater())  # 20 degC/min up, 5 degC/min down
    control.set_target(125.0, 5 / 60, 25.0)  # 5 degC/min, asked at t = 0
    for i in range(1, 61):
        control.update(float(i), 25.0 + i * 5 / 60, AMBIENT)
    assert control.setpoint == pytest.approx(25.0 + 60 * 5 / 60)
    assert control.rate == pytest.approx(5 / 60)
    control.set_target(160.0, 1.0, 30.0)  # 60 degC/min asked: the rig allows 20
    start = control.setpoint
    assert start is not None
    for i in range(61, 121):
        control.update(float(i), 30.0, AMBIENT)
    assert control.setpoint == pytest.approx(start + 60 * 20 / 60)
    control.set_target(20.0, None, 50.0)  # down at the rig's maximum, 5 degC/min
    before = control.setpoint
    assert before is not None
    for i in range(121, 181):
        control.update(float(i), 50.0, AMBIENT)
    assert control.setpoint == pytest.approx(before - 60 * 5 / 60)
    assert control.rate == pytest.approx(-5 / 60)
    with pytest.raises(ValueError, match="positive"):
        control.set_target(100.0, 0.0, 25.0)


def test_a_ramp_starts_at_the_reading_and_arrives_without_a_kick() -> None:
    control = HeaterControl(heater())
    block = Block()
    control.set_target(160.0, 10 / 60, block.t)
    assert control.setpoint == block.t
    highest = 0.0
    for i in range(3600):
        block.step(control.update(float(i), block.t, AMBIENT))
        highest = max(highest, block.t)
        if control.rate > 0 and i > 60:
            # on the ramp the feedforward carries it: the error stays small
            assert abs(control.setpoint - block.t) < 0.3  # type: ignore[operator]
    assert highest - 160.0 < 0.2
    assert block.t == pytest.approx(160.0, abs=0.05)


def test_feedforward_is_the_ramps_heat() -> None:
    control = HeaterControl(heater(max_ramp_up="600 degC/min"))
    control.set_target(100.0, 6 / 60, 100.0)  # no ramp: at the target
    control.update(0.0, 100.0, AMBIENT)
    holding = control.update(1.0, 100.0, AMBIENT)
    control.set_target(140.0, 6 / 60, 100.0)
    ramping = control.update(2.0, 100.1, AMBIENT)
    kp = control.gains[0]
    # 90 J/K × 0.1 K/s / 100 W of extra duty, less P on the reading's 0.1 K lead
    assert ramping - holding == pytest.approx(0.09 + kp * (0.1 - 0.1), abs=0.005)


def test_off_is_duty_zero_and_forgets_the_setpoint() -> None:
    control = HeaterControl(heater())
    control.set_target(100.0, None, 25.0)
    assert control.update(0.0, 25.0, AMBIENT) > 0.0
    move = control.move
    control.off()
    assert control.move == move + 1
    assert control.update(1.0, 25.0, AMBIENT) == 0.0
    assert control.setpoint is None
    assert control.target is None
    assert control.mode is Mode.OFF


def test_simple_pid_never_reads_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden() -> float:
        raise AssertionError("simple-pid read the wall clock")

    monkeypatch.setattr(time, "monotonic", forbidden)
    monkeypatch.setattr(time, "time", forbidden)
    control = HeaterControl(heater())
    control.set_target(60.0, None, 59.0)
    for i in range(10):
        control.update(1000.0 + i, 59.5, AMBIENT)
    assert control.mode is Mode.PID


def test_the_holding_loss_is_learned_and_preloads_the_next_approach() -> None:
    block = Block(loss=0.15)  # the rig file says 0.1 W/K; the real block loses 50 % more
    control = HeaterControl(heater(max_ramp_up="600 degC/min"))
    control.set_target(160.0, None, block.t)
    for i in range(4 * 3600):
        block.step(control.update(float(i), block.t, AMBIENT))
    assert control.loss == pytest.approx(0.15, rel=0.03)
    assert control.integral == pytest.approx(0.15 * 135 / 100, rel=0.02)
    control.off()
    control.set_target(150.0, None, 100.0)
    t = arrive(control, 100.0)  # full power while the fast ramp runs ahead
    control.update(t + 1.0, 149.8, AMBIENT)  # into the band: preloaded, learned
    assert control.integral == pytest.approx(0.15 * 125 / 100, rel=0.03)


def test_derivative_acts_on_a_filtered_reading() -> None:
    control = HeaterControl(heater(pid={"kp": 0.1, "ki": 0.0, "kd": 1.0}))
    control.set_target(100.0, None, 100.0)
    for i in range(30):
        control.update(float(i), 100.0, AMBIENT)
    before = control.duty
    after = control.update(30.0, 100.25, AMBIENT)  # one thermocouple step
    raw = 1.0 * 0.25 / 1.0  # what an unfiltered derivative would take off
    filtered = 1.0 * 0.25 / (DERIVATIVE_FILTER + 1.0)
    assert before - after == pytest.approx(0.1 * 0.25 + filtered, rel=1e-6)
    assert before - after < 0.1 * 0.25 + raw / 3
