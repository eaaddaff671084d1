"""Report and export of a week of 1 s samples (≈ 600 k rows): time and peak memory.

Writes a 7-day journal with a sample every second (the worst case: every measurement
stored) — a 125 °C cycling run, 2 mA/cm² half-cycles of 30 min with 5 min rests, a
voltage that drifts and a soft short now and then — then runs ``heatcycler report`` and
``heatcycler export --format csv|parquet`` on it, each in a fresh process, and prints the
wall time and the process's peak RSS (``getrusage(RUSAGE_SELF)`` at its end).

    uv run python tests/benchmarks/bench_report.py [--days 7]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from controller.journal import Journal
from controller.samples import Sample

AREA = 0.785


def write_week(path: Path, days: float) -> int:
    n = int(days * 86_400)
    start = 1_767_225_600.0
    cell = {"id": "BENCH", "electrolyte": "LiBH4", "type": "symmetric", "area_cm2": AREA}
    j = Journal.create(
        path,
        {
            "run_id": path.stem,
            "rig": {"rig": "bench"},
            "protocol_name": "bench-cycling",
            "protocol_text": "name: bench-cycling\n",
            "cell": cell,
            "state": "finished",
            "started_unix": start,
            "ended_unix": start + n,
        },
        durable=False,
        threaded=False,
    )
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 2e-4, n)
    period, half, rest = 4200, 1800, 300
    j.start_step(1, "1", "cycle", "cycling", t=0.0, unix=start)
    for k in range(n):
        t = float(k + 1)
        phase = (k % period) // (half + rest)
        in_half = (k % (half + rest)) < half
        i = (1 if phase == 0 else -1) * 2e-3 * AREA if in_half else 0.0
        v = -(i * 180.0) * (1 + k / n) + noise[k]
        if k % 50_000 == 25_000:
            v *= 0.2  # a soft short's dip
        j.add_sample(
            Sample(
                t=t,
                voltage=v,
                current=i,
                temperature=125.0 + noise[k] * 100,
                level=i or None,
                source="current" if i else "off",
                step=1,
                cycle=k // period,
                unix=start + t,
                setpoint=125.0,
                duty=0.31,
            )
        )
    j.end_step(
        1,
        "completed",
        {"kind": "cycle", "cycles_completed": n // period, "cycles_to_short": None},
        t=float(n),
        unix=start + n,
    )
    j.close()
    return n


_PEAK = (
    "import resource, runpy, sys; sys.argv = ['heatcycler', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('controller.cli', run_name='__main__')\n"
    "except SystemExit:\n    pass\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"
)


def child(argv: list[str]) -> tuple[float, float]:
    """Wall time (s) and peak RSS (MB) of a heatcycler command in its own process."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, *argv],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - t0
    return wall, int(done.stderr.strip().splitlines()[-1]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=float, default=7.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        path = d / "bench-week.sqlite"
        t0 = time.perf_counter()
        n = write_week(path, args.days)
        print(
            f"journal: {n} samples, {path.stat().st_size / 1e6:.0f} MB, "
            f"written in {time.perf_counter() - t0:.0f} s"
        )
        for name, argv in (
            ("runs", ["runs", "--data-dir", str(d)]),
            ("--help", ["--help"]),
            ("export parquet", ["export", str(path), "--format", "parquet", "--out", str(d)]),
            ("export csv", ["export", str(path), "--format", "csv", "--out", str(d)]),
            ("report", ["report", str(path), "--out", str(d / "report")]),
        ):
            wall, rss = child(argv)
            print(f"{name:<15} {wall:6.1f} s   peak RSS {rss:6.0f} MB")
        sizes = {p.name: p.stat().st_size / 1e6 for p in d.iterdir() if ".bdf." in p.name}
        for k, v in sorted(sizes.items()):
            print(f"  {k}: {v:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
