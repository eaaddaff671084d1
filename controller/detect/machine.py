"""The decisions: three small state machines fed with per-sample features.

The features of a sample (its apparent resistance ``r`` = |V/I|, the polarity reference
``h``, the level's running value ``s`` and noise ``sigma``, and the three flags) are pure
functions of the trace, computed sample by sample by :mod:`controller.detect.stream` and in
bulk by :mod:`controller.detect.offline`. This module holds everything that depends on
what was decided before (an open candidate, a latched short, an open soft episode, a
reported voltage limit). It only ever needs to see flagged samples while it is idle,
which is what makes the offline path fast and equal to the streaming one.

- hard: IDLE → CANDIDATE on a collapsed sample (reference frozen there) → SHORTED after
  ``confirm`` consecutive collapsed samples spanning ``confirm_time``, the last of which
  holds still (a polarisation relaxing through 0 V after a reversal moves). A candidate
  whose |V/I| climbs more than ``RISE`` × its onset value (a polarisation building up) is
  dropped; one opened within ``settle`` of a current change must wait until then (the
  polarisation left from before relaxes meanwhile) unless the change was answered like a
  wire; one not confirmed ``settle`` after it could have been is dropped. While SHORTED the
  references are frozen: the same cell still collapsed at the start of a new step is
  reported again; ``confirm`` samples back above ``keep`` × the reference release it.
- soft: IDLE → EPISODE on a dip (reference and noise frozen there); the episode closes
  after ``soft_gap`` (and 3 samples) without a dip, at a level change, or at
  ``soft_max``. It is a soft short when it held a partial collapse (≥ 2 consecutive dips
  spanning ``confirm_time``) or flickered (≥ 3 separate dips), with no upward excursion
  (above the level by half the dip threshold and the noise margin: a filament can only
  shunt the cell; noise goes both ways). Two isolated dips are two glitches. An
  episode still dipping at ``soft_max`` is a persistent soft short only if it began with a
  step from the sample before and held that level (a fall that keeps going is a warming
  cell).
- voltage limit: ``confirm`` samples at the window's edge; reported once until the voltage
  has been back inside for ``confirm`` samples or a new step starts.
"""

from __future__ import annotations

import math

from controller.detect.events import EventKind, ShortEvent
from controller.detect.thresholds import Thresholds

IDLE = 0
CANDIDATE = 1
SHORTED = 2

NO_EVENTS: tuple[ShortEvent, ...] = ()

#: a candidate whose |V/I| climbs above RISE × its value at the onset (plus the level's
#: noise; |V| above the floor) is dropped; it is confirmed only on a sample whose V is
#: within STEADY × the collapse threshold's voltage (fraction × R0 × |I|) of the previous one
RISE = 1.25
STEADY = 0.25


def _fmt_ohm(x: float) -> str:
    if not math.isfinite(x):
        return "?"
    if x >= 1e3:
        return f"{x / 1e3:.3g} kΩ"
    return f"{x:.3g} Ω"


