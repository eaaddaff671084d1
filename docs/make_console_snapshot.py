"""Write docs/console.svg (and docs/console.txt): the live console in the README.

    uv run python docs/make_console_snapshot.py [OUT.svg]

The status is the heat-therapy campaign (protocols/heat-therapy-LiBH4.yaml) on day 2,
cycling at 125 °C after the 160 °C therapy, built by hand until ``heatcycler demo`` can
write it from a real simulated run. The wall-clock end is shown in UTC here, so the
files do not change with the machine's time zone.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from controller.clock import VIRTUAL_EPOCH
from controller.runner.status import EventStatus, RunStatus, StepStatus
from controller.ui.console import snapshot

HOUR = 3600.0


def example_status() -> RunStatus:
    """The campaign 27.8 h in: 37 cycles into the post-therapy cycling at 125 °C."""
    t = 27 * HOUR + 47 * 60 + 12
    step_start = 1 * HOUR + 5 * 70 * 60 + 3 * HOUR + 6 * HOUR + 20 * 60
    events = [
        (t - 95, "info", "half_cycle", "cycle 37: plating at +1.571 mA (2.00 mA/cm²)"),
        (t - 1895, "info", "half_cycle", "cycle 37: stripping at −1.571 mA"),
        (t - 2 * HOUR - 611, "warning", "soft_short", "soft short suspected: R fell 18 % in 40 s"),
        (t - 2 * HOUR - 571, "info", "soft_short_cleared", "resistance recovered (48.1 Ω)"),
        (step_start, "info", "step_started", "step 5/5 cycle «post-therapy»: until short"),
        (step_start - 5, "info", "step_ended", "step 4/5 temperature «settle»: soaked 3 h"),
        (step_start - 3 * HOUR - 900, "info", "step_ended", "step 3/5 «heat-therapy»: 6 h"),
    ]
    return RunStatus(
        rig="bench-2",
        run="20260101T000000-S07-heat-therapy-LiBH4",
        protocol="heat-therapy-LiBH4",
        cell={"id": "S07", "electrolyte": "LiBH4", "type": "symmetric", "area_cm2": 0.785},
        state="running",
        t=t,
        unix=VIRTUAL_EPOCH + t,
        step=StepStatus(
            count=5,
            path="5",
            kind="cycle",
            label="post-therapy",
            started_t=step_start,
            elapsed=t - step_start,
            remaining=(35 * 60.0, 963 * 70 * 60.0 + 35 * 60),
            detail="cycle 37 of ≤ 1000, plating 25 min of 30",
        ),
        steps_done=4,
        steps_total=5,
        remaining=(35 * 60.0, 963 * 70 * 60.0 + 35 * 60),
        cycle=37,
        temperature=125.02,
        setpoint=125.0,
        target=125.0,
        duty=0.34,
        in_band=True,
        voltage=0.0123,
        current=1.571e-3,
        current_density=2.0e-3,
        source="current",
        last_sample={"seq": 10412, "t": t - 4, "unix": VIRTUAL_EPOCH + t - 4},
        samples_seen=100032,
        events=[
            EventStatus(t=et, unix=VIRTUAL_EPOCH + et, kind=k, severity=s, message=m)
            for et, s, k, m in sorted(events, reverse=True)
        ],
        results=[
            {"path": "2", "label": "precycle", "cycles_to_short": None, "cycles_completed": 5},
            {"path": "3", "label": "heat-therapy", "summary": "6 h in band, max 160.31 °C"},
        ],
    )


def main(argv: list[str]) -> int:
    os.environ["TZ"] = "UTC"
    time.tzset()
    out = Path(argv[0]) if argv else Path(__file__).resolve().parent / "console.svg"
    text = snapshot(example_status(), "connected", out, width=100)
    print(f"wrote {out} and {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
