"""The same detection over a whole recorded trace, vectorised with numpy.

The features of every sample (apparent resistance, running resistance, step resistance,
the level's running value and noise, the flags) are pure functions of the trace: numpy
computes them for all samples at once with the same IEEE operations, in the same order, as
the streaming detector. The stateful decisions (:class:`~controller.detect.machine.Decisions`)
then only visit flagged samples — and the samples after them while something is open — and
skip, with vectorised searches, over stretches in which nothing can change (a latched short,
a reported voltage limit). Events are therefore identical to feeding the trace sample by
sample to :class:`~controller.detect.stream.ShortDetector` (tested on the corpus and with
hypothesis). Window statistics run in cache-sized blocks.
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

_BLOCK = 1 << 16  # rows per block of window statistics: stays in cache


@dataclass(frozen=True, slots=True)
class Features:
    """Per-sample features. ``ev``, ``lim`` and ``thermal`` cover every sample; the rest
    only the samples under current, in order (``e`` are their indices)."""

    ev: B  # under current: judged at all
    lim: B  # at the voltage window's edge
    thermal: B  # the block moved more than temperature_tolerance within THERMAL_WINDOW
    e: I64  # indices of the samples under current
    seg: I64  # level segment id
    r: F64  # |V/I|
    rp: F64  # |V/I| of the previous sample of the same level
    h: F64  # running resistance (of the run; at a run's first sample, the step reference)
    s: F64  # level running value
    sigma: F64  # level noise
    scatter: F64  # level noise about its trend
    collapsed: B
    dip: B
    ohmic: B  # V·I has the cell's learned sign (or |V| is below the floor)
    wire: B  # the current change was answered like a wire
    t_change: F64  # start of the run


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
    out = np.full(q, np.nan)
    if mr.shape[0] == 0:
        return out
    for a in range(0, q, _BLOCK):
        b = min(q, a + _BLOCK)
        members = np.empty((b - a, MEMORY))
        for lag in range(MEMORY):
            k = last[a:b] - lag
            ok = (k >= lo[a:b]) & (k >= 0)
            kk = np.where(ok, k, 0)
            tk, tempk = mt[kk], mtemp[kk]
            qtemp_ab = qtemp[a:b]
            with np.errstate(invalid="ignore"):
                warm = (
                    (tempk != tempk)
                    | (qtemp_ab != qtemp_ab)
                    | (np.abs(qtemp_ab - tempk) <= th.temp_tol)
                )
                ok &= (qt[a:b] - tk <= th.max_age) & (warm | (newest and lag == 0))
            members[:, lag] = np.where(ok, mr[kk], np.inf)
        count = np.isfinite(members).sum(axis=1)
        members.sort(axis=1)
        pick = np.maximum(count - 1, 0) // 2
        med = np.take_along_axis(members, pick[:, None], axis=1)[:, 0]
        out[a:b] = np.where(count > 0, med, np.nan)
    return out


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
    nan = np.full(m, np.nan)
    if m == 0:
        no = np.zeros(0, dtype=bool)
        return Features(
            ev, lim, thermal, e, e.copy(), nan, nan, nan, nan, nan, nan, no, no, no, no, nan
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
    vsrc = source[e] == 2  # under a voltage source only a new level starts a run
    with np.errstate(invalid="ignore"):
        change = (
            (idx == 0)
            | (gap >= 2)
            | (step[e] != step[last])
            | (source[e] != source[last])
            | (vsrc & ((known_e != known[last]) | (known_e & (level[e] != level[last]))))
            | (~vsrc & ((ie > 0) != (li > 0)))
            | (~vsrc & (np.abs(ie - li) > JUMP * np.maximum(aie, np.abs(li))))
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
    wire = np.zeros(m, dtype=bool)
    with np.errstate(invalid="ignore"):
        wire[cj] = (
            (hs == hs)
            & (hs * np.abs(di[cj]) >= th.floor)
            & (rs[cj] < th.fraction * hs)
            & (r[cj] < th.fraction * hs)
        )
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
    rp = np.full(m, np.nan)
    rp[1:] = r[:-1]
    rp[pos == 0] = np.nan
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
        lo, hi, mid = (w - 1) // 2 - 1, (w - 1) // 2, (w - 2) // 2
        for a in range(w, m, _BLOCK):  # rows j in [a, b) use the windows starting at j − w
            b = min(m, a + _BLOCK)
            s[a:b] = np.partition(rv[a - w : b - w], w // 2, axis=1)[:, w // 2]
            dp = np.partition(dv[a - w : b - w], [lo, hi], axis=1)
            sigma[a:b] = (dp[:, lo] + dp[:, hi]) / 2
            scatter[a:b] = np.partition(d2v[a - w : b - w], mid, axis=1)[:, mid] / SCATTER
        short = pos < w  # the level has fewer than `window` samples before: no decision
        s[short] = np.nan
        sigma[short] = np.nan
        scatter[short] = np.nan
        with np.errstate(invalid="ignore"):
            dip = (
                ~short
                & ~thermal[e]
                & (r < th.keep * s)
                & ((s - r) > th.noise_factor * sigma)
                & (r < th.keep * rp)
            )
    return Features(
        ev=ev,
        lim=lim,
        thermal=thermal,
        e=e,
        seg=seg,
        r=r,
        rp=rp,
        h=h,
        s=s,
        sigma=sigma,
        scatter=scatter,
        collapsed=collapsed,
        dip=dip,
        ohmic=ohmic,
        wire=wire,
        t_change=t_change,
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
        size = min(size * 4, _BLOCK * 16)
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
    e = f.e
    m = e.shape[0]
    flagged = np.union1d(e[f.collapsed | f.dip], np.flatnonzero(f.lim))
    stp_e = stp[e]
    ai_e = np.abs(i[e])
    dec = Decisions(th)
    events: list[ShortEvent] = []

    def shorted_next(start: int) -> int:
        """The next sample under current that is not collapsed against the latched
        reference, or that belongs to another step."""
        r0, st = dec.h_r0, dec.latch_step
        j0 = int(np.searchsorted(e, start))

        def cond(lo: int, hi: int) -> B:
            with np.errstate(invalid="ignore"):
                if r0 == r0:
                    still = (
                        f.ohmic[lo:hi]
                        & (r0 * ai_e[lo:hi] >= th.floor)
                        & (f.r[lo:hi] < th.fraction * r0)
                    )
                else:
                    still = np.abs(v[e[lo:hi]]) < th.floor
            c: B = ~still | (stp_e[lo:hi] != st)
            return c

        j = _next_where(cond, j0, m)
        return int(e[j]) if j < m else n

    def limit_next(start: int) -> int:
        st = dec.lim_step
        return _next_where(lambda lo, hi: ~f.lim[lo:hi] | (stp[lo:hi] != st), start, n)

    ptr = 0
    nf = flagged.shape[0]
    k = int(flagged[0]) if nf else n
    j = 0  # index into e of the first sample under current at or after k
    while k < n:
        if j < m and e[j] < k:
            j = j + 1 if j + 1 < m and e[j + 1] >= k else int(np.searchsorted(e, k))
        if f.ev[k]:
            out = dec.step(
                k,
                float(t[k]),
                float(v[k]),
                float(i[k]),
                float(temp[k]),
                int(stp[k]),
                int(cyc[k]),
                True,
                int(f.seg[j]),
                float(f.r[j]),
                float(f.rp[j]),
                float(f.h[j]),
                float(f.s[j]),
                float(f.sigma[j]),
                float(f.scatter[j]),
                bool(f.collapsed[j]),
                bool(f.dip[j]),
                bool(f.lim[k]),
                bool(f.ohmic[j]),
                bool(f.wire[j]),
                float(f.t_change[j]),
                bool(f.thermal[k]),
            )
        else:
            nan = float("nan")
            out = dec.step(
                k,
                float(t[k]),
                float(v[k]),
                float(i[k]),
                float(temp[k]),
                int(stp[k]),
                int(cyc[k]),
                False,
                0,
                nan,
                nan,
                nan,
                nan,
                nan,
                nan,
                False,
                False,
                bool(f.lim[k]),
                True,
                False,
                nan,
                bool(f.thermal[k]),
            )
        events.extend(out)
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
