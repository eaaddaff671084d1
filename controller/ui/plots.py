"""The report's figures. Each function returns a matplotlib ``Figure`` (Agg, no pyplot
state), so tests can read its axes before it is saved.

Long traces (a week of 1 s samples is ≈ 600 k points) are drawn as min/max envelopes per
pixel column (:func:`envelope`): a collapse of one sample still shows, the line stays
cheap. Current is shown as current density (mA/cm², + plates the working electrode).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from controller.journal import EventRow
from controller.ui.results import StepInfo

Array = NDArray[np.float64]

#: event kinds marked on the overview, with their colour and legend text
EVENT_STYLE: dict[str, tuple[str, str]] = {
    "hard_short": ("#d62728", "hard short"),
    "soft_short": ("#ff7f0e", "soft short"),
    "voltage_limit": ("#9467bd", "voltage limit"),
    "trip": ("#8c564b", "trip"),
    "safe_state": ("#8c564b", "safe state"),
    "gap": ("#7f7f7f", "gap"),
}
PIXELS = 1600  # envelope bins across a full-width axis


def envelope(x: Array, y: Array, bins: int = PIXELS) -> tuple[Array, Array]:
    """Min/max of ``y`` per bin of ``x`` (sorted), as a zig-zag line; raw if short enough.

    NaNs are skipped inside a bin; a bin with only NaNs stays NaN (a gap in the line).
    Bins without samples (a pause, an outage) break the line too.
    """
    n = x.shape[0]
    if n <= 2 * bins:
        return x, y
    edges = np.linspace(x[0], x[-1], bins + 1)
    starts = np.searchsorted(x, edges[:-1], side="left")
    ends = np.searchsorted(x, edges[1:], side="left")
    ends[-1] = n
    full = ends > starts
    lo_i = starts[full]
    with np.errstate(invalid="ignore"):
        ymin = np.fmin.reduceat(y, lo_i)
        ymax = np.fmax.reduceat(y, lo_i)
    # reduceat runs to the next start: right for contiguous non-empty bins, which they are
    centre = (edges[:-1] + edges[1:])[full] / 2
    xs = np.repeat(centre, 2)
    ys = np.empty(2 * centre.shape[0])
    ys[0::2], ys[1::2] = ymin, ymax
    empty_before = np.flatnonzero(np.diff(np.flatnonzero(full)) > 1)
    if empty_before.shape[0]:
        cut = 2 * (empty_before + 1)
        xs = np.insert(xs, cut, np.nan)
        ys = np.insert(ys, cut, np.nan)
    return xs, ys


def density_text(value: float) -> str:
    """A current density level as the ramp's steps write it: 0.2, 2.6, 4.0."""
    return f"{value:.1f}" if abs(value) >= 0.95 else f"{value:.2g}"


def _figure(rows: int, cols: int = 1, *, height: float = 2.4, width: float = 11.0) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, max(3.0, height * rows)), layout="constrained")
    return fig


@dataclass(frozen=True)
class Columns:
    """The sample columns a report draws (numpy, test time in s)."""

    t: Array
    voltage: Array
    current: Array
    temperature: Array
    setpoint: Array
    step: Array
    cycle: Array
    level: Array

    @classmethod
    def of(cls, cols: dict[str, Any]) -> Columns:
        return cls(**{name: cols[name] for name in cls.__dataclass_fields__})

    def step_slice(self, step: int) -> slice:
        """Rows of one executed step (the step column never decreases)."""
        lo = int(np.searchsorted(self.step, step, side="left"))
        hi = int(np.searchsorted(self.step, step, side="right"))
        return slice(lo, hi)


