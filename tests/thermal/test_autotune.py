"""Autotune on the simulated block: the gains it returns meet the control targets; its
guards abort in the safe state; the command writes the rig file without losing comments."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from therapy_profile import TARGETS, run_loop_profile
from thermal_bench import Bench, run_bench

from controller.cli import main as cli
from controller.rig import PidGains
from controller.thermal.autotune import (
    KC_DIVISOR,
    TI_FACTOR,
    AutotuneAborted,
    RelayCycle,
    Tuning,
    analyse,
    autotune,
)
from controller.validate import load_rig


def _tune(tmp_path: Path, seed: int) -> Tuning:
    result: list[Tuning] = []

    async def test(bench: Bench) -> None:
        result.append(await autotune(bench.loop, 160.0))
        assert bench.loop.setpoint is None  # the heater is left off
        assert bench.supervisor.trip is None

    run_bench(test, tmp_path, seed=seed)
    return result[0]


@pytest.mark.parametrize("seed", [0, 3])
def test_autotune_measures_the_block_and_its_gains_meet_the_targets(
    tmp_path: Path, seed: int
) -> None:
    tuning = _tune(tmp_path, seed)
    # the simulated block: 90 J/K, 0.1 W/K, 100 W (k' = 1.11 K/s), ~3 s of lags
    assert tuning.plant_gain == pytest.approx(100 / 90, rel=0.1)
    assert tuning.heat_capacity == pytest.approx(90.0, rel=0.1)
    assert tuning.loss == pytest.approx(0.1, rel=0.05)
    assert tuning.bias == pytest.approx(0.1 * (160 - 25) / 100, rel=0.05)
    assert 2.0 < tuning.dead_time < 5.0
    assert tuning.ultimate_period == pytest.approx(4 * tuning.dead_time)
    assert tuning.gains.kd == 0.0
    assert tuning.gains.kp == pytest.approx(tuning.ultimate_gain / KC_DIVISOR, rel=1e-3)
    assert tuning.duration < 20 * 60
    figures, _ = run_loop_profile(gains=tuning.gains, seed=seed)
    assert figures.tripped is None
    assert figures.meets() == dict.fromkeys(TARGETS, True), figures


def test_the_default_gains_are_the_tuned_ones(tmp_path: Path) -> None:
    tuning = _tune(tmp_path, 0)
    assert PidGains().kp == pytest.approx(tuning.gains.kp, rel=1e-3)
    assert PidGains().ki == pytest.approx(tuning.gains.ki, rel=1e-3)


def test_analysis_of_an_integrator_with_dead_time() -> None:
    """Relay cycles an ideal plant k'·e^(−θs)/s would make: the analysis finds k' and θ."""
    k, theta, eps, d = 1.2, 3.0, 0.5, 0.15
    r = k * d  # the triangle: slopes ±k'd, peaks ε + rθ, halves 2θ + 2ε/r
    a = eps + r * theta
    half = 2 * theta + 2 * eps / r
    cycles = [RelayCycle(half, half, 160 + a, 160 - a, 0.135, d, r, -r)] * 4
    tuning = analyse(cycles, setpoint=160.0, hysteresis=eps, power=100.0, ambient=25.0, duration=1)
    assert tuning.plant_gain == pytest.approx(k, rel=1e-6)
    assert tuning.dead_time == pytest.approx(theta, rel=1e-6)
    assert tuning.ultimate_gain == pytest.approx(math.pi / (2 * k * theta), rel=1e-6)
    assert tuning.ultimate_period == pytest.approx(4 * theta, rel=1e-6)
    kc = tuning.ultimate_gain / KC_DIVISOR
    assert tuning.gains.kp == pytest.approx(kc, abs=1e-4)
    assert tuning.gains.ki == pytest.approx(kc / (TI_FACTOR * 4 * theta), abs=1e-6)
    assert tuning.heat_capacity == pytest.approx(100 / k)
    assert tuning.loss == pytest.approx(0.135 * 100 / 135)
    with pytest.raises(AutotuneAborted):
        analyse([], setpoint=160.0, hysteresis=eps, power=100.0, ambient=25.0, duration=1)


def test_no_oscillation_within_the_time_limit_aborts_in_the_safe_state(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        await bench.smu_on()
        with pytest.raises(AutotuneAborted, match="no finished oscillation within 1 min"):
            await autotune(bench.loop, 160.0, time_limit=60.0)
        assert bench.heater_commanded() == 0.0
        report = bench.safe.last
        assert report is not None
        assert report.source == "autotune"
        assert bench.smu_safe()

    run_bench(test, tmp_path)


def test_overshoot_beyond_15_k_aborts(tmp_path: Path) -> None:
    # a welded SSR, and a supervisor whose overshoot checks a rig file has relaxed: the
    # autotune's own guard is what stops it
    relaxed = {
        "overshoot_instant": "40 degC",
        "overshoot_sustained": "40 degC",
        "heating_while_off_rise": "60 degC",
    }

    async def test(bench: Bench) -> None:
        await bench.smu_on()
        bench.rig.faults.inject("heater_stuck_on", at=bench.rig.now() + 200.0)
        with pytest.raises(AutotuneAborted, match=r"overshoot: .* more than 15 K above"):
            await autotune(bench.loop, 160.0)
        assert bench.loop.temperature is not None
        assert 175.0 < bench.loop.temperature < 178.0
        assert bench.rig.board_firmware.output_duty() == 0.0
        assert bench.smu_safe()
        assert bench.supervisor.trip is None

    run_bench(test, tmp_path, limits=relaxed)


def test_a_safety_trip_aborts_autotune(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        bench.rig.faults.inject("tc_open", at=bench.rig.now() + 300.0)
        with pytest.raises(AutotuneAborted, match="safety trip: thermocouple fault"):
            await autotune(bench.loop, 160.0)
        assert bench.heater_commanded() == 0.0

    run_bench(test, tmp_path)


def test_autotune_refuses_a_setpoint_beyond_the_rig(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        from controller.thermal.loop import SetpointRefused

        with pytest.raises(SetpointRefused, match="setpoint_max"):
            await autotune(bench.loop, 180.0)

    run_bench(test, tmp_path)


RIG = """\
# The bench in room 2.17 — keep this header
rig: bench-2   # the id in MQTT topics
smu:
  resource: sim
