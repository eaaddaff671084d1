"""Export a run's samples as Battery Data Format (BDF) CSV or Parquet, with a metadata sidecar.

RUN is a journal, an archive or a run id in the data directory. Columns carry the BDF's
labels and units ('Test Time / s', 'Voltage / V', 'Current / A', 'Unix Time / s', 'Cycle
Count / 1', 'Step Count / 1', 'Temperature T1 / degC', …) plus the rig's own quantities in
the same style ('Setpoint T1 / degC', 'Heater Duty / 1', 'Current Density / A/cm^2', …).
The file is named Institution__Cell__YYYYMMDD_NNN.bdf.csv (institution: the rig id unless
--institution is given); beside it ….bdf.metadata.json holds the run's metadata, the sign
convention (positive current plates lithium on the working electrode), every column's
unit and meaning, and the steps with their outcomes and results.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from controller.ui.locate import add_data_dir_arguments

    parser.add_argument("run", metavar="RUN", help="journal path or run id")
    parser.add_argument(
        "--format", default="csv", metavar="FORMAT", help="csv (default) or parquet"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("."), metavar="DIR", help="directory (default: .)"
    )
    parser.add_argument(
        "--institution", metavar="CODE", help="the file name's institution code (default: rig id)"
    )
    add_data_dir_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import time

    from controller.problems import UserError
    from controller.ui.export import FORMATS, export_run
    from controller.ui.locate import data_dir_from_args, open_journal, resolve

    fmt = str(args.format).lower()
    if fmt not in FORMATS:
        raise UserError(
            f"--format {args.format}: unknown format", "use --format csv or --format parquet"
        )
    start = time.perf_counter()
    data_dir = data_dir_from_args(args)
    path = resolve(args.run, data_dir)
    with open_journal(path, data_dir) as reader:
        done = export_run(reader, path, fmt, args.out, institution=args.institution)
    print(f"{done.data}  ({done.rows} rows, {time.perf_counter() - start:.1f} s)")
    print(f"{done.metadata}")
    return 0
