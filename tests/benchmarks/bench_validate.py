"""How long a technician waits for `heatcycler validate FILE` (target: under 1 s wall).

Runs the installed console script (`.venv/bin/heatcycler validate`) as a fresh process on
each bundled protocol, N times each, and reports the median and 90th percentile wall time,
next to `python -c pass` (the interpreter's own start-up) as a baseline on the same
machine in the same run: the ratio is the figure to compare between machines.

    uv run python tests/benchmarks/bench_validate.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET_S = 1.0


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed


def bytecode_note() -> str:
    """Whether imports load cached bytecode or compile every module from source."""
    import pydantic

    cached = (Path(pydantic.__file__).parent / "__pycache__").is_dir()
    if cached:
        return "site-packages has bytecode caches (.pyc)"
    env = " (PYTHONDONTWRITEBYTECODE is set)" if sys.flags.dont_write_bytecode else ""
    return f"no bytecode caches{env}: every run compiles its imports from source"


def p90(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def measure(argv: list[str], runs: int) -> tuple[float, float]:
    wall(argv)  # warm the file cache (and .pyc files)
    samples = [wall(argv) for _ in range(runs)]
    return statistics.median(samples), p90(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per file (default 15)")
    args = parser.parse_args()

    bindir = Path(sys.executable).parent
    heatcycler = bindir / "heatcycler"
    python = bindir / "python"
    files = sorted((ROOT / "protocols").glob("*.yaml"))

    print(f"Python {sys.version.split()[0]}; {bytecode_note()}\n")
    base_median, base_p90 = measure([str(python), "-c", "pass"], args.runs)
    print(f"{'python -c pass (baseline)':<44}{base_median:7.3f} s median {base_p90:7.3f} s p90")
    pint_argv = [str(python), "-c", "import pint; pint.UnitRegistry().parse_units('mA/cm^2')"]
    pint_median, pint_p90 = measure(pint_argv, args.runs)
    print(
        f"{'import pint + registry (validate skips it)':<44}{pint_median:7.3f} s median "
        f"{pint_p90:7.3f} s p90"
    )
    worst = 0.0
    medians = []
    for f in files:
        median, high = measure([str(heatcycler), "validate", str(f.relative_to(ROOT))], args.runs)
        medians.append(median)
        worst = max(worst, high)
        print(
            f"{'validate ' + f.name:<44}{median:7.3f} s median {high:7.3f} s p90"
            f"  ({median / base_median:5.1f}× baseline)"
        )
    overall = statistics.median(medians)
    verdict = "under" if worst < TARGET_S else "OVER"
    print(
        f"\nvalidate: median {overall:.3f} s over {len(files)} files × {args.runs} runs, "
        f"worst p90 {worst:.3f} s — {verdict} the {TARGET_S:g} s target; "
        f"{overall / base_median:.1f}× the bare interpreter start-up"
    )
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
