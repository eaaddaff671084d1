"""The offline (numpy) path: the same decisions as streaming, on any trace; and the
detector's robustness on randomised cells (the corpus physics with random parameters)."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest
from detect_corpus import generator
from detect_traces import AREA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.detect import ShortDetector, Thresholds, detect_arrays
from controller.protocol import ShortDetection

TH = Thresholds.build(area_cm2=AREA, voltage_window=(-1.0, 1.0))


@st.composite
def traces(draw: Any) -> dict[str, Any]:
    """Random programs of rests, levels, reversals and jumps, with glitches, NaNs,
    shorts that come and go, temperature ramps, step changes and commanded levels."""
    dt = draw(st.sampled_from([0.1, 1.0, 10.0]))
    segments = draw(
        st.lists(
            st.tuples(
                st.integers(1, 60),  # samples
                st.sampled_from([0.0, 0.5, 1.0, 1.1, 2.0, -0.5, -1.0, -2.0]),  # × I0 (or V)
                st.integers(1, 3),  # step
                st.sampled_from([1, 1, 1, 2]),  # source: current, or voltage (a potentiostat)
            ),
            min_size=1,
            max_size=12,
        )
    )
    r_cell = draw(st.floats(5.0, 5000.0))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    i0 = 1.5e-3
    cur = np.concatenate([np.full(n, c * i0) for n, c, _, _ in segments])
    step = np.concatenate([np.full(n, s) for n, _, s, _ in segments]).astype(np.int64)
    source = np.concatenate([np.full(n, m) for n, _, _, m in segments]).astype(np.int64)
    vset = np.concatenate([np.full(n, 0.2 * c) for n, c, _, _ in segments])
    n = cur.shape[0]
    t = np.cumsum(np.full(n, dt))
    r = np.full(n, r_cell)
    if draw(st.booleans()):  # shorts (hard or partial) that may recover
        for _ in range(draw(st.integers(1, 3))):
            a = draw(st.integers(0, n - 1))
            b = draw(st.integers(a, n))
            r[a:b] = r_cell * draw(st.sampled_from([0.001, 0.01, 0.1, 0.3, 0.5]))
    temp = np.full(n, 125.0)
    if draw(st.booleans()):
        temp = 100.0 + np.cumsum(np.full(n, dt * draw(st.floats(0.0, 0.3))))
    v = -cur * r + rng.normal(0, 50e-6, n)
    i = cur * (1 + rng.normal(0, 1e-4, n)) + rng.normal(0, 2e-9, n)
    pot = source == 2  # a potentiostat holds V; the current is the cell's answer
    v[pot] = vset[pot] + rng.normal(0, 50e-6, int(pot.sum()))
    i[pot] = -vset[pot] / r[pot] * (1 + rng.normal(0, 1e-3, int(pot.sum())))
    for k in draw(st.lists(st.integers(0, n - 1), max_size=6)):
        v[k] *= draw(st.sampled_from([0.0, 0.1, 5.0, math.nan, -1.0]))
    for k in draw(st.lists(st.integers(0, n - 1), max_size=2)):
        i[k] = draw(st.sampled_from([0.0, math.nan]))
    v = np.clip(v, -1.0, 1.0)  # the SMU's compliance
    level = np.where(pot, vset, cur)
    return {"t": t, "v": v, "i": i, "temp": temp, "step": step, "level": level, "source": source}


def same(a: list[Any], b: list[Any]) -> bool:
    """Events equal field by field (NaN equal to NaN, as in their JSON form)."""
    return [e.as_dict() for e in a] == [e.as_dict() for e in b]


def _stream(tr: dict[str, Any], *, commanded: bool, th: Thresholds = TH) -> list[Any]:
    det = ShortDetector(thresholds=th)
    out: list[Any] = []
    for k in range(tr["t"].shape[0]):
        out.extend(
            det.feed(
                float(tr["t"][k]),
                float(tr["v"][k]),
                float(tr["i"][k]),
                temperature=float(tr["temp"][k]),
                level=float(tr["level"][k]) if commanded else None,
                source=("current", "current", "voltage")[int(tr["source"][k])]
                if commanded
                else "current",
                step=int(tr["step"][k]),
            )
        )
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces())
def test_offline_decides_exactly_like_streaming(tr: dict[str, Any]) -> None:
    off = detect_arrays(
        tr["t"], tr["v"], tr["i"], thresholds=TH, temperature=tr["temp"], step=tr["step"]
    )
    assert same(off, _stream(tr, commanded=False))
    # with the commanded level known (a journal export from this rig)
    off = detect_arrays(
        tr["t"],
        tr["v"],
        tr["i"],
        thresholds=TH,
        temperature=tr["temp"],
        step=tr["step"],
        level=tr["level"],
        source=tr["source"],
    )
    assert same(off, _stream(tr, commanded=True))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces(), st.sampled_from([0.1, 0.5]), st.integers(1, 4), st.sampled_from([0.0, 1.0]))
def test_offline_equals_streaming_for_other_thresholds(
    tr: dict[str, Any], fraction: float, confirm: int, confirm_time: float
) -> None:
    th = Thresholds.build(
        ShortDetection(
            resistance_fraction=fraction,
            soft_drop_fraction=0.3 if fraction < 0.5 else 0.2,
            confirm_samples=confirm,
            confirm_time=f"{confirm_time} s",
        ),
        area_cm2=AREA,
        voltage_window=(-1.0, 1.0),
    )
    off = detect_arrays(
        tr["t"], tr["v"], tr["i"], thresholds=th, temperature=tr["temp"], step=tr["step"]
    )
    assert same(off, _stream(tr, commanded=False, th=th))


def test_bad_arrays_are_refused() -> None:
    with pytest.raises(ValueError, match="same length"):
        detect_arrays(np.arange(3.0), np.zeros(2), np.zeros(3), thresholds=TH)
    with pytest.raises(ValueError, match="time order"):
        detect_arrays(np.array([0.0, 2.0, 1.0]), np.zeros(3), np.zeros(3), thresholds=TH)
    assert detect_arrays(np.zeros(0), np.zeros(0), np.zeros(0), thresholds=TH) == []


# --------------------------------------------------------------- randomised cells


def _random_trace(seed: int, short: bool) -> Any:
    """A random cell (bulk 10–1000 Ω·cm², slow polarisation up to 3× the bulk with τ from
    2 s to 10 min, exchange current 0.1–5 mA/cm²), 0.05–3 mA/cm², half-cycles 1–30 min
    with or without rests, at 0.1, 1 or 10 s; glitches, EMI bursts up to ±30 %, drift,
    and heating through LiBH4's transition (with the temperature recorded)."""
    g = generator()
    rnd = random.Random(seed)
    dt = rnd.choice([0.1, 1.0, 1.0, 10.0])
    bulk = 10 ** rnd.uniform(1, 3)
    cell = g.Cell(
        asr_bulk=bulk,
        asr_slow=bulk * rnd.uniform(0, 3),
        tau_slow=10 ** rnd.uniform(0.3, 2.8),
        j0=10 ** rnd.uniform(-4, -2.3),
    )
    j = 10 ** rnd.uniform(-4.3, -2.5)
    half = rnd.choice([60, 120, 300, 600, 1800])
    half = max(half, 600) if dt == 10.0 else min(half, 300) if dt == 0.1 else half
    rest = rnd.choice([0, 0, 10, 60, 300])
    samples = {0.1: 5000, 1.0: 6000, 10.0: 2500}[dt]
    program = g.cycling(j, g.A, half, rest, max(1, int(samples * dt / (2 * (half + rest)))))
    total = sum(s.duration for s in program)
    tr = g.Trace("random", "", dt, program, cell=cell, window=(-20, 20), seed=seed)
    if rnd.random() < 0.3:
        tr.cell.transition = True
        tr.temperature = g.heating(rnd.uniform(0, total / 3), 100.0, rnd.choice([2, 5, 10]), 130.0)
    kinds = ["zero", "tenth", "spike", "double_spike_2.5", "current_zero"]
    for _ in range(rnd.randint(0, 8)):
        tr.glitches.append((rnd.uniform(0, total), rnd.choice(kinds)))
    for _ in range(rnd.randint(0, 3)):
        a = rnd.uniform(0, total)
        tr.bursts.append((a, a + rnd.uniform(5, 60) * max(dt, 1), rnd.uniform(0.02, 0.3)))
    tr.drift = rnd.uniform(-0.5, 0.5)
    if short:
        current = [k for k, s in enumerate(program) if s.current != 0]
        k = rnd.choice(current[len(current) // 3 :])
        tr.hard = (g.onset_in(program, k, rnd.uniform(0.05, 0.95)), 10 ** rnd.uniform(-0.5, 0.7), 0)
    return tr


def _run(tr: Any) -> tuple[list[Any], list[Any]]:
    cols, labels = generator().simulate(tr)
    th = Thresholds.build(area_cm2=AREA, voltage_window=(-20.0, 20.0))
    events = detect_arrays(
        cols["t"], cols["v"], cols["i"], thresholds=th, temperature=cols["temp"], step=cols["step"]
    )
    return events, labels


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_no_false_hard_short_on_randomised_healthy_cells(record: Any) -> None:
    false_hard = []
    soft = 0
    n = 200
    for seed in range(n):
        events, _ = _run(_random_trace(seed, short=False))
        false_hard += [(seed, e.time_s, e.reason) for e in events if e.kind == "hard_short"]
        soft += any(e.kind == "soft_short" for e in events)
    record(
        "randomised healthy cells",
        f"{n} traces: {len(false_hard)} false hard shorts, {soft} with a soft short",
    )
    assert false_hard == []
    assert soft <= 0.02 * n


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_hard_shorts_found_on_randomised_cells(record: Any) -> None:
    found = 0
    n = 150
    late = []
    for seed in range(1000, 1000 + n):
        tr = _random_trace(seed, short=True)
        events, labels = _run(tr)
        onset = next(lab["onset_s"] for lab in labels if lab["kind"] == "hard_short")
        hard = [e for e in events if e.kind == "hard_short"]
        # the short is found: its onset within the settle window after the true onset
        hit = [e for e in hard if onset - tr.dt * 1.01 <= e.onset_s <= onset + 10.0 + tr.dt]
        found += bool(hit)
        if hit and tr.dt >= 1.0 and hit[0].latency_samples > 2:
            late.append((seed, hit[0].latency_samples))
    record("randomised shorted cells", f"{n} traces: {found} shorts found; slow ({len(late)})")
    assert found >= 0.98 * n
    assert len(late) <= 0.05 * n  # only shorts within `settle` of a current change wait
