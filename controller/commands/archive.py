"""Compress finished runs to save the SD card, and list the runs (archived or not).

A finished (or aborted) run's journal (`<data_dir>/<run>.sqlite`) is checkpointed,
compressed with xz into `<data_dir>/archive/<run>.sqlite.xz` (with a JSON summary beside
it), and checked by decompressing it again. Live runs (lock held) and interrupted runs
(they may still be resumed) are never touched; faulted runs only with --include-faulted.
A typical day of a run is about 1.1 MB of journal and 0.2 MB archived. With
--delete-after-archive the journal is removed once its archive checked out; without it
both are kept.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

DEFAULT_DATA_DIR = Path("/var/lib/heatcycler")
_AGE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(s|min|h|d|w)?\s*$")
_SCALE = {"s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0, None: 86400.0}


def parse_age(text: str) -> float:
    """`30d`, `12h`, `2w`, `90min`, `0` → seconds (a bare number is days)."""
    m = _AGE.match(text)
    if m is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an age; write e.g. 30d, 12h, 2w or 0 (everything finished)"
        )
    return float(m.group(1)) * _SCALE[m.group(2)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help=f"the runs' directory (default {DEFAULT_DATA_DIR}, or the rig file's data_dir)",
    )
    where.add_argument("--rig", type=Path, metavar="RIG", help="take data_dir from a rig file")
    parser.add_argument(
        "--older-than",
        type=parse_age,
        default=parse_age("30d"),
        metavar="AGE",
        help="archive runs that ended at least this long ago (default 30d; 0 = all)",
    )
    parser.add_argument(
        "--delete-after-archive",
        action="store_true",
        help="remove each journal once its archive has been verified",
    )
    parser.add_argument(
        "--include-faulted",
        action="store_true",
        help="archive faulted runs too (they are kept by default: resume --force may still "
        "continue them)",
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would be archived")
    parser.add_argument(
        "--list", action="store_true", help="list the runs (journals and archives) instead"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import time

    from controller.problems import UserError
    from controller.service.archive import archive_runs
    from controller.service.disk import human_bytes
    from controller.service.runs import list_runs

    if args.rig is not None:
        from controller.validate import load_rig

        data_dir = Path(load_rig(args.rig).data_dir)
    else:
        data_dir = args.data_dir or DEFAULT_DATA_DIR
    if not data_dir.is_dir():
        raise UserError(
            f"{data_dir} is not a directory",
            "give the runs' directory with --data-dir DIR (or --rig RIG for its data_dir)",
        )
    need = os.R_OK | os.X_OK | (0 if args.list or args.dry_run else os.W_OK)
    if not os.access(data_dir, need):
        raise UserError(
            f"cannot {'read' if need == os.R_OK | os.X_OK else 'write to'} {data_dir} as this user",
            f"run it as the service's user: sudo -u heatcycler heatcycler archive "
            f"--data-dir {data_dir} …",
        )

    if args.list:
        runs = list_runs(data_dir)
        if args.json:
            print(json.dumps([r.as_dict() for r in runs], indent=2))
            return 0
        for r in runs:
            where = "archived" if r.archived else "live" if r.live else "journal"
            ended = (
                time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.last_unix)) if r.last_unix else "-"
            )
            print(
                f"{r.run_id:<40} {r.state or '-':<10} {where:<8} {r.samples:>9} samples  "
                f"last {ended}Z  {human_bytes(r.size):>9}"
                + ("  interrupted" if r.interrupted else "")
            )
        if not runs:
            print(f"no runs in {data_dir}")
        return 0

    outcomes = archive_runs(
        data_dir,
        older_than=args.older_than,
        delete=args.delete_after_archive,
        now=time.time(),
        dry_run=args.dry_run,
        include_faulted=args.include_faulted,
    )
    if args.json:
        print(json.dumps([o.__dict__ for o in outcomes], indent=2))
    else:
        saved = 0
        for o in outcomes:
            if o.action == "archived":
                saved += o.original_size - o.archived_size if o.deleted else 0
                sizes = f"{human_bytes(o.original_size)} → {human_bytes(o.archived_size)}"
                gone = ", journal deleted" if o.deleted else ", journal kept"
                print(f"archived  {o.run_id}  {sizes}{gone}")
            else:
                print(f"{o.action:<9} {o.run_id}  {o.reason}")
        if not outcomes:
            print(f"no runs in {data_dir}")
        elif args.delete_after_archive and saved:
            print(f"freed {human_bytes(saved)}")
    return 1 if any(o.action == "failed" for o in outcomes) else 0