def overview(
    cols: Columns,
    steps: Sequence[StepInfo],
    events: Sequence[EventRow],
    *,
    area_cm2: float | None,
    title: str,
) -> Any:
    """Voltage, current density and temperature (with setpoint) against time, steps
    shaded and labelled, events marked."""
    fig = _figure(3, height=2.6)
    axes = fig.subplots(3, 1, sharex=True)
    hours = cols.t / 3600.0
    density = cols.current / area_cm2 * 1e3 if area_cm2 else cols.current * 1e3
    ax_v, ax_j, ax_t = axes
    ax_v.plot(*envelope(hours, cols.voltage), lw=0.6, color="#1f77b4")
    ax_v.set_ylabel("voltage / V")
    ax_j.plot(*envelope(hours, density), lw=0.6, color="#2ca02c")
    ax_j.set_ylabel("current density / mA/cm²" if area_cm2 else "current / mA")
    ax_t.plot(*envelope(hours, cols.temperature), lw=0.8, color="#d62728", label="block")
    ax_t.plot(*envelope(hours, cols.setpoint), lw=0.8, ls="--", color="k", label="setpoint")
    ax_t.set_ylabel("temperature / °C")
    ax_t.set_xlabel("test time / h")
    ax_t.legend(loc="upper right", fontsize=7)
    end = float(hours[-1]) if hours.shape[0] else 0.0
    for k, s in enumerate(steps):
        lo = s.started_t / 3600.0
        hi = (s.ended_t / 3600.0) if s.ended_t is not None else end
        for ax in axes:
            ax.axvspan(lo, hi, color="0.92" if k % 2 else "0.97", zorder=0, lw=0)
        wide = (hi - lo) >= 0.03 * max(end, 1e-9)
        ax_v.text(
            (lo + hi) / 2,
            1.01,
            (s.label or s.kind) if wide else str(s.step),
            transform=ax_v.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=7,
            clip_on=False,
        )
    seen: set[str] = set()
    for e in events:
        style = EVENT_STYLE.get(e.kind)
        if style is None or (e.kind == "safe_state" and e.severity == "info"):
            continue
        colour, text = style
        for ax in axes:
            ax.axvline(
                e.t / 3600.0,
                color=colour,
                lw=0.8,
                ls=":" if e.kind == "soft_short" else "-",
                label=text if (ax is ax_j and text not in seen) else None,
            )
        seen.add(text)
    if seen:
        ax_j.legend(loc="upper right", fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def _pick(groups: list[int], short: bool) -> list[int]:
    """First, middle and last cycles (and the one before a short)."""
    if not groups:
        return []
    picks = [groups[0], groups[len(groups) // 2]]
    if short and len(groups) >= 2:
        picks += [groups[-2], groups[-1]]
    else:
        picks.append(groups[-1])
    return sorted(dict.fromkeys(picks))


def cycle_profiles(cols: Columns, steps: Sequence[StepInfo], *, title: str) -> Any | None:
    """Voltage against time within the cycle for selected cycles of each cycle step."""
    cycle_steps = [s for s in steps if s.kind == "cycle"]
    if not cycle_steps:
        return None
    fig = _figure(len(cycle_steps), height=3.0, width=9.0)
    axes = np.atleast_1d(fig.subplots(len(cycle_steps), 1))
    drawn = False
    for ax, s in zip(axes, cycle_steps, strict=True):
        sl = cols.step_slice(s.step)
        t, v, c = cols.t[sl], cols.voltage[sl], cols.cycle[sl]
        groups = [int(g) for g in np.unique(c)] if c.shape[0] else []
        short = s.outcome == "short"
        first = groups[0] if groups else 0
        for g in _pick(groups, short):
            rows = c == g
            tt = t[rows]
            if tt.shape[0] < 2:
                continue
            last = short and g == groups[-1]
            n = g - first + 1
            ax.plot(
                (tt - tt[0]) / 60.0,
                v[rows],
                lw=0.9,
                ls="--" if last else "-",
                label=f"cycle {n}" + (" (short)" if last else ""),
            )
            drawn = True
        ax.set_title(f"step {s.name}", fontsize=9)
        ax.set_xlabel("time in cycle / min")
        ax.set_ylabel("voltage / V")
        ax.axhline(0.0, color="0.6", lw=0.5)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
    return fig if drawn else None


def ccd_ramp(cols: Columns, step: StepInfo, *, area_cm2: float | None, title: str) -> Any | None:
    """Voltage per current-density level against time, the CCD marked; and the largest
    |V| per level against the level."""
    sl = cols.step_slice(step.step)
    t, v, level = cols.t[sl], cols.voltage[sl], cols.level[sl]
    if t.shape[0] < 2:
        return None
    density = np.abs(level) / area_cm2 * 1e3 if area_cm2 else np.abs(level) * 1e3
    unit = "mA/cm²" if area_cm2 else "mA"
    levels = step.result.get("levels_mA_per_cm2")
    ccd = step.result.get("ccd_mA_per_cm2")
    fig = _figure(2, height=3.0)
    ax_t, ax_l = fig.subplots(2, 1)
    hours = (t - t[0]) / 3600.0
    ax_t.plot(*envelope(hours, v), lw=0.6, color="#1f77b4")
    ax_t.set_xlabel("time in ramp / h")
    ax_t.set_ylabel("voltage / V")
    ax_j = ax_t.twinx()
    ax_j.plot(*envelope(hours, density), lw=0.6, color="#2ca02c", alpha=0.6)
    ax_j.set_ylabel(f"level / {unit}")
    on = np.isfinite(density) & (density > 0)
    # per level: the largest |V| while that level was applied
    if isinstance(levels, list) and levels:
        grid = np.asarray(levels, dtype=float)
    else:
        grid = np.unique(np.round(density[on], 6))
    peak = np.full(grid.shape[0], np.nan)
    if on.any():
        idx = np.argmin(np.abs(density[on][:, None] - grid[None, :]), axis=1)
        np.fmax.at(peak, idx, np.abs(v[on]))
    ax_l.plot(grid, peak, "o-", ms=3, lw=0.8, color="#1f77b4")
    ax_l.set_xlabel(f"current density level / {unit}")
    ax_l.set_ylabel("max |voltage| / V")
    if isinstance(ccd, int | float):
        ax_l.axvline(ccd, color="#d62728", lw=1.2, label=f"CCD {density_text(ccd)} {unit}")
        ax_l.legend(fontsize=8, loc="upper left")
        at = np.flatnonzero(on & (np.abs(density - ccd) < 1e-6 + 1e-3 * abs(ccd)))
        if at.shape[0]:
            x = float(hours[at[0]])
            ax_t.axvline(x, color="#d62728", lw=1.0)
            ax_t.annotate(
                f"CCD {density_text(ccd)} {unit}",
                (x, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(4, -12),
                textcoords="offset points",
                color="#d62728",
                fontsize=8,
            )
    else:
        ax_l.set_title("no short: the CCD is above the last level", fontsize=8)
    fig.suptitle(f"{title}: CCD ramp (step {step.name})", fontsize=10)
    return fig


def dc_polarization(cols: Columns, step: StepInfo, *, title: str) -> Any | None:
    """The current decay of a DC polarization with the steady-state current marked."""
    sl = cols.step_slice(step.step)
    t, i = cols.t[sl], cols.current[sl]
    if t.shape[0] < 2:
        return None
    fig = _figure(1, height=3.6, width=9.0)
    ax = fig.subplots(1, 1)
    hours = (t - t[0]) / 3600.0
    micro = np.abs(i) * 1e6
    ax.plot(*envelope(hours, micro), lw=0.8, color="#1f77b4", label="|current|")
    ax.set_yscale("log")
    ax.set_xlabel("time in step / h")
    ax.set_ylabel("|current| / µA")
    steady = step.result.get("steady_current_A")
    sigma = step.result.get("conductivity_S_per_cm")
    if isinstance(steady, int | float) and steady:
        text = f"steady {abs(steady) * 1e6:.3g} µA"
        if isinstance(sigma, int | float):
            text += f", σe = {sigma:.3g} S/cm"
        ax.axhline(abs(steady) * 1e6, color="#d62728", ls="--", lw=1.0, label=text)
    ax.legend(fontsize=8, loc="upper right")
    fig.suptitle(f"{title}: DC polarization (step {step.name})", fontsize=10)
    return fig