class Decisions:
    """The stateful part of the detector (see the module docstring)."""

    __slots__ = (
        "ep",
        "ep_best_run",
        "ep_cand",
        "ep_dips",
        "ep_first_r",
        "ep_last_dip_t",
        "ep_min_r",
        "ep_n0",
        "ep_nondip",
        "ep_run",
        "ep_run_t0",
        "ep_runs",
        "ep_s0",
        "ep_seg",
        "ep_sigma0",
        "ep_sudden",
        "ep_t0",
        "ep_ups",
        "h_count",
        "h_expiry",
        "h_min_r",
        "h_n0",
        "h_need",
        "h_noise",
        "h_onset_r",
        "h_onset_v",
        "h_prev_v",
        "h_r0",
        "h_ready",
        "h_t0",
        "hard",
        "latch_step",
        "lim_count",
        "lim_inside",
        "lim_n0",
        "lim_reported",
        "lim_step",
        "lim_t0",
        "re_count",
        "re_n0",
        "re_t0",
        "rec",
        "th",
    )

    def __init__(self, th: Thresholds) -> None:
        self.th = th
        self.hard = IDLE
        self.h_r0 = math.nan  # frozen running resistance of the candidate / the short
        self.h_n0 = 0
        self.h_t0 = 0.0
        self.h_count = 0
        self.h_need = th.confirm  # samples that confirm this candidate
        self.h_noise = 0.0  # noise_factor × the level's noise at the onset (ohm)
        self.h_min_r = math.inf
        self.h_onset_r = math.nan  # |V/I| at the candidate's onset
        self.h_onset_v = math.nan  # V at the candidate's onset
        self.h_prev_v = math.nan  # V of the candidate's previous sample
        self.h_ready = -math.inf  # earliest time the candidate may be confirmed
        self.h_expiry = math.inf  # the candidate is dropped if still unconfirmed after this
        self.latch_step = 0
        self.rec = 0  # consecutive recovered samples while SHORTED
        self.re_count = 0  # consecutive collapsed samples in a new step while SHORTED
        self.re_n0 = 0
        self.re_t0 = 0.0
        self.ep = False
        self.ep_n0 = 0
        self.ep_t0 = 0.0
        self.ep_s0 = 0.0
        self.ep_sigma0 = 0.0
        self.ep_seg = 0
        self.ep_dips = 0
        self.ep_ups = 0
        self.ep_nondip = 0
        self.ep_last_dip_t = 0.0
        self.ep_min_r = math.inf
        self.ep_run = 0  # consecutive dips now
        self.ep_run_t0 = 0.0
        self.ep_runs = 0  # separate dips (runs of consecutive dips)
        self.ep_best_run = 0.0  # longest run of consecutive dips that spans confirm_time
        self.ep_sudden = False  # the first dip was a step from the sample before it
        self.ep_first_r = math.nan  # |V/I| at the first dip
        # the episode as it stood when a hard candidate opened
        self.ep_cand: tuple[int, int, float, float, float, int] | None = None
        self.lim_count = 0
        self.lim_n0 = 0
        self.lim_t0 = 0.0
        self.lim_reported = False
        self.lim_inside = 0
        self.lim_step = 0

    @property
    def idle(self) -> bool:
        """Nothing open: only flagged samples can change anything."""
        return self.hard == IDLE and not self.ep and self.lim_count == 0 and not self.lim_reported

    @property
    def shorted(self) -> bool:
        return self.hard == SHORTED

    # ------------------------------------------------------------------ criteria

    def collapsed_vs_frozen(self, v: float, i: float, r: float, ohmic: bool) -> bool:
        """The hard criterion against the reference frozen at the candidate's onset."""
        r0 = self.h_r0
        th = self.th
        if r0 == r0:
            return ohmic and r0 * abs(i) >= th.floor and r < th.fraction * r0
        return abs(v) < th.floor

    def _flat(self, v: float, i: float, r: float) -> bool:
        """A short holds still: the voltage within a quarter of the collapse threshold's
        voltage of the previous sample (a polarisation relaxing through 0 V moves)."""
        th = self.th
        r0 = self.h_r0
        if r0 != r0:
            return abs(v - self.h_prev_v) <= STEADY * th.floor
        return abs(v - self.h_prev_v) <= STEADY * th.fraction * r0 * abs(i)

    def recovered_vs_frozen(self, v: float, r: float) -> bool:
        r0 = self.h_r0
        th = self.th
        if r0 == r0:
            return r >= th.keep * r0
        return abs(v) * th.fraction >= th.floor

    # --------------------------------------------------------------------- step

    def step(
        self,
        n: int,
        t: float,
        v: float,
        i: float,
        temp: float,
        step: int,
        cycle: int,
        ev: bool,
        seg: int,
        r: float,
        rp: float,
        h: float,
        s: float,
        sigma: float,
        scatter: float,
        collapsed: bool,
        dip: bool,
        lim: bool,
        ohmic: bool,
        wire: bool,
        t_change: float,
        thermal: bool,
    ) -> list[ShortEvent]:
        """Advance on one sample; return what it decided (usually nothing)."""
        out: list[ShortEvent] = []
        th = self.th
        # ---------------------------------------------------------------- hard
        if self.hard == CANDIDATE and ev:
            if t > self.h_expiry and self.h_count >= self.h_need:
                self.hard = IDLE
                self.ep_cand = None
            elif (r > RISE * self.h_onset_r + self.h_noise and not abs(v) < th.floor) or (
                self.h_r0 != self.h_r0
                and abs(v - self.h_onset_v) > (RISE - 1) * max(abs(self.h_onset_v), th.floor)
            ):
                # |V/I| climbs, or (below the floor) V drifts: a polarisation building or
                # relaxing, not a short
                self.hard = IDLE
                self.ep_cand = None
            elif self.collapsed_vs_frozen(v, i, r, ohmic):
                self.h_count += 1
                if r < self.h_min_r:
                    self.h_min_r = r
                flat = self._flat(v, i, r)
                self.h_prev_v = v
                if (
                    flat
                    and self.h_count >= self.h_need
                    and t - self.h_t0 >= th.confirm_time
                    and t >= self.h_ready
                ):
                    self._confirm(out, n, t, v, i, temp, step, cycle, r)
            else:
                self.hard = IDLE
                self.ep_cand = None
        elif self.hard == SHORTED and ev:
            self._while_shorted(out, n, t, v, i, temp, step, cycle, r, ohmic)
        if self.hard == IDLE and ev and collapsed:
            self.hard = CANDIDATE
            self.h_r0 = h
            self.h_n0 = n
            self.h_t0 = t
            self.h_count = 1
            self.h_min_r = r
            self.h_onset_r = r
            self.h_onset_v = v
            self.h_prev_v = v
            # a collapse not far above the level's noise (a noise burst) needs twice the
            # samples
            self.h_noise = th.noise_factor * scatter if scatter == scatter else 0.0
            self.h_need = 2 * th.confirm if self.h_noise > h - r else th.confirm
            # right after a change the polarisation left from before still relaxes: a
            # collapse must hold until `settle` — unless the cell answered like a wire
            self.h_ready = -math.inf if wire else t_change + th.settle
            # a short is confirmed promptly; a candidate that could not be, is not one
            self.h_expiry = max(self.h_ready, t + th.confirm_time) + th.settle
            self.ep_cand = (
                (
                    self.ep_dips,
                    self.ep_ups,
                    self.ep_last_dip_t,
                    self.ep_min_r,
                    self.ep_best_run,
                    self.ep_runs,
                )
                if self.ep
                else None
            )
            if self.h_need <= 1 and th.confirm_time <= 0 and t >= self.h_ready:
                self._confirm(out, n, t, v, i, temp, step, cycle, r)
        # ---------------------------------------------------------------- soft
        if self.ep and ev and thermal:
            self.ep = False  # the block moved: the level's value is no yardstick any more
            self.ep_cand = None
        if self.ep and ev:
            if seg != self.ep_seg:
                self._close_episode(out, n, t, v, i, temp, step, cycle, "the level changed")
            else:
                s0 = self.ep_s0
                margin = th.noise_factor * self.ep_sigma0
                if r < th.keep * s0 and (s0 - r) > margin:
                    self.ep_dips += 1
                    self.ep_last_dip_t = t
                    self.ep_nondip = 0
                    if self.ep_run == 0:
                        self.ep_run_t0 = t
                        self.ep_runs += 1
                    self.ep_run += 1
                    if self.ep_run >= max(2, th.confirm) and t - self.ep_run_t0 >= th.confirm_time:
                        self.ep_best_run = max(self.ep_best_run, t - self.ep_run_t0)
                    if r < self.ep_min_r:
                        self.ep_min_r = r
                    if t - self.ep_t0 >= th.soft_max:
                        self._close_episode(out, n, t, v, i, temp, step, cycle, "", persistent=r)
                else:
                    # an excursion above the level: noise goes both ways, a filament
                    # only ever shunts the cell
                    if r > s0 * (1.5 - 0.5 * th.keep) and (r - s0) > margin:
                        self.ep_ups += 1
                    self.ep_nondip += 1
                    self.ep_run = 0
                    if self.ep_nondip >= 3 and t - self.ep_last_dip_t >= th.soft_gap:
                        self._close_episode(out, n, t, v, i, temp, step, cycle, "")
        if not self.ep and ev and dip and self.hard != SHORTED:
            self.ep = True
            self.ep_n0 = n
            self.ep_t0 = t
            self.ep_s0 = s
            self.ep_sigma0 = sigma
            self.ep_seg = seg
            self.ep_dips = 1
            self.ep_ups = 0
            self.ep_nondip = 0
            self.ep_last_dip_t = t
            self.ep_min_r = r
            self.ep_run = 1
            self.ep_runs = 1
            self.ep_run_t0 = t
            self.ep_best_run = -1.0
            self.ep_sudden = rp == rp and r < th.keep * rp
            self.ep_first_r = r
        # ------------------------------------------------------- voltage limit
        if self.lim_reported:
            if step != self.lim_step:
                self.lim_reported = False
            elif lim:
                self.lim_inside = 0
            else:
                self.lim_inside += 1
                if self.lim_inside >= th.confirm:
                    self.lim_reported = False
        elif lim:
            if self.lim_count == 0:
                self.lim_n0 = n
                self.lim_t0 = t
            self.lim_count += 1
            if self.lim_count >= th.confirm and t - self.lim_t0 >= th.confirm_time:
                upper = v >= th.v_max - th.margin
                edge = th.v_max if upper else th.v_min
                which = "upper" if upper else "lower"
                out.append(
                    ShortEvent(
                        kind=EventKind.VOLTAGE_LIMIT,
                        time_s=t,
                        onset_s=self.lim_t0,
                        index=n,
                        onset_index=self.lim_n0,
                        voltage=v,
                        current=i,
                        current_density=self._density(i),
                        resistance=None,
                        apparent_resistance=abs(v / i) if i != 0 else None,
                        temperature=temp if temp == temp else None,
                        step=step,
                        cycle=cycle,
                        reason=f"the voltage reached the window's {which} edge ({edge:g} V): "
                        "polarisation or compliance, not a short",
                        duration_s=t - self.lim_t0,
                    )
                )
                self.lim_reported = True
                self.lim_step = step
                self.lim_inside = 0
                self.lim_count = 0
        else:
            self.lim_count = 0
        return out

    # ---------------------------------------------------------------- helpers

    def _density(self, i: float) -> float | None:
        area = self.th.area
        return i / area if area is not None else None

    def _confirm(
        self,
        out: list[ShortEvent],
        n: int,
        t: float,
        v: float,
        i: float,
        temp: float,
        step: int,
        cycle: int,
        r: float,
    ) -> None:
        th = self.th
        snapshot = self.ep_cand
        if self.ep:
            if snapshot is not None:
                (
                    self.ep_dips,
                    self.ep_ups,
                    self.ep_last_dip_t,
                    self.ep_min_r,
                    self.ep_best_run,
                    self.ep_runs,
                ) = snapshot
                self._close_episode(out, n, t, v, i, temp, step, cycle, "before a hard short")
            self.ep = False
        self.ep_cand = None
        r0 = self.h_r0
        if r0 == r0:
            reason = (
                f"V/I fell to {100 * r / r0:.2g} % of the running resistance "
                f"({_fmt_ohm(r0)}) for {self.h_count} samples"
            )
            depth: float | None = self.h_min_r / r0
        else:
            reason = (
                f"|V| below the {th.floor * 1e3:g} mV floor for {self.h_count} samples "
                "with current flowing (no running resistance yet)"
            )
            depth = None
        out.append(
            ShortEvent(
                kind=EventKind.HARD_SHORT,
                time_s=t,
                onset_s=self.h_t0,
                index=n,
                onset_index=self.h_n0,
                voltage=v,
                current=i,
                current_density=self._density(i),
                resistance=r0 if r0 == r0 else None,
                apparent_resistance=r,
                temperature=temp if temp == temp else None,
                step=step,
                cycle=cycle,
                reason=reason,
                depth=depth,
                duration_s=t - self.h_t0,
            )
        )
        self.hard = SHORTED
        self.latch_step = step
        self.rec = 0
        self.re_count = 0

    def _while_shorted(
        self,
        out: list[ShortEvent],
        n: int,
        t: float,
        v: float,
        i: float,
        temp: float,
        step: int,
        cycle: int,
        r: float,
        ohmic: bool,
    ) -> None:
        th = self.th
        if self.collapsed_vs_frozen(v, i, r, ohmic):
            self.rec = 0
            if step != self.latch_step:
                if self.re_count == 0:
                    self.re_n0 = n
                    self.re_t0 = t
                self.re_count += 1
                if self.re_count >= th.confirm and t - self.re_t0 >= th.confirm_time:
                    r0 = self.h_r0
                    out.append(
                        ShortEvent(
                            kind=EventKind.HARD_SHORT,
                            time_s=t,
                            onset_s=self.re_t0,
                            index=n,
                            onset_index=self.re_n0,
                            voltage=v,
                            current=i,
                            current_density=self._density(i),
                            resistance=r0 if r0 == r0 else None,
                            apparent_resistance=r,
                            temperature=temp if temp == temp else None,
                            step=step,
                            cycle=cycle,
                            reason=f"still shorted at step {step}: V/I is "
                            f"{_fmt_ohm(r)} against {_fmt_ohm(r0)} before the short",
                            depth=r / r0 if r0 == r0 else None,
                            duration_s=t - self.re_t0,
                        )
                    )
                    self.latch_step = step
                    self.re_count = 0
            return
        self.re_count = 0
        if self.recovered_vs_frozen(v, r):
            self.rec += 1
            if self.rec >= th.confirm:
                self.hard = IDLE
                self.rec = 0
        else:
            self.rec = 0

    def _close_episode(
        self,
        out: list[ShortEvent],
        n: int,
        t: float,
        v: float,
        i: float,
        temp: float,
        step: int,
        cycle: int,
        why: str,
        *,
        persistent: float | None = None,
    ) -> None:
        """End the episode; report it if it was a soft short. ``persistent``: the |V/I| of
        a sample still dipping after ``soft_max`` (None: the episode ended otherwise)."""
        th = self.th
        self.ep = False
        span = self.ep_last_dip_t - self.ep_t0
        collapse = self.ep_best_run >= 0  # a partial collapse held over consecutive samples
        flicker = self.ep_runs >= 3 and span >= th.confirm_time
        if self.ep_ups > 0 or not (collapse or flicker):
            return
        if persistent is not None and not (
            self.ep_sudden and persistent >= th.keep * self.ep_first_r
        ):
            # a partial short drops at once and holds its level; a resistance that kept
            # falling is a warming cell (seen without a thermometer)
            return
        depth = self.ep_min_r / self.ep_s0
        if persistent is not None:
            reason = (
                f"partial collapse to {100 * depth:.2g} % of the level's running value "
                f"({_fmt_ohm(self.ep_s0)}) not recovered after {span:.3g} s; "
                "accepted as the level's new normal"
            )
        else:
            reason = (
                f"{self.ep_dips} samples dipped to as low as {100 * depth:.2g} % of the "
                f"level's running value ({_fmt_ohm(self.ep_s0)}) over {span:.3g} s"
                + (f", {why}" if why else ", then recovered")
            )
        out.append(
            ShortEvent(
                kind=EventKind.SOFT_SHORT,
                time_s=t,
                onset_s=self.ep_t0,
                index=n,
                onset_index=self.ep_n0,
                voltage=v,
                current=i,
                current_density=self._density(i),
                resistance=self.ep_s0,
                apparent_resistance=self.ep_min_r,
                temperature=temp if temp == temp else None,
                step=step,
                cycle=cycle,
                reason=reason,
                depth=depth,
                duration_s=span,
            )
        )
