"""A run's findings read from its step records: CCDs, cycles to short, soaks, σ_e.

Pure functions over the journal's ``steps`` rows (``StepRow`` or plain dicts), tolerant of
missing keys (older or foreign journals give ``None``, shown as "–"). ``list_runs`` uses
:func:`headline` for the one-line result of ``heatcycler runs``; reports and comparisons use
:func:`findings`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

DASH = "–"
#: a temperature step at or above this setpoint counts as heat therapy
THERAPY_DEGC = 150.0


@dataclass(frozen=True, slots=True)
class StepInfo:
    """One executed step as reports show it (a view of a ``steps`` row)."""

    step: int
    path: str
    kind: str
    label: str | None
    started_t: float
    ended_t: float | None
    outcome: str | None
    result: dict[str, Any]

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_t is None else self.ended_t - self.started_t

    @property
    def name(self) -> str:
        return f"{self.step} {self.kind}" + (f" ({self.label})" if self.label else "")


@dataclass(frozen=True, slots=True)
class Findings:
    """The results worth a headline, each with the step it came from."""

    ccd: list[dict[str, Any]] = field(default_factory=list)  # step, label, mA/cm², degC
    cycles: list[dict[str, Any]] = field(default_factory=list)  # step, label, to short, done
    temperature: list[dict[str, Any]] = field(default_factory=list)  # setpoint, time in band
    conductivity: list[dict[str, Any]] = field(default_factory=list)  # S/cm, steady
    therapy_in_band_s: float = 0.0  # time in band of temperature steps ≥ THERAPY_DEGC

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def step_infos(rows: Iterable[Any]) -> list[StepInfo]:
    """``StepRow``s (or dicts with the same keys) → :class:`StepInfo`s."""
    out = []
    for r in rows:
        get = r.get if isinstance(r, Mapping) else lambda k, r=r: getattr(r, k, None)
        result = get("result")
        if isinstance(result, str):
            try:
                result = json.loads(result)
            except json.JSONDecodeError:
                result = None
        out.append(
            StepInfo(
                step=int(number(get("step")) or 0),
                path=str(get("path") or get("step") or ""),
                kind=str(get("kind") or "?"),
                label=get("label"),
                started_t=number(get("started_t")) or 0.0,
                ended_t=number(get("ended_t")),
                outcome=get("outcome"),
                result=result if isinstance(result, dict) else {},
            )
        )
    return out


def number(value: Any) -> float | None:
    """A finite float, or None (missing, null, text, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def findings(steps: Iterable[StepInfo]) -> Findings:
    f = Findings()
    therapy = 0.0
    for s in steps:
        r = s.result
        base = {"step": s.step, "label": s.label, "outcome": s.outcome}
        if s.kind == "ccd_ramp":
            f.ccd.append(
                base
                | {
                    "ccd_mA_per_cm2": number(r.get("ccd_mA_per_cm2")),
                    "max_mA_per_cm2": number(r.get("max_mA_per_cm2")),
                    "temperature_degC": number(r.get("temperature_degC")),
                }
            )
        elif s.kind == "cycle":
            to_short = r.get("cycles_to_short")
            f.cycles.append(
                base
                | {
                    "cycles_to_short": _int(to_short),
                    "cycles_completed": _int(r.get("cycles_completed")),
                    "current_density_mA_per_cm2": number(r.get("current_density_mA_per_cm2")),
                    "temperature_degC": number(r.get("temperature_degC")),
                }
            )
        elif s.kind == "temperature":
            setpoint = number(r.get("setpoint_degC"))
            in_band = number(r.get("time_in_band_s"))
            f.temperature.append(
                base
                | {
                    "setpoint_degC": setpoint,
                    "time_in_band_s": in_band,
                    "soak_s": number(r.get("soak_s")),
                    "mean_degC": number(r.get("mean_degC")),
                    "rms_error_K": number(r.get("rms_error_K")),
                }
            )
            if setpoint is not None and setpoint >= THERAPY_DEGC and in_band is not None:
                therapy += in_band
        elif s.kind == "dc_polarization":
            f.conductivity.append(
                base
                | {
                    "conductivity_S_per_cm": number(r.get("conductivity_S_per_cm")),
                    "steady_current_A": number(r.get("steady_current_A")),
                    "voltage_V": number(r.get("voltage_V")),
                    "steady": r.get("steady"),
                }
            )
    return Findings(f.ccd, f.cycles, f.temperature, f.conductivity, therapy)


def _int(value: Any) -> int | None:
    n = number(value)
    return None if n is None else int(n)


def headline(steps: Iterable[StepInfo]) -> str | None:
    """The run's result in a few words: "CCD 2.6 mA/cm²", "short after 154 cycles", …"""
    f = findings(steps)
    parts: list[str] = []
    for c in f.ccd:
        if c["ccd_mA_per_cm2"] is not None:
            parts.append(f"CCD {_density(c['ccd_mA_per_cm2'])} mA/cm²")
        elif c["outcome"] == "completed":
            top = c["max_mA_per_cm2"]
            parts.append("no short up to " + (f"{top:.2g} mA/cm²" if top else "the last level"))
    for c in f.cycles:
        if c["cycles_to_short"] is not None:
            parts.append(f"short after {c['cycles_to_short']} cycles")
    last_cycles = f.cycles[-1] if f.cycles else None
    if last_cycles and last_cycles["cycles_to_short"] is None and not parts:
        done = last_cycles["cycles_completed"]
        if done is not None:
            parts.append(f"{done} cycles, no short")
    for c in f.conductivity:
        if c["conductivity_S_per_cm"] is not None:
            parts.append(f"σe {c['conductivity_S_per_cm']:.2e} S/cm")
    return ", ".join(parts) or None


def _density(value: float) -> str:
    return f"{value:.1f}" if abs(value) >= 0.95 else f"{value:.2g}"


def fmt(value: Any, spec: str = "", unit: str = "") -> str:
    """``value`` formatted, or "–" when it is missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    text = format(value, spec) if spec else str(value)
    return f"{text} {unit}".rstrip() if unit else text


def hours(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"
