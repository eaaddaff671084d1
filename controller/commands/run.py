"""Run a protocol on the rig, journal every sample, and end in the safe state.

`heatcycler run FILE --sim` runs the whole protocol on the in-process software rig in
virtual time (a week-long campaign in seconds); add --realtime for wall-clock pace.
`heatcycler run FILE --rig RIG` runs it on the instruments the rig file names (or on a
`heatcycler sim serve` rig, reached over TCP and a pty). The protocol is validated
against the rig first; nothing is energised if it has a problem.

The run's journal (one SQLite file) goes to --data-dir (default: the rig's data_dir;
`data/` for --sim). Ctrl-C or SIGTERM stops the run in the safe state, resumable with
`heatcycler resume JOURNAL`. Exit codes: 0 finished, 1 aborted, 2 a problem with the
input, 3 a fault (safety trip or instrument failure), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from controller.commands import add_rig_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="protocol file (YAML)")
    add_rig_arguments(parser, required=True)
    add_run_options(parser)
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="--sim: wall-clock pace instead of virtual time",
    )
    parser.add_argument("--seed", type=int, default=None, help="--sim: the software rig's seed")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="--sim: inject a fault into the software rig (repeatable), e.g. tc_open@2h",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``run`` and ``resume``."""
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="where the run's journal goes")
    parser.add_argument(
        "--mqtt", metavar="URL", help="broker (mqtt://host:port, mqtts://…; `off`: none)"
    )
    parser.add_argument(
        "--console",
        choices=["auto", "live", "plain", "quiet"],
        default="auto",
        help="auto: live view on a terminal, plain log lines otherwise (systemd, pipes); "
        "live/plain force one; quiet prints nothing (journal and MQTT still record all)",
    )
    parser.add_argument("--json", action="store_true", help="print the outcome as one JSON line")


def observer_factory(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The live console for ``--console``, built once telemetry exists (its link state)."""
    mode = args.console

    def make(telemetry):  # type: ignore[no-untyped-def]
        from controller.ui.console import make_console, telemetry_link

        return make_console(sys.stdout, mode=mode, link=telemetry_link(telemetry))

    return make if mode != "quiet" else None


def report_outcome(args: argparse.Namespace, outcome) -> int:  # type: ignore[no-untyped-def]
    from controller.runner.session import outcome_json, results_text

    if args.json:
        print(outcome_json(outcome))
    else:
        print(f"run {outcome.state.value}: {outcome.reason}")
        for line in results_text(outcome):
            print(f"  {line}")
        print(f"journal: {outcome.journal}")
    code: int = outcome.exit_code
    return code


def run(args: argparse.Namespace) -> int:
    from controller.commands import rig_from_args
    from controller.instruments import simulated
    from controller.problems import UserError
    from controller.rig import RigConfig
    from controller.runner.session import RunOptions, start_run

    rig = rig_from_args(args)
    assert isinstance(rig, RigConfig)
    sim = simulated(rig)
    if not sim and (args.realtime or args.seed is not None or args.fault):
        raise UserError(
            "--realtime, --seed and --fault apply to the in-process software rig (--sim)",
            "a rig file's instruments always run in real time; for faults on a served "
            "software rig use `heatcycler sim fault`",
        )
    virtual = sim and not args.realtime and not (rig.sim is not None and rig.sim.realtime)
    options = RunOptions(
        virtual=virtual,
        seed=args.seed,
        faults=tuple(args.fault),
        mqtt=args.mqtt,
        observer_factory=observer_factory(args),
    )
    data_dir = args.data_dir if args.data_dir is not None else None
    outcome = start_run(args.file, rig, data_dir=data_dir, options=options)
    return report_outcome(args, outcome)
