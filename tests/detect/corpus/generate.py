"""Generate the labelled short-detection corpus: BDF CSV traces + labels.json.

    uv run python tests/detect/corpus/generate.py          # rewrite the corpus
    uv run python tests/detect/corpus/generate.py --check  # exit 1 if it is stale

Deterministic (one seed per trace). The physics, kept simple but honest about what the
detector must tell apart:

cell (Li|SE|Li, area A)
    V = s · (j·ASR_bulk(T) + η_ct(j, T) + η_slow) + OCV,  s = −1 (a positive current plates
    the working electrode, whose potential goes negative; seeds/001 plates to −4 V, −7 V).
    ASR_bulk is Arrhenius (0.5 eV); LiBH4 adds the orthorhombic→hexagonal transition as a
    10× fall centred on 114 °C (tanh, ±2 °C): "several-fold" across 110–118 °C.
    η_ct = 2(RT/F)·asinh(j / 2j0) (symmetric Butler–Volmer; the apparent resistance falls
    as the level rises). η_slow relaxes towards j·ASR_slow with τ_slow (concentration and
    contact polarisation): it builds during a half-cycle and decays in rests, so right
    after a reversal without a rest |V| starts low and grows.
instrument
    voltage noise 20 µV + 0.05 % of |V| (Gaussian), 1 µV quantisation; current ±0.01 %
    and 2 nA; at rest the output is a 0 A source (current ≈ nA, below `current_min`).
    Thermocouple: block temperature + 0.05 °C noise, 0.25 °C steps (MAX31855).
hard short
    from the onset the filament carries the current: V = s·I·R_short (0.3–5 Ω), within one
    sample or over a collapse ramp (at 0.1 s sampling, seeds/002: < 0.3 s).
soft short
    a partial shunt multiplies the cell voltage by q = 0.15–0.6 for 2 samples to minutes
    (recovering), or flickers (single-sample dips a few samples apart), or stays (persistent).
not shorts
    single-sample glitches (reading 0 V, 10 %, ×5 spikes, 2-sample contact bounces at
    10 Hz); symmetric noise bursts (EMI) of 5–30 % of |V|; level increases, reversals
    with and without rests; heating through LiBH4's transition under current; long rests at
    ≈ 0 V; slow drift; contact-loss polarisation to −4 V then −7 V (seeds/001) inside a
    ±8 V window (no event) and against a ±1 V window (the SMU clamps at −1 V and the
    current falls: a voltage_limit event).

Labels: for each trace, the expected events (hard: onset time ± tolerance; soft and
voltage_limit: the window in which the detected onset must fall), the sample period,
cell area and voltage window, and the CCD / cycle at the short where that applies.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
HEADER = (
    "Test Time / s,Voltage / V,Current / A,Temperature T1 / degC,Step Count / 1,"
    "Cycle Count / 1,Commanded Current / A"
)
F_RT = 8.617e-5  # eV/K (Boltzmann, for Arrhenius)
RT_F_PER_K = 8.617e-5  # V/K: kT/e
LIMIT_MARGIN = 0.01  # V: ShortDetection.limit_margin's default


# ----------------------------------------------------------------------- program


@dataclass
class Seg:
    duration: float  # s
    current: float  # A, signed; 0 = rest (0 A source)
    step: int
    cycle: int


def cycling(
    j: float,
    area: float,
    half: float,
    rest: float,
    cycles: int,
    step: int = 1,
    first: int = 1,
    cycle0: int = 1,
) -> list[Seg]:
    out = []
    for c in range(cycles):
        for sign in (first, -first):
            out.append(Seg(half, sign * j * area, step, cycle0 + c))
            if rest:
                out.append(Seg(rest, 0.0, step, cycle0 + c))
    return out


def ccd_symmetric(
    start: float, step_j: float, levels: int, area: float, half: float, rest: float, step: int = 1
) -> list[Seg]:
    out = []
    for k in range(levels):
        j = start + k * step_j
        out.append(Seg(half, j * area, step, k + 1))
        if rest:
            out.append(Seg(rest, 0.0, step, k + 1))
        out.append(Seg(half, -j * area, step, k + 1))
        if rest:
            out.append(Seg(rest, 0.0, step, k + 1))
    return out


def ccd_one_way(
    start: float, step_j: float, levels: int, area: float, per_level: float, step: int = 1
) -> list[Seg]:
    return [Seg(per_level, (start + k * step_j) * area, step, k + 1) for k in range(levels)]


# ----------------------------------------------------------------------- physics


@dataclass
class Cell:
    area: float = 0.785  # cm²
    asr_bulk: float = 100.0  # Ω·cm² at t_ref (hexagonal LiBH4 at 125 °C: ~L/σ = 0.1/1e-3)
    t_ref: float = 125.0
    ea: float = 0.5  # eV
    transition: bool = False  # LiBH4 orthorhombic→hexagonal, 10× across 110–118 °C
    j0: float = 1e-3  # A/cm², exchange current density
    asr_slow: float = 30.0  # Ω·cm², slow polarisation at steady state
    tau_slow: float = 120.0  # s
    sign: float = -1.0
    ocv: float = 20e-6  # V offset of a symmetric cell

    def asr(self, temp: np.ndarray) -> np.ndarray:
        tk = temp + 273.15
        arr = np.exp(self.ea / F_RT * (1 / tk - 1 / (self.t_ref + 273.15)))
        if self.transition:
            hexa = 0.5 * (1 + np.tanh((temp - 114.0) / 2.0))
            arr = arr * (1 + 9.0 * (1 - hexa))
        return self.asr_bulk * arr


@dataclass
class Trace:
    name: str
    description: str
    dt: float
    program: list[Seg]
    cell: Cell = field(default_factory=Cell)
    temperature: Callable[[np.ndarray], np.ndarray] | float = 125.0
    window: tuple[float, float] | None = (-1.0, 1.0)
    seed: int = 0
    hard: tuple[float, float, float] | None = None  # onset s, R_short Ω, collapse ramp s
    end_after_short: float | None = None  # stop the trace this long after the onset
    soft: list[tuple[float, float, float]] = field(default_factory=list)  # start, end, q
    flicker: list[tuple[float, float, float, float]] = field(default_factory=list)
    persistent: tuple[float, float] | None = None  # start, q (for the rest of the trace)
    glitches: list[tuple[float, str]] = field(default_factory=list)
    bursts: list[tuple[float, float, float]] = field(default_factory=list)  # start, end, amp
    contact_loss: tuple[float, float] | None = None  # (ASR growth per C/cm², jump factor)
    drift: float = 0.0  # relative ASR change over the trace
    with_temperature: bool = True
    healing: tuple[float, float] | None = None  # at t: ASR ×factor (heat therapy)
    extra_labels: list[dict[str, Any]] = field(default_factory=list)
    expect: dict[str, Any] = field(default_factory=dict)


def simulate(tr: Trace) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    rng = np.random.default_rng(tr.seed)
    total = sum(s.duration for s in tr.program)
    ends = np.cumsum([s.duration for s in tr.program])
    n = math.floor(total / tr.dt + 1e-9)
    t = (np.arange(n) + 1) * tr.dt
    if tr.hard is not None and tr.end_after_short is not None:
        keep = t <= tr.hard[0] + tr.end_after_short + 1e-9
        t = t[keep]
        n = t.shape[0]
    seg_idx = np.searchsorted(ends, t - 1e-9, side="left")
    seg_idx = np.minimum(seg_idx, len(tr.program) - 1)
    i_cmd = np.array([tr.program[k].current for k in seg_idx])
    step = np.array([tr.program[k].step for k in seg_idx], dtype=np.int64)
    cycle = np.array([tr.program[k].cycle for k in seg_idx], dtype=np.int64)
    temp = tr.temperature(t) if callable(tr.temperature) else np.full(n, float(tr.temperature))
    cell = tr.cell
    j = i_cmd / cell.area
    asr = cell.asr(temp) * (1 + tr.drift * t / t[-1])
    if tr.healing is not None:
        asr = np.where(t >= tr.healing[0], asr * tr.healing[1], asr)
    tk = temp + 273.15
    eta_ct = 2 * RT_F_PER_K * tk * np.arcsinh(j / (2 * cell.j0))
    # slow polarisation: exact first-order update with the interval's current
    eta_s = np.empty(n)
    state = 0.0
    decay = math.exp(-tr.dt / cell.tau_slow)
    for k in range(n):
        target = j[k] * cell.asr_slow
        state = target + (state - target) * decay
        eta_s[k] = state
    extra = np.zeros(n)
    if tr.contact_loss is not None:
        growth, jump = tr.contact_loss
        q_plated = np.cumsum(np.abs(i_cmd) * tr.dt) / cell.area  # C/cm²
        extra = growth * q_plated
        last = i_cmd == i_cmd.max()
        extra = np.where(last, extra * jump, extra)
    v_cell = cell.sign * (j * (asr + extra) + eta_ct + eta_s) + cell.ocv
    labels: list[dict[str, Any]] = []
    # soft shorts (partial shunts)
    q = np.ones(n)
    for a, b, depth in tr.soft:
        sel = (t >= a) & (t < b)
        q[sel] = np.minimum(q[sel], depth)
        hit = t[sel]
        labels.append({"kind": "soft_short", "start_s": float(hit[0]), "end_s": float(hit[-1])})
    for a, b, every, depth in tr.flicker:
        times = np.arange(a, b, every)
        hits = []
        for x in times:
            k = int(np.argmin(np.abs(t - x)))
            q[k] = min(q[k], depth * (0.8 + 0.4 * rng.random()))
            hits.append(float(t[k]))
        labels.append({"kind": "soft_short", "start_s": hits[0], "end_s": hits[-1]})
    if tr.persistent is not None:
        a, depth = tr.persistent
        sel = t >= a
        q[sel] = depth
        labels.append({"kind": "soft_short", "start_s": float(t[sel][0]), "end_s": float(t[-1])})
    v = v_cell * q
    # hard short: the filament carries the current from the onset on
    if tr.hard is not None:
        onset, r_short, ramp = tr.hard
        v_short = cell.sign * i_cmd * r_short
        w = np.clip((t - onset) / ramp, 0.0, 1.0) if ramp > 0 else (t >= onset).astype(float)
        w = np.where(t >= onset, np.maximum(w, 1e-3 if ramp > 0 else 1.0), 0.0)
        v = v * (1 - w) + v_short * w
        first = float(t[t >= onset][0])
        labels.append(
            {
                "kind": "hard_short",
                "onset_s": first,
                "tolerance_s": max(ramp, 0.0) + 1e-6,
            }
        )
    # instrument: compliance clamps the voltage and the current falls
    i_meas = i_cmd * (1 + rng.normal(0, 1e-4, n)) + rng.normal(0, 2e-9, n)
    if tr.window is not None:
        lo, hi = tr.window
        over = (v > hi) | (v < lo)
        near = (v > hi - LIMIT_MARGIN) | (v < lo + LIMIT_MARGIN)  # the detector's margin
        if over.any():
            clamp = np.clip(v, lo, hi)
            with np.errstate(invalid="ignore", divide="ignore"):
                i_meas = np.where(over, i_meas * clamp / v, i_meas)
            v = clamp
            k = np.flatnonzero(near)
            labels.append(
                {"kind": "voltage_limit", "start_s": float(t[k[0]]), "end_s": float(t[k[-1]])}
            )
    noise = rng.normal(0, 1, n) * (20e-6 + 5e-4 * np.abs(v))
    for a, b, amp in tr.bursts:
        sel = (t >= a) & (t < b)
        noise[sel] += rng.normal(0, 1, sel.sum()) * amp * np.abs(v[sel])
    v = v + noise
    for at, kind in tr.glitches:
        k = int(np.argmin(np.abs(t - at)))
        if kind == "zero":
            v[k] = rng.normal(0, 5e-6)
        elif kind == "tenth":
            v[k] *= 0.1
        elif kind == "spike":
            v[k] *= 5.0
        elif kind == "double_spike":
            v[k : k + 2] *= 6.0
        elif kind == "double_spike_2.5":  # kept inside the compliance window
            v[k : k + 2] *= 2.5
        elif kind == "bounce":  # a 2-sample contact bounce at 10 Hz: reads ~0 V
            v[k : k + 2] = rng.normal(0, 5e-6, 2)
        elif kind == "current_zero":  # one sample with the current missing
            i_meas[k] = rng.normal(0, 2e-9)
        else:
            raise ValueError(kind)
    v = np.round(v, 6)
    temp_meas = np.round((temp + rng.normal(0, 0.05, n)) * 4) / 4
    cols = {
        "t": np.round(t, 3),
        "v": v,
        "i": i_meas,
        "temp": temp_meas,
        "step": step,
        "cycle": cycle,
        "i_cmd": i_cmd,
    }
    labels.extend(tr.extra_labels)
    return cols, labels


def to_csv(tr: Trace, cols: dict[str, np.ndarray]) -> str:
    out = io.StringIO()
    header = HEADER if tr.with_temperature else HEADER.replace("Temperature T1 / degC,", "")
    out.write(header + "\n")
    for k in range(cols["t"].shape[0]):
        temp = f"{cols['temp'][k]:.2f}," if tr.with_temperature else ""
        out.write(
            f"{cols['t'][k]:.7g},{cols['v'][k]:.6f},{cols['i'][k]:.6g},{temp}"
            f"{cols['step'][k]},{cols['cycle'][k]},{cols['i_cmd'][k]:.7g}\n"
        )
    return out.getvalue()


# ------------------------------------------------------------------------ traces

A = 0.785
MA = 1e-3
UA = 1e-6


def heating(
    t0: float, temp0: float, rate_per_min: float, temp1: float
) -> Callable[[np.ndarray], np.ndarray]:
    def f(t: np.ndarray) -> np.ndarray:
        return np.clip(temp0 + np.maximum(t - t0, 0) * rate_per_min / 60.0, None, temp1)

    return f


def onset_in(program: list[Seg], seg_number: int, fraction: float) -> float:
    start = sum(s.duration for s in program[:seg_number])
    return start + fraction * program[seg_number].duration


def traces() -> list[Trace]:
    out: list[Trace] = []
    # ---------------------------------------------------------- cycling, hard shorts
    p = cycling(2 * MA, A, 600, 120, 6)
    out.append(
        Trace(
            "cycle_2mA_asr100_1s_hard",
            "2 mA/cm², ASR 100 Ω·cm², 10 min half-cycles, 2 min rests, 1 s; hard short in "
            "the strip half of cycle 6; the recording goes on (another cycler)",
            1.0,
            p,
            seed=1,
            hard=(onset_in(p, 22, 0.55) + 0.4, 1.2, 0.0),
            glitches=[(900.3, "zero"), (3000.0, "spike")],
            expect={"cycle": 6, "density": 2 * MA},
        )
    )
    p = cycling(1 * MA, A, 120, 30, 3)
    out.append(
        Trace(
            "cycle_1mA_asr20_0.1s_hard_ramp",
            "1 mA/cm², a conductive cell (ASR 20 Ω·cm², |V| ≈ 30 mV), 0.1 s sampling, 2 min "
            "half-cycles; the hard short collapses over 0.3 s",
            0.1,
            p,
            cell=Cell(asr_bulk=20.0, asr_slow=5.0, j0=3e-3),
            seed=2,
            hard=(onset_in(p, 8, 0.4) + 0.05, 0.5, 0.3),
            glitches=[(100.0, "bounce"), (400.05, "zero")],
            expect={"cycle": 3, "density": 1 * MA},
        )
    )
    p = cycling(0.5 * MA, A, 3600, 600, 4)
    out.append(
        Trace(
            "cycle_0.5mA_asr500_10s_hard",
            "0.5 mA/cm², a resistive cell (ASR 500 Ω·cm², |V| ≈ 0.3 V), 1 h half-cycles, "
            "10 s sampling; the runner stops 5 samples after the short",
            10.0,
            p,
            cell=Cell(asr_bulk=500.0, asr_slow=80.0),
            seed=3,
            hard=(onset_in(p, 14, 0.3) + 3.0, 4.0, 0.0),
            end_after_short=50.0,
            expect={"cycle": 4, "density": 0.5 * MA},
        )
    )
    p = cycling(2 * MA, A, 600, 120, 3)
    out.append(
        Trace(
            "cycle_2mA_1s_shorted_during_rest",
            "the cell shorts during a rest: the first sample of the next half-cycle is "
            "already collapsed",
            1.0,
            p,
            seed=4,
            hard=(onset_in(p, 8, 0.0) + 0.5, 2.0, 0.0),
            expect={"cycle": 3, "density": 2 * MA},
        )
    )
    p = cycling(1 * MA, A, 1800, 300, 2)
    out.append(
        Trace(
            "cycle_1mA_10s_hard_no_temperature",
            "a recording without a temperature column, 10 s sampling, hard short",
            10.0,
            p,
            seed=5,
            with_temperature=False,
            hard=(onset_in(p, 6, 0.5) + 1.0, 1.0, 0.0),
            expect={"cycle": 2, "density": 1 * MA},
        )
    )
    # -------------------------------------------------------------------- CCD ramps
    p = ccd_symmetric(0.2 * MA, 0.2 * MA, 13, A, 300, 60)
    out.append(
        Trace(
            "ccd_symmetric_125C_1s",
            "symmetric CCD ramp at 125 °C, 0.2 mA/cm² steps, 5 min half-cycles, 1 min rests; "
            "shorts 3 min into the plate half at 2.6 mA/cm² (seeds/000)",
            1.0,
            p,
            seed=6,
            hard=(onset_in(p, 48, 0.6) + 0.3, 1.5, 0.0),
            expect={"ccd": 2.6 * MA},
        )
    )
    p = ccd_symmetric(0.2 * MA, 0.2 * MA, 20, A, 300, 0)
    out.append(
        Trace(
            "ccd_symmetric_160C_10s_no_rest",
            "symmetric CCD ramp at 160 °C without rests (direct reversals), 10 s sampling; "
            "shorts in the strip half at 4.0 mA/cm²",
            10.0,
            p,
            cell=Cell(asr_bulk=45.0, asr_slow=15.0, j0=3e-3),
            temperature=160.0,
            seed=7,
            hard=(onset_in(p, 39, 0.5) + 2.0, 1.0, 0.0),
            expect={"ccd": 4.0 * MA},
        )
    )
    p = ccd_one_way(10 * UA, 10 * UA, 6, A, 600)
    out.append(
        Trace(
            "ccd_one_way_LLZO_25C_1s",
            "one-way plating ramp on Li|LLZO|Li at 25 °C, 10 µA/cm² steps of 10 min (seeds/001); "
            "shorts at 50 µA/cm² (|V| ≈ 5–25 mV before, ≈ 0.1 mV after)",
            1.0,
            p,
            cell=Cell(asr_bulk=200.0, t_ref=25.0, asr_slow=150.0, j0=0.1e-3, tau_slow=60.0),
            temperature=25.0,
            window=(-8.0, 8.0),
            seed=8,
            hard=(onset_in(p, 4, 0.7) + 0.2, 2.0, 0.0),
            end_after_short=120.0,
            expect={"ccd": 50 * UA},
        )
    )
    p = ccd_one_way(20 * UA, 20 * UA, 7, A, 60)
    out.append(
        Trace(
            "ccd_one_way_LPS_0.1s",
            "one-way plating ramp on Li|Li3PS4|Li at 25 °C, 20 µA/cm² steps of 1 min, 0.1 s "
            "sampling; shorts at 120 µA/cm² with a 0.2 s collapse",
            0.1,
            p,
            cell=Cell(asr_bulk=300.0, t_ref=25.0, asr_slow=100.0, j0=0.2e-3, tau_slow=30.0),
            temperature=25.0,
            window=(-8.0, 8.0),
            seed=9,
            hard=(onset_in(p, 5, 0.5) + 0.03, 0.8, 0.2),
            end_after_short=10.0,
            expect={"ccd": 120 * UA},
        )
    )
    # ------------------------------------------------------------ soft then hard
    p = cycling(1 * MA, A, 900, 120, 4)
    out.append(
        Trace(
            "soft_then_hard_1s",
            "1 mA/cm² cycling: partial collapses (to 20–55 %) lasting 2–40 s and a flicker "
            "episode, more and more often, then a hard short",
            1.0,
            p,
            seed=10,
            soft=[
                (onset_in(p, 2, 0.3), onset_in(p, 2, 0.3) + 12, 0.45),
                (onset_in(p, 4, 0.5), onset_in(p, 4, 0.5) + 2.5, 0.3),
                (onset_in(p, 6, 0.2), onset_in(p, 6, 0.2) + 40, 0.55),
                (onset_in(p, 8, 0.6), onset_in(p, 8, 0.6) + 6, 0.25),
                (onset_in(p, 10, 0.3), onset_in(p, 10, 0.3) + 20, 0.35),
            ],
            flicker=[(onset_in(p, 12, 0.4), onset_in(p, 12, 0.4) + 20, 3.0, 0.35)],
            hard=(onset_in(p, 14, 0.5) + 0.5, 0.7, 0.0),
            glitches=[(onset_in(p, 0, 0.5), "zero"), (onset_in(p, 11, 0.5), "tenth")],
        )
    )
    p = cycling(2 * MA, A, 60, 10, 6)
    out.append(
        Trace(
            "soft_then_hard_0.1s",
            "2 mA/cm², 0.1 s sampling: soft shorts of 0.5–8 s and a flicker, then a hard short "
            "with a 0.25 s collapse",
            0.1,
            p,
            seed=11,
            soft=[
                (onset_in(p, 2, 0.3), onset_in(p, 2, 0.3) + 0.6, 0.4),
                (onset_in(p, 4, 0.5), onset_in(p, 4, 0.5) + 8.0, 0.5),
                (onset_in(p, 8, 0.6), onset_in(p, 8, 0.6) + 2.0, 0.25),
            ],
            flicker=[(onset_in(p, 12, 0.3), onset_in(p, 12, 0.3) + 4.0, 0.8, 0.4)],
            hard=(onset_in(p, 18, 0.5) + 0.02, 1.0, 0.25),
            glitches=[(onset_in(p, 6, 0.5), "bounce"), (onset_in(p, 10, 0.2), "zero")],
        )
    )
    p = cycling(2 * MA, A, 1800, 300, 4)
    out.append(
        Trace(
            "soft_then_hard_10s",
            "2 mA/cm², 10 s sampling: partial collapses of 20 s–3 min and a flicker, then a "
            "hard short",
            10.0,
            p,
            seed=12,
            soft=[
                (onset_in(p, 2, 0.3), onset_in(p, 2, 0.3) + 30, 0.4),
                (onset_in(p, 4, 0.5), onset_in(p, 4, 0.5) + 180, 0.5),
                (onset_in(p, 8, 0.4), onset_in(p, 8, 0.4) + 20, 0.25),
            ],
            flicker=[(onset_in(p, 10, 0.5), onset_in(p, 10, 0.5) + 100, 20.0, 0.3)],
            hard=(onset_in(p, 14, 0.7) + 4.0, 2.0, 0.0),
        )
    )
    p = cycling(1 * MA, A, 1200, 120, 2)
    out.append(
        Trace(
            "soft_persistent_1s",
            "a partial short that stays: |V| falls to 45 % in one sample and does not recover "
            "(a persistent soft short, not a hard one)",
            1.0,
            p,
            seed=13,
            persistent=(onset_in(p, 4, 0.4), 0.45),
        )
    )
    # ---------------------------------------------------------------- not shorts
    p = cycling(2 * MA, A, 600, 120, 4)
    out.append(
        Trace(
            "glitches_1s",
            "healthy cycling with single-sample glitches: readings of 0 V, 10 %, ×5 spikes, "
            "a double ×6 spike, a missing current",
            1.0,
            p,
            seed=14,
            glitches=[
                (300.0, "zero"),
                (1000.0, "tenth"),
                (1500.0, "spike"),
                (2200.0, "zero"),
                (2400.0, "double_spike_2.5"),
                (3300.0, "current_zero"),
                (4000.0, "zero"),
                (4005.0, "tenth"),
                (4900.0, "spike"),
            ],
        )
    )
    p = cycling(1 * MA, A, 60, 10, 4)
    out.append(
        Trace(
            "glitches_0.1s",
            "0.1 s sampling with glitches and 2-sample (0.2 s) contact bounces to 0 V",
            0.1,
            p,
            seed=15,
            glitches=[
                (30.0, "bounce"),
                (100.0, "zero"),
                (190.0, "bounce"),
                (330.0, "spike"),
                (380.0, "double_spike"),
                (500.0, "bounce"),
                (450.0, "tenth"),
                (520.0, "bounce"),
            ],
        )
    )
    p = cycling(0.5 * MA, A, 1800, 300, 3)
    out.append(
        Trace(
            "glitches_10s",
            "10 s sampling with glitches",
            10.0,
            p,
            cell=Cell(asr_bulk=300.0),
            seed=16,
            glitches=[
                (1000.0, "zero"),
                (3000.0, "spike"),
                (5500.0, "double_spike_2.5"),
                (9000.0, "tenth"),
            ],
        )
    )
    steps = (
        [Seg(300, 0.0, 1, 0)]
        + [Seg(300, k * 0.2 * MA * A, 1, k) for k in range(1, 8)]
        + [Seg(300, -k * 0.2 * MA * A, 2, k) for k in range(7, 0, -1)]
        + [Seg(120, 0.0, 3, 0), Seg(300, 1.5 * MA * A, 3, 1), Seg(300, -1.5 * MA * A, 3, 1)]
    )
    out.append(
        Trace(
            "current_steps_1s",
            "rest → current, level increases 0.2 → 1.4 mA/cm², a direct reversal, decreases, "
            "rest, 1.5 mA/cm² and a direct reversal: voltage jumps, no short",
            1.0,
            steps,
            seed=17,
        )
    )
    p = cycling(2 * MA, A, 60, 0, 5)
    out.append(
        Trace(
            "reversal_no_rest_0.1s",
            "direct reversals every minute at 0.1 s with strong slow polarisation (|V| starts "
            "near the bulk drop after each reversal): no short",
            0.1,
            p,
            cell=Cell(asr_bulk=40.0, asr_slow=120.0, tau_slow=8.0),
            seed=18,
        )
    )
    p = cycling(2 * MA, A, 300, 0, 6) + cycling(2 * MA, A, 300, 20, 4, cycle0=7)
    out.append(
        Trace(
            "reversal_relaxation_1s",
            "direct reversals (then 20 s rests) at 1 s with a slow polarisation larger than "
            "the bulk drop (τ 10 s): after each reversal |V| keeps the old sign, passes "
            "through 0 V and grows: no short",
            1.0,
            p,
            cell=Cell(asr_bulk=40.0, asr_slow=150.0, tau_slow=10.0),
            seed=29,
        )
    )
    p = cycling(1 * MA, A, 1800, 0, 4) + cycling(1 * MA, A, 1800, 60, 3, cycle0=5)
    out.append(
        Trace(
            "reversal_relaxation_10s",
            "the same at 10 s sampling with a slower relaxation (τ 120 s): the zero crossing "
            "spans several samples",
            10.0,
            p,
            cell=Cell(asr_bulk=40.0, asr_slow=150.0, tau_slow=120.0),
            seed=30,
        )
    )
    p = [
        Seg(300, 0.1 * MA * A, 1, 1),
        Seg(600, 0.1 * MA * A, 1, 1),
        *cycling(0.1 * MA, A, 300, 0, 3, step=2, first=-1),
    ]
    out.append(
        Trace(
            "heating_LiBH4_1s",
            "0.1 mA/cm² while the block heats 95 → 125 °C at 5 °C/min through LiBH4's "
            "transition (resistance falls ≈ 30×, 10× of it within 110–118 °C), then cycling",
            1.0,
            p,
            cell=Cell(transition=True),
            temperature=heating(120.0, 95.0, 5.0, 125.0),
            window=(-2.0, 2.0),
            seed=19,
        )
    )
    p = cycling(0.2 * MA, A, 600, 0, 4)
    out.append(
        Trace(
            "heating_LiBH4_10s_fast",
            "cycling at 0.2 mA/cm² while heating 100 → 130 °C at 10 °C/min, 10 s sampling",
            10.0,
            p,
            cell=Cell(transition=True),
            temperature=heating(300.0, 100.0, 10.0, 130.0),
            window=(-3.0, 3.0),
            seed=20,
        )
    )
    p = cycling(0.2 * MA, A, 600, 0, 4)
    out.append(
        Trace(
            "heating_LiBH4_10s_no_temperature",
            "the same heating at 5 °C/min, 10 s sampling, recorded without a temperature "
            "column (the detector cannot see the block move)",
            10.0,
            p,
            cell=Cell(transition=True),
            temperature=heating(300.0, 100.0, 5.0, 130.0),
            window=(-3.0, 3.0),
            with_temperature=False,
            seed=21,
        )
    )
    p = [
        Seg(1200, 0.0, 1, 0),
        Seg(60, 1 * MA * A, 2, 1),
        Seg(3600, 0.0, 3, 1),
        Seg(60, -1 * MA * A, 4, 1),
        Seg(1800, 0.0, 5, 1),
    ]
    out.append(
        Trace(
            "rest_near_0V_1s",
            "long rests of a symmetric cell at ≈ 0 V (0 A source, nA of current noise) with "
            "short pulses: nothing is decided at rest",
            1.0,
            p,
            seed=22,
        )
    )
    p = ccd_one_way(0.1 * MA, 0.12 * MA, 9, A, 600)
    out.append(
        Trace(
            "contact_loss_LLZO_100C_1s",
            "one-way plating at 100 °C up to 1.06 mA/cm²: contact loss drives the voltage to "
            "−4 V, then −7 V after the last increase, without a short (seeds/001); ±8 V window",
            1.0,
            p,
            cell=Cell(asr_bulk=60.0, t_ref=100.0, asr_slow=20.0),
            temperature=100.0,
            window=(-8.0, 8.0),
            contact_loss=(1650.0, 1.25),
            seed=23,
        )
    )
    out.append(
        Trace(
            "contact_loss_compliance_1s",
            "the same polarisation against a ±1 V window: the SMU clamps at −1 V and the "
            "current falls — a voltage limit, not a short",
            1.0,
            p,
            cell=Cell(asr_bulk=60.0, t_ref=100.0, asr_slow=20.0),
            temperature=100.0,
            window=(-1.0, 1.0),
            contact_loss=(1650.0, 1.25),
            seed=24,
        )
    )
    p = cycling(2 * MA, A, 600, 120, 4)
    out.append(
        Trace(
            "noise_bursts_1s",
            "healthy cycling with symmetric noise bursts (EMI) of 5–30 % of |V| lasting 15–60 s",
            1.0,
            p,
            seed=25,
            bursts=[
                (400, 430, 0.3),
                (1500, 1560, 0.1),
                (2500, 2515, 0.25),
                (4000, 4040, 0.05),
                (5100, 5150, 0.2),
            ],
        )
    )
    p = cycling(1 * MA, A, 60, 10, 4)
    out.append(
        Trace(
            "noise_bursts_0.1s",
            "noise bursts at 0.1 s sampling",
            0.1,
            p,
            seed=26,
            bursts=[(50, 53, 0.3), (100, 106, 0.15), (425, 430, 0.25), (500, 510, 0.1)],
        )
    )
    p = cycling(2 * MA, A, 1800, 300, 12)
    out.append(
        Trace(
            "cycle_long_10s_healthy",
            "14 h of healthy cycling at 10 s with the resistance drifting up 40 % and a few "
            "glitches",
            10.0,
            p,
            seed=27,
            drift=0.4,
            glitches=[(10000.0, "zero"), (30000.0, "spike"), (45000.0, "tenth")],
        )
    )
    p = [
        *cycling(2 * MA, A, 600, 120, 3),
        Seg(4 * 3600, 0.0, 2, 3),
        *cycling(2 * MA, A, 600, 120, 3, step=3, cycle0=1),
    ]
    out.append(
        Trace(
            "heat_therapy_gap_10s",
            "pre-cycling, a 4 h pause (heat therapy; output at rest), then cycling again with "
            "the resistance 40 % lower (healed): the stale reference is not used",
            10.0,
            p,
            seed=28,
            healing=(onset_in(p, 12, 0.0), 0.6),
        )
    )
    return out


def build() -> dict[str, str]:
    """File name → text, for every corpus file."""
    files: dict[str, str] = {}
    labels: dict[str, Any] = {}
    for tr in traces():
        cols, events = simulate(tr)
        name = f"{tr.name}.csv"
        files[name] = to_csv(tr, cols)
        labels[name] = {
            "description": tr.description,
            "sample_period_s": tr.dt,
            "area_cm2": tr.cell.area,
            "voltage_window_V": list(tr.window) if tr.window else None,
            "temperature_column": tr.with_temperature,
            "samples": int(cols["t"].shape[0]),
            "events": sorted(events, key=lambda e: e.get("onset_s", e.get("start_s", 0.0))),
            **({"expect": tr.expect} if tr.expect else {}),
        }
    files["labels.json"] = json.dumps(labels, indent=1, ensure_ascii=False) + "\n"
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the corpus is stale")
    args = parser.parse_args(argv)
    files = build()
    if args.check:
        stale = [
            name
            for name, text in files.items()
            if not (HERE / name).exists() or (HERE / name).read_text(encoding="utf-8") != text
        ]
        for name in stale:
            print(f"stale: {name}", file=sys.stderr)
        return 1 if stale else 0
    for old in HERE.glob("*.csv"):
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        (HERE / name).write_text(text, encoding="utf-8")
    digest = hashlib.sha256("".join(files.values()).encode()).hexdigest()[:12]
    size = sum(len(x) for x in files.values())
    print(f"wrote {len(files) - 1} traces + labels.json ({size / 1e6:.1f} MB, {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
