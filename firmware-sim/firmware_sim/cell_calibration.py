"""Calibration of the cell physics against the seeds, through the bundled protocols.

    uv run python -m firmware_sim.cell_calibration            # table for seed 0, spread 0-9

Every figure is a rehearsal (:mod:`firmware_sim.rehearse`) of a bundled protocol file, or of
a variant of one that changes only what the row names (the CCD ramp's temperature, the
therapy's hold), on a fresh cell of the given seed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from controller import protocol as proto
from firmware_sim.cell import Cell
from firmware_sim.cell_params import Electrolyte
from firmware_sim.rehearse import cell_spec, load, rehearse

TARGET_CCD = {125.0: 2.6e-3, 140.0: 3.6e-3, 160.0: 4.0e-3}  # A/cm², seeds/000
TARGET_CONTROL = 38  # cycles after 5 pre-cycles, no therapy (seeds/000)
TARGET_THERAPY = 130  # "more than 130 cycles" after 6 h at 160 °C + 3 h at 125 °C
TARGET_ONE_WAY = {"LLZO": 50e-6, "Li3PS4": 120e-6}  # A/cm² at 25 °C (seeds/001)


def protocols_dir() -> Path:
    """The bundled protocol library: the repo's ``protocols/`` or the installed copy."""
    import controller

    here = Path(controller.__file__).resolve().parent
    for candidate in (here.parent / "protocols", here / "_bundled" / "protocols"):
        if (candidate / "heat-therapy-LiBH4.yaml").is_file():
            return candidate
    raise FileNotFoundError("the bundled protocols (protocols/*.yaml) are not installed")


@cache
def bundled(name: str) -> proto.Protocol:
    return load(protocols_dir() / f"{name}.yaml")


def _with_step(protocol: proto.Protocol, index: int, step: proto.Step) -> proto.Protocol:
    steps = list(protocol.steps)
    steps[index] = step
    return protocol.model_copy(update={"steps": steps})


def _temperature_step(step: proto.Step, **update: float) -> proto.TemperatureStep:
    assert isinstance(step, proto.TemperatureStep)
    return proto.TemperatureStep(temperature=step.temperature.model_copy(update=update))


def ccd_protocol(temperature: float) -> proto.Protocol:
    """The bundled symmetric CCD ramp (1 h at temperature first) at ``temperature``: the
    bundled file itself where there is one (125, 140, 160 °C)."""
    if (protocols_dir() / f"ccd-ramp-{temperature:g}C.yaml").is_file():
        return bundled(f"ccd-ramp-{temperature:g}C")
    base = bundled("ccd-ramp-125C")
    warm_up = _temperature_step(base.steps[0], setpoint=temperature)
    return _with_step(base, 0, warm_up)


def therapy_protocol(hours: float, temperature: float = 160.0) -> proto.Protocol:
    """heat-therapy-LiBH4 with its therapy hold changed to ``hours`` at ``temperature``."""
    base = bundled("heat-therapy-LiBH4")
    therapy = _temperature_step(base.steps[2], setpoint=temperature, soak=hours * 3600.0)
    return _with_step(base, 2, therapy)


def one_way_protocol(electrolyte: str) -> proto.Protocol:
    """The bundled one-way plating ramp (25 °C) on a cell of ``electrolyte``."""
    base = bundled("one-way-plating-ramp")
    cell = base.cell.model_copy(update={"electrolyte": electrolyte})
    return base.model_copy(update={"cell": cell})


def _cell(protocol: proto.Protocol, seed: int, params: Electrolyte | None) -> Cell:
    return Cell(cell_spec(protocol.cell), seed, params)


def ccd(temperature: float, seed: int = 0, params: Electrolyte | None = None) -> float | None:
    """CCD (A/cm²) of a fresh LiBH4 cell under the bundled symmetric ramp at ``temperature``."""
    protocol = ccd_protocol(temperature)
    run = rehearse(protocol, cell=_cell(protocol, seed, params), seed=seed)
    return run.step("ccd").ccd


