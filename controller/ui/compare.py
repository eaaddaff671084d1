"""``heatcycler compare``: runs side by side (heat therapy vs control): one figure, one table.

The figure: the polarization (largest |V|) of each cycle of each run's final cycling step
against the cycle number, and a bar of cycles to short per run. The table: run, protocol,
cell, therapy (time the block read ≥ 150 °C, from the samples), cycles to short, CCDs,
state. Runs are read one at a
time and only one number per cycle is kept of each.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controller.ui.plots import density_text
from controller.ui.results import THERAPY_DEGC, findings, fmt, hours
from controller.ui.summary import load_view, time_at_or_above


@dataclass
class Compared:
    """One run's line of the comparison."""

    run_id: str
    protocol: str | None
    cell: str | None
    state: str | None
    therapy_s: float
    cycles_to_short: int | None
    cycles_completed: int | None
    ccd_mA_per_cm2: list[float | None]  # noqa: N815 (the unit's spelling)
    cycling_step: str | None
    # the final cycling step's polarization: cycle number (1-based), largest |V| in it
    trace_h: Any = None
    trace_v: Any = None

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("trace_h")
        d.pop("trace_v")
        return d


def load_compared(reader: Any, path: Path) -> Compared:
    view = load_view(reader, path)
    cols = reader.sample_columns("t", "voltage", "temperature", "step", "cycle")
    f = findings(view.steps)
    cycling = [s for s in view.steps if s.kind == "cycle"]
    last = cycling[-1] if cycling else None
    last_f = f.cycles[-1] if f.cycles else None
    trace_h = trace_v = None
    if last is not None:
        lo = int(np.searchsorted(cols["step"], last.step, side="left"))
        hi = int(np.searchsorted(cols["step"], last.step, side="right"))
        if hi > lo:
            cycle = cols["cycle"][lo:hi]
            k = (cycle - cycle[0]).astype(np.int64)
            peak = np.full(int(k.max()) + 1, np.nan)
            np.fmax.at(peak, k, np.abs(cols["voltage"][lo:hi]))
            trace_h, trace_v = np.arange(1, peak.shape[0] + 1, dtype=float), peak
    return Compared(
        run_id=view.run_id,
        protocol=view.protocol_name,
        cell=str(view.cell.get("id")) if view.cell.get("id") is not None else None,
        state=view.meta.get("state"),
        therapy_s=time_at_or_above(cols["t"], cols["temperature"], THERAPY_DEGC),
        cycles_to_short=last_f["cycles_to_short"] if last_f else None,
        cycles_completed=last_f["cycles_completed"] if last_f else None,
        ccd_mA_per_cm2=[c["ccd_mA_per_cm2"] for c in f.ccd],
        cycling_step=last.name if last else None,
        trace_h=trace_h,
        trace_v=trace_v,
    )


def figure(runs: list[Compared]) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5), layout="constrained")
    ax_v, ax_b = fig.subplots(1, 2, width_ratios=[3, 1])
    colours = [f"C{k % 10}" for k in range(len(runs))]
    for r, c in zip(runs, colours, strict=True):
        if r.trace_h is None:
            continue
        label = f"{r.protocol or r.run_id} ({r.cell or '?'})"
        ax_v.plot(r.trace_h, r.trace_v, lw=1.0, color=c, label=label)
        if r.cycles_to_short is not None:
            ax_v.plot(r.trace_h[-1:], r.trace_v[-1:], "x", ms=8, mew=2, color=c)
    ax_v.set_xlabel("cycle in the final cycling step")
    ax_v.set_ylabel("largest |voltage| in the cycle / V")
    ax_v.set_title("polarization per cycle (×: the cycle that shorted)", fontsize=9)
    if ax_v.get_legend_handles_labels()[0]:
        ax_v.legend(fontsize=7, loc="lower left")
    names = [f"{r.cell or '?'}\n{(r.protocol or r.run_id)[:18]}" for r in runs]
    heights = [
        r.cycles_to_short if r.cycles_to_short is not None else (r.cycles_completed or 0)
        for r in runs
    ]
    bars = ax_b.bar(range(len(runs)), heights, color=colours)
    for k, (bar, r) in enumerate(zip(bars, runs, strict=True)):
        if r.cycles_to_short is None:
            bar.set_hatch("//")
            bar.set_alpha(0.5)
        text = str(r.cycles_to_short) if r.cycles_to_short is not None else "no short"
        ax_b.annotate(
            text,
            (k, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )
    ax_b.set_xticks(range(len(runs)), names, fontsize=7)
    ax_b.set_ylabel("cycles to short")
    ax_b.set_title("cycles to short", fontsize=9)
    fig.suptitle("comparison: " + " vs ".join(r.protocol or r.run_id for r in runs), fontsize=10)
    return fig


TABLE = (
    "run",
    "protocol",
    "cell",
    f"therapy (≥ {THERAPY_DEGC:g} °C)",
    "cycles to short",
    "CCD / mA/cm²",
    "state",
)


def table_rows(runs: list[Compared]) -> list[list[str]]:
    return [
        [
            r.run_id,
            fmt(r.protocol),
            fmt(r.cell),
            hours(r.therapy_s) if r.therapy_s else "none",
            str(r.cycles_to_short)
            if r.cycles_to_short is not None
            else (f"no short ({r.cycles_completed} cycles)" if r.cycles_completed else "–"),
            ", ".join(density_text(c) if c is not None else "no short" for c in r.ccd_mA_per_cm2)
            or "–",
            fmt(r.state),
        ]
        for r in runs
    ]


def markdown(runs: list[Compared], png: str) -> str:
    lines = ["# Comparison", "", "| " + " | ".join(TABLE) + " |", "|" + "---|" * len(TABLE)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(runs)]
    lines += ["", f"![comparison]({png})", ""]
    return "\n".join(lines)


def write_compare(runs: list[Compared], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    png = out / "compare.png"
    figure(runs).savefig(png, dpi=110)
    md = out / "compare.md"
    md.write_text(markdown(runs, png.name), encoding="utf-8")
    js = out / "compare.json"
    js.write_text(
        json.dumps([r.row() for r in runs], indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return [png, md, js]
