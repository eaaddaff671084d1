"""A run's summary (``summary.json`` and ``summary.md``): what a lab notebook needs.

Cell, protocol (name, path, SHA-256 of its text), rig, state and why it ended, times, every
step's outcome and result, the headline results (CCDs, cycles to short, time in band at
each temperature step, electronic conductivity), the time the block spent at ≥ 150 °C
(measured from the samples), faults and trips, and event counts. Missing keys are
``null`` in JSON and "–" in Markdown.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controller.journal import EventRow, JournalReader
from controller.ui.results import (
    THERAPY_DEGC,
    StepInfo,
    findings,
    fmt,
    headline,
    hours,
    number,
    step_infos,
)

#: gaps between stored samples longer than this are not counted as time at temperature
MAX_SAMPLE_GAP_S = 600.0
#: kinds listed one by one under "faults and trips"
FAULT_KINDS = frozenset({"trip", "gap", "hard_short", "voltage_limit"})


@dataclass(frozen=True)
class RunView:
    """A run's metadata, steps and events (no samples): cheap even for long runs."""

    path: Path
    run_id: str
    meta: dict[str, str]
    cell: dict[str, Any]
    steps: list[StepInfo]
    events: list[EventRow]
    samples: int

    @property
    def protocol_name(self) -> str | None:
        return self.meta.get("protocol_name")

    @property
    def area_cm2(self) -> float | None:
        return number(self.cell.get("area_cm2"))

    @property
    def title(self) -> str:
        cell = self.cell.get("id") or "?"
        return f"{self.run_id} — {self.protocol_name or '?'} — cell {cell}"


def _json_or(text: str | None, default: Any) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def load_view(reader: JournalReader, path: Path) -> RunView:
    meta = reader.meta()
    cell = _json_or(meta.get("cell"), {})
    run_id = meta.get("run_id") or path.name.split(".sqlite")[0]
    return RunView(
        path=path,
        run_id=run_id,
        meta=meta,
        cell=cell if isinstance(cell, dict) else {"id": str(cell)},
        steps=step_infos(reader.steps()),
        events=reader.events(),
        samples=reader.last_seq(),
    )


def rig_id(meta: dict[str, str]) -> str | None:
    from controller.service.runs import rig_of

    return rig_of(meta)


def time_at_or_above(t: np.ndarray, temperature: np.ndarray, degc: float) -> float:
    """Seconds the block read ≥ ``degc``: each stored sample counts until the next one
    (gaps over MAX_SAMPLE_GAP_S — an outage — are not counted)."""
    if t.shape[0] < 2:
        return 0.0
    dt = np.diff(t)
    hot = temperature[:-1] >= degc
    ok = hot & (dt <= MAX_SAMPLE_GAP_S)
    return float(dt[ok].sum())


def iso(unix: float | None) -> str | None:
    if unix is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


def build(view: RunView, t: np.ndarray, temperature: np.ndarray) -> dict[str, Any]:
    """The summary document (summary.json)."""
    meta = view.meta
    text = meta.get("protocol_text")
    started = number(_json_or(meta.get("started_unix"), None))
    ended = number(_json_or(meta.get("ended_unix"), None))
    duration = float(t[-1]) if t.shape[0] else None
    if view.steps and view.steps[-1].ended_t is not None:
        duration = max(duration or 0.0, view.steps[-1].ended_t or 0.0)
    f = findings(view.steps)
    counts = Counter(e.kind for e in view.events)
    faults = [
        {
            "t": e.t,
            "unix": e.unix,
            "step": e.step,
            "kind": e.kind,
            "severity": e.severity,
            "message": e.message,
        }
        for e in view.events
        if e.severity == "fault"
        or e.kind in FAULT_KINDS
        or (e.kind == "safe_state" and e.severity != "info")  # not the normal end
    ]
    return {
        "run_id": view.run_id,
        "journal": str(view.path),
        "rig": rig_id(meta),
        "sim": meta.get("sim") == "true" if "sim" in meta else None,
        "seed": number(_json_or(meta.get("seed"), None)),
        "software_version": meta.get("software_version"),
        "protocol": {
            "name": meta.get("protocol_name"),
            "path": meta.get("protocol_path"),
            "sha256": hashlib.sha256(text.encode()).hexdigest() if text else None,
        },
        "cell": view.cell,
        "state": meta.get("state"),
        "reason": meta.get("reason"),
        "started_unix": started,
        "started": iso(started),
        "ended_unix": ended,
        "ended": iso(ended),
        "duration_s": duration,
        "samples": view.samples,
        "headline": headline(view.steps),
        "results": {
            "ccd": f.ccd,
            "cycles": f.cycles,
            "cycles_to_short": next(
                (c["cycles_to_short"] for c in reversed(f.cycles) if c["cycles_to_short"]),
                None,
            ),
            "temperature": f.temperature,
            "conductivity": f.conductivity,
            "therapy_in_band_s": f.therapy_in_band_s,
            f"time_at_or_above_{THERAPY_DEGC:g}_degC_s": time_at_or_above(
                t, temperature, THERAPY_DEGC
            ),
        },
        "steps": [
            {
                "step": s.step,
                "path": s.path,
                "kind": s.kind,
                "label": s.label,
                "outcome": s.outcome,
                "started_t": s.started_t,
                "ended_t": s.ended_t,
                "duration_s": s.duration_s,
                "result": s.result,
            }
            for s in view.steps
        ],
        "events": dict(sorted(counts.items())),
        "faults": faults,
    }


