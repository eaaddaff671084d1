"""The commands end to end: runs, report, compare, export; bad input is exit 2, no traceback."""

from __future__ import annotations

import json
import lzma
import shutil
from pathlib import Path

import pytest

from controller.cli import main
from controller.journal import Journal
from tests.ui.journals import WrittenRun


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_runs_lists_state_protocol_cell_and_result(
    all_runs: list[WrittenRun], runs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(["runs", "--data-dir", str(runs_dir), "--json"], capsys)
    assert code == 0
    doc = {r["run_id"]: r for r in json.loads(out)}
    assert len(doc) == 4
    got = {r["protocol"]: (r["cell"], r["state"], r["result"]) for r in doc.values()}
    assert got == {
        "heat-therapy-LiBH4": ("S07", "finished", "short after 154 cycles"),
        "control-no-therapy-LiBH4": ("S08", "finished", "short after 38 cycles"),
        "ccd-ramp-160C": ("S01", "finished", "CCD 4.0 mA/cm²"),
        "dc-polarization-LLZO": ("B02", "finished", "σe 4.16e-08 S/cm"),
    }
    therapy = next(r for r in doc.values() if r["cell"] == "S07")
    assert therapy["duration_s"] == pytest.approx(all_runs[0].rehearsal.steps[-1].end)
    code, out, _ = _run(["runs", "--data-dir", str(runs_dir)], capsys)
    assert code == 0
    assert "short after 154 cycles" in out
    assert "2026-01-01 00:00" in out


def test_report_by_run_id_prefix(
    therapy_run: WrittenRun, runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        ["report", "20260101T", "--data-dir", str(runs_dir), "--out", str(tmp_path)], capsys
    )
    assert code == 0, out
    assert "short after 154 cycles" in out
    assert {p.name for p in tmp_path.iterdir()} == {
        "overview.png",
        "cycles.png",
        "summary.md",
        "summary.json",
    }


def test_report_of_an_archived_run(
    ccd_run: WrittenRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    (data / "archive").mkdir(parents=True)
    run_id = ccd_run.path.stem
    with (
        ccd_run.path.open("rb") as src,
        lzma.open(data / "archive" / f"{run_id}.sqlite.xz", "wb") as dst,
    ):
        shutil.copyfileobj(src, dst)
    out_dir = tmp_path / "rep"
    code, _out, err = _run(
        ["report", run_id, "--data-dir", str(data), "--out", str(out_dir)], capsys
    )
    assert code == 0, err
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["results"]["ccd"][0]["ccd_mA_per_cm2"] == pytest.approx(4.0)
    assert (out_dir / "ccd-step2.png").stat().st_size > 10_000


def test_compare_therapy_vs_control(
    therapy_run: WrittenRun,
    control_run: WrittenRun,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _run(
        ["compare", str(therapy_run.path), str(control_run.path), "--out", str(tmp_path)], capsys
    )
    assert code == 0
    rows = json.loads((tmp_path / "compare.json").read_text())
    assert [r["cycles_to_short"] for r in rows] == [154, 38]
    assert rows[0]["therapy_s"] > 6 * 3600
    assert rows[1]["therapy_s"] == 0
    md = (tmp_path / "compare.md").read_text()
    assert "| 154 |" in md
    assert "| 38 |" in md
    assert "![comparison](compare.png)" in md
    assert "154" in out
    assert "control-no-therapy-LiBH4" in out
    from matplotlib.image import imread

    assert imread(tmp_path / "compare.png").shape[1] > 1000


def test_export_cli_writes_named_files(
    dcpol_run: WrittenRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        ["export", str(dcpol_run.path), "--format", "csv", "--out", str(tmp_path)], capsys
    )
    assert code == 0
    assert (tmp_path / "sim__B02__20260131_001.bdf.csv").is_file()
    assert (tmp_path / "sim__B02__20260131_001.bdf.metadata.json").is_file()
    assert "2609 rows" in out


def _empty_journal(path: Path) -> Path:
    Journal.create(path, {"run_id": path.stem}, durable=False, threaded=False).close()
    return path


@pytest.mark.parametrize(
    ("argv", "what"),
    [
        (["report", "{tmp}/missing.sqlite"], "missing.sqlite: no such file"),
        (["report", "{tmp}/notes.txt"], "notes.txt: not a run journal"),
        (["report", "{tmp}/plain.sqlite"], "plain.sqlite: not a run journal (no events, meta"),
        (["report", "{tmp}/empty.sqlite"], "empty.sqlite: the journal has no samples"),
        (["export", "{tmp}/empty.sqlite"], "empty.sqlite: the journal has no samples"),
        (["report", "nosuchrun", "--data-dir", "{tmp}"], "nosuchrun: no such run in"),
        (["report", "nosuchrun", "--data-dir", "{tmp}/absent"], "does not exist"),
        (["report", "{tmp}"], "is a directory, not a run"),
        (["export", "{ccd}", "--format", "xlsx"], "--format xlsx: unknown format"),
        (["compare", "{ccd}"], "compare needs at least two runs"),
        (["runs", "--data-dir", "{tmp}/absent"], "is not a directory"),
    ],
)
def test_bad_input_is_a_user_error(
    argv: list[str],
    what: str,
    tmp_path: Path,
    ccd_run: WrittenRun,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "notes.txt").write_text("not a database, just notes\n" * 100)
    import sqlite3

    with sqlite3.connect(tmp_path / "plain.sqlite") as conn:
        conn.execute("CREATE TABLE samples(x)")
    _empty_journal(tmp_path / "empty.sqlite")
    args = [a.format(tmp=tmp_path, ccd=ccd_run.path) for a in argv]
    code, out, err = _run(
        [*args, "--out", str(tmp_path / "out")] if argv[0] != "runs" else args, capsys
    )
    assert code == 2
    assert what in err
    assert "hint:" in err
    assert "Traceback" not in err + out
