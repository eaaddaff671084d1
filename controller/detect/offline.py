"""The same detection over a whole recorded trace, vectorised with numpy.

The features of every sample (apparent resistance, polarity reference, the level's running
value and noise, the three flags) are pure functions of the trace: numpy computes them for
all samples at once with the same IEEE operations, in the same order, as the streaming
detector. The stateful decisions (:class:`~controller.detect.machine.Decisions`) then only
visit flagged samples — and the samples after them while something is open — and skip,
with vectorised searches, over stretches in which nothing can change (a latched short, a
reported voltage limit). Events are therefore identical to feeding the trace sample by
sample to :class:`~controller.detect.stream.ShortDetector` (tested on the corpus).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from controller.detect.bdf import Trace
from controller.detect.events import ShortEvent
from controller.detect.machine import CANDIDATE, SHORTED, Decisions
from controller.detect.stream import JUMP, MEMORY, SCATTER, THERMAL_WINDOW
from controller.detect.thresholds import Thresholds

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

_CHUNK = 1 << 20  # rows per block for the window statistics (bounds memory)


@dataclass(frozen=True, slots=True)
class Features:
    """Per-sample features (NaN / False where they do not apply)."""

    ev: B  # under current: judged at all
    seg: I64  # level segment id (ev samples)
    r: F64  # |V/I|
    rp: F64  # |V/I| of the previous sample of the same level
    h: F64  # running resistance (of the run; at a run's first sample, the step reference)
    s: F64  # level running value
    sigma: F64  # level noise
    scatter: F64  # level noise about its trend
    collapsed: B
    dip: B
    lim: B
    ohmic: B  # V·I has the cell's learned sign (or |V| is below the floor)
    wire: B  # the current change was answered like a wire
    t_change: F64  # start of the run
    thermal: B  # the block moved more than temperature_tolerance within THERMAL_WINDOW


def _lower_median(
    th: Thresholds,
    qt: F64,
    qtemp: F64,
    last: I64,
    lo: I64,
    mt: F64,
    mtemp: F64,
    mr: F64,
    newest: bool,
) -> F64:
    """For each query j, the lower median of the members mr[k], k in (last[j] − MEMORY,
    last[j]] with k ≥ lo[j], that are still valid at (qt[j], qtemp[j]); NaN if none.
    With ``newest``, member last[j] is valid whatever the temperature."""
    q = qt.shape[0]
    members = np.full((q, MEMORY), np.inf)
    if mr.shape[0]:
        for lag in range(MEMORY):
            k = last - lag
            ok = (k >= lo) & (k >= 0)
            kk = np.where(ok, k, 0)
            tk, tempk = mt[kk], mtemp[kk]
            with np.errstate(invalid="ignore"):
                warm = (tempk != tempk) | (qtemp != qtemp) | (np.abs(qtemp - tempk) <= th.temp_tol)
                ok &= (qt - tk <= th.max_age) & (warm | (newest and lag == 0))
            members[:, lag] = np.where(ok, mr[kk], np.inf)
    count = np.isfinite(members).sum(axis=1)
    members.sort(axis=1)
    pick = np.maximum(count - 1, 0) // 2
    out: F64 = np.take_along_axis(members, pick[:, None], axis=1)[:, 0]
    return np.where(count > 0, out, np.nan)


def features(
    th: Thresholds,
    t: F64,
    v: F64,
    i: F64,
    temp: F64,
    step: I64,
    level: F64,
    source: I64,
) -> Features:
    """All features of a trace (see controller/detect/stream.py for their meaning)."""
    n = t.shape[0]
    on = source != 0
    known = ~np.isnan(level)
    ai = np.abs(i)
    with np.errstate(invalid="ignore"):
        fin_v = np.isfinite(v)
        ev = (
            on
            & fin_v
            & np.isfinite(i)
            & (ai >= th.current_min)
            & (~known | (np.abs(level) >= th.current_min))
        )
        lim = on & fin_v & ((v >= th.v_max - th.margin) | (v <= th.v_min + th.margin))
    # the block is moving: temperature changed by more than the tolerance within a minute
    old = temp[np.searchsorted(t, t - THERMAL_WINDOW, side="left")]
    with np.errstate(invalid="ignore"):
        thermal = (temp == temp) & (old == old) & (np.abs(temp - old) > th.temp_tol)
    e = np.flatnonzero(ev)
    m = e.shape[0]

    def full(x: F64, fill: float = np.nan) -> F64:
        out = np.full(n, fill)
        out[e] = x
        return out

    def full_b(x: B, fill: bool = False) -> B:
        out = np.full(n, fill)
        out[e] = x
        return out

    if m == 0:
        nan = np.full(n, np.nan)
        no = np.zeros(n, dtype=bool)
        return Features(
            ev,
            np.zeros(n, dtype=np.int64),
            nan,
            nan,
            nan,
            nan,
            nan,
            nan,
            no,
            no,
            lim,
            ~no,
            no,
            nan,
            thermal,
        )

    te, ve, ie, tempe = t[e], v[e], i[e], temp[e]
    aie = ai[e]
    idx = np.arange(m)
    prev = np.maximum(e - 1, 0)
    has_prev = e > 0
    prev_ev = ev[prev] & has_prev
    ip, vp = i[prev], v[prev]
    # ------------------------------------------------------------ level segments
    known_e, known_p = known[e], known[prev]
    with np.errstate(invalid="ignore"):
        jump = np.abs(ie - ip) > th.level_tol * np.maximum(aie, np.abs(ip))
        boundary = (
            ~prev_ev
            | (step[e] != step[prev])
            | (source[e] != source[prev])
            | (known_e != known_p)
            | (known_e & (level[e] != level[prev]))
            | (~known_e & ~known_p & jump)
        )
    seg = np.cumsum(boundary)
    pos = idx - np.maximum.accumulate(np.where(boundary, idx, 0))
    r = np.abs(ve) / aie
    # --------------------------------------------------- runs, hard reference
    # (a run survives one sample without current: a glitch of the reading)
    last = np.empty(m, dtype=np.int64)
    last[0] = 0
    last[1:] = e[:-1]
    gap = e - last - 1
    li = i[last]
    with np.errstate(invalid="ignore"):
        change = (
            (idx == 0)
            | (gap >= 2)
            | (step[e] != step[last])
            | ((ie > 0) != (li > 0))
            | (np.abs(ie - li) > JUMP * np.maximum(aie, np.abs(li)))
        )
        di = ie - ip
        has_step = change & has_prev & np.isfinite(vp) & np.isfinite(di) & (di != 0)
        rs = np.where(has_step, np.abs(ve - vp) / np.where(has_step, np.abs(di), 1.0), np.nan)
    run_start = np.maximum.accumulate(np.where(change, idx, 0))
    t_change = te[run_start]
    # within a run: its last samples
    h = _lower_median(th, te, tempe, idx - 1, run_start, te, tempe, r, True)
    # at a change: the last step resistances
    members = np.flatnonzero(has_step)
    cj = np.flatnonzero(change)
    before = np.searchsorted(members, cj, side="left") - 1
    hs = _lower_median(
        th,
        te[cj],
        tempe[cj],
        before,
        np.zeros(cj.shape[0], dtype=np.int64),
        te[members],
        tempe[members],
        rs[members],
        False,
    )
    h[cj] = hs
    with np.errstate(invalid="ignore"):
        wire = np.zeros(m, dtype=bool)
        wire[cj] = (hs == hs) & (hs * np.abs(di[cj]) >= th.floor) & (rs[cj] < th.fraction * hs)
    # the learned sign convention: votes of the samples before, |V| ≥ floor
    vi = ve * ie
    big = np.abs(ve) >= th.floor
    vote = np.where(big, np.sign(vi), 0.0).astype(np.int64)
    votes = np.zeros(m, dtype=np.int64)
    votes[1:] = np.cumsum(vote)[:-1]
    ohmic = ~big | (votes == 0) | ((vi > 0) == (votes > 0))
    with np.errstate(invalid="ignore"):
        collapsed = np.where(
            has_step,
            wire,
            np.where(
                h == h,
                ohmic & (h * aie >= th.floor) & (r < th.fraction * h),
                np.abs(ve) < th.floor,
            ),
        )
    # --------------------------------------- level running value and noise
    w = th.window
    s = np.full(m, np.nan)
    sigma = np.full(m, np.nan)
    scatter = np.full(m, np.nan)
    dip = np.zeros(m, dtype=bool)
    if m > w:
        d = np.abs(r[1:] - r[:-1])  # d[k]: change from sample k to k+1
        d2 = np.abs(r[2:] - 2.0 * r[1:-1] + r[:-2])  # d2[k]: second difference at k+1
        rv = sliding_window_view(r, w)  # rv[k] = r[k : k + w]
        dv = sliding_window_view(d, w - 1)  # dv[k] = d[k : k + w - 1]
        d2v = sliding_window_view(d2, w - 2)  # d2v[k] = d2[k : k + w - 2]
        ok = pos >= w
        js = np.flatnonzero(ok)
        lo, hi = (w - 1) // 2 - 1, (w - 1) // 2
        for c0 in range(0, js.shape[0], _CHUNK):
            j = js[c0 : c0 + _CHUNK]
            s[j] = np.partition(rv[j - w], w // 2, axis=1)[:, w // 2]
            dp = np.partition(dv[j - w], [lo, hi], axis=1)
            sigma[j] = (dp[:, lo] + dp[:, hi]) / 2
            mid = (w - 2) // 2
            scatter[j] = np.partition(d2v[j - w], mid, axis=1)[:, mid] / SCATTER
        with np.errstate(invalid="ignore"):
            dip = ok & ~thermal[e] & (r < th.keep * s) & ((s - r) > th.noise_factor * sigma)
    rp = np.full(m, np.nan)
    rp[1:] = r[:-1]
    rp[pos == 0] = np.nan
    seg_full = np.zeros(n, dtype=np.int64)
    seg_full[e] = seg
    return Features(
        ev=ev,
        seg=seg_full,
        r=full(r),
        rp=full(rp),
        h=full(h),
        s=full(s),
        sigma=full(sigma),
        scatter=full(scatter),
        collapsed=full_b(collapsed),
        dip=full_b(dip),
        lim=lim,
        ohmic=full_b(ohmic, True),
        wire=full_b(wire),
        t_change=full(t_change),
        thermal=thermal,
    )


def _next_where(cond: Callable[[int, int], B], start: int, n: int) -> int:
    """First index ≥ start where ``cond(lo, hi)`` (evaluated on [lo, hi)) holds, or n."""
    lo = start
    size = 256
    while lo < n:
        hi = min(n, lo + size)
        hit = np.flatnonzero(cond(lo, hi))
        if hit.shape[0]:
            return lo + int(hit[0])
        lo = hi
        size = min(size * 4, _CHUNK)
    return n


def detect_arrays(
    t: F64,
    v: F64,
    i: F64,
    *,
    thresholds: Thresholds,
    temperature: F64 | None = None,
    step: I64 | None = None,
    cycle: I64 | None = None,
    level: F64 | None = None,
    source: I64 | None = None,
) -> list[ShortEvent]:
    """Events of a whole trace, as the streaming detector would report them.

    ``t``, ``v``, ``i`` in s, V, A; ``temperature`` in degC (NaN where unknown); ``step``
    and ``cycle`` counts; ``level``, the commanded level (NaN = unknown: inferred from the
    current); ``source`` codes (0 off, 1 current, 2 voltage; default 1).
    """
    th = thresholds
    t = np.ascontiguousarray(t, dtype=np.float64)
    v = np.ascontiguousarray(v, dtype=np.float64)
    i = np.ascontiguousarray(i, dtype=np.float64)
    n = t.shape[0]
    if v.shape != (n,) or i.shape != (n,):
        raise ValueError("t, v and i must be 1-D arrays of the same length")
    if n > 1 and not (np.diff(t) >= 0).all():
        raise ValueError("t must not decrease (samples in time order)")
    temp = np.full(n, np.nan) if temperature is None else np.asarray(temperature, dtype=np.float64)
    stp = np.zeros(n, dtype=np.int64) if step is None else np.asarray(step, dtype=np.int64)
    cyc = np.zeros(n, dtype=np.int64) if cycle is None else np.asarray(cycle, dtype=np.int64)
    lvl = np.full(n, np.nan) if level is None else np.asarray(level, dtype=np.float64)
    src = np.ones(n, dtype=np.int64) if source is None else np.asarray(source, dtype=np.int64)
    f = features(th, t, v, i, temp, stp, lvl, src)
    flagged = np.flatnonzero(f.collapsed | f.dip | f.lim)
    dec = Decisions(th)
    events: list[ShortEvent] = []
    ai = np.abs(i)

    def shorted_next(start: int) -> int:
        r0, st = dec.h_r0, dec.latch_step
        if r0 == r0:

            def still(lo: int, hi: int) -> B:
                with np.errstate(invalid="ignore"):
                    c: B = (
                        f.ohmic[lo:hi]
                        & (r0 * ai[lo:hi] >= th.floor)
                        & (f.r[lo:hi] < th.fraction * r0)
                    )
                return c

        else:

            def still(lo: int, hi: int) -> B:
                c: B = np.abs(v[lo:hi]) < th.floor
                return c

        return _next_where(
            lambda lo, hi: f.ev[lo:hi] & (~still(lo, hi) | (stp[lo:hi] != st)), start, n
        )

    def limit_next(start: int) -> int:
        st = dec.lim_step
        return _next_where(lambda lo, hi: ~f.lim[lo:hi] | (stp[lo:hi] != st), start, n)

    ptr = 0
    nf = flagged.shape[0]
    k = int(flagged[0]) if nf else n
    while k < n:
        events.extend(
            dec.step(
                k,
                float(t[k]),
                float(v[k]),
                float(i[k]),
                float(temp[k]),
                int(stp[k]),
                int(cyc[k]),
                bool(f.ev[k]),
                int(f.seg[k]),
                float(f.r[k]),
                float(f.rp[k]),
                float(f.h[k]),
                float(f.s[k]),
                float(f.sigma[k]),
                float(f.scatter[k]),
                bool(f.collapsed[k]),
                bool(f.dip[k]),
                bool(f.lim[k]),
                bool(f.ohmic[k]),
                bool(f.wire[k]),
                float(f.t_change[k]),
                bool(f.thermal[k]),
            )
        )
        while ptr < nf and flagged[ptr] <= k:
            ptr += 1
        nxt = int(flagged[ptr]) if ptr < nf else n
        if dec.idle:
            k = nxt
            continue
        # something is open: the next sample, unless the open parts can only change at a
        # later, searchable sample
        sequential = (
            dec.hard == CANDIDATE
            or dec.ep
            or dec.lim_count > 0
            or (dec.hard == SHORTED and (dec.rec > 0 or dec.re_count > 0))
            or (dec.lim_reported and dec.lim_inside > 0)
        )
        if sequential:
            k += 1
            continue
        cand = nxt
        if dec.hard == SHORTED:
            cand = min(cand, shorted_next(k + 1))
        if dec.lim_reported:
            cand = min(cand, limit_next(k + 1))
        k = cand
    return events


def detect_trace(trace: Trace, thresholds: Thresholds) -> list[ShortEvent]:
    """:func:`detect_arrays` over a trace read by :func:`~controller.detect.bdf.read_bdf`."""
    return detect_arrays(
        trace.t,
        trace.voltage,
        trace.current,
        thresholds=thresholds,
        temperature=trace.temperature,
        step=trace.step,
        cycle=trace.cycle,
    )
