"""Check that this rig is fit to run unattended: data directory and free space for the
planned run, clock synchronisation, MQTT broker and credentials, the SMU's identity and
mode, the heater board's firmware, trip state and limits, and a plausible thermocouple.

One line per check (PASS, WARN, FAIL or SKIP) with a fix for each problem. Nothing is
energised or changed. Exit 0 when no check fails, 1 when one does, 2 on a bad rig or
protocol file. Run it as the service's user to check its permissions too:
`sudo -u heatcycler heatcycler doctor --rig /etc/heatcycler/rig.yaml`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from controller.commands import add_rig_arguments

if TYPE_CHECKING:
    from firmware_sim.rig import SimRig

    from controller.rig import RigConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_rig_arguments(parser, required=True)
    parser.add_argument(
        "--protocol",
        type=Path,
        metavar="FILE",
        help="the run you plan: the disk check sizes its journal from the plan's longest "
        "duration (default: a 30-day run)",
    )
    from controller.telemetry.cli import add_mqtt_argument

    add_mqtt_argument(parser)
    parser.add_argument("--json", action="store_true", help="the report as one JSON object")


def run(args: argparse.Namespace) -> int:
    from controller.clock import run as run_loop
    from controller.commands import rig_from_args
    from controller.problems import UserError
    from controller.rig import RigConfig as Rig
    from controller.service.doctor import (
        PlannedRun,
        Probes,
        diagnose,
        format_report,
        report_json,
    )

    rig = rig_from_args(args)
    assert isinstance(rig, Rig)
    planned = None
    if args.protocol is not None:
        from controller.plan import make_plan
        from controller.validate import load_protocol

        loaded = load_protocol(args.protocol, rig)
        if not loaded.ok or loaded.protocol is None:
            first = loaded.problems[0]
            raise UserError(first.message, first.hint, loaded.problems)
        plan = make_plan(loaded.protocol, rig)
        record = loaded.protocol.record
        planned = PlannedRun(
            loaded.protocol.name, plan.duration.max, record.every, record.sample_period
        )

    async def main() -> int:
        probes = Probes(mqtt_url=getattr(args, "mqtt", None))
        sim = None
        if rig.simulated:
            sim = _software_rig(rig)
            probes.smu_device, probes.board_device = sim.smu, sim.board
        report = await diagnose(rig, planned, probes)
        print(report_json(report) if args.json else format_report(report))
        sys.stdout.flush()
        return 1 if report.failed else 0

    return run_loop(main, virtual=False)


def _software_rig(rig: RigConfig) -> SimRig:
    """The in-process software rig behind `sim` resources, built as the runner's --sim
    builds it (seed, ambient and wiring from the rig file)."""
    import asyncio

    from controller.instruments import CellOnBench, build_sim_rig

    sim: SimRig = build_sim_rig(rig, CellOnBench(), asyncio.get_running_loop().time)
    return sim
