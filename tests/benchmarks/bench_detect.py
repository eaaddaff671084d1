"""Short detection: latency, false alarms, per-sample cost, offline throughput.

    uv run python tests/benchmarks/bench_detect.py          # all sections (~1 min)
    uv run python tests/benchmarks/bench_detect.py --quick  # smaller samples

1. Latency in samples from the onset to the confirmation (both counted: 2 = confirmed on
   the next sample) over the labelled corpus (tests/detect/corpus), over randomised shorted
   cells, and on the software rig's cell physics (firmware_sim.cell) cycled to a short.
   Target: ≤ 2 samples at ≥ 1 s sampling.
2. False hard-short alarms on the corpus' no-short traces and on randomised healthy cells.
   Target: 0.
3. Streaming cost per sample: ``ShortDetector.update(Sample)`` over a 150 h campaign at
   1 s (540 000 samples), the control path's load.
4. Offline throughput: a week of 10 Hz data (6 048 000 samples) through ``detect_arrays``,
   and through ``read_bdf`` + ``detect_trace`` from a BDF CSV (what ``heatcycler detect``
   does). Target: ≥ 1 M samples/s.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "detect"))

from detect_corpus import labels, score_corpus  # noqa: E402
from test_detect_offline import _random_trace, _run  # noqa: E402
from test_detect_sim_cell import Bench  # noqa: E402

from controller.detect import (  # noqa: E402
    ShortDetector,
    Thresholds,
    detect_arrays,
    detect_trace,
    read_bdf,
)
from controller.samples import Sample  # noqa: E402

AREA = 0.785
I2 = 2e-3 * AREA


def section(title: str) -> None:
    print(f"\n## {title}")


def corpus() -> None:
    section("corpus: latency and false alarms")
    for mode in ("offline", "commanded"):
        score, found = score_corpus(mode)
        print(f"[{mode}]")
        print(score.table())
        by_dt: dict[float, list[int]] = {}
        for _, dt, lat in score.latencies:
            by_dt.setdefault(dt, []).append(lat)
        for dt in sorted(by_dt):
            lats = by_dt[dt]
            print(f"  hard shorts at {dt:g} s: latency {sorted(lats)} samples (max {max(lats)})")
        no_short = [
            n
            for n, m in labels().items()
            if not any(e["kind"] == "hard_short" for e in m["events"])
        ]
        false = sum(1 for n in no_short for e in found[n] if e.kind == "hard_short")
        print(f"  no-short traces: {len(no_short)}, false hard shorts: {false}")


def randomised(n_healthy: int, n_short: int) -> None:
    section("randomised cells (corpus physics, random parameters)")
    t0 = time.perf_counter()
    false = 0
    soft = 0
    for seed in range(n_healthy):
        events, _ = _run(_random_trace(20_000 + seed, short=False))
        false += sum(e.kind == "hard_short" for e in events)
        soft += any(e.kind == "soft_short" for e in events)
    print(
        f"healthy: {n_healthy} traces, false hard shorts {false}, traces with a soft short {soft}"
    )
    lat: Counter[tuple[float, int]] = Counter()
    found = 0
    for seed in range(n_short):
        tr = _random_trace(40_000 + seed, short=True)
        events, lab = _run(tr)
        onset = next(x["onset_s"] for x in lab if x["kind"] == "hard_short")
        hit = [
            e
            for e in events
            if e.kind == "hard_short" and onset - tr.dt * 1.01 <= e.onset_s <= onset + 10 + tr.dt
        ]
        if hit:
            found += 1
            lat[(tr.dt, hit[0].latency_samples)] += 1
    print(f"shorted: {n_short} traces, found {found}")
    for dt in (0.1, 1.0, 10.0):
        row = {k[1]: v for k, v in lat.items() if k[0] == dt}
        total = sum(row.values())
        within = sum(v for k, v in row.items() if k <= (2 if dt >= 1 else 4))
        print(
            f"  at {dt:g} s: {total} shorts, latency histogram {dict(sorted(row.items()))}, "
            f"{within / total:.1%} within target"
            if total
            else f"  at {dt:g} s: none"
        )
    print(f"({time.perf_counter() - t0:.1f} s)")


def sim_cell() -> None:
    section("software rig cell physics (firmware_sim.cell), no heat therapy, 1 s")
    bench = Bench(seed=0)
    t0 = time.perf_counter()
    cycle = 0
    while cycle < 200:
        cycle += 1
        if any(
            bench.hold(s, c, cycle) for s, c in ((1800, I2), (300, 0.0), (1800, -I2), (300, 0.0))
        ):
            break
    hard = [e for e in bench.events if e.kind == "hard_short"]
    cell_hard = [e.time for e in bench.cell.events if e.kind == "hard_short"]
    soft = sum(e.kind == "soft_short" for e in bench.events)
    cell_soft = sum(e.kind == "soft_short" for e in bench.cell.events)
    print(
        f"cell shorted at {cell_hard[0]:.1f} s (cycle {cycle}); detector onset "
        f"{hard[0].onset_s:.0f} s, confirmed {hard[0].time_s:.0f} s: "
        f"latency {hard[0].latency_samples} samples"
    )
    print(f"soft shorts: cell {cell_soft}, detector {soft}  ({time.perf_counter() - t0:.1f} s)")


def campaign_samples(hours: float) -> list[Sample]:
    """A 150 h campaign at 1 s: rests and 30 min half-cycles at 2 mA/cm², with noise, a
    few glitches and soft shorts (so the open paths are exercised too)."""
    rng = np.random.default_rng(0)
    n = int(hours * 3600)
    t = np.arange(1, n + 1, dtype=float)
    phase = (t % 4200) // 1050  # plate, rest, strip, rest (a 70 min cycle)
    level = np.where(phase == 0, I2, np.where(phase == 2, -I2, 0.0))
    v = -level * 127.0 + rng.normal(0, 50e-6, n)
    v[rng.integers(0, n, 100)] = 0.0
    for a in rng.integers(0, n - 10, 30):
        v[a : a + 5] *= 0.4
    i = level * (1 + rng.normal(0, 1e-4, n))
    return [
        Sample(float(t[k]), float(v[k]), float(i[k]), 125.0, float(level[k]), "current", 1, 1)
        for k in range(n)
    ]


def streaming(hours: float) -> None:
    section(f"streaming cost per sample ({hours:g} h at 1 s)")
    samples = campaign_samples(hours)
    det = ShortDetector(area_cm2=AREA, voltage_window=(-1.0, 1.0))
    update = det.update
    chunks = []
    events = 0
    start = time.perf_counter()
    for c in range(0, len(samples), 1000):
        t0 = time.perf_counter()
        for s in samples[c : c + 1000]:
            events += len(update(s))
        chunks.append((time.perf_counter() - t0) / 1000)
    total = time.perf_counter() - start
    us = [x * 1e6 for x in chunks]
    print(
        f"{len(samples)} samples in {total:.2f} s: "
        f"mean {total / len(samples) * 1e6:.2f} µs/sample, "
        f"median chunk {statistics.median(us):.2f} µs, worst chunk {max(us):.2f} µs; "
        f"events {events}"
    )


def week_arrays(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    t = np.arange(n) * 0.1
    phase = (t % 4200) // 1050
    level = np.where(phase == 0, I2, np.where(phase == 2, -I2, 0.0))
    v = -level * 127.0 + rng.normal(0, 50e-6, n)
    v[rng.integers(0, n, 300)] = 0.0
    for a in rng.integers(0, n - 50, 50):
        v[a : a + 40] *= 0.4  # soft shorts of 4 s
    short = int(n * 0.97)
    v[short:] = -level[short:] * 0.5  # a hard short near the end; the recording goes on
    i = level * (1 + rng.normal(0, 1e-4, n)) + rng.normal(0, 2e-9, n)
    temp = np.round((125 + rng.normal(0, 0.05, n)) * 4) / 4
    return {"t": t, "v": v, "i": i, "temp": temp}


def offline(n: int) -> None:
    section(f"offline throughput ({n} samples at 10 Hz = {n / 864000:.2g} days)")
    d = week_arrays(n)
    th = Thresholds.build(area_cm2=AREA, voltage_window=(-1.0, 1.0))
    detect_arrays(d["t"][:100_000], d["v"][:100_000], d["i"][:100_000], thresholds=th)  # warm
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        events = detect_arrays(d["t"], d["v"], d["i"], thresholds=th, temperature=d["temp"])
        times.append(time.perf_counter() - t0)
    best = min(times)
    kinds = Counter(str(e.kind) for e in events)
    print(
        f"detect_arrays: {', '.join(f'{x:.2f}' for x in times)} s -> "
        f"{n / best / 1e6:.2f} M samples/s (best); events {dict(kinds)}"
    )
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "week.csv"
        table = pa.table(
            {
                "Test Time / s": d["t"],
                "Voltage / V": d["v"],
                "Current / A": d["i"],
                "Temperature T1 / degC": d["temp"],
            }
        )
        pacsv.write_csv(table, path)
        size = path.stat().st_size / 1e6
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            trace = read_bdf(path)
            t1 = time.perf_counter()
            detect_trace(trace, th)
            t2 = time.perf_counter()
            runs.append((t2 - t0, t1 - t0, t2 - t1))
    total, read, det = min(runs)
    print(
        f"read_bdf + detect_trace of a {size:.0f} MB CSV (best of 3): read {read:.2f} s, "
        f"detect {det:.2f} s -> {n / total / 1e6:.2f} M samples/s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"# bench_detect — {platform.machine()}, Python {platform.python_version()}")
    corpus()
    randomised(100 if args.quick else 1000, 100 if args.quick else 500)
    sim_cell()
    streaming(10 if args.quick else 150)
    offline(600_000 if args.quick else 6_048_000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
