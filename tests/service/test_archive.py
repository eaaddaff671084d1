"""Data-disk care: archiving finished runs (never live or interrupted ones), listing and
reading archived runs, and the journal size figures the doctor plans with."""

from __future__ import annotations

import json
import lzma
import sqlite3
from pathlib import Path

import pytest
from journal_day import size_on_disk, write_day
from servicekit import UNIX0, make_journal

from controller.cli import main
from controller.journal import Journal
from controller.service import archive as archive_module
from controller.service import disk
from controller.service.archive import archive_run, archive_runs
from controller.service.runs import list_runs, open_run

DAY = 86400.0
NOW = UNIX0 + 40 * DAY


def _runs(data: Path) -> dict[str, Path]:
    return {
        "old-done": make_journal(data, "20260101T000000Z-rig-01-done", state="finished"),
        "old-aborted": make_journal(data, "20260101T010000Z-rig-01-abrt", state="aborted"),
        "recent-done": make_journal(
            data, "20260205T000000Z-rig-01-new", state="finished", last_unix=NOW - 2 * DAY
        ),
        "interrupted": make_journal(data, "20260102T000000Z-rig-01-intr", state="running"),
        "signalled": make_journal(data, "20260102T010000Z-rig-01-sig", state="interrupted"),
        "faulted": make_journal(data, "20260103T000000Z-rig-01-flt", state="faulted"),
        "no-state": make_journal(data, "20260104T000000Z-rig-01-nost", state=None),
    }


def _samples(path: Path) -> list[tuple[object, ...]]:
    with open_run(path) as reader:
        return [(s.seq, s.t, s.unix, s.voltage, s.cycle) for s in reader.samples()]


def test_only_finished_runs_older_than_the_age_are_archived(tmp_path: Path) -> None:
    runs = _runs(tmp_path)
    before = {k: _samples(p) for k, p in runs.items()}
    done = archive_runs(tmp_path, older_than=30 * DAY, delete=False, now=NOW)
    outcomes = {o.run_id: o for o in done}
    assert outcomes[runs["old-done"].stem].action == "archived"
    assert outcomes[runs["old-aborted"].stem].action == "archived"
    assert outcomes[runs["recent-done"].stem].reason.startswith("too recent")
    assert outcomes[runs["interrupted"].stem].reason.startswith("not finished (running)")
    assert outcomes[runs["signalled"].stem].reason.startswith("not finished (interrupted)")
    assert outcomes[runs["faulted"].stem].reason.startswith("faulted: resume it (--force)")
    assert outcomes[runs["no-state"].stem].reason.startswith("not finished (no end state)")
    archived = tmp_path / "archive" / f"{runs['old-done'].stem}.sqlite.xz"
    assert archived.exists()
    assert runs["old-done"].exists()  # kept without --delete-after-archive
    # the archive decompresses to the very journal
    assert lzma.decompress(archived.read_bytes()) == runs["old-done"].read_bytes()
    # listed once (as the journal, which is still there)
    listed = [r.run_id for r in list_runs(tmp_path)]
    assert sorted(listed) == sorted(p.stem for p in runs.values())
    # a second pass does not archive the same content again
    redo = archive_runs(tmp_path, older_than=30 * DAY, delete=False, now=NOW)
    again = {o.run_id: o for o in redo}
    assert again[runs["old-done"].stem].reason == "already archived"
    # nothing changed in any journal
    assert {k: _samples(p) for k, p in runs.items()} == before
    # faulted runs go only when asked for
    faulted = archive_run(runs["faulted"], older_than=30 * DAY, now=NOW, include_faulted=True)
    assert faulted.action == "archived"


def test_delete_after_archive_frees_the_space_and_the_run_stays_readable(tmp_path: Path) -> None:
    runs = _runs(tmp_path)
    samples = _samples(runs["old-done"])
    size = runs["old-done"].stat().st_size
    outcome = archive_run(runs["old-done"], delete=True, older_than=30 * DAY, now=NOW)
    assert outcome.action == "archived"
    assert outcome.deleted
    assert outcome.original_size == size
    assert outcome.archived_size < size / 3
    for suffix in ("", "-wal", "-shm"):
        assert not Path(f"{runs['old-done']}{suffix}").exists()
    assert not runs["old-done"].with_suffix(".lock").exists()
    (info,) = [r for r in list_runs(tmp_path) if r.run_id == runs["old-done"].stem]
    assert info.archived
    assert info.state == "finished"
    assert info.samples == 30
    assert info.rig == "rig-01"
    assert not info.interrupted
    assert info.path.endswith(".sqlite.xz")
    assert _samples(Path(info.path)) == samples
    # the summary sidecar is what listing reads; without it the archive is opened
    (tmp_path / "archive" / f"{info.run_id}.json").unlink()
    (again,) = [r for r in list_runs(tmp_path) if r.run_id == info.run_id]
    assert (again.samples, again.state, again.archived) == (30, "finished", True)


