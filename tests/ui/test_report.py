"""Reports from journals of simulated runs: every plot, its axes and markers, the summary."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from controller.journal import JournalReader
from controller.ui import plots
from controller.ui.report import COLUMNS, figures, write_report
from controller.ui.summary import load_view
from tests.ui.journals import WrittenRun


def _figs(run: WrittenRun) -> dict[str, object]:
    with JournalReader(run.path) as reader:
        view = load_view(reader, run.path)
        cols = plots.Columns.of(reader.sample_columns(*COLUMNS))
        return figures(view, cols)


def _step_result(path: Path, kind: str) -> dict[str, object]:
    with JournalReader(path) as reader:
        rows = [s for s in reader.steps() if s.kind == kind]
    assert rows[-1].result is not None
    return rows[-1].result


def test_overview_axes_steps_and_events(therapy_run: WrittenRun) -> None:
    figs = _figs(therapy_run)
    assert set(figs) == {"overview", "cycles"}
    ax_v, ax_j, ax_t = figs["overview"].axes  # type: ignore[attr-defined]
    assert ax_v.get_ylabel() == "voltage / V"
    assert ax_j.get_ylabel() == "current density / mA/cm²"
    assert ax_t.get_ylabel() == "temperature / °C"
    assert ax_t.get_xlabel() == "test time / h"
    labels = {t.get_text() for t in ax_v.texts}
    assert {"post-therapy", "heat-therapy"} <= labels  # wide steps are named
    assert {"1", "2"} & labels  # the narrow ones numbered
    legend = [t.get_text() for t in ax_j.get_legend().get_texts()]
    assert "hard short" in legend
    assert "soft short" in legend
    # the hard short line sits at the short's test time
    with JournalReader(therapy_run.path) as reader:
        short = next(e for e in reader.events() if e.kind == "hard_short")
    xs = [ln.get_xdata()[0] for ln in ax_j.lines if ln.get_label() == "hard short"]
    assert xs == [pytest.approx(short.t / 3600)]
    # temperature reaches the 160 °C therapy setpoint in the plotted data
    setpoint = ax_t.lines[1].get_ydata()
    assert np.nanmax(setpoint) == pytest.approx(160.0)


def test_cycle_profiles_pick_first_middle_and_the_short(therapy_run: WrittenRun) -> None:
    fig = _figs(therapy_run)["cycles"]
    _pre, post = fig.axes  # type: ignore[attr-defined]
    assert post.get_title() == "step 5 cycle (post-therapy)"
    assert post.get_xlabel() == "time in cycle / min"
    assert post.get_ylabel() == "voltage / V"
    names = [ln.get_label() for ln in post.lines if not ln.get_label().startswith("_")]
    assert names[0] == "cycle 1"
    assert names[-1].endswith("(short)")
    assert len(names) == 4
    # a cycle lasts 2 × (30 + 5) min
    full = next(ln for ln in post.lines if ln.get_label() == "cycle 1")
    assert full.get_xdata()[-1] == pytest.approx(70, abs=1)


def test_ccd_plot_marks_the_ccd(ccd_run: WrittenRun) -> None:
    figs = _figs(ccd_run)
    assert set(figs) == {"overview", "ccd-step2"}
    ccd = _step_result(ccd_run.path, "ccd_ramp")["ccd_mA_per_cm2"]
    assert ccd == pytest.approx(4.0)
    by_label = {ax.get_ylabel(): ax for ax in figs["ccd-step2"].axes}  # type: ignore[attr-defined]
    assert set(by_label) == {"voltage / V", "level / mA/cm²", "max |voltage| / V"}
    ax_t, ax_l = by_label["voltage / V"], by_label["max |voltage| / V"]
    assert ax_t.get_xlabel() == "time in ramp / h"
    assert ax_l.get_xlabel() == "current density level / mA/cm²"
    marker = [ln for ln in ax_l.lines if ln.get_label().startswith("CCD")]
    assert marker[0].get_label() == "CCD 4.0 mA/cm²"
    assert marker[0].get_xdata()[0] == pytest.approx(ccd)
    # max |V| per level grows with the level (an ohmic-ish cell), one point per level
    levels, peaks = ax_l.lines[0].get_xdata(), ax_l.lines[0].get_ydata()
    assert levels[0] == pytest.approx(0.2)
    assert len(levels) == 30
    done = np.isfinite(peaks)
    assert done.sum() == 20  # 0.2 … 4.0 were applied
    assert np.all(np.diff(peaks[done]) > 0)
    assert ax_t.texts[0].get_text() == "CCD 4.0 mA/cm²"


def test_dc_polarization_plot_shows_the_steady_current(dcpol_run: WrittenRun) -> None:
    figs = _figs(dcpol_run)
    assert set(figs) == {"overview", "dc-polarization-step2"}
    ax = figs["dc-polarization-step2"].axes[0]  # type: ignore[attr-defined]
    assert ax.get_yscale() == "log"
    assert ax.get_ylabel() == "|current| / µA"
    result = _step_result(dcpol_run.path, "dc_polarization")
    steady = next(ln for ln in ax.lines if ln.get_label().startswith("steady"))
    assert steady.get_ydata()[0] == pytest.approx(abs(result["steady_current_A"]) * 1e6)  # type: ignore[operator]
    assert "σe = 4.16e-08 S/cm" in steady.get_label()
    decay = ax.lines[0].get_ydata()
    assert decay[0] > 100 * decay[-1]  # the ionic current decays


@pytest.mark.parametrize("name", ["therapy_run", "control_run", "ccd_run", "dcpol_run"])
def test_report_writes_pngs_and_summary(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    run: WrittenRun = request.getfixturevalue(name)
    with JournalReader(run.path) as reader:
        report = write_report(reader, run.path, tmp_path)
    assert report.plots
    for png in report.plots:
        image = imread(png)
        assert image.shape[0] > 300
        assert image.shape[1] > 800
        assert image.std() > 0.01  # not blank
    doc = json.loads((tmp_path / "summary.json").read_text())
    md = (tmp_path / "summary.md").read_text()
    with JournalReader(run.path) as reader:
        steps = reader.steps()
        assert doc["samples"] == reader.last_seq()
    assert [s["outcome"] for s in doc["steps"]] == [s.outcome for s in steps]
    assert doc["cell"]["id"] == run.protocol.cell.id
    assert doc["protocol"]["name"] == run.protocol.name
    assert f"# Run {doc['run_id']}" in md
    for png in report.plots:
        assert f"({png.name})" in md


def test_summary_results_match_the_journal(
    therapy_run: WrittenRun, control_run: WrittenRun, tmp_path: Path
) -> None:
    docs = {}
    for run in (therapy_run, control_run):
        with JournalReader(run.path) as reader:
            docs[run.protocol.name] = write_report(
                reader, run.path, tmp_path / run.path.stem
            ).summary
    therapy, control = docs["heat-therapy-LiBH4"], docs["control-no-therapy-LiBH4"]
    expected = _step_result(therapy_run.path, "cycle")["cycles_to_short"]
    assert therapy["results"]["cycles_to_short"] == expected == 154
    assert control["results"]["cycles_to_short"] == 38
    assert therapy["headline"] == "short after 154 cycles"
    at_160 = [t for t in therapy["results"]["temperature"] if t["setpoint_degC"] == 160]
    assert at_160[0]["time_in_band_s"] == pytest.approx(6 * 3600, rel=0.01)
    # measured from the samples: the 6 h soak plus the ramp above 150 °C
    hot = therapy["results"]["time_at_or_above_150_degC_s"]
    assert 6 * 3600 <= hot <= 6.3 * 3600
    assert control["results"]["time_at_or_above_150_degC_s"] == 0
    assert therapy["events"]["hard_short"] == 1
    assert [f["kind"] for f in therapy["faults"]] == ["hard_short"]


def test_foreign_journal_without_meta_keys_reports_dashes(
    ccd_run: WrittenRun, tmp_path: Path
) -> None:
    path = tmp_path / "old.sqlite"
    shutil.copy(ccd_run.path, path)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM meta WHERE key NOT IN ('schema_version')")
        conn.execute("UPDATE steps SET result = '{\"kind\": \"ccd_ramp\"}' WHERE kind='ccd_ramp'")
    with JournalReader(path) as reader:
        report = write_report(reader, path, tmp_path / "out")
    doc = report.summary
    assert doc["run_id"] == "old"
    assert doc["state"] is None
    assert doc["cell"] == {}
    assert doc["results"]["ccd"][0]["ccd_mA_per_cm2"] is None
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "- **State:** – (–)" in md
    assert "CCD –" in md
    assert [p.name for p in report.plots] == ["overview.png", "ccd-step2.png"]


def test_envelope_keeps_a_one_sample_collapse_visible() -> None:
    n = 600_000
    t = np.arange(n, dtype=float)
    v = np.full(n, 0.3)
    v[123_457] = -0.01  # one sample of a short
    v[400_000:400_010] = np.nan  # a stretch without temperature, say
    xs, ys = plots.envelope(t, v)
    assert xs.shape[0] <= 2 * plots.PIXELS + 10
    assert np.nanmin(ys) == -0.01
    assert np.nanmax(ys) == 0.3
    # an empty stretch of time (an outage) breaks the line
    t2 = np.concatenate([t[:300_000], t[300_000:] + 1e6])
    xs2, _ys2 = plots.envelope(t2, v)
    assert np.isnan(xs2).sum() == 1
