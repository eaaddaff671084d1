"""Report and export of a journal written by the runner itself (`heatcycler run --sim`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from controller.cli import main
from controller.detect.bdf import read_bdf
from controller.journal import JournalReader

PROTOCOL = """\
name: short-cycle
cell: {id: T1, electrolyte: LiBH4, type: symmetric, area: 0.785 cm^2, thickness: 1.0 mm}
safety:
  voltage: {min: -1 V, max: 1 V}
  temperature_max: 175 degC
record: {sample_period: 1 s, every: 10 s, delta_voltage: 1 mV}
steps:
  - temperature: {label: warm, setpoint: 125 degC, ramp: 10 degC/min, band: 0.5 degC, soak: 10 min}
  - cycle: {label: cyc, current_density: 2 mA/cm^2, half_cycle: 10 min, rest: 1 min, count: 3}
"""


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("real")
    protocol = d / "short.yaml"
    protocol.write_text(PROTOCOL)
    code = main(
        ["run", str(protocol), "--sim", "--data-dir", str(d / "data"), "--console", "quiet"]
    )
    assert code == 0
    (journal,) = (d / "data").glob("*.sqlite")
    return journal


def test_report_of_a_runner_journal(
    real_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(real_run), "--out", str(tmp_path)]) == 0
    assert "3 cycles, no short" in capsys.readouterr().out
    assert {p.name for p in tmp_path.iterdir()} == {
        "overview.png",
        "cycles.png",
        "summary.md",
        "summary.json",
    }
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["state"] == "finished"
    assert doc["results"]["cycles"][0]["cycles_completed"] == 3
    assert doc["results"]["temperature"][0]["time_in_band_s"] == pytest.approx(600, abs=2)
    assert doc["faults"] == []  # the safe state at the normal end is not a fault


def test_export_of_a_runner_journal(real_run: Path, tmp_path: Path) -> None:
    assert main(["export", str(real_run), "--out", str(tmp_path)]) == 0
    (csv,) = tmp_path.glob("sim__T1__*_001.bdf.csv")
    trace = read_bdf(csv)
    with JournalReader(real_run) as reader:
        cols = reader.sample_columns("t", "voltage", "current")
    assert len(trace) == cols["t"].shape[0] > 300
    assert np.array_equal(trace.voltage, cols["voltage"])
    assert np.array_equal(trace.current, cols["current"])
