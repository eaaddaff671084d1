"""How much SD card a run takes, measured from real journals.

Figures from ``tests/benchmarks/bench_journal_size.py`` (BENCHMARKS.md, "Journal size"),
which writes a typical day of cycling into a real :class:`controller.journal.Journal`
and measures the file; ``tests/service/test_archive.py`` re-measures them and fails if
these constants drift by more than 15 %.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: bytes one stored sample costs in the journal (row, primary key b-tree, page slack)
BYTES_PER_SAMPLE = 76
#: bytes a day of runner checkpoints (one a minute, ≈ 300-byte state) and events costs
BYTES_PER_DAY_FIXED = 460_000
#: a typical day: a sample every 10 s (the default ``record.every``) + events + checkpoints
BYTES_PER_DAY_TYPICAL = BYTES_PER_SAMPLE * 8640 + BYTES_PER_DAY_FIXED
#: xz (preset 6) shrinks a finished journal at least this much (``heatcycler archive``):
#: 3.5× for samples alone, 5.5× with a checkpoint a minute
ARCHIVE_RATIO = 3.0
#: room kept free besides the run: the WAL (≤ 4 MB), the OS, logs, a resumed run's growth
RESERVE = 64 * 1024 * 1024
#: the planned size is doubled: ``delta_voltage`` keeps extra samples when V moves fast
HEADROOM = 2.0

DAY = 86400.0

#: free bytes at a path; tests inject their own
FreeSpace = Callable[[Path], int]


def free_space(path: Path) -> int:
    return shutil.disk_usage(path).free


@dataclass(frozen=True)
class Estimate:
    days: float  # the run's longest duration
    typical: float  # bytes: a sample every ``record.every``
    worst: float  # bytes: every measurement stored (``record.sample_period``)
    required: float  # bytes that must be free: HEADROOM × typical + RESERVE


def journal_bytes_per_day(every: float) -> float:
    return BYTES_PER_SAMPLE * DAY / every + BYTES_PER_DAY_FIXED


def estimate(duration: float, every: float = 10.0, sample_period: float = 1.0) -> Estimate:
    """Journal size of a run lasting at most ``duration`` seconds."""
    days = duration / DAY
    typical = days * journal_bytes_per_day(every)
    worst = days * journal_bytes_per_day(sample_period)
    return Estimate(days, typical, worst, HEADROOM * typical + RESERVE)


def human_bytes(n: float) -> str:
    if abs(n) < 1000:
        return f"{n:.0f} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if abs(n) < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} TB"
