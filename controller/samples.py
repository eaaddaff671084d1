"""A sample: one measurement of the cell, as every part of the controller sees it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sample:
    """One V/I measurement with its context.

    ``current`` follows the project's sign convention: positive plates lithium on the
    working electrode. ``level`` is the source level the SMU was commanded to (A for a
    current source, V for a voltage source; ``None`` at open circuit), so that the
    detector can tell a commanded current change from a collapse.
    """

    t: float  # test time, s since the run started (monotonic / virtual)
    voltage: float  # V
    current: float  # A
    temperature: float | None = None  # degC, the block's thermocouple
    level: float | None = None  # commanded source level
    source: str = "off"  # "current" | "voltage" | "off"
    step: int = 0  # step count (1-based index of executed steps; BDF "Step Count")
    cycle: int = 0  # cycle count (BDF "Cycle Count")
    unix: float = 0.0  # unix time of the measurement
    setpoint: float | None = None  # degC, the thermal loop's setpoint now (None: heater off)
    duty: float | None = None  # 0..1, the heater duty now
