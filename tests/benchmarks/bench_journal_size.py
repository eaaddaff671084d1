"""How much SD card a run takes: journal bytes per day, and what archiving saves.

Writes a typical day of cycling into a real journal (``tests/service/journal_day.py``: a
sample every 10 s, ≈ 80 events, optionally a runner checkpoint a minute) and measures the
file on disk; then the xz archive (``heatcycler archive``'s preset 6) and how long
compressing and verifying take. Also a 1 s recording (every measurement stored: the worst
case of ``record.delta_voltage``) and a 7-day journal, to show the cost is linear.

    uv run python tests/benchmarks/bench_journal_size.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "service"))

from journal_day import size_on_disk, write_day  # noqa: E402

from controller.service import disk  # noqa: E402
from controller.service.archive import archive_run  # noqa: E402

MB = 1e6


def measure(tmp: Path, name: str, **kwargs: float | None) -> dict[str, float]:
    path = tmp / f"20260101T000000Z-rig-01-{name}.sqlite"
    start = time.perf_counter()
    counts = write_day(path, **kwargs)  # type: ignore[arg-type]
    write_s = time.perf_counter() - start
    size = size_on_disk(path)
    days = float(kwargs.get("days") or 1.0)
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value='completed' WHERE key='state'")
    start = time.perf_counter()
    outcome = archive_run(path, delete=True, now=2e9)
    archive_s = time.perf_counter() - start
    return {
        "samples": counts["samples"],
        "events": counts["events"],
        "checkpoints": counts["checkpoints"],
        "bytes_per_day": size / days,
        "bytes_per_sample": size / counts["samples"],
        "archive_per_day": outcome.archived_size / days,
        "ratio": outcome.original_size / outcome.archived_size,
        "write_s": write_s,
        "archive_s": archive_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    cases = {
        "10 s, events": {"every": 10.0, "checkpoint_every": None},
        "10 s, events, checkpoint/min": {"every": 10.0, "checkpoint_every": 60.0},
        "1 s (every measurement), checkpoint/min": {"every": 1.0, "checkpoint_every": 60.0},
        "10 s, checkpoint/min, 7 days": {"every": 10.0, "checkpoint_every": 60.0, "days": 7.0},
    }
    print(
        f"{'recording':<42} {'rows/day':>9} {'MB/day':>7} {'B/sample':>9} "
        f"{'xz MB/day':>9} {'ratio':>6} {'archive s':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, kwargs) in enumerate(cases.items()):
            r = measure(Path(tmp), f"c{i}", **kwargs)
            days = float(kwargs.get("days") or 1.0)  # type: ignore[arg-type]
            print(
                f"{label:<42} {r['samples'] / days:>9.0f} {r['bytes_per_day'] / MB:>7.2f} "
                f"{r['bytes_per_sample']:>9.1f} {r['archive_per_day'] / MB:>9.3f} "
                f"{r['ratio']:>6.1f} {r['archive_s']:>9.2f}"
            )
    print()
    print(
        f"disk.py: {disk.BYTES_PER_SAMPLE} B/sample, {disk.BYTES_PER_DAY_FIXED / MB:.2f} MB/day "
        f"of events+checkpoints, typical {disk.BYTES_PER_DAY_TYPICAL / MB:.2f} MB/day"
    )


if __name__ == "__main__":
    main()