def _step_result_text(step: dict[str, Any]) -> str:
    r = step.get("result") or {}
    kind = step.get("kind")
    if kind == "temperature":
        return (
            f"{fmt(r.get('setpoint_degC'), 'g', '°C')}, in band "
            f"{hours(number(r.get('time_in_band_s')))}, "
            f"mean {fmt(number(r.get('mean_degC')), '.2f', '°C')}"
        )
    if kind == "cycle":
        short = r.get("cycles_to_short")
        return f"{fmt(r.get('cycles_completed'))} cycles" + (
            f", short after {short} cycles" if short is not None else ""
        )
    if kind == "ccd_ramp":
        return f"CCD {fmt(number(r.get('ccd_mA_per_cm2')), '.2g', 'mA/cm²')}"
    if kind == "dc_polarization":
        return (
            f"σe {fmt(number(r.get('conductivity_S_per_cm')), '.3g', 'S/cm')}, "
            f"I {fmt(number(r.get('steady_current_A')), '.3g', 'A')}, "
            f"steady {fmt(r.get('steady'))}"
        )
    if "ended_by" in r or "final_voltage_V" in r:
        final = fmt(number(r.get("final_voltage_V")), ".4f", "V")
        return f"ended by {fmt(r.get('ended_by'))}, {final}"
    return ""


def markdown(doc: dict[str, Any], plots: list[str] | None = None) -> str:
    """summary.md: the same facts for a lab notebook."""
    cell = doc.get("cell") or {}
    proto = doc.get("protocol") or {}
    res = doc.get("results") or {}
    lines = [
        f"# Run {doc['run_id']}",
        "",
        f"- **Result:** {doc.get('headline') or '–'}",
        f"- **State:** {fmt(doc.get('state'))} ({fmt(doc.get('reason'))})",
        f"- **Cell:** {fmt(cell.get('id'))}, {fmt(cell.get('electrolyte'))}, "
        f"{fmt(cell.get('type'))}, {fmt(number(cell.get('area_cm2')), 'g', 'cm²')}, "
        f"{fmt(number(cell.get('thickness_cm')), 'g', 'cm')} thick",
        f"- **Protocol:** {fmt(proto.get('name'))} ({fmt(proto.get('path'))}, "
        f"sha256 {str(proto.get('sha256') or '–')[:12]})",
        f"- **Rig:** {fmt(doc.get('rig'))}"
        + (" (simulated)" if doc.get("sim") else "")
        + f", software {fmt(doc.get('software_version'))}",
        f"- **Started:** {fmt(doc.get('started'))}; **duration** {hours(doc.get('duration_s'))}; "
        f"{doc.get('samples', 0)} samples",
        f"- **Time at ≥ {THERAPY_DEGC:g} °C:** "
        f"{hours(res.get(f'time_at_or_above_{THERAPY_DEGC:g}_degC_s'))} "
        f"(in band of therapy steps {hours(res.get('therapy_in_band_s'))})",
        "",
        "## Steps",
        "",
        "| step | kind | label | outcome | duration | result |",
        "|---:|---|---|---|---:|---|",
    ]
    for s in doc.get("steps", []):
        lines.append(
            f"| {s['step']} | {s['kind']} | {fmt(s.get('label'))} | {fmt(s.get('outcome'))} "
            f"| {hours(s.get('duration_s'))} | {_step_result_text(s)} |"
        )
    lines += ["", "## Results", ""]
    for c in res.get("ccd", []):
        lines.append(
            f"- CCD (step {c['step']}, {fmt(c.get('temperature_degC'), 'g', '°C')}): "
            f"{fmt(c.get('ccd_mA_per_cm2'), '.2g', 'mA/cm²')}"
        )
    for c in res.get("cycles", []):
        lines.append(
            f"- Cycles (step {c['step']} {fmt(c.get('label'))}): "
            f"{fmt(c.get('cycles_completed'))} completed, to short "
            f"{fmt(c.get('cycles_to_short'))}"
        )
    for c in res.get("temperature", []):
        lines.append(
            f"- {fmt(c.get('setpoint_degC'), 'g', '°C')} (step {c['step']} "
            f"{fmt(c.get('label'))}): in band {hours(c.get('time_in_band_s'))} of "
            f"{hours(c.get('soak_s'))}, rms error {fmt(c.get('rms_error_K'), '.2f', 'K')}"
        )
    for c in res.get("conductivity", []):
        lines.append(
            f"- Electronic conductivity (step {c['step']}): "
            f"{fmt(c.get('conductivity_S_per_cm'), '.3g', 'S/cm')} "
            f"(steady: {fmt(c.get('steady'))})"
        )
    lines += ["", "## Events", ""]
    events = doc.get("events") or {}
    lines.append(", ".join(f"{k}: {v}" for k, v in events.items()) or "none")
    faults = doc.get("faults") or []
    if faults:
        lines += ["", "## Faults, trips and shorts", ""]
        for e in faults[:50]:
            lines.append(
                f"- {hours(e['t'])} step {e['step']} **{e['kind']}** ({e['severity']}): "
                f"{e['message']}"
            )
        if len(faults) > 50:
            lines.append(f"- … {len(faults) - 50} more (summary.json)")
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    return "\n".join(lines) + "\n"
