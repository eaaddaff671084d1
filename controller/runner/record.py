"""Which samples are stored: the protocol's ``record`` rules.

Detection and safety see every sample; the journal keeps a sample when ``every`` has
passed since the last stored one, or the voltage (``delta_voltage``) or current
(``delta_current``) moved that much since it. The runner also stores the first sample of
every step and phase and every sample the detector decided on.
"""

from __future__ import annotations

import math

from controller.protocol import Record

#: ``every`` is met this fraction of a sample period early: samples lie on the
#: ``sample_period`` grid, and in real time each one is a few ms early or late, so a
#: 10 s rule on a 1 s grid (or ``every`` = ``sample_period``) would otherwise skip the
#: sample that falls a hair short and store the next one instead
SLACK = 0.5


class RecordRule:
    __slots__ = ("di", "dv", "every", "last_i", "last_t", "last_v")

    def __init__(self, record: Record) -> None:
        self.every = record.every - SLACK * record.sample_period
        self.dv = record.delta_voltage if record.delta_voltage is not None else math.inf
        self.di = record.delta_current if record.delta_current is not None else math.inf
        self.last_t = -math.inf
        self.last_v = math.nan
        self.last_i = math.nan

    def store(self, t: float, v: float, i: float) -> bool:
        """Whether this sample must be stored (call :meth:`stored` when it is)."""
        return (
            t - self.last_t >= self.every
            or abs(v - self.last_v) >= self.dv
            or abs(i - self.last_i) >= self.di
            or self.last_v != self.last_v  # nothing stored yet (NaN)
        )

    def stored(self, t: float, v: float, i: float) -> None:
        self.last_t, self.last_v, self.last_i = t, v, i
