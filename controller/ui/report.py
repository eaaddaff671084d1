"""``heatcycler report``: a run's plots (PNG) and its summary (Markdown + JSON).

Reads the journal's sample columns once (numpy, chunked) and draws the figures that apply:
the overview always; cycle profiles if the run cycled; one figure per CCD ramp and per
DC polarization.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.journal import JournalReader
from controller.ui import plots
from controller.ui.summary import RunView, build, load_view, markdown

#: the sample columns reports draw
COLUMNS = ("t", "voltage", "current", "temperature", "setpoint", "step", "cycle", "level")
DPI = 110


@dataclass
class Report:
    out: Path
    summary: dict[str, Any]
    plots: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def figures(view: RunView, cols: plots.Columns) -> dict[str, Any]:
    """name → Figure, for every plot that applies to this run."""
    out: dict[str, Any] = {
        "overview": plots.overview(
            cols, view.steps, view.events, area_cm2=view.area_cm2, title=view.title
        )
    }
    fig = plots.cycle_profiles(cols, view.steps, title=view.title)
    if fig is not None:
        out["cycles"] = fig
    for s in view.steps:
        if s.kind == "ccd_ramp":
            fig = plots.ccd_ramp(cols, s, area_cm2=view.area_cm2, title=view.title)
            if fig is not None:
                out[f"ccd-step{s.step}"] = fig
        elif s.kind == "dc_polarization":
            fig = plots.dc_polarization(cols, s, title=view.title)
            if fig is not None:
                out[f"dc-polarization-step{s.step}"] = fig
    return out


def write_report(reader: JournalReader, path: Path, out: Path) -> Report:
    import matplotlib

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    view = load_view(reader, path)
    cols = plots.Columns.of(reader.sample_columns(*COLUMNS))
    report = Report(out, build(view, cols.t, cols.temperature))
    for name, fig in figures(view, cols).items():
        png = out / f"{name}.png"
        fig.savefig(png, dpi=DPI)
        report.plots.append(png)
    summary_json = out / "summary.json"
    summary_json.write_text(json.dumps(report.summary, indent=1) + "\n", encoding="utf-8")
    summary_md = out / "summary.md"
    summary_md.write_text(
        markdown(report.summary, [str(p) for p in report.plots]), encoding="utf-8"
    )
    report.files = [*report.plots, summary_md, summary_json]
    return report
