"""What the detector reports: plain data the runner journals and publishes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    HARD_SHORT = "hard_short"  # the cell turned ohmic: stop the current, step outcome `short`
    SOFT_SHORT = "soft_short"  # a partial collapse or flicker that recovered: an event
    VOLTAGE_LIMIT = "voltage_limit"  # the voltage reached the window's edge: not a short


@dataclass(frozen=True, slots=True)
class ShortEvent:
    """One detection. Times are the samples' test times (s); indices count samples fed.

    ``time_s``/``index`` is the sample on which the detector decided (for a hard short, the
    sample that confirmed it: the runner switches the output off there); ``onset_s`` and
    ``onset_index`` the first sample of the collapse, episode or excursion.
    """

    kind: EventKind
    time_s: float
    onset_s: float
    index: int
    onset_index: int
    voltage: float  # V at the deciding sample
    current: float  # A at the deciding sample (sign: + plates the working electrode)
    current_density: float | None  # A/cm², when the cell area is known
    resistance: float | None  # ohm: the running resistance the collapse is measured against
    apparent_resistance: float | None  # ohm: |V/I| at the deciding sample
    temperature: float | None  # degC at the deciding sample
    step: int
    cycle: int
    reason: str
    depth: float | None = None  # smallest |V/I| over the running resistance (hard, soft)
    duration_s: float | None = None  # soft: first to last dip; limit/hard: onset to decision

    @property
    def latency_samples(self) -> int:
        """Samples from the onset to the decision, both counted (2 = the next sample)."""
        return self.index - self.onset_index + 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: finite floats or None, the kind as its name."""

        def num(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else float(x)

        return {
            "kind": str(self.kind),
            "time_s": float(self.time_s),
            "onset_s": float(self.onset_s),
            "index": self.index,
            "onset_index": self.onset_index,
            "latency_samples": self.latency_samples,
            "voltage_V": num(self.voltage),
            "current_A": num(self.current),
            "current_density_A_per_cm2": num(self.current_density),
            "resistance_ohm": num(self.resistance),
            "apparent_resistance_ohm": num(self.apparent_resistance),
            "temperature_degC": num(self.temperature),
            "step": self.step,
            "cycle": self.cycle,
            "depth": num(self.depth),
            "duration_s": num(self.duration_s),
            "reason": self.reason,
        }
