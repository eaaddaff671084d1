"""List the runs in the data directory: id, state, protocol, cell, start, duration, result.

Journals and archives alike (archives from their JSON summary). The result is read from
the steps' records: e.g. "CCD 2.6 mA/cm²", "short after 154 cycles", "σe 4.2e-08 S/cm".
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from controller.ui.locate import add_data_dir_arguments

    add_data_dir_arguments(parser)
    parser.add_argument("--json", action="store_true", help="one JSON array")


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from controller.problems import UserError
    from controller.service.runs import list_runs
    from controller.ui.locate import data_dir_from_args
    from controller.ui.results import hours

    data_dir = data_dir_from_args(args)
    if not data_dir.is_dir():
        raise UserError(
            f"{data_dir} is not a directory",
            "give the runs' directory with --data-dir DIR (or --rig RIG for its data_dir)",
        )
    runs = list_runs(data_dir)
    if args.json:
        print(json.dumps([r.as_dict() for r in runs], indent=1, ensure_ascii=False))
        return 0
    if not runs:
        print(f"no runs in {data_dir}")
        return 0
    import sys

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"runs in {data_dir}", title_justify="left")
    for name in ("run", "state", "protocol", "cell", "start (UTC)", "duration", "result"):
        table.add_column(name, no_wrap=name in ("run", "start (UTC)"))
    for r in runs:
        state = (
            (r.state or "–") + (" (live)" if r.live else "") + (" (archived)" if r.archived else "")
        )
        start = (
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.started_unix)) if r.started_unix else "–"
        )
        table.add_row(
            r.run_id,
            state,
            r.protocol or "–",
            r.cell or "–",
            start,
            hours(r.duration_s),
            r.result or "–",
        )
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    return 0
