"""Dry-run a protocol: the step timeline, expected durations, charge per cm², peak
temperature and the limit checks, without touching an instrument.

With --rig/--sim the rig's rates and limits apply; without, the simulated rig's rates are
used and the rig's limits are not checked. Exit 2 (with the same problems as `validate`)
if the file is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from controller.commands import add_rig_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE")
    add_rig_arguments(parser)
    parser.add_argument("--json", action="store_true", help="the plan as one JSON object")


def run(args: argparse.Namespace) -> int:
    from controller.commands import rig_from_args
    from controller.plan import format_plan, make_plan
    from controller.validate import load_protocol

    rig = rig_from_args(args)
    if rig is not None:
        from controller.rig import RigConfig

        assert isinstance(rig, RigConfig)
    loaded = load_protocol(args.file, rig)
    if not loaded.ok or loaded.protocol is None:
        if args.json:
            report = {
                "file": str(args.file),
                "valid": False,
                "problems": [p.as_dict() for p in loaded.problems],
            }
            print(json.dumps(report, indent=2, ensure_ascii=False))
        else:
            for p in loaded.problems:
                print(p.format(), file=sys.stderr)
            n = len(loaded.problems)
            print(f"{n} problem{'s' * (n != 1)} found", file=sys.stderr)
        return 2
    plan = make_plan(loaded.protocol, rig)
    if args.json:
        report = {"file": str(args.file), "valid": True, **plan.as_dict()}
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(format_plan(plan, str(args.file)))
    return 0
