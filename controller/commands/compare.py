"""Compare runs (e.g. heat therapy vs control): one figure and one table.

Each RUN is a journal, an archive or a run id in the data directory. The figure shows the
voltage of each run's final cycling step and a bar of cycles to short; the table (printed,
and written as compare.md and compare.json) lists protocol, cell, therapy (time the block
read ≥ 150 °C), cycles to short, CCDs and state.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from controller.ui.locate import add_data_dir_arguments

    parser.add_argument("runs", metavar="RUN", nargs="+", help="journal paths or run ids")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("compare"),
        metavar="DIR",
        help="where to write (default: ./compare)",
    )
    add_data_dir_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import sys

    from rich.console import Console
    from rich.table import Table

    from controller.problems import UserError
    from controller.ui.compare import TABLE, load_compared, table_rows, write_compare
    from controller.ui.locate import data_dir_from_args, open_journal, resolve

    if len(args.runs) < 2:
        raise UserError("compare needs at least two runs", "e.g. heatcycler compare RUN1 RUN2")
    data_dir = data_dir_from_args(args)
    paths = [resolve(r, data_dir) for r in args.runs]
    runs = []
    for path in paths:
        with open_journal(path, data_dir) as reader:
            runs.append(load_compared(reader, path))
    files = write_compare(runs, args.out)
    table = Table(title="comparison", title_justify="left")
    for name in TABLE:
        table.add_column(name)
    for row in table_rows(runs):
        table.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    for f in files:
        print(f"  {f}")
    return 0
