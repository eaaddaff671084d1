"""Journals of simulated runs for the report/export tests, written in the runner's format.

A bundled protocol is walked on the cell physics (``firmware_sim.rehearse``: the real cell
model, ideal temperature) and its trace is journaled with :class:`controller.journal.Journal`
the way the runner writes it: meta keys, samples with step and cycle counts, one steps row
per executed step with the runner's result JSON, state/step/short events. Until the runner
(issue 5) can produce them in the test suite, these are the "real journals of simulated
runs" the report reads. Each takes well under a second.
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_sim.rehearse import Rehearsal, StepResult, load, rehearse

from controller import protocol as proto
from controller.journal import Journal, new_run_id
from controller.samples import Sample

ROOT = Path(__file__).resolve().parents[2]
START_UNIX = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class WrittenRun:
    path: Path
    rehearsal: Rehearsal
    protocol: proto.Protocol


def _flat_steps(steps: list[proto.Step], prefix: tuple[int, ...] = ()) -> list[proto.Step]:
    out: list[proto.Step] = []
    for i, step in enumerate(steps):
        if isinstance(step, proto.Repeat):
            for _ in range(step.repeat.count):
                out.extend(_flat_steps(step.repeat.steps, (*prefix, i)))
        else:
            out.append(step)
    return out


def _short_dict(
    kind: str,
    t: float,
    v: float,
    i: float,
    area: float,
    temp: float,
    step: int,
    cycle: int,
    index: int,
) -> dict[str, Any]:
    """What ``ShortEvent.as_dict()`` gives for a decision at this sample."""
    return {
        "kind": kind,
        "time_s": t,
        "onset_s": t - 1.0,
        "index": index,
        "onset_index": index - 1,
        "latency_samples": 2,
        "voltage_V": v,
        "current_A": i,
        "current_density_A_per_cm2": i / area,
        "resistance_ohm": 40.0,
        "apparent_resistance_ohm": abs(v / i) if i else None,
        "temperature_degC": temp,
        "step": step,
        "cycle": cycle,
        "depth": 0.05,
        "duration_s": 1.0,
        "reason": "collapse of |V/I| to 5 % of the running resistance",
    }


def write_run(
    protocol_file: str,
    data_dir: Path,
    *,
    seed: int = 0,
    trace_every: float = 30.0,
    start_unix: float = START_UNIX,
    state: str | None = None,
) -> WrittenRun:
    """Rehearse ``protocols/<protocol_file>`` and journal it into ``data_dir``."""
    path_in = ROOT / "protocols" / protocol_file
    p = load(path_in)
    text = path_in.read_text(encoding="utf-8")
    run = rehearse(p, seed=seed, trace_every=trace_every)
    area = p.cell.area_cm2
    run_id = new_run_id("sim", p.cell.id, start_unix)
    path = Path(data_dir) / f"{run_id}.sqlite"
    cell = {
        "id": p.cell.id,
        "electrolyte": p.cell.electrolyte,
        "type": p.cell.type.value,
        "area_cm2": area,
        "thickness_cm": p.cell.thickness,
    }
    final = state or ("finished" if run.outcome in ("completed", "ended") else "aborted")
    duration = run.steps[-1].end if run.steps else 0.0
    j = Journal.create(
        path,
        {
            "run_id": run_id,
            "rig": {"rig": "sim", "data_dir": str(data_dir)},
            "protocol_text": text,
            "protocol_name": p.name,
            "protocol_path": str(path_in),
            "protocol_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "cell": cell,
            "state": "running",
            "started_unix": start_unix,
            "seed": seed,
            "sim": "true",
            "software_version": "0.1.0",
        },
        durable=False,
        threaded=False,
    )
    flat = _flat_steps(list(p.steps))
    results: list[StepResult] = run.steps
    j.add_event("state", "running", t=0.0, unix=start_unix, step=0, data={"state": "running"})

    cycle_base = 0
    setpoint: float | None = None
    sample_i = 0
    trace = run.trace
    soft_times = [e.time for e in run.cell.events if e.kind == "soft_short"]
    soft_k = 0
    for n, (res, step) in enumerate(zip(results, flat, strict=False), start=1):
        params = proto.params(step)
        j.start_step(n, res.number, res.kind, res.label, t=res.start, unix=start_unix + res.start)
        j.add_event(
            "step",
            f"step {n} {res.kind} {res.label or ''}".strip(),
            t=res.start,
            unix=start_unix + res.start,
            step=n,
            data={"step": n, "path": res.number},
        )
        period = None
        if isinstance(params, proto.CycleParams):
            amps = params.current_density * area if params.current_density else params.current
            half = params.half_cycle or params.capacity * area / amps  # type: ignore[operator]
            period = 2 * (half + params.rest)
        if isinstance(params, proto.TemperatureParams):
            setpoint = params.setpoint
        reached_t: float | None = None
        in_band_s = 0.0
        temps: list[float] = []
        last: Sample | None = None
        last_t = res.start
        while sample_i < len(trace) and (
            trace[sample_i].time <= res.end + 1e-9 or n == len(results)
        ):
            s = trace[sample_i]
            sample_i += 1
            cycle = cycle_base + (int((s.time - res.start) // period) if period else 0)
            if res.cycles is not None:
                cycle = min(cycle, cycle_base + res.cycles)
            potentiostat = isinstance(params, proto.DcPolarizationParams | proto.HoldVoltageParams)
            source = "voltage" if potentiostat else ("current" if s.current != 0.0 else "off")
            level = s.voltage if potentiostat else (s.current if s.current != 0.0 else None)
            temp = s.temperature + 0.05 * math.sin(s.time / 97.0)
            duty = None if setpoint is None else max(0.0, min(1.0, 0.2 + 0.004 * (setpoint - 25)))
            last = Sample(
                t=s.time,
                voltage=s.voltage,
                current=s.current,
                temperature=temp,
                level=level,
                source=source,
                step=n,
                cycle=cycle,
                unix=start_unix + s.time,
                setpoint=setpoint,
                duty=duty,
            )
            j.add_sample(last)
            if isinstance(params, proto.TemperatureParams):
                temps.append(temp)
                if abs(temp - params.setpoint) <= params.band:
                    if reached_t is None:
                        reached_t = s.time
                    in_band_s += s.time - last_t
            last_t = s.time
            while soft_k < len(soft_times) and soft_times[soft_k] <= s.time:
                ev = _short_dict(
                    "soft_short", s.time, s.voltage, s.current, area, temp, n, cycle, j.last_seq
                )
                j.add_event(
                    "soft_short",
                    f"soft short at {s.voltage:.3f} V",
                    t=s.time,
                    unix=start_unix + s.time,
                    step=n,
                    severity="warning",
                    data=ev,
                )
                soft_k += 1
        short = None
        if res.outcome == "short" and last is not None:
            short = _short_dict(
                "hard_short",
                last.t,
                last.voltage,
                last.current,
                area,
                last.temperature or 0.0,
                n,
                last.cycle,
                j.last_seq,
            )
            j.add_event(
                "hard_short",
                f"hard short at {last.voltage:.4f} V",
                t=last.t,
                unix=start_unix + last.t,
                step=n,
                severity="warning",
                data=short,
            )
        outcome = {
            "done": "completed",
            "steady": "completed",
            "capacity": "completed",
            "voltage": "completed",
        }.get(res.outcome, res.outcome)
        result: dict[str, Any] = {"kind": res.kind}
        step_s = res.end - res.start
        if isinstance(params, proto.TemperatureParams):
            mean = sum(temps) / len(temps) if temps else None
            result |= {
                "setpoint_degC": params.setpoint,
                "band_K": params.band,
                "soak_s": params.soak,
                "time_in_band_s": in_band_s,
                "reached_t": reached_t,
                "mean_degC": mean,
                "rms_error_K": 0.05,
            }
        elif isinstance(params, proto.CycleParams):
            assert res.cycles is not None
            density = params.current_density or params.current / area  # type: ignore[operator]
            result |= {
                "cycles_completed": res.cycles,
                "cycles_to_short": res.cycles if res.outcome == "short" else None,
                "cycle": cycle_base + res.cycles,
                "half_cycle": 1,
                "current_density_mA_per_cm2": density * 1e3,
                "areal_capacity_mAh_per_cm2": density * (period or 0) / 4 / 3.6,
                "temperature_degC": setpoint,
                "time_s": step_s,
                "short": short,
            }
            cycle_base += res.cycles
        elif isinstance(params, proto.CcdRampParams):
            levels = [params.level_density(k) * 1e3 for k in range(params.levels)]
            index = bisect_left(levels, (res.ccd or 0) * 1e3 - 1e-9) if res.ccd else None
            result |= {
                "ccd_mA_per_cm2": res.ccd * 1e3 if res.ccd else None,
                "level_index": index,
                "levels_completed": index if index is not None else len(levels),
                "levels_mA_per_cm2": levels,
                "areal_capacity_mAh_per_cm2": None,
                "time_at_level_s": params.half_cycle,
                "temperature_degC": setpoint,
                "time_s": step_s,
                "half_cycle": 1,
                "max_mA_per_cm2": levels[-1],
                "short": short,
            }
        elif isinstance(params, proto.DcPolarizationParams):
            i_end = last.current if last is not None else 0.0
            result |= {
                "voltage_V": params.voltage,
                "steady_current_A": i_end,
                "steady": res.outcome == "steady",
                "resistance_ohm": params.voltage / i_end,
                "conductivity_S_per_cm": res.sigma_electronic,
                "duration_s": step_s,
            }
        else:
            result |= {
                "duration_s": step_s,
                "ended_by": "for",
                "charge_mAh_per_cm2": 0.0,
                "final_voltage_V": last.voltage if last is not None else None,
            }
        j.end_step(n, outcome, result, t=res.end, unix=start_unix + res.end)
    j.add_event(
        "state",
        final,
        t=duration,
        unix=start_unix + duration,
        step=len(results),
        data={"state": final},
    )
    j.set_meta("state", final)
    j.set_meta("reason", f"protocol {run.outcome}")
    j.set_meta("ended_unix", start_unix + duration)
    j.close()
    return WrittenRun(path, run, p)