def cycles_to_short(
    therapy: tuple[float, float] | None,
    seed: int = 0,
    params: Electrolyte | None = None,
) -> int | None:
    """Full cycles at 2 mA/cm² and 125 °C after the pre-cycles before the cell shorts.

    ``therapy`` is (hours, degC) of the therapy hold, or None for the control protocol.
    None if the cell never shorted (or shorted during the pre-cycles)."""
    if therapy is None:
        protocol, label = bundled("control-no-therapy-LiBH4"), "no-therapy"
    else:
        protocol, label = therapy_protocol(*therapy), "post-therapy"
    run = rehearse(protocol, cell=_cell(protocol, seed, params), seed=seed)
    result = run.step(label) if any(r.label == label for r in run.steps) else None
    if result is None or result.outcome != "short":
        return None
    return result.cycles


def one_way_ccd(electrolyte: str, seed: int = 0, params: Electrolyte | None = None) -> float | None:
    protocol = one_way_protocol(electrolyte)
    run = rehearse(protocol, cell=_cell(protocol, seed, params), seed=seed)
    return run.step("one-way-ccd").ccd


@dataclass(frozen=True, slots=True)
class Row:
    quantity: str
    target: str
    seed0: str
    spread: str
    ok: bool


def _fmt_ccd(value: float | None) -> str:
    return "no short" if value is None else f"{value * 1e3:.2f}"


def _spread(values: Sequence[float | None], scale: float, fmt: str) -> str:
    found = [v * scale for v in values if v is not None]
    if not found:
        return "no short"
    missing = len(values) - len(found)
    low, high, median = min(found), max(found), statistics.median(found)
    text = f"{low:{fmt}}–{high:{fmt}} (median {median:{fmt}})"
    return text + (f", {missing} never shorted" if missing else "")


def table(seeds: Sequence[int]) -> list[Row]:
    rows: list[Row] = []
    for temperature, target in TARGET_CCD.items():
        values = [ccd(temperature, s) for s in seeds]
        v0 = values[0]
        rows.append(
            Row(
                f"CCD at {temperature:.0f} °C, mA/cm² (ccd-ramp-{temperature:.0f}C)",
                f"{target * 1e3:.1f} ± 10 %",
                _fmt_ccd(v0),
                _spread(values, 1e3, ".1f"),
                all(v is not None and abs(v - target) <= 0.1 * target + 1e-12 for v in values),
            )
        )
    control = [cycles_to_short(None, s) for s in seeds]
    rows.append(
        Row(
            "cycles to short, no therapy (control-no-therapy-LiBH4)",
            f"≈ {TARGET_CONTROL} (30–50)",
            str(control[0]),
            _spread([float(c) if c is not None else None for c in control], 1, ".0f"),
            all(c is not None and 30 <= c <= 50 for c in control),
        )
    )
    therapy = [cycles_to_short((6.0, 160.0), s) for s in seeds]
    rows.append(
        Row(
            "cycles to short, 6 h at 160 °C + 3 h at 125 °C (heat-therapy-LiBH4)",
            f"> {TARGET_THERAPY} (kept ≤ 170)",
            str(therapy[0]),
            _spread([float(c) if c is not None else None for c in therapy], 1, ".0f"),
            all(c is not None and TARGET_THERAPY < c <= 170 for c in therapy),
        )
    )
    for name, target in TARGET_ONE_WAY.items():
        values = [one_way_ccd(name, s) for s in seeds]
        rows.append(
            Row(
                f"one-way CCD of {name} at 25 °C, µA/cm² (one-way-plating-ramp)",
                f"≈ {target * 1e6:.0f} (rough)",
                "no short" if values[0] is None else f"{values[0] * 1e6:.0f}",
                _spread(values, 1e6, ".0f"),
                all(v is not None and abs(v - target) <= 0.3 * target for v in values),
            )
        )
    return rows


def markdown(rows: Sequence[Row], seeds: Sequence[int]) -> str:
    lines = [
        f"| quantity | target | seed {seeds[0]} | seeds {seeds[0]}–{seeds[-1]} | ok |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.quantity} | {r.target} | {r.seed0} | {r.spread} | {'yes' if r.ok else 'NO'} |"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_sim.cell_calibration",
        description="Calibration table of the simulated cell against seeds/000 and seeds/001.",
    )
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    args = parser.parse_args(argv)
    seeds = list(range(max(1, args.seeds)))
    rows = table(seeds)
    print(markdown(rows, seeds))
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
