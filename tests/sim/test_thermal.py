"""The heater block: exact two-node integration, SSR time-proportioning, the MAX31855."""

from __future__ import annotations

import math
import statistics

import pytest
from firmware_sim.board import frame
from firmware_sim.ohmic import OhmicCell
from firmware_sim.rig import ManualClock, SimRig
from firmware_sim.thermal import (
    FAULT_OPEN,
    BlockParams,
    HeaterBlock,
    Max31855,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def window_average(block: HeaterBlock, duty: float, windows: int = 1) -> float:
    """Mean block temperature over whole SSR windows, sampled finely."""
    samples = []
    t = block.time
    for i in range(1, 100 * windows + 1):
        block.advance(t + i * 0.01, duty)
        samples.append(block.block)
    return statistics.fmean(samples)


@pytest.mark.parametrize("duty", [0.1, 0.25, 0.5, 0.9])
def test_steady_state_is_ambient_plus_power_times_duty_over_loss(duty: float) -> None:
    block = HeaterBlock()
    block.advance(20 * 3600.0, duty)  # 80 time constants
    expected = 25.0 + 100.0 * duty / 0.1
    assert block.steady_state(duty) == pytest.approx(expected)
    assert window_average(block, duty) == pytest.approx(expected, abs=0.02)
    # the ripple of 1 s time-proportioning is small: P·on-time/C at most
    assert abs(block.block - expected) < 100.0 / 90.0


def test_the_time_constant_is_heat_capacity_over_loss() -> None:
    block = HeaterBlock()
    assert block.time_constant == pytest.approx(900.0)
    rise = 100.0 * 0.1 / 0.1  # 100 K at 10 % duty
    block.advance(900.0, 0.1)
    assert window_average(block, 0.1) - 25.0 == pytest.approx(rise * (1 - math.exp(-1)), abs=0.1)
    block = HeaterBlock()
    block.advance(900.0 * math.log(2), 1.0)
    assert block.block - 25.0 == pytest.approx(1000.0 / 2, rel=1e-9)


def test_full_power_reaches_160_degc_in_130_seconds() -> None:
    block = HeaterBlock()
    t_160 = -900.0 * math.log(1 - 135.0 / 1000.0)
    block.advance(t_160, 1.0)
    assert block.block == pytest.approx(160.0, abs=1e-9)
    assert t_160 == pytest.approx(130.5, abs=0.1)


def test_the_sensor_lags_the_block_by_rate_times_lag() -> None:
    for lag in (1.0, 3.0):
        block = HeaterBlock(BlockParams(sensor_lag=lag))
        block.advance(30.0, 1.0)  # ramp ≈ 1.1 K/s
        rate = (100.0 - 0.1 * (block.block - 25.0)) / 90.0
        assert block.block - block.sensor == pytest.approx(rate * lag, rel=0.02)


def test_the_closed_form_matches_a_fine_numerical_integration() -> None:
    params = BlockParams(heater_power=75.0, sensor_lag=1.5)
    block = HeaterBlock(params)
    duty, dt, t_end = 0.37, 1e-4, 30.0
    b = s = 25.0
    for i in range(int(t_end / dt)):
        t = i * dt
        power = params.heater_power if (t % 1.0) < duty - 1e-9 else 0.0
        # midpoint (RK2) on the linear system
        db1 = (power - params.loss * (b - 25.0)) / params.heat_capacity
        ds1 = (b - s) / params.sensor_lag
        bm, sm = b + 0.5 * dt * db1, s + 0.5 * dt * ds1
        b += dt * (power - params.loss * (bm - 25.0)) / params.heat_capacity
        s += dt * (bm - sm) / params.sensor_lag
    block.advance(t_end, duty)
    assert block.block == pytest.approx(b, abs=2e-3)
    assert block.sensor == pytest.approx(s, abs=2e-3)


def test_within_a_window_the_heater_is_on_first_then_off() -> None:
    block = HeaterBlock()
    block.advance(0.5, 0.5)
    heated = block.block - 25.0
    assert heated == pytest.approx(100.0 * 0.5 / 90.0, rel=1e-3)
    block.advance(1.0, 0.5)
    assert block.block < 25.0 + heated  # the second half only loses heat


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.lists(st.floats(0.0, 5000.0), min_size=1, max_size=12),
    duty=st.floats(0.0, 1.0),
    start=st.floats(25.0, 200.0),
)
def test_splitting_an_advance_changes_nothing(cuts: list[float], duty: float, start: float) -> None:
    whole, pieces = HeaterBlock(), HeaterBlock()
    whole.block = pieces.block = start
    for t in sorted(cuts):
        pieces.advance(t, duty)
    pieces.advance(5000.0, duty)
    whole.advance(5000.0, duty)
    assert pieces.block == pytest.approx(whole.block, abs=1e-7)
    assert pieces.sensor == pytest.approx(whole.sensor, abs=1e-7)


