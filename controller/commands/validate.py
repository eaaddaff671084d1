"""Check protocol files before anything is energised.

Exit 0 when every file is valid; otherwise exit 2 and, for each problem, print
file:line:col, the key path, what is wrong and a hint. With --rig/--sim the rig's limits
are checked too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from controller.commands import add_rig_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    add_rig_arguments(parser)
    parser.add_argument("--json", action="store_true", help="problems as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    from controller.commands import rig_from_args
    from controller.validate import load_protocol

    rig = rig_from_args(args)
    if rig is not None:
        from controller.rig import RigConfig

        assert isinstance(rig, RigConfig)
    results = [load_protocol(path, rig) for path in args.files]
    problems = [p for r in results for p in r.problems]
    if args.json:
        report = {
            "valid": not problems,
            "files": [
                {"file": str(path), "valid": r.ok, "problems": [p.as_dict() for p in r.problems]}
                for path, r in zip(args.files, results, strict=True)
            ],
        }
        print(json.dumps(report, indent=2))
    else:
        for path, r in zip(args.files, results, strict=True):
            if r.ok:
                print(f"{path}: ok")
            for p in r.problems:
                print(p.format(), file=sys.stderr)
        if problems:
            n = len(problems)
            print(f"{n} problem{'s' * (n != 1)} found", file=sys.stderr)
    return 2 if problems else 0
