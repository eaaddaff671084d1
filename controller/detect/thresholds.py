"""The detector's settings as plain floats, shared by the streaming and offline paths.

Built from the protocol's ``detection:`` block (``ShortDetection``), the cell area and the
voltage window, so the per-sample code never touches pydantic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from controller.protocol import ShortDetection


@dataclass(frozen=True, slots=True)
class Thresholds:
    current_min: float
    fraction: float  # hard: V/I below fraction × running resistance
    floor: float  # V
    confirm: int
    confirm_time: float
    settle: float
    keep: float  # soft: V/I below keep × the level's running value is a dip (1 - drop)
    noise_factor: float
    window: int  # odd
    soft_gap: float
    soft_max: float
    temp_tol: float
    max_age: float
    level_tol: float
    margin: float
    area: float | None  # cm², for current densities
    v_min: float  # voltage window (−inf/+inf when unknown)
    v_max: float

    @classmethod
    def build(
        cls,
        settings: ShortDetection | None = None,
        *,
        area_cm2: float | None = None,
        voltage_window: tuple[float, float] | None = None,
    ) -> Thresholds:
        s = settings or ShortDetection()
        if area_cm2 is not None and not (area_cm2 > 0 and math.isfinite(area_cm2)):
            raise ValueError(f"cell area must be positive, got {area_cm2!r}")
        lo, hi = voltage_window if voltage_window is not None else (-math.inf, math.inf)
        if not lo < hi:
            raise ValueError(f"voltage window must be ordered, got {voltage_window!r}")
        return cls(
            current_min=s.current_min,
            fraction=s.resistance_fraction,
            floor=s.voltage_floor,
            confirm=s.confirm_samples,
            confirm_time=s.confirm_time,
            settle=s.settle,
            keep=1.0 - s.soft_drop_fraction,
            noise_factor=s.noise_factor,
            window=s.soft_window,
            soft_gap=s.soft_gap,
            soft_max=s.soft_max_duration,
            temp_tol=s.temperature_tolerance,
            max_age=s.reference_max_age,
            level_tol=s.level_tolerance,
            margin=s.limit_margin,
            area=area_cm2,
            v_min=lo,
            v_max=hi,
        )

    @property
    def limits_known(self) -> bool:
        return math.isfinite(self.v_min) or math.isfinite(self.v_max)
