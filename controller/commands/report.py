"""Write a run's report: PNG plots and a summary (summary.md, summary.json).

RUN is a journal (<data_dir>/<run>.sqlite), an archive (<run>.sqlite.xz) or a run id (or
its unique beginning) in the data directory. Plots: voltage, current density and
temperature against time with the steps shaded and events marked; voltage profiles of
selected cycles; for CCD ramps the voltage per level with the CCD marked; for DC
polarizations the current decay with the steady-state current. Only the plots that apply
are written. The summary names the cell, the protocol, how the run ended and its results
(CCD, cycles to short, time in band at each temperature, electronic conductivity, faults).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from controller.ui.locate import add_data_dir_arguments

    parser.add_argument("run", metavar="RUN", help="journal path or run id")
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="where to write (default: report-<run id>/)"
    )
    add_data_dir_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import time

    from controller.ui.locate import data_dir_from_args, open_journal, resolve
    from controller.ui.report import write_report

    start = time.perf_counter()
    data_dir = data_dir_from_args(args)
    path = resolve(args.run, data_dir)
    with open_journal(path, data_dir) as reader:
        run_id = reader.meta().get("run_id") or path.name.split(".sqlite")[0]
        out = args.out or Path(f"report-{run_id}")
        report = write_report(reader, path, out)
    print(f"report of {run_id}: {report.summary.get('headline') or 'no result'}")
    for f in report.files:
        print(f"  {f}")
    print(f"({time.perf_counter() - start:.1f} s)")
    return 0
