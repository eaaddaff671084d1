"""Find hard shorts, soft shorts and voltage limits in a recorded trace (CSV, Battery Data
Format headers: 'Test Time / s', 'Voltage / V', 'Current / A'; 'Temperature T1 / degC',
'Step Count / 1' and 'Cycle Count / 1' are used when present, other columns ignored).

The same detector as a live run, with the same thresholds (docs/short-detection.md).
Exit 0 when the file was analysed (whatever it found), 2 when it cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE.csv", help="the recorded trace")
    parser.add_argument(
        "--area",
        metavar="AREA",
        help="electrode area, e.g. 0.785cm^2: events then carry current densities",
    )
    parser.add_argument(
        "--voltage-window",
        metavar="MIN,MAX",
        help="the compliance window, e.g. '-1 V,1 V': reaching it is a voltage_limit event",
    )
    parser.add_argument(
        "--protocol",
        type=Path,
        metavar="PROTOCOL.yaml",
        help="take the thresholds (detection:), the area and the voltage window from a "
        "protocol file; --area/--voltage-window override it",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _quantity(text: str, kind_name: str, option: str) -> float:
    from pydantic_core import PydanticCustomError

    from controller import units
    from controller.problems import UserError

    kind = getattr(units, kind_name)
    try:
        return units.parse(text, kind)
    except PydanticCustomError as exc:
        ctx = exc.context or {}
        raise UserError(
            f"{option} {text!r}: {ctx.get('what', exc.message())}",
            str(ctx.get("hint", f"e.g. {option} {kind.example.replace(' ', '')}")),
        ) from None


def _window(text: str) -> tuple[float, float]:
    from controller.problems import UserError

    parts = [p for p in text.replace(":", ",").split(",") if p.strip()]
    if len(parts) != 2:
        raise UserError(
            f"--voltage-window {text!r}: give the two edges separated by a comma",
            "e.g. --voltage-window '-1 V,1 V'",
        )
    lo, hi = (_quantity(p, "VOLTAGE", "--voltage-window") for p in parts)
    if not lo < hi:
        raise UserError(
            f"--voltage-window {text!r}: the lower edge must come first and be lower",
            "e.g. --voltage-window '-1 V,1 V'",
        )
    return lo, hi


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from controller.detect import Thresholds, detect_trace, read_bdf
    from controller.problems import UserError
    from controller.protocol import ShortDetection

    settings: ShortDetection | None = None
    area: float | None = None
    window: tuple[float, float] | None = None
    if args.protocol is not None:
        from controller.validate import load_protocol

        loaded = load_protocol(args.protocol)
        if not loaded.ok or loaded.protocol is None:
            raise UserError(f"{args.protocol}: not a valid protocol", "", problems=loaded.problems)
        settings = loaded.protocol.detection
        area = loaded.protocol.cell.area_cm2
        window = (loaded.protocol.safety.voltage.min, loaded.protocol.safety.voltage.max)
    if args.area is not None:
        area = _quantity(args.area, "AREA", "--area")
        if area <= 0:
            raise UserError(f"--area {args.area!r}: must be positive", "e.g. --area 0.785cm^2")
    if args.voltage_window is not None:
        window = _window(args.voltage_window)
    trace = read_bdf(args.file)
    thresholds = Thresholds.build(settings, area_cm2=area, voltage_window=window)
    events = sorted(detect_trace(trace, thresholds), key=lambda e: (e.time_s, e.index))
    n = len(trace)
    duration = float(trace.t[-1] - trace.t[0]) if n else 0.0
    period = float(np.median(np.diff(trace.t))) if n > 1 else 0.0
    if args.json:
        report: dict[str, Any] = {
            "events": [e.as_dict() for e in events],
            "file": str(args.file),
            "samples": n,
            "duration_s": duration,
            "sample_period_s": period,
            "area_cm2": area,
            "voltage_window_V": list(window) if window else None,
            "temperature_column": trace.temperature is not None,
        }
        print(json.dumps(report))
        return 0
    _print_human(args.file, trace.temperature is not None, n, duration, period, area, events)
    return 0


def _print_human(
    path: Path,
    has_temperature: bool,
    n: int,
    duration: float,
    period: float,
    area: float | None,
    events: list[Any],
) -> None:
    out = sys.stdout
    hours = duration / 3600
    print(
        f"{path}: {n} samples over {hours:.3g} h (typical period {period:g} s)"
        + ("" if has_temperature else "; no temperature column: assumed constant"),
        file=out,
    )
    if not events:
        print("no shorts and no voltage limits found", file=out)
        return
    counts: dict[str, int] = {}
    for e in events:
        counts[str(e.kind)] = counts.get(str(e.kind), 0) + 1
    print(", ".join(f"{v} {k.replace('_', ' ')}{'s' * (v > 1)}" for k, v in counts.items()))
    for e in events:
        density = (
            f"  {e.current_density * 1e3:+.3g} mA/cm²" if e.current_density is not None else ""
        )
        where = f"  step {e.step}" if e.step else ""
        cycle = f"  cycle {e.cycle}" if e.cycle else ""
        print(
            f"{e.time_s:>12.1f} s  {e.kind!s:<13}  onset {e.onset_s:.1f} s  "
            f"V {e.voltage:+.4g} V  I {e.current * 1e3:+.4g} mA{density}{where}{cycle}",
            file=out,
        )
        print(f"{'':>16}{e.reason}", file=out)
    hard = [e for e in events if str(e.kind) == "hard_short"]
    if hard:
        first = hard[0]
        if first.current_density is not None:
            print(
                f"first hard short at {abs(first.current_density) * 1e3:.3g} mA/cm² "
                "(the CCD, if this trace is a current-density ramp)",
                file=out,
            )
        if first.cycle:
            print(f"first hard short in cycle {first.cycle}", file=out)
