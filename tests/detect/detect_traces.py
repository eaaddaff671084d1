"""Small synthetic traces for the detector's unit tests (the corpus has the long ones)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from controller.detect import ShortDetector, ShortEvent, Thresholds, detect_arrays
from controller.protocol import ShortDetection

AREA = 0.785
I0 = 2e-3 * AREA  # 2 mA/cm²
R_CELL = 127.0  # Ω: LiBH4 at 125 °C, 1 mm


@dataclass
class Trace:
    """Columns of a trace; ``level`` is the commanded current (NaN at rest)."""

    t: list[float] = field(default_factory=list)
    v: list[float] = field(default_factory=list)
    i: list[float] = field(default_factory=list)
    level: list[float] = field(default_factory=list)
    temp: list[float] = field(default_factory=list)
    step: list[int] = field(default_factory=list)

    def add(
        self,
        seconds: float,
        current: float,
        *,
        dt: float = 1.0,
        r: float = R_CELL,
        temp: float = 125.0,
        step: int = 1,
        noise: float = 50e-6,
        seed: int = 0,
    ) -> Trace:
        """A stretch at constant current through an ohmic cell (V = −I·R, plating
        negative) with Gaussian noise; rests read ~0 V and ~nA."""
        rng = np.random.default_rng(seed + len(self.t))
        start = self.t[-1] if self.t else 0.0
        n = round(seconds / dt)
        for k in range(1, n + 1):
            self.t.append(start + k * dt)
            if current == 0:
                self.v.append(float(rng.normal(0, 20e-6)))
                self.i.append(float(rng.normal(0, 2e-9)))
                self.level.append(0.0)
            else:
                self.v.append(float(-current * r + rng.normal(0, noise)))
                self.i.append(float(current * (1 + rng.normal(0, 1e-4))))
                self.level.append(current)
            self.temp.append(temp)
            self.step.append(step)
        return self

    def __len__(self) -> int:
        return len(self.t)

    def index_at(self, t: float) -> int:
        return int(np.argmin(np.abs(np.asarray(self.t) - t)))


def stream(
    tr: Trace,
    settings: ShortDetection | None = None,
    *,
    commanded: bool = True,
    window: tuple[float, float] | None = (-1.0, 1.0),
    temperature: bool = True,
) -> list[ShortEvent]:
    det = ShortDetector(settings, area_cm2=AREA, voltage_window=window)
    out: list[ShortEvent] = []
    for k in range(len(tr)):
        out.extend(
            det.feed(
                tr.t[k],
                tr.v[k],
                tr.i[k],
                temperature=tr.temp[k] if temperature else None,
                level=tr.level[k] if commanded else None,
                source="current",
                step=tr.step[k],
            )
        )
    return out


def offline(
    tr: Trace,
    settings: ShortDetection | None = None,
    *,
    window: tuple[float, float] | None = (-1.0, 1.0),
) -> list[ShortEvent]:
    th = Thresholds.build(settings, area_cm2=AREA, voltage_window=window)
    return detect_arrays(
        np.asarray(tr.t),
        np.asarray(tr.v),
        np.asarray(tr.i),
        thresholds=th,
        temperature=np.asarray(tr.temp),
        step=np.asarray(tr.step),
    )


def kinds(events: list[ShortEvent]) -> list[str]:
    return [str(e.kind) for e in events]