heater:
  port: sim        # the board's udev name on the real rig
  lease: 3 s
  pid:             # tuned by hand in 2025; autotune replaces it
    kp: 0.05
    ki: 0.0005
    kd: 0.0
  max_ramp_up: 20 degC/min
safety:
  temperature_max: 185 degC   # the fuse is at 200
"""


def test_command_writes_the_gains_and_keeps_the_comments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rig.yaml"
    path.write_text(RIG)
    assert cli(["autotune", "--setpoint", "160degC", "--rig", str(path), "--write"]) == 0
    out = capsys.readouterr().out
    assert "ultimate gain Ku" in out
    assert "Tyreus–Luyben PI" in out
    assert f"to {path}" in out
    text = path.read_text()
    for line in RIG.splitlines():
        if not line.lstrip().startswith(("kp:", "ki:", "kd:")):
            assert line in text  # everything else, comments included, is unchanged
    rig = load_rig(path)
    assert rig.heater.pid.kp == pytest.approx(PidGains().kp, rel=0.01)
    assert rig.heater.pid.ki == pytest.approx(PidGains().ki, rel=0.01)
    assert rig.heater.heat_capacity == pytest.approx(90.0, rel=0.1)
    assert rig.heater.loss == pytest.approx(0.1, rel=0.05)
    assert rig.heater.lease == 3.0
    assert not (tmp_path / "rig.yaml.autotune").exists()


def test_command_on_the_built_in_sim(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["autotune", "--setpoint", "160 degC", "--sim"]) == 0
    out = capsys.readouterr().out
    assert "simulated rig (seed 0, virtual time)" in out
    assert f"kp = {PidGains().kp:.4g} /K" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--setpoint", "160", "--sim"], "has no unit"),
        (["--setpoint", "180degC", "--sim"], "outside 5…170 degC"),
        (["--setpoint", "160degC", "--sim", "--write"], "--write needs a rig file"),
        (["--setpoint", "160degC", "--sim", "--hysteresis", "0 degC"], "must be positive"),
        (["--setpoint", "160degC", "--sim", "--time-limit", "1 min"], "no finished oscillation"),
    ],
)
def test_command_mistakes_exit_2_with_a_hint(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["autotune", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "hint:" in err
    assert "Traceback" not in err
