"""The run engine's two speed targets (issue 5), measured in one go.

1. **Virtual time**: the bundled heat-therapy campaign (and its control) on the in-process
   software rig, start to short: wall seconds, rig hours, samples measured and stored,
   µs of wall time per rig-second.
2. **Real time at 10 Hz**: ``heatcycler run`` as its own process against the software rig
   served by ``heatcycler sim serve`` (another process, so its physics is not counted),
   sampling every 0.1 s for ``--seconds``; the controller's CPU (utime + stime from
   /proc) as % of one core, and its peak RSS (VmHWM).

    uv run python tests/benchmarks/bench_campaign.py [--only virtual|realtime] [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

REALTIME_PROTOCOL = """\
name: bench-10Hz
cell: {id: B10, electrolyte: LLZO, type: symmetric, area: 0.785 cm^2, thickness: 1.0 mm}
safety:
  voltage: {min: -1 V, max: 1 V}
  temperature_max: 60 degC
record: {sample_period: 0.1 s, every: 0.1 s}  # every sample stored: the worst case for the journal
steps:
  - temperature: {setpoint: 30 degC, band: 1 degC, soak: 0 s}
  - cycle: {current_density: 0.05 mA/cm^2, half_cycle: 20 s, count: 1000}
"""


def virtual(name: str) -> dict[str, float]:
    from controller.journal import JournalReader
    from controller.rig import simulated_rig
    from controller.runner.session import RunOptions, start_run

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        rig = simulated_rig(data, seed=0)
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        outcome = start_run(
            ROOT / "protocols" / name,
            rig,
            data_dir=data,
            options=RunOptions(virtual=True, mqtt="off"),
        )
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        with JournalReader(outcome.journal) as reader:
            stored = reader.last_seq()
            t_end = float(reader.sample_columns("t")["t"][-1])
        cycles = [r for r in outcome.results if r.get("kind") == "cycle"][-1]
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "rig_h": t_end / 3600,
        "stored": stored,
        "us_per_rig_s": wall / t_end * 1e6,
        "cycles_to_short": cycles.get("cycles_to_short") or -1,
    }


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def proc_hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def realtime(seconds: float) -> dict[str, float]:
    from tests.runner.procs import served_rig

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        protocol = tmp / "bench.yaml"
        protocol.write_text(REALTIME_PROTOCOL, encoding="utf-8")
        with served_rig(tmp, protocol) as rig:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "controller.cli",
                    "run",
                    str(protocol),
                    "--rig",
                    str(rig.rig),
                    "--console",
                    "quiet",
                    "--mqtt",
                    "off",
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                time.sleep(15.0)  # start-up (imports, identify) and the warm-up step
                cpu0, t0 = proc_cpu(proc.pid), time.monotonic()
                time.sleep(seconds)
                cpu1, t1 = proc_cpu(proc.pid), time.monotonic()
                hwm = proc_hwm(proc.pid)
                if proc.poll() is not None:
                    raise SystemExit(f"the run ended early (exit {proc.returncode})")
            finally:
                proc.terminate()
                proc.wait(30)
            rate, under_current = sample_rate(rig.data, t1 - t0)
    return {
        "cpu_percent": 100 * (cpu1 - cpu0) / (t1 - t0),
        "rss_peak_mb": hwm,
        "seconds": t1 - t0,
        "samples_per_s": rate,
        "under_current": under_current,
    }


def sample_rate(data: Path, window: float) -> tuple[float, float]:
    """Samples per second the run stored over its last ``window`` seconds (all are
    stored), and the fraction of them taken with current flowing (the cycle step)."""
    from controller.journal import JournalReader

    (journal,) = data.glob("**/*.sqlite")
    with JournalReader(journal) as reader:
        cols = reader.sample_columns("t", "level")
    t = cols["t"]
    inside = t > float(t[-1]) - window
    under_current = float((abs(cols["level"][inside]) > 0).mean())
    return float(inside.sum()) / window, under_current


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["virtual", "realtime"])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    if args.only in (None, "virtual"):
        for name in ("heat-therapy-LiBH4.yaml", "control-no-therapy-LiBH4.yaml"):
            r = virtual(name)
            print(
                f"virtual {name}: {r['wall_s']:.1f} s wall ({r['cpu_s']:.1f} s CPU) for "
                f"{r['rig_h']:.1f} h of rig time, {r['stored']} samples stored, "
                f"{r['us_per_rig_s']:.0f} µs per rig-second, cycles to short "
                f"{r['cycles_to_short']:.0f}"
            )
    if args.only in (None, "realtime"):
        r = realtime(args.seconds)
        print(
            f"realtime 10 Hz against a served rig: controller CPU {r['cpu_percent']:.1f} % of "
            f"one core over {r['seconds']:.0f} s at {r['samples_per_s']:.1f} samples/s stored "
            f"({100 * r['under_current']:.0f} % under current), "
            f"peak RSS {r['rss_peak_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
