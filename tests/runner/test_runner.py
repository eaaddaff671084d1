"""The runner on the in-process software rig, in virtual time: steps, results, exit paths.

Every exit path must leave the rig safe: the journal has the ``safe_state`` event, and the
software rig itself shows the SMU's output relay open and the heater at duty 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from controller.journal import JournalReader
from controller.runner.engine import Runner
from controller.runner.state import RunState
from controller.runner.steps import Executor
from tests.runner.conftest import SimRun, protocol_text, run_sim

WARM_CYCLE = """\
  - temperature: {setpoint: 125 degC, band: 0.5 degC, soak: 5 min}
  - cycle: {current_density: 1 mA/cm^2, half_cycle: 10 min, rest: 1 min, count: 3}
"""


def tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {
            name: conn.execute(f"SELECT * FROM {name} ORDER BY 1").fetchall()
            for name in ("samples", "events", "steps", "checkpoints")
        }
    finally:
        conn.close()


def assert_safe(run: SimRun) -> None:
    snap = run.snapshot
    assert snap["smu_output"] is False or str(snap["smu_output"]).lower() in ("off", "false", "0")
    assert snap["heater_duty"] == 0.0
    with JournalReader(run.journal) as reader:
        kinds = [e.kind for e in reader.events()]
        assert "safe_state" in kinds
        assert reader.meta()["state"] == run.outcome.state.value


def test_a_protocol_runs_to_its_end_and_the_rig_is_left_safe(tmp_path: Path) -> None:
    run = run_sim(protocol_text(WARM_CYCLE), tmp_path)
    assert run.outcome.state is RunState.FINISHED
    assert run.outcome.exit_code == 0
    assert_safe(run)
    with JournalReader(run.journal) as reader:
        steps = reader.steps()
        assert [(s.kind, s.outcome) for s in steps] == [
            ("temperature", "completed"),
            ("cycle", "completed"),
        ]
        soak = steps[0].result or {}
        assert soak["time_in_band_s"] == pytest.approx(300, abs=2)
        assert soak["rms_error_K"] < 0.5
        cycle = steps[1].result or {}
        assert cycle["cycles_completed"] == 3
        assert cycle["cycles_to_short"] is None
        cols = reader.sample_columns("t", "current", "cycle", "step")
    # 3 cycles × (2 × 10 min + 2 × 1 min) under current; the cycle column counts 1..3
    assert sorted(set(cols["cycle"].tolist())) == [0, 1, 2, 3]
    plating = cols["current"] > 0
    assert plating.any()
    assert (cols["current"] < 0).any()
    # the sign convention: + plates the working electrode, 1 mA/cm² × 0.785 cm²
    assert cols["current"].max() == pytest.approx(0.785e-3, rel=0.01)


def test_record_rules_store_every_10_s_and_on_voltage_moves(tmp_path: Path) -> None:
    rest = "  - rest: {for: 30 min}\n"
    run = run_sim(protocol_text(rest), tmp_path)
    with JournalReader(run.journal) as reader:
        t = reader.sample_columns("t")["t"]
    # an open-circuit symmetric cell barely moves: every 10th sample of 1800 is stored
    assert 175 <= len(t) <= 200
    assert run.runner.samples_seen >= 1799
    gaps = t[1:] - t[:-1]
    assert gaps.max() <= 10.0 + 1e-6


def test_runs_are_deterministic_for_a_seed(tmp_path: Path) -> None:
    text = protocol_text(WARM_CYCLE)
    a = run_sim(text, tmp_path / "a", seed=3)
    b = run_sim(text, tmp_path / "b", seed=3)
    c = run_sim(text, tmp_path / "c", seed=4)
    ta, tb, tc = tables(a.journal), tables(b.journal), tables(c.journal)
    assert ta == tb
    assert ta["samples"] != tc["samples"]


def test_abort_stops_at_once_in_the_safe_state(tmp_path: Path) -> None:
    async def abort_later(runner: Runner, sim: Any) -> None:
        await asyncio.sleep(2400)  # virtual: inside the cycle step
        reply = await runner.abort(source="test", reason="operator")
        assert "aborted" in reply

    run = run_sim(protocol_text(WARM_CYCLE), tmp_path, during=abort_later)
    assert run.outcome.state is RunState.ABORTED
    assert run.outcome.exit_code == 1
    assert "operator" in run.outcome.reason
    assert_safe(run)
    with JournalReader(run.journal) as reader:
        steps = reader.steps()
    assert steps[-1].outcome == "aborted"


def test_pause_switches_the_current_off_and_resume_continues_the_half_cycle(
    tmp_path: Path,
) -> None:
    seen: dict[str, Any] = {}

    async def pause_and_resume(runner: Runner, sim: Any) -> None:
        await asyncio.sleep(1500)  # mid-way in the first plating half
        await runner.pause(source="test")
        seen["state"] = runner.state
        seen["output"] = sim.snapshot()["smu_output"]
        seen["elapsed"] = runner.executor.elapsed if runner.executor else None
        await asyncio.sleep(600)
        seen["elapsed_after"] = runner.executor.elapsed if runner.executor else None
        seen["temperature"] = runner.thermal.temperature
        await runner.resume(source="test")

    run = run_sim(protocol_text(WARM_CYCLE), tmp_path, during=pause_and_resume)
    assert run.outcome.state is RunState.FINISHED
    assert seen["state"] is RunState.PAUSED
    assert str(seen["output"]).lower() in ("false", "off", "0")
    # 10 min paused: the step's time under current did not move
    assert seen["elapsed_after"] == seen["elapsed"]
    assert seen["temperature"] == pytest.approx(125, abs=1)  # temperature held
    with JournalReader(run.journal) as reader:
        cycle = next(s for s in reader.steps() if s.kind == "cycle")
        states = [e.data.get("to") for e in reader.events() if e.kind == "state"]
    assert states[:3] == ["running", "paused", "running"]
    # the step took its 66 min plus the 10 min pause, and still did 3 cycles
    assert cycle.result
    assert cycle.result["cycles_completed"] == 3
    assert (cycle.ended_t or 0) - cycle.started_t == pytest.approx(66 * 60 + 600, abs=5)


def test_a_safety_trip_faults_the_run(tmp_path: Path) -> None:
    run = run_sim(protocol_text(WARM_CYCLE), tmp_path, faults=["tc_open@20min"])
    assert run.outcome.state is RunState.FAULTED
    assert run.outcome.exit_code == 3
    assert "thermocouple" in run.outcome.reason.lower() or "trip" in run.outcome.reason
    assert_safe(run)
    with JournalReader(run.journal) as reader:
        assert "trip" in [e.kind for e in reader.events()]


def test_an_instrument_failure_faults_the_run(tmp_path: Path) -> None:
    run = run_sim(protocol_text(WARM_CYCLE), tmp_path, faults=["smu_garbage@20min"])
    assert run.outcome.state is RunState.FAULTED
    with JournalReader(run.journal) as reader:
        events = reader.events()
    assert "safe_state" in [e.kind for e in events]
    assert run.snapshot["heater_duty"] == 0.0


class Broken(Executor):
    def sample(self, t: float, dt: float, v: float, i: float) -> Any:
        raise ZeroDivisionError("a bug in a step")


def test_an_exception_still_ends_in_the_safe_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import controller.runner.engine as engine

    real = engine.make_executor

    def make(step: Any, setup: Any, **kw: Any) -> Executor:
        ex = real(step, setup, **kw)
        if ex.kind == "cycle":
            ex.sample = Broken.sample.__get__(ex)  # type: ignore[method-assign]
        return ex

    monkeypatch.setattr(engine, "make_executor", make)
    run = run_sim(protocol_text(WARM_CYCLE), tmp_path)
    assert run.outcome.state is RunState.FAULTED
    assert "ZeroDivisionError" in run.outcome.reason
    assert_safe(run)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_interrupts_resumably_in_the_safe_state(tmp_path: Path, sig: int) -> None:
    async def signal_later(runner: Runner, sim: Any) -> None:
        await asyncio.sleep(1500)
        os.kill(os.getpid(), sig)

    run = run_sim(protocol_text(WARM_CYCLE), tmp_path, during=signal_later)
    assert run.outcome.state is RunState.INTERRUPTED
    assert run.outcome.exit_code == 130
    assert_safe(run)
    with JournalReader(run.journal) as reader:
        steps = reader.steps()
        assert steps[-1].outcome is None  # the step stays open: resume continues it
        assert reader.last_checkpoint() is not None


@pytest.mark.parametrize(
    ("action", "state", "after"),
    [("next", RunState.FINISHED, 1), ("end", RunState.FINISHED, 0), ("abort", RunState.ABORTED, 0)],
)
def test_on_short_decides_what_follows_a_ramp_short(
    tmp_path: Path, action: str, state: RunState, after: int
) -> None:
    steps = (
        "  - temperature: {setpoint: 125 degC, band: 0.5 degC, soak: 5 min}\n"
        "  - ccd_ramp: {start: 1 mA/cm^2, step: 0.5 mA/cm^2, max: 6 mA/cm^2, half_cycle: 5 min,"
        f" on_short: {action}}}\n"
        "  - rest: {for: 2 min}\n"
    )
    run = run_sim(protocol_text(steps), tmp_path)
    assert run.outcome.state is state
    with JournalReader(run.journal) as reader:
        got = reader.steps()
        shorts = [e for e in reader.events() if e.kind == "hard_short"]
        cols = reader.sample_columns("t", "current")
    assert [s.outcome for s in got][:2] == ["completed", "short"]
    assert len(got) == 2 + after
    ramp = got[1].result or {}
    assert 2.0 <= ramp["ccd_mA_per_cm2"] <= 4.0
    assert len(shorts) == 1
    # the current stopped on the deciding sample: nothing stored under current after it
    t_short = shorts[0].data["time_s"]
    later = cols["current"][(cols["t"] > t_short) & (cols["t"] < t_short + 60)]
    assert (abs(later) < 1e-6).all()


def test_a_temperature_step_without_soak_ends_when_the_band_is_reached(tmp_path: Path) -> None:
    run = run_sim(
        protocol_text("  - temperature: {setpoint: 60 degC, band: 1 degC, soak: 0 s}\n"), tmp_path
    )
    with JournalReader(run.journal) as reader:
        (step,) = reader.steps()
    assert step.result is not None
    assert step.result["reached_t"] is not None
    assert (step.ended_t or 0) - step.started_t > 60  # 35 K at ≤ 20 K/min
