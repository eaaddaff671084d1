"""Resume in process (virtual time): per-step rules and the accounting across the gap.

The run is stopped by a signal (state ``interrupted``, last checkpoint and samples
committed), then ``resume_run`` continues it on a fresh in-process software rig. The
kill -9 tests on the wire-level rig are in test_crash.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from controller.journal import JournalReader
from controller.problems import UserError
from controller.rig import simulated_rig
from controller.runner.engine import Runner
from controller.runner.resume import resume_run
from controller.runner.session import RunOptions
from controller.runner.state import RunState
from tests.runner.conftest import protocol_text, run_sim


def interrupted_at(seconds: float):  # type: ignore[no-untyped-def]
    async def later(runner: Runner, sim: Any) -> None:
        await asyncio.sleep(seconds)
        os.kill(os.getpid(), signal.SIGTERM)

    return later


def resume(path: Path, tmp_path: Path) -> Any:
    rig = simulated_rig(tmp_path / "data")
    return resume_run(path, rig, options=RunOptions(virtual=True, handle_signals=False))


def test_a_soak_keeps_its_time_in_band_across_a_resume(tmp_path: Path) -> None:
    steps = "  - temperature: {setpoint: 125 degC, band: 0.5 degC, soak: 30 min}\n"
    first = run_sim(protocol_text(steps), tmp_path, during=interrupted_at(20 * 60))
    assert first.outcome.state is RunState.INTERRUPTED
    with JournalReader(first.journal) as reader:
        done_before = (reader.last_checkpoint().state["step_state"] or {})["soak_elapsed"]
        seq_before = reader.last_seq()
    assert 300 < done_before < 1800
    outcome = resume(first.journal, tmp_path)
    assert outcome.state is RunState.FINISHED
    with JournalReader(first.journal) as reader:
        (step,) = reader.steps()
        events = reader.events()
        seqs = [s.seq for s in reader.samples()]
    assert step.outcome == "completed"
    assert step.result is not None
    assert step.result["time_in_band_s"] == pytest.approx(1800, abs=3)
    gaps = [e for e in events if e.kind == "gap"]
    assert len(gaps) == 1
    assert gaps[0].data["gap_s"] >= 0
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) > seq_before


def test_a_cycle_resumes_its_half_with_the_charge_already_passed(tmp_path: Path) -> None:
    steps = (
        "  - temperature: {setpoint: 125 degC, band: 0.5 degC, soak: 2 min}\n"
        "  - cycle: {current_density: 1 mA/cm^2, half_cycle: 10 min, rest: 1 min, count: 3}\n"
    )
    first = run_sim(protocol_text(steps), tmp_path, during=interrupted_at(45 * 60))
    assert first.outcome.state is RunState.INTERRUPTED
    with JournalReader(first.journal) as reader:
        cycle_before = int(reader.sample_columns("cycle")["cycle"].max())
    assert cycle_before == 2
    outcome = resume(first.journal, tmp_path)
    assert outcome.state is RunState.FINISHED
    with JournalReader(first.journal) as reader:
        steps_rows = reader.steps()
        cols = reader.sample_columns("cycle")
    cycle = steps_rows[1]
    assert cycle.outcome == "completed"
    assert cycle.result is not None
    assert cycle.result["cycles_completed"] == 3
    # 6 halves of 10 min at 1 mA/cm² = 1 mAh/cm²: the interrupted half was not redone
    assert cycle.result["charge_mAh_per_cm2"] == pytest.approx(1.0, rel=0.01)
    # time under the step's control: 3 × (2 × 10 + 2 × 1) min, the gap excluded
    assert cycle.result["duration_s"] == pytest.approx(66 * 60, abs=3)
    assert (cols["cycle"][1:] >= cols["cycle"][:-1]).all()  # the count never goes back
    assert cols["cycle"].max() == 3


def test_a_ccd_ramp_is_not_silently_continued(tmp_path: Path) -> None:
    steps = (
        "  - temperature: {setpoint: 125 degC, band: 0.5 degC, soak: 2 min}\n"
        "  - ccd_ramp: {start: 0.5 mA/cm^2, step: 0.5 mA/cm^2, max: 6 mA/cm^2,"
        " half_cycle: 10 min}\n"
        "  - rest: {for: 5 min}\n"
    )
    first = run_sim(protocol_text(steps), tmp_path, during=interrupted_at(40 * 60))
    assert first.outcome.state is RunState.INTERRUPTED
    outcome = resume(first.journal, tmp_path)
    assert outcome.state is RunState.FINISHED
    with JournalReader(first.journal) as reader:
        got = [(s.kind, s.outcome) for s in reader.steps()]
    assert got == [("temperature", "completed"), ("ccd_ramp", "interrupted"), ("rest", "completed")]


def test_finished_runs_are_not_resumed(tmp_path: Path) -> None:
    run = run_sim(protocol_text("  - rest: {for: 1 min}\n"), tmp_path)
    assert run.outcome.state is RunState.FINISHED
    with pytest.raises(UserError, match="finished"):
        resume(run.journal, tmp_path)


def test_a_short_right_after_a_resume_is_caught_by_the_fresh_detector(tmp_path: Path) -> None:
    """The detector's learned references are not checkpointed: after a resume it starts
    fresh. A cell that shorted during the gap must still be caught at once (the absolute
    voltage floor judges it until a reference is learned), not cycled on."""
    steps = (
        "  - temperature: {setpoint: 125 degC, band: 0.5 degC, soak: 2 min}\n"
        "  - cycle: {current_density: 1 mA/cm^2, half_cycle: 10 min, rest: 1 min, count: 5,"
        " on_short: end}\n"
    )
    first = run_sim(protocol_text(steps), tmp_path, during=interrupted_at(45 * 60))
    assert first.outcome.state is RunState.INTERRUPTED
    with JournalReader(first.journal) as reader:
        t_before = float(reader.sample_columns("t")["t"][-1])
    rig = simulated_rig(tmp_path / "data")
    outcome = resume_run(
        first.journal,
        rig,
        options=RunOptions(virtual=True, handle_signals=False, faults=("cell_short=hard",)),
    )
    assert outcome.state is RunState.FINISHED
    assert "hard short" in outcome.reason
    with JournalReader(first.journal) as reader:
        cycle = reader.steps()[1]
        shorts = [e for e in reader.events() if e.kind == "hard_short"]
        current_on = reader.sample_columns("t", "source")
    assert cycle.result is not None
    assert cycle.result["cycles_completed"] < 5
    assert len(shorts) == 1
    # caught once current flows again (the re-heat comes first); with no learned reference
    # the floor rule confirms over 11 samples (2 with a reference): 10 s at 1 Hz
    flowing = current_on["t"][(current_on["t"] > t_before) & (current_on["source"] == "current")]
    assert shorts[0].t - float(flowing[0]) <= 10.0 + 1e-6
    assert "no running resistance yet" in shorts[0].data["reason"]
