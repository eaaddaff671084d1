"""Continue an interrupted run from its journal's last checkpoint.

After a crash, a power cut or a SIGTERM, `heatcycler resume JOURNAL --rig RIG` reopens the
run's journal and continues on the same rig: a soak keeps the time already spent in the
band, a cycle step continues its interrupted half-cycle with the charge already passed
accounted for, a ccd_ramp ends as `interrupted` (its `on_interrupt` decides what follows).
The gap is journaled. A faulted run resumes only with --force (fix the cause first).
JOURNAL may be a path or a run id in --data-dir.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from controller.commands import add_rig_arguments
from controller.commands.run import add_run_options, observer_factory, report_outcome


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("journal", metavar="JOURNAL", help="the run's .sqlite file, or its run id")
    add_rig_arguments(parser, required=True)
    add_run_options(parser)
    parser.add_argument("--force", action="store_true", help="resume a faulted run")


def find_journal(name: str, data_dir: Path) -> Path:
    from controller.problems import UserError

    path = Path(name)
    if path.exists():
        return path
    candidate = data_dir / f"{name}.sqlite"
    if candidate.exists():
        return candidate
    raise UserError(
        f"{name}: no such journal (looked for it as a path and in {data_dir})",
        "give the run's .sqlite file, or --data-dir where its run id lives; "
        "`heatcycler runs` lists them",
    )


def run(args: argparse.Namespace) -> int:
    from controller.commands import rig_from_args
    from controller.instruments import simulated
    from controller.rig import RigConfig
    from controller.runner.resume import resume_run
    from controller.runner.session import RunOptions

    rig = rig_from_args(args)
    assert isinstance(rig, RigConfig)
    data_dir = args.data_dir if args.data_dir is not None else Path(rig.data_dir)
    path = find_journal(args.journal, data_dir)
    virtual = simulated(rig) and not (rig.sim is not None and rig.sim.realtime)
    options = RunOptions(virtual=virtual, mqtt=args.mqtt, observer_factory=observer_factory(args))
    outcome = resume_run(path, rig, options=options, force=args.force)
    return report_outcome(args, outcome)
