"""The run's snapshot: what a console, ``…/cmd/status`` and the retained MQTT status show.

Plain data, built by the runner on request (``Runner.status()``), never on the sample
path. Times are test-time seconds; ``remaining`` bounds are ``(min, max)`` seconds, with
``max`` ``None`` when the step ends on a condition without a known bound.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class StepStatus:
    count: int  # 1-based executed-step number (BDF "Step Count")
    path: str  # position in the protocol, '3' or '5.2'
    kind: str  # rest | hold_current | … | temperature
    label: str | None
    started_t: float
    elapsed: float  # s in this step (a resumed step counts its earlier part too)
    remaining: tuple[float, float | None]  # s left in this step: (earliest, latest)
    detail: str  # e.g. "cycle 12 of ≤ 1000, plating", "soak 1.2 h of 6 h in band"


@dataclass(frozen=True, slots=True)
class EventStatus:
    t: float
    unix: float
    kind: str
    severity: str  # info | warning | fault
    message: str


@dataclass(frozen=True, slots=True)
class RunStatus:
    rig: str
    run: str  # run id (journal file stem)
    protocol: str  # protocol name
    cell: dict[str, Any]  # id, electrolyte, type, area_cm2
    state: str  # idle | running | paused | finished | aborted | faulted
    t: float  # test time now, s
    unix: float
    step: StepStatus | None
    steps_done: int
    steps_total: int
    remaining: tuple[float, float | None]  # s left in the whole run: (earliest, latest)
    cycle: int
    temperature: float | None  # degC
    setpoint: float | None  # degC, ramped setpoint now (None: heater off)
    target: float | None  # degC, where the ramp goes
    duty: float | None  # 0..1
    in_band: bool | None  # inside the temperature step's band (None: no band now)
    voltage: float | None  # V, latest sample
    current: float | None  # A, + plates the working electrode
    current_density: float | None  # A/cm²
    source: str  # current | voltage | off
    last_sample: dict[str, Any] | None  # seq (last stored), t, unix
    samples_seen: int  # every sample measured (stored or not)
    events: list[EventStatus] = field(default_factory=list)  # latest first, at most 8
    results: list[dict[str, Any]] = field(default_factory=list)  # finished steps' results
    reason: str | None = None  # why it ended / paused

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
