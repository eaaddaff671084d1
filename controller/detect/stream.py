"""The streaming short detector: fed every sample on the control path.

Per sample it computes the features (docs/short-detection.md) in a few microseconds and
hands flagged samples to :class:`~controller.detect.machine.Decisions`. For a sample under
current (|I| ≥ ``current_min``):

- ``r`` = |V/I|, the cell's apparent resistance;
- ``h``, the running resistance it is judged against. Within a stretch of current (a
  *run*: no rest of two samples or more, no reversal, no jump of more than 50 %, no new
  step) it is the lower median of the run's last 5 samples: it follows slow changes
  (temperature, polarisation) within a couple of samples, but a collapse is confirmed
  before it can follow. At the first sample of a run it is the lower median of the last 5
  *step resistances* |ΔV/ΔI| across current changes — the cell's fast (ohmic and
  charge-transfer) resistance, which the polarisation left from before cannot fake. A run
  whose step was measured starts judged by the step alone: a healthy step means a low
  voltage now is that polarisation relaxing, not a short;
- ``wire``: the current change itself was answered like a wire (|ΔV/ΔI| below
  ``resistance_fraction`` × the step reference): the cell was already shorted (a short
  during a rest or with the output off);
- ``ohmic``: V·I has the cell's learned sign convention (or |V| is below the floor); a
  polarisation relaxing after a reversal keeps the old sign for a while;
- ``s``/``sigma``: the level's running value (median of its last ``soft_window``
  samples) and noise (median sample-to-sample change, drift included), for soft shorts;
  ``scatter``: the noise about the trend (median second difference), which makes a hard
  collapse inside a noise burst need twice the samples;
- ``thermal``: the block moved more than ``temperature_tolerance`` within the last minute
  (soft decisions pause: a warming cell's resistance falls by itself);
- flags: ``collapsed`` (hard criterion), ``dip`` (soft criterion), ``lim`` (voltage limit).

Every remembered value carries its time and temperature and is ignored once it is older
than ``reference_max_age`` or further than ``temperature_tolerance`` from now.

The same features are computed in bulk by :mod:`controller.detect.offline`; both paths use
the same IEEE operations, so they decide identically.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from controller.detect.events import ShortEvent
from controller.detect.machine import NO_EVENTS, Decisions
from controller.detect.thresholds import Thresholds
from controller.protocol import Protocol, ShortDetection
from controller.samples import Sample

#: codes of ``Sample.source`` (offline traces are "current" with an unknown level)
SOURCE_CODES = {"off": 0, "current": 1, "voltage": 2}

#: samples behind a running resistance (the lower median ignores two outliers)
MEMORY = 5
#: a current change by more than this fraction starts a new run (the polarisation resets)
JUMP = 0.5
#: the block is "moving" when its temperature changed by more than temperature_tolerance
#: within this long (s): soft decisions pause (a warming cell's resistance falls by itself)
THERMAL_WINDOW = 60.0
#: median |second difference| of white noise is 1.65 σ (0.6745·√6): the scatter about the
#: trend, blind to a steady drift or relaxation
SCATTER = 1.65
INF = math.inf

Memory = deque[tuple[float, float, float]]  # (|V/I|, t, temperature)


def _lower_median(mem: Memory, t: float, temp: float, th: Thresholds, newest: bool) -> float:
    """Lower median of the remembered values still valid at (t, temp); NaN if none.
    With ``newest``, the newest value is valid whatever the temperature (within a run it
    is the sample just before: the freshest word on the cell, even while it warms)."""
    last = len(mem) - 1
    vals = [
        rk
        for k, (rk, tk, tempk) in enumerate(mem)
        if t - tk <= th.max_age
        and (
            (newest and k == last)
            or tempk != tempk
            or temp != temp
            or abs(temp - tempk) <= th.temp_tol
        )
    ]
    if not vals:
        return math.nan
    vals.sort()
    return vals[(len(vals) - 1) // 2]


class ShortDetector:
    """Streaming detector: one instance per run (per cell), fed every sample in order.

    Construct it with :meth:`for_protocol` (or from a ``ShortDetection`` and the cell
    area), then call :meth:`update` with each :class:`~controller.samples.Sample`. Level
    and step changes are read from the samples themselves: keep ``Sample.source``,
    ``Sample.level`` and ``Sample.step`` true to what the source-measure unit was told.
    """

    __slots__ = (
        "_gap",
        "_last_ev_i",
        "_last_ev_level",
        "_last_ev_source",
        "_last_ev_step",
        "_n",
        "_prev_ev",
        "_prev_i",
        "_prev_level",
        "_prev_r",
        "_prev_r2",
        "_prev_source",
        "_prev_step",
        "_prev_v",
        "_run",
        "_seg",
        "_sign_votes",
        "_steps",
        "_t_change",
        "_temps",
        "_win_d",
        "_win_d2",
        "_win_r",
        "decisions",
        "th",
    )

    def __init__(
        self,
        settings: ShortDetection | None = None,
        *,
        area_cm2: float | None = None,
        voltage_window: tuple[float, float] | None = None,
        thresholds: Thresholds | None = None,
    ) -> None:
        self.th = thresholds or Thresholds.build(
            settings, area_cm2=area_cm2, voltage_window=voltage_window
        )
        self.reset()

    @classmethod
    def for_protocol(
        cls, protocol: Protocol, *, voltage_window: tuple[float, float] | None = None
    ) -> ShortDetector:
        """Thresholds from ``protocol.detection``, area from ``protocol.cell``, voltage
        window from ``protocol.safety.voltage`` (pass ``voltage_window`` to use the
        effective window after the rig's limits instead)."""
        window = voltage_window or (protocol.safety.voltage.min, protocol.safety.voltage.max)
        return cls(protocol.detection, area_cm2=protocol.cell.area_cm2, voltage_window=window)

    def reset(self) -> None:
        """Forget everything (a new cell)."""
        self.decisions = Decisions(self.th)
        self._n = -1
        self._prev_ev = False
        self._prev_step = 0
        self._prev_source = -1
        self._prev_level: float | None = None
        self._prev_i = math.nan
        self._prev_v = math.nan
        self._prev_r = math.nan
        self._prev_r2 = math.nan
        self._gap = 0  # samples not under current since the last one that was
        self._last_ev_i = math.nan
        self._last_ev_step = 0
        self._last_ev_source = -1
        self._last_ev_level: float | None = None
        self._seg = 0
        self._t_change = -INF
        self._temps: deque[tuple[float, float]] = deque()  # (t, temperature), last minute
        self._sign_votes = 0  # (# samples with V·I > 0) − (# with V·I < 0), |V| ≥ floor
        self._run: Memory = deque(maxlen=MEMORY)  # |V/I| of the run's last samples
        self._steps: Memory = deque(maxlen=MEMORY)  # |ΔV/ΔI| at the last current changes
        w = self.th.window
        self._win_r: deque[float] = deque(maxlen=w)
        self._win_d: deque[float] = deque(maxlen=w - 1)
        self._win_d2: deque[float] = deque(maxlen=w - 2)

    @property
    def shorted(self) -> bool:
        """True from a hard short until the cell reads healthy again."""
        return self.decisions.shorted

    @property
    def samples_seen(self) -> int:
        return self._n + 1

    def update(self, sample: Sample) -> Sequence[ShortEvent]:
        """Feed one sample; return the events it decided (almost always empty)."""
        return self.feed(
            sample.t,
            sample.voltage,
            sample.current,
            temperature=sample.temperature,
            level=sample.level,
            source=sample.source,
            step=sample.step,
            cycle=sample.cycle,
        )

    def feed(
        self,
        t: float,
        voltage: float,
        current: float,
        *,
        temperature: float | None = None,
        level: float | None = None,
        source: str = "current",
        step: int = 0,
        cycle: int = 0,
    ) -> Sequence[ShortEvent]:
        """:meth:`update` without building a Sample (offline replays, tests)."""
        th = self.th
        self._n = n = self._n + 1
        v = voltage
        i = current
        temp = math.nan if temperature is None else temperature
        src = SOURCE_CODES.get(source, 1)
        on = src != 0
        ai = abs(i)
        known = level is not None
        ev = (
            on
            and -INF < v < INF
            and ai < INF
            and ai >= th.current_min
            and (not known or abs(level) >= th.current_min)  # type: ignore[arg-type]
        )
        lim = on and -INF < v < INF and (v >= th.v_max - th.margin or v <= th.v_min + th.margin)
        collapsed = dip = wire = stepped = False
        ohmic = True
        temps = self._temps
        temps.append((t, temp))
        while temps[0][0] < t - THERMAL_WINDOW:
            temps.popleft()
        t_old = temps[0][1]
        thermal = temp == temp and t_old == t_old and abs(temp - t_old) > th.temp_tol
        r = rp = h = s = sigma = scatter = math.nan
        prev_i = self._prev_i
        if ev:
            # ----------------------------------------------- level (soft) segments
            prev_level = self._prev_level
            prev_known = prev_level is not None
            if (
                not self._prev_ev
                or step != self._prev_step
                or src != self._prev_source
                or known != prev_known
                or (known and level != prev_level)
                or (not known and abs(i - prev_i) > th.level_tol * max(ai, abs(prev_i)))
            ):
                self._seg += 1
                self._win_r.clear()
                self._win_d.clear()
                self._win_d2.clear()
                self._prev_r = math.nan
                self._prev_r2 = math.nan
            r = abs(v) / ai
            # ------------------------------------------ runs and the hard reference
            # (a run survives one sample without current: a glitch of the reading)
            # (under a voltage source the current is the cell's answer, not a command: only
            # a new voltage level starts a run)
            last_i = self._last_ev_i
            if (
                self._gap >= 2
                or last_i != last_i
                or step != self._last_ev_step
                or src != self._last_ev_source
                or (
                    src == 2
                    and (known != (self._last_ev_level is not None) or level != self._last_ev_level)
                )
                or (src != 2 and (i > 0) != (last_i > 0))
                or (src != 2 and abs(i - last_i) > JUMP * max(ai, abs(last_i)))
            ):
                self._run.clear()
                self._t_change = t
                h = _lower_median(self._steps, t, temp, th, False)
                di = i - prev_i
                prev_v = self._prev_v
                if -INF < prev_v < INF and -INF < di < INF and di != 0:
                    # the step answers for the cell: a healthy step means a low level now
                    # is the polarisation left from before, not a short
                    rs = abs(v - prev_v) / abs(di)
                    # a wire: the change moved V by nothing *and* V/I is tiny (a constant
                    # V with a jumping current is a potentiostat, not a short)
                    wire = (
                        h == h
                        and h * abs(di) >= th.floor
                        and rs < th.fraction * h
                        and r < th.fraction * h
                    )
                    stepped = True
                    self._steps.append((rs, t, temp))
            else:
                h = _lower_median(self._run, t, temp, th, True)
            self._run.append((r, t, temp))
            # the cell's sign convention, learned from the samples before
            votes = self._sign_votes
            vi = v * i
            big = abs(v) >= th.floor
            ohmic = not big or votes == 0 or (vi > 0) == (votes > 0)
            if big:
                self._sign_votes = votes + (1 if vi > 0 else -1 if vi < 0 else 0)
            if stepped:
                collapsed = wire
            elif h == h:
                collapsed = ohmic and h * ai >= th.floor and r < th.fraction * h
            else:
                collapsed = abs(v) < th.floor
            # ------------------------------------------------- soft: level window
            w = th.window
            if len(self._win_r) == w:
                s = sorted(self._win_r)[w // 2]
                d = sorted(self._win_d)
                m = w - 1
                sigma = (d[m // 2 - 1] + d[m // 2]) / 2
                scatter = sorted(self._win_d2)[(w - 2) // 2] / SCATTER
                # a filament shunts the cell at once: a dip is also a step down from the
                # sample before (a polarisation relaxing through 0 V glides in)
                dip = (
                    not thermal
                    and r < th.keep * s
                    and (s - r) > th.noise_factor * sigma
                    and r < th.keep * self._prev_r
                )
            rp = self._prev_r
            if rp == rp:
                self._win_d.append(abs(r - rp))
                rp2 = self._prev_r2
                if rp2 == rp2:
                    self._win_d2.append(abs(r - 2.0 * rp + rp2))
            self._win_r.append(r)
            self._prev_r2 = rp
            self._prev_r = r
            self._gap = 0
            self._last_ev_i = i
            self._last_ev_step = step
            self._last_ev_source = src
            self._last_ev_level = level
        else:
            self._gap += 1
        self._prev_ev = ev
        self._prev_step = step
        self._prev_source = src
        self._prev_level = level
        self._prev_i = i
        self._prev_v = v
        dec = self.decisions
        if not (collapsed or dip or lim) and dec.idle:
            return NO_EVENTS
        return dec.step(
            n,
            t,
            v,
            i,
            temp,
            step,
            cycle,
            ev,
            self._seg,
            r,
            rp,
            h,
            s,
            sigma,
            scatter,
            collapsed,
            dip,
            lim,
            ohmic,
            wire,
            self._t_change,
            thermal,
        )