def test_more_heat_loss_lowers_the_steady_state() -> None:
    block = HeaterBlock()
    block.advance(10 * 3600.0, 0.3)
    block.loss_factor = 1.5
    block.advance(20 * 3600.0, 0.3)
    assert window_average(block, 0.3) == pytest.approx(25.0 + 30.0 / 0.15, abs=0.02)
    with pytest.raises(ValueError, match="positive"):
        block.loss_factor = 0.0


def test_a_lower_ambient_lowers_everything() -> None:
    block = HeaterBlock()
    block.set_ambient(15.0)
    block.advance(20 * 3600.0, 0.2)
    assert window_average(block, 0.2) == pytest.approx(15.0 + 200.0, abs=0.02)


def test_block_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="positive"):
        BlockParams(heat_capacity=0.0)
    with pytest.raises(ValueError, match="heater power"):
        BlockParams(heater_power=-1.0)


# -------------------------------------------------------------------- MAX31855


def test_thermocouple_quantisation_and_noise() -> None:
    amp = Max31855(seed=5)
    readings = [amp.convert(n, 100.1, 25.0) for n in range(2000)]
    temps = [r.temperature for r in readings]
    for r in readings:
        assert r.temperature * 4 == round(r.temperature * 4)
        assert r.cold_junction * 16 == round(r.cold_junction * 16)
        assert r.faults == 0
    # 0.06 °C of noise does not dither 0.25 °C steps fully: the mean is off by < 1/4 step
    assert statistics.fmean(temps) == pytest.approx(100.1, abs=0.0625)
    assert 0.05 < statistics.stdev(temps) < 0.15
    assert len(set(temps)) >= 2
    assert statistics.fmean(r.cold_junction for r in readings) == pytest.approx(26.5, abs=0.01)


def test_a_conversion_depends_only_on_its_number() -> None:
    a, b = Max31855(seed=1), Max31855(seed=1)
    assert a.convert(42, 80.0, 25.0) == b.convert(42, 80.0, 25.0)
    c = Max31855(seed=2)
    assert [a.convert(n, 80.1, 25.0) for n in range(50)] != [
        c.convert(n, 80.1, 25.0) for n in range(50)
    ]


def test_probe_faults() -> None:
    amp = Max31855()
    opened = amp.convert(1, 150.0, 25.0, "open")
    assert math.isnan(opened.temperature)
    assert opened.faults == FAULT_OPEN
    shorted = amp.convert(1, 150.0, 25.0, "shorted")  # undetectable: reads the board
    assert shorted.faults == 0
    assert shorted.temperature == pytest.approx(26.5, abs=0.5)


def test_the_rig_reads_the_sensor_node_through_the_board() -> None:
    clock = ManualClock()
    rig = SimRig(clock, cell=OhmicCell(), seed=3)
    rig.board.handle(frame("DUTY 1000 10000"))
    clock.advance(9.0)
    rig.sync()
    reply = rig.board.handle(frame("T?"))
    assert reply is not None
    temp = float(reply.split()[1])
    assert temp == pytest.approx(rig.heater.sensor, abs=0.5)
    assert rig.heater.block - rig.heater.sensor > 1.5  # the reading lags the block
    assert rig.cell_temperature == rig.heater.block
