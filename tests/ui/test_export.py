"""BDF export: headers, row count and values round-trip; file names; the sidecar."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from controller.detect.bdf import read_bdf
from controller.journal import JournalReader
from controller.problems import UserError
from controller.ui.export import HEADER, export_run
from tests.ui.journals import WrittenRun

EXPECTED_HEADER = [
    "Test Time / s",
    "Voltage / V",
    "Current / A",
    "Unix Time / s",
    "Cycle Count / 1",
    "Step Count / 1",
    "Step Time / s",
    "Record Index / 1",
    "Temperature T1 / degC",
    "Setpoint T1 / degC",
    "Heater Duty / 1",
    "Current Density / A/cm^2",
    "Source Current Level / A",
    "Source Voltage Level / V",
    "Source Mode / 1",
]


def _export(run: WrittenRun, fmt: str, out: Path, **kw: str) -> tuple[Path, Path, int]:
    with JournalReader(run.path) as reader:
        done = export_run(reader, run.path, fmt, out, **kw)
    return done.data, done.metadata, done.rows


def test_csv_rereads_with_headers_rows_and_values(therapy_run: WrittenRun, tmp_path: Path) -> None:
    data, _, rows = _export(therapy_run, "csv", tmp_path)
    assert data.name == "sim__S07__20260101_001.bdf.csv"
    with data.open() as fh:
        header = [h.strip('"') for h in fh.readline().rstrip("\n").split(",")]
    assert header == EXPECTED_HEADER == HEADER
    with JournalReader(therapy_run.path) as reader:
        cols = reader.sample_columns("t", "voltage", "current", "temperature", "step", "cycle")
        n = reader.last_seq()
    assert rows == n == 23722
    trace = read_bdf(data)  # the project's own BDF reader
    assert len(trace) == n
    # floats are written in shortest round-trip form: bit-identical after re-reading
    assert np.array_equal(trace.t, cols["t"])
    assert np.array_equal(trace.voltage, cols["voltage"])
    assert np.array_equal(trace.current, cols["current"])
    assert trace.temperature is not None
    assert np.array_equal(trace.temperature, cols["temperature"])
    assert trace.step is not None
    assert np.array_equal(trace.step, cols["step"].astype(int))
    assert trace.cycle is not None
    assert np.array_equal(trace.cycle, cols["cycle"].astype(int))


def test_parquet_columns_and_project_quantities(ccd_run: WrittenRun, tmp_path: Path) -> None:
    data, meta_path, rows = _export(ccd_run, "parquet", tmp_path, institution="KIT IAM")
    assert data.name == "KIT-IAM__S01__20260121_001.bdf.parquet"
    table = pq.read_table(data)
    assert table.column_names == EXPECTED_HEADER
    assert table.num_rows == rows
    with JournalReader(ccd_run.path) as reader:
        rows_j = reader.samples()
        steps = {s.step: s.started_t for s in reader.steps()}
    assert rows == len(rows_j)
    d = table.to_pydict()
    area = ccd_run.protocol.cell.area_cm2
    for k in (0, len(rows_j) // 2, len(rows_j) - 1):
        s = rows_j[k]
        assert d["Record Index / 1"][k] == s.seq
        assert d["Current Density / A/cm^2"][k] == pytest.approx(s.current / area)
        assert d["Step Time / s"][k] == pytest.approx(s.t - steps[s.step])
        assert d["Setpoint T1 / degC"][k] == s.setpoint
        mode = d["Source Mode / 1"][k]
        assert mode == {"off": 0, "current": 1, "voltage": 2}[s.source]
        if mode == 1:
            assert d["Source Current Level / A"][k] == s.level
            assert d["Source Voltage Level / V"][k] is None
        else:
            assert d["Source Current Level / A"][k] is None
    meta = json.loads(meta_path.read_text())
    assert meta_path.name == "KIT-IAM__S01__20260121_001.bdf.metadata.json"
    assert meta["sign_convention"].startswith(
        "positive current plates lithium on the working electrode"
    )
    assert meta["files"] == {"parquet": data.name}
    assert meta["cell"]["area_cm2"] == area
    assert meta["protocol"]["name"] == "ccd-ramp-160C"
    assert len(meta["protocol"]["sha256"]) == 64
    assert [s["outcome"] for s in meta["steps"]] == ["completed", "short"]
    assert meta["results"]["ccd"][0]["ccd_mA_per_cm2"] == pytest.approx(4.0)
    units = {c["label"]: c["unit"] for c in meta["columns"]}
    assert all(label.endswith(f" / {unit}") for label, unit in units.items())
    custom = meta["battinfo_dataset"]["dataset"]["variable_measured"]
    assert {c["name"] for c in custom} == set(EXPECTED_HEADER[9:])


def test_file_numbers_per_run_and_both_formats_share_the_sidecar(
    therapy_run: WrittenRun, tmp_path: Path
) -> None:
    a, meta, _ = _export(therapy_run, "csv", tmp_path)
    again, _, _ = _export(therapy_run, "csv", tmp_path)
    assert again == a  # re-exporting a run overwrites its own file
    b, meta_b, _ = _export(therapy_run, "parquet", tmp_path)
    assert meta_b == meta
    assert b.name == "sim__S07__20260101_001.bdf.parquet"
    doc = json.loads(meta.read_text())
    assert doc["files"] == {"csv": a.name, "parquet": b.name}
    # another run of the same cell on the same day gets the next number
    other = json.loads(meta.read_text())
    other["run"]["run_id"] = "someone-else"
    (tmp_path / "sim__S07__20260101_002.bdf.metadata.json").write_text(json.dumps(other))
    (tmp_path / "sim__S07__20260101_001.bdf.metadata.json").write_text(json.dumps(other))
    c, _, _ = _export(therapy_run, "csv", tmp_path)
    assert c.name == "sim__S07__20260101_003.bdf.csv"


def test_unknown_format_is_a_user_error(ccd_run: WrittenRun, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown format 'xlsx'"):
        _export(ccd_run, "xlsx", tmp_path)


def test_nan_free_required_columns(dcpol_run: WrittenRun, tmp_path: Path) -> None:
    data, _, rows = _export(dcpol_run, "parquet", tmp_path)
    d = pq.read_table(data).to_pydict()
    for name in EXPECTED_HEADER[:8]:
        assert all(v is not None and math.isfinite(v) for v in d[name]), name
    assert set(d["Source Mode / 1"]) == {0, 2}  # rest, then the potentiostat
    assert rows == len(d["Test Time / s"])
