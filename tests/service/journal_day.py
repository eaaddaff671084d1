"""A typical day of a run written into a real journal: what the size figures are made of.

One day of cycling at 125 °C: a sample every ``every`` seconds (the protocols' default
``record.every``), half-cycles of 30 min at ±1.571 mA (2 mA/cm² on 0.785 cm²) with a
rest between, the block's noisy 0.25 °C thermocouple steps, an event at each half-cycle
and each rest (state, step and cycle changes, ≈ 100 a day) with a short message and a
small data object, and a runner checkpoint every ``checkpoint_every`` seconds.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from controller.journal import Journal
from controller.samples import Sample

DAY = 86400.0
UNIX0 = 1_767_225_600.0


def write_day(
    path: Path,
    *,
    every: float = 10.0,
    days: float = 1.0,
    checkpoint_every: float | None = 60.0,
    seed: int = 1,
) -> dict[str, int]:
    """Write ``days`` of a typical run into a new journal at ``path``; returns counts."""
    rng = random.Random(seed)
    journal = Journal.create(
        path,
        {
            "rig": {"rig": "rig-01", "smu": {"resource": "TCPIP::192.168.1.50::5025::SOCKET"}},
            "protocol_text": "name: heat-therapy-LiBH4\n" + "# a protocol file\n" * 40,
            "state": "running",
        },
        threaded=False,
    )
    half, rest, amps = 1800.0, 300.0, 1.571e-3
    period = 2 * (half + rest)
    counts = {"samples": 0, "events": 0, "checkpoints": 0}
    n = int(days * DAY / every)
    next_checkpoint = checkpoint_every or math.inf
    phase_seen = -1
    for i in range(n):
        t = i * every
        into = t % period
        cycle = int(t // period) + 1
        if into < half:
            phase, current = 0, amps
        elif into < half + rest:
            phase, current = 1, 0.0
        elif into < 2 * half + rest:
            phase, current = 2, -amps
        else:
            phase, current = 3, 0.0
        voltage = 0.012 * (1 if current > 0 else -1 if current < 0 else 0.05)
        voltage += rng.gauss(0, 2e-5) + 0.002 * math.sin(t / 900)
        temperature = round((125.0 + rng.gauss(0, 0.15)) * 4) / 4
        journal.add_sample(
            Sample(
                t=t,
                voltage=voltage,
                current=current + rng.gauss(0, 1e-8),
                temperature=temperature,
                level=current if current else None,
                source="current",
                step=5,
                cycle=cycle,
                unix=UNIX0 + t,
                setpoint=125.0,
                duty=round(0.3 + rng.gauss(0, 0.02), 3),
            )
        )
        counts["samples"] += 1
        slot = int(t // (period / 4))
        if slot != phase_seen:
            phase_seen = slot
            what = ("plate", "rest", "strip", "rest")[phase]
            journal.add_event(
                "state",
                f"cycle {cycle}: {what}",
                t=t,
                unix=UNIX0 + t,
                step=5,
                data={"cycle": cycle, "phase": what, "current": current},
            )
            counts["events"] += 1
        if t >= next_checkpoint:
            journal.checkpoint(
                {
                    "position": [5],
                    "cycle": cycle,
                    "phase": phase,
                    "step_started_t": 3600.0,
                    "phase_started_t": t - into,
                    "charge": {"plated": cycle * 2.83, "stripped": cycle * 2.83},
                    "thermal": {"setpoint": 125.0, "soaked": 10800.0, "integral": 0.31},
                    "detector": {"resistance": 7.6, "noise": 2e-5, "soft_shorts": 0},
                },
                t=t,
                unix=UNIX0 + t,
            )
            counts["checkpoints"] += 1
            next_checkpoint += checkpoint_every or math.inf
    journal.close()
    return counts


def size_on_disk(path: Path) -> int:
    """The journal with its WAL and shared-memory files, as the card holds them."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
