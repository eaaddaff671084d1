"""kill -9 of a real controller on the wire-level rig, then `heatcycler resume`.

The software rig runs as its own process (`heatcycler sim serve`, speed 1): the
controller reaches it over TCP (SCPI) and a pty (the heater board), exactly as it would
reach a Keithley 2450 and the board. The controller is killed without warning during a
temperature soak and during cycling; `heatcycler resume` must complete the run with one
unbroken sequence of samples, one journaled gap (the last uncommitted batch, ≤ ~1 s, and
the outage), and a soak time and a cycle count that add up — nothing done twice, nothing
lost but the documented batch. Meanwhile the board itself keeps the cell safe: with no
controller refreshing its lease, it drops the heater duty (Klipper's split).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from procs import (
    Facts,
    assert_documented_gap,
    assert_one_sequence,
    assert_steps_once,
    controlled,
    cycle_protocol,
    kill9,
    query,
    run_to_end,
    served_rig,
    soak_protocol,
    start,
    the_journal,
    wait_journal,
    write,
)

from controller.journal import JournalReader

pytestmark = [pytest.mark.wire, pytest.mark.slow]

SETPOINT, BAND, SOAK, EVERY = 30.0, 1.0, 20.0, 0.5
HALF, COUNT = 5.0, 3
CURRENT_DENSITY = 0.02  # mA/cm², cycle_protocol's
LEASE = 3.0
PERIOD = 1.0  # s, the rig's heater.period (the default)
#: a block that loses heat twenty times faster than the default: holding it takes a duty well
#: above 0 (the default block overshoots a small step and soaks at duty 0), so the board's
#: lease has something to drop
LOSSY = ("loss=20",)


def in_band_time(rows: list[tuple[float, float | None]]) -> float:
    """Seconds between consecutive stored samples that were both inside the band."""
    total = 0.0
    for (t0, a), (t1, b) in itertools.pairwise(rows):
        if a is not None and b is not None and abs(a - SETPOINT) <= BAND >= abs(b - SETPOINT):
            total += t1 - t0
    return total


def test_kill_during_a_soak_then_resume_keeps_the_time_in_band(tmp_path: Path) -> None:
    protocol = write(tmp_path / "soak.yaml", soak_protocol(setpoint=SETPOINT, band=BAND, soak=SOAK))
    with served_rig(tmp_path / "rig", protocol, lease=f"{LEASE:g} s", faults=LOSSY) as rig:
        run = start(
            tmp_path,
            "run",
            "run", str(protocol), "--rig", str(rig.rig), "--data-dir", str(rig.data),
            "--console", "quiet",
        )  # fmt: skip
        with controlled(run):
            journal = the_journal(rig.data, run)

            def soaking_a_while(reader: JournalReader) -> bool:
                rows = query(
                    reader, "SELECT t, temperature FROM samples WHERE step = 1 ORDER BY seq"
                )
                # ... and the loop is holding the block with the heater on
                return in_band_time(rows) >= 6.0 and rig.status()["heater_duty"] > 0

            wait_journal(journal, soaking_a_while, controller=run, what="6 s of the soak")
            killed = kill9(run)

        # nobody refreshes the board's lease now: the board drops the duty on its own
        safe = rig.wait_status(lambda s: s["heater_duty"] == 0, within=LEASE + 10)
        assert safe["heater_duty"] == 0, safe
        # the lease, not the controller, did it: the last renewal was at most one control
        # period before the kill
        assert time.time() - killed >= LEASE - PERIOD - 0.5
        cli = rig.status_cli()
        assert cli["heater_duty"] == 0
        assert cli["lease_left"] == 0
        with JournalReader(journal) as reader:
            assert reader.meta()["state"] == "running"  # killed: nobody wrote a final state

        resume = run_to_end(
            tmp_path,
            "resume",
            "resume", str(journal), "--rig", str(rig.rig), "--data-dir", str(rig.data),
            "--console", "quiet",
        )  # fmt: skip
        assert resume.proc.returncode == 0, resume.output()
        after_run = rig.status()
    assert after_run["heater_duty"] == 0
    assert after_run["smu_output"] is False

    facts = Facts.read(journal)
    assert facts.meta["state"] == "finished"
    assert_one_sequence(facts)
    assert_steps_once(facts, {1: "completed", 2: "completed"})
    before, after, gap = assert_documented_gap(facts, killed, every=EVERY)
    assert gap.step == 1 or gap.data["replayed"] >= 0
    assert not [e for e in facts.events if "still sourcing" in e.message]  # 0 A: nothing

    # the soak kept its time in band across the crash: what was spent before the last
    # committed sample counts, the lost batch is done again, nothing counts twice
    soak = facts.result(1)
    assert soak["ended_by"] == "soak"
    assert SOAK <= soak["time_in_band_s"] < SOAK + 2.0
    kept = in_band_time([(r.t, r.temperature) for r in before if r.step == 1])
    added = in_band_time([(r.t, r.temperature) for r in after if r.step == 1])
    assert kept >= 5.0
    assert added < SOAK - 5.0, "the soak started again after the resume"
    assert abs(kept + added - SOAK) <= 3.0, (kept, added)
    assert facts.kinds("safe_state")  # the resumed run ended in the safe state


def test_kill_during_cycling_then_resume_completes_the_count(tmp_path: Path) -> None:
    protocol = write(tmp_path / "cycle.yaml", cycle_protocol(half=HALF, count=COUNT, every=EVERY))
    with served_rig(tmp_path / "rig", protocol, lease=f"{LEASE:g} s") as rig:
        run = start(
            tmp_path,
            "run",
            "run", str(protocol), "--rig", str(rig.rig), "--data-dir", str(rig.data),
            "--console", "quiet",
        )  # fmt: skip
        with controlled(run):
            journal = the_journal(rig.data, run)

            def mid_second_half_of_cycle_2(reader: JournalReader) -> bool:
                rows = query(reader, "SELECT t FROM samples WHERE cycle = 2 ORDER BY seq")
                return bool(rows) and rows[-1][0] - rows[0][0] >= HALF * 1.5

            wait_journal(journal, mid_second_half_of_cycle_2, controller=run, what="cycle 2")
            killed = kill9(run)
        with JournalReader(journal) as reader:
            assert reader.meta()["state"] == "running"
        resume = run_to_end(
            tmp_path,
            "resume",
            "resume", str(journal), "--rig", str(rig.rig), "--data-dir", str(rig.data),
            "--console", "quiet",
        )  # fmt: skip
        assert resume.proc.returncode == 0, resume.output()
        assert rig.status()["smu_output"] is False

    facts = Facts.read(journal)
    assert facts.meta["state"] == "finished"
    assert_one_sequence(facts)
    assert_steps_once(facts, {1: "completed"})
    before, after, _ = assert_documented_gap(facts, killed, every=EVERY)
    assert before[-1].cycle == 2
    # an SMU has no lease: it was still sourcing after the kill, and the resume says so
    (left,) = [e for e in facts.events if "still sourcing" in e.message]
    assert left.severity == "warning"
    assert left.data["function"] == "current"
    assert abs(left.data["level"]) == pytest.approx(CURRENT_DENSITY * 0.785e-3, rel=0.05)

    result = facts.result(1)
    assert result["cycles_completed"] == COUNT
    assert result["ended_by"] == "count"
    cycles = [r.cycle for r in facts.samples]
    assert max(cycles) == COUNT
    assert all(b >= a for a, b in itertools.pairwise(cycles)), "cycle went back"
    # time and charge under current add up to the protocol's, counted once
    planned = 2 * HALF * COUNT
    assert abs(result["duration_s"] - planned) <= 1.0, result["duration_s"]
    charge = CURRENT_DENSITY * planned / 3600  # mAh/cm²
    assert result["charge_mAh_per_cm2"] == pytest.approx(charge, rel=0.05)
    # the cycle book (areal capacity) kept the charge passed before the crash too
    assert result["areal_capacity_mAh_per_cm2"] == pytest.approx(charge, rel=0.05)
    assert after[0].cycle == before[-1].cycle  # the resumed samples continue cycle 2

    # six halves in all: the interrupted half continued with the rest of its time (it was
    # neither restarted as a new half nor skipped)
    halves: list[list[tuple[int, float]]] = []
    sign = 0.0
    for r in facts.samples:
        if r.source != "current" or not r.level:
            continue
        s = 1.0 if r.level > 0 else -1.0
        if s != sign:
            halves.append([])
            sign = s
        halves[-1].append((r.seq, r.t))
    assert len(halves) == 2 * COUNT
    cut = before[-1].seq
    interrupted = next(h for h in halves if h[0][0] <= cut < h[-1][0])
    pre = [t for seq, t in interrupted if seq <= cut]
    post = [t for seq, t in interrupted if seq > cut]
    done = (pre[-1] - pre[0]) + (post[-1] - post[0])
    assert pre[-1] - pre[0] >= 1.0
    assert post[-1] - post[0] >= 1.0
    assert abs(done - HALF) <= 2 * EVERY + 0.5, done
