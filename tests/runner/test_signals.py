"""SIGTERM and SIGINT to a real `heatcycler run` on the wire-level rig.

systemd stops the service with SIGTERM; a technician presses Ctrl-C. Either way the run
stops in the safe state — the served rig itself shows the SMU output off and the heater
duty at 0, well before the board's lease could have done it — the journal says
``interrupted`` (exit 130), and `heatcycler resume` finishes the run.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from procs import (
    Facts,
    assert_one_sequence,
    assert_steps_once,
    controlled,
    query,
    run_to_end,
    served_rig,
    signal_protocol,
    start,
    the_journal,
    wait_journal,
    write,
)

from controller.journal import JournalReader

pytestmark = [pytest.mark.wire, pytest.mark.slow]

#: long enough that a duty of 0 right after the exit is the controller's safe state
LEASE = 10.0  # the board accepts at most 10 s


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_run_safe_and_resumable(tmp_path: Path, sig: signal.Signals) -> None:
    protocol = write(tmp_path / "p.yaml", signal_protocol())
    with served_rig(tmp_path / "rig", protocol, lease=f"{LEASE:g} s") as rig:
        run = start(
            tmp_path,
            "run",
            "run", str(protocol), "--rig", str(rig.rig), "--data-dir", str(rig.data),
            "--console", "quiet", "--json",
        )  # fmt: skip
        with controlled(run):
            journal = the_journal(rig.data, run)

            def heating(reader: JournalReader) -> bool:
                rows = query(reader, "SELECT t, duty FROM samples WHERE step = 1 ORDER BY seq")
                return len(rows) >= 4 and rows[-1][1] > 0

            wait_journal(journal, heating, controller=run, what="heating")
            live = rig.status()
            sent = time.monotonic()
            run.signal(sig)
            code = run.wait()
            safe = rig.status()
            elapsed = time.monotonic() - sent
        assert live["heater_duty"] > 0
        assert live["smu_output"] is True
        assert code == 130, run.output()
        assert elapsed < LEASE - 2  # the board's lease cannot have done it
        assert safe["heater_duty"] == 0
        assert safe["smu_output"] is False
        assert '"state": "interrupted"' in run.out.read_text()

        facts = Facts.read(journal)
        assert facts.meta["state"] == "interrupted"
        assert sig.name in facts.meta["reason"]
        assert [e.data["to"] for e in facts.kinds("state")] == ["running", "interrupted"]
        safe_events = facts.kinds("safe_state")
        assert len(safe_events) == 1
        assert "heater off, SMU output off" in safe_events[0].message
        assert facts.steps[0].outcome is None  # the step stays open: resume continues it

        resume = run_to_end(
            tmp_path,
            "resume",
            "resume", str(journal), "--rig", str(rig.rig), "--data-dir", str(rig.data),
            "--console", "quiet",
        )  # fmt: skip
        assert resume.proc.returncode == 0, resume.output()
        end = rig.status()
    assert end["heater_duty"] == 0
    assert end["smu_output"] is False

    facts = Facts.read(journal)
    assert facts.meta["state"] == "finished"
    assert_one_sequence(facts)
    assert_steps_once(facts, {1: "completed", 2: "completed"})
    assert len(facts.kinds("gap")) == 1
    assert facts.result(2)["cycles_completed"] == 2
    assert [e.data["to"] for e in facts.kinds("state")] == [
        "running",
        "interrupted",
        "running",
        "finished",
    ]