def test_a_live_run_is_never_archived(tmp_path: Path) -> None:
    path = make_journal(tmp_path, "20260101T000000Z-rig-01-live", state="finished")
    holder = Journal.open(path, threaded=False)
    assert holder.lock()
    try:
        outcome = archive_run(path, delete=True, now=NOW)
    finally:
        holder.close()
    assert (outcome.action, outcome.reason) == ("skipped", "live: a controller holds its lock")
    assert path.exists()
    assert not (tmp_path / "archive" / f"{path.stem}.sqlite.xz").exists()


def test_an_archive_that_does_not_verify_keeps_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_journal(tmp_path, "20260101T000000Z-rig-01-done", state="finished")

    def bad_compress(journal: Path, target: Path) -> tuple[str, int]:
        digest, size = real_compress(journal, target)
        target.write_bytes(lzma.compress(b"not the journal"))  # a card that corrupts writes
        return digest, size

    real_compress = archive_module.compress
    monkeypatch.setattr(archive_module, "compress", bad_compress)
    (outcome,) = archive_runs(tmp_path, older_than=0, delete=True, now=NOW)
    assert outcome.action == "failed"
    assert "does not decompress to the journal" in outcome.reason
    assert path.exists()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM samples").fetchone() == (30,)


def test_the_wal_is_folded_in_before_compressing(tmp_path: Path) -> None:
    path = tmp_path / "20260101T000000Z-rig-01-wal.sqlite"
    journal = Journal.create(path, {"rig": {"rig": "rig-01"}, "state": "running"}, threaded=False)
    from controller.samples import Sample

    for i in range(1, 201):
        journal.add_sample(Sample(t=float(i), voltage=0.0, current=0.0, unix=UNIX0 + i))
    journal.set_meta("state", "finished")
    journal._commit()  # committed, but (still open) only in the WAL
    assert Path(f"{path}-wal").stat().st_size > 0
    outcome = archive_run(path, delete=False, now=NOW)
    journal.close()
    assert outcome.action == "archived"
    with open_run(tmp_path / "archive" / f"{path.stem}.sqlite.xz") as reader:
        assert reader.last_seq() == 200
        assert reader.meta()["state"] == "finished"


def test_the_archive_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = _runs(tmp_path)
    assert main(["archive", "--data-dir", str(tmp_path), "--older-than", "0", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would archive {runs['recent-done'].stem}" in out
    assert runs["recent-done"].exists()
    assert not (tmp_path / "archive").exists()
    code = main(
        ["archive", "--data-dir", str(tmp_path), "--older-than", "30d", "--delete-after-archive"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert f"archived  {runs['old-done'].stem}" in out
    assert "journal deleted" in out
    assert f"skipped   {runs['interrupted'].stem}  not finished (running)" in out
    assert "freed " in out
    assert main(["archive", "--data-dir", str(tmp_path), "--list"]) == 0
    listing = capsys.readouterr().out
    assert f"{runs['old-done'].stem}" in listing
    line = next(ln for ln in listing.splitlines() if ln.startswith(runs["old-done"].stem))
    assert "archived" in line
    interrupted = next(ln for ln in listing.splitlines() if ln.startswith(runs["interrupted"].stem))
    assert interrupted.endswith("interrupted")
    assert main(["archive", "--data-dir", str(tmp_path), "--list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {r["run_id"]: r["archived"] for r in doc}[runs["old-done"].stem] is True


def test_the_archive_command_refuses_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["archive", "--data-dir", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["archive", "--data-dir", str(tmp_path), "--older-than", "soon"])
    assert "is not an age" in capsys.readouterr().err


# ------------------------------------------------------------ the size figures


def test_the_journal_size_figures_match_a_real_journal(tmp_path: Path) -> None:
    """disk.py's constants, re-measured: a day of samples every 10 s with events, with
    and without a checkpoint a minute (±15 %)."""
    bare = tmp_path / "bare.sqlite"
    counts = write_day(bare, every=10.0, checkpoint_every=None)
    per_sample = size_on_disk(bare) / counts["samples"]
    assert per_sample == pytest.approx(disk.BYTES_PER_SAMPLE, rel=0.15)
    full = tmp_path / "full.sqlite"
    write_day(full, every=10.0, checkpoint_every=60.0)
    assert size_on_disk(full) == pytest.approx(disk.BYTES_PER_DAY_TYPICAL, rel=0.15)
    fixed = size_on_disk(full) - disk.BYTES_PER_SAMPLE * counts["samples"]
    assert fixed == pytest.approx(disk.BYTES_PER_DAY_FIXED, rel=0.15)
    for path in (bare, full):  # samples alone compress least
        ratio = path.stat().st_size / len(lzma.compress(path.read_bytes(), preset=6))
        assert ratio >= disk.ARCHIVE_RATIO
    # the doctor's estimate for a 10-day run follows from them
    est = disk.estimate(10 * DAY)
    assert est.typical == pytest.approx(10 * disk.BYTES_PER_DAY_TYPICAL)
    assert est.worst == pytest.approx(10 * (disk.BYTES_PER_SAMPLE * DAY + disk.BYTES_PER_DAY_FIXED))
    assert est.required == pytest.approx(2 * est.typical + disk.RESERVE)
