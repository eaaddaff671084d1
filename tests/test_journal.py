"""The journal: sequence numbers, step records, checkpoints, and what a kill -9 loses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from controller.journal import Journal, JournalReader, is_locked, new_run_id
from controller.samples import Sample


def _sample(i: int) -> Sample:
    return Sample(t=float(i), voltage=0.01 * i, current=1e-3, temperature=125.0, step=1, cycle=i)


@pytest.mark.parametrize("threaded", [False, True])
async def test_samples_events_steps_round_trip(tmp_path: Path, threaded: bool) -> None:
    journal = Journal.create(
        tmp_path / "run.sqlite",
        {"protocol_text": "name: x\n", "rig": {"rig": "sim"}},
        threaded=threaded,
    )
    journal.start_step(1, "1", "cycle", "precycle", t=0.0, unix=100.0)
    seqs = [journal.add_sample(_sample(i)) for i in range(1, 6)]
    event = journal.add_event(
        "soft_short",
        "partial collapse",
        t=3.0,
        unix=103.0,
        step=1,
        severity="warning",
        data={"depth": 0.4},
    )
    journal.end_step(1, "completed", {"cycles": 5}, t=5.0, unix=105.0)
    journal.checkpoint({"step": [1], "cycle": 5}, t=5.0, unix=105.0)
    await journal.flush()

    assert seqs == [1, 2, 3, 4, 5]
    assert event == 1
    with JournalReader(tmp_path / "run.sqlite") as reader:
        assert [s.seq for s in reader.samples()] == [1, 2, 3, 4, 5]
        assert [s.seq for s in reader.samples(after=3)] == [4, 5]
        assert reader.samples()[2].voltage == pytest.approx(0.03)
        (ev,) = reader.events()
        assert (ev.kind, ev.severity, ev.sample_seq, ev.data) == (
            "soft_short",
            "warning",
            5,
            {"depth": 0.4},
        )
        (step,) = reader.steps()
        assert (step.kind, step.label, step.outcome, step.result) == (
            "cycle",
            "precycle",
            "completed",
            {"cycles": 5},
        )
        cp = reader.last_checkpoint()
        assert cp is not None
        assert cp.state == {"step": [1], "cycle": 5}
        assert cp.sample_seq == 5
        meta = reader.meta()
        assert meta["protocol_text"] == "name: x\n"
        assert meta["rig"] == '{"rig": "sim"}'
        cols = reader.sample_columns("t", "voltage")
        assert list(cols["t"]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    journal.close()


def test_reopened_journal_continues_the_sequence(tmp_path: Path) -> None:
    path = tmp_path / "run.sqlite"
    journal = Journal.create(path, {}, threaded=False)
    for i in range(1, 4):
        journal.add_sample(_sample(i))
    journal.close()
    again = Journal.open(path, threaded=False)
    assert again.add_sample(_sample(4)) == 4
    again.close()
    with JournalReader(path) as reader:
        assert [s.seq for s in reader.samples()] == [1, 2, 3, 4]


def test_inline_journal_commits_by_virtual_time(tmp_path: Path) -> None:
    """Virtual-time journals batch by the samples' own clock, not by wall time."""
    path = tmp_path / "run.sqlite"
    journal = Journal.create(path, {}, threaded=False, commit_interval=10.0)
    for i in range(1, 10):
        journal.add_sample(_sample(i))
    with JournalReader(path) as reader:
        assert reader.last_seq() == 0  # 9 s of samples, not committed yet
    journal.add_sample(_sample(12))
    with JournalReader(path) as reader:
        assert reader.last_seq() == 10
    journal.close()


def test_cursor_only_moves_forward(tmp_path: Path) -> None:
    path = tmp_path / "run.sqlite"
    Journal.create(path, {}, threaded=False).close()
    with JournalReader(path) as reader:
        reader.set_cursor("mqtt.samples", 10)
        reader.set_cursor("mqtt.samples", 7)
        assert reader.cursor("mqtt.samples") == 10
        assert reader.cursor("mqtt.events") == 0


def test_lock_tells_a_live_run_from_a_dead_one(tmp_path: Path) -> None:
    path = tmp_path / "run.sqlite"
    journal = Journal.create(path, {}, threaded=False)
    assert journal.lock()
    assert is_locked(path)
    journal.close()
    assert not is_locked(path)


def test_run_id_sorts_by_time_and_names_rig_and_cell() -> None:
    assert new_run_id("rig-01", "S07/a", 1_767_225_600.0) == "20260101T000000Z-rig-01-S07_a"


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from controller.journal import Journal
    from controller.samples import Sample
    journal = Journal.create(Path(sys.argv[1]), {}, threaded=True, commit_interval=1.0)
    i = 0
    start = time.monotonic()
    print("ready", flush=True)
    while True:
        i += 1
        journal.add_sample(Sample(t=time.monotonic() - start, voltage=0.0, current=0.0))
        time.sleep(0.01)
    """
)


def test_kill_minus_9_loses_at_most_the_last_second(tmp_path: Path) -> None:
    """The durability policy: a killed writer leaves a contiguous prefix, ≤ ~1 s short."""
    path = tmp_path / "run.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(3.3)  # the writer's clock started just before "ready": it wrote ~3.3 s
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with JournalReader(path) as reader:
        seqs = [s.seq for s in reader.samples()]
        times = [s.t for s in reader.samples()]
    assert seqs == list(range(1, len(seqs) + 1)), "committed samples must be a contiguous prefix"
    assert len(seqs) > 100
    # samples are ~10 ms apart; the writer ran ~3.3 s: at most the last ~1 s (+ slack) is lost
    lost_seconds = 3.3 - times[-1]
    assert lost_seconds < 1.6, f"lost {lost_seconds:.2f} s of samples"
