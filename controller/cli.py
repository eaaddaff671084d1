"""The ``heatcycler`` command line.

Each subcommand lives in ``controller/commands/<name>.py`` with ``add_arguments(parser)``
and ``run(args) -> int``. Those modules import only the standard library at module level
(heavy imports go inside ``run``), so that ``heatcycler validate`` starts fast.

Exit codes: 0 success; 2 a user mistake (bad file, bad argument), printed with a hint and
never as a traceback; 3 an instrument or link failure; 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("controller.commands.demo", "heat therapy vs control on the simulated rig, compared"),
    "run": ("controller.commands.run", "run a protocol (--sim: the software rig, virtual time)"),
    "resume": ("controller.commands.resume", "continue an interrupted run from its journal"),
    "validate": ("controller.commands.validate", "check protocol files; exit 2 on problems"),
    "plan": ("controller.commands.plan", "dry-run a protocol: timeline, durations, limits"),
    "schema": ("controller.commands.schema", "write or check protocols/schema.json"),
    "sim": ("controller.commands.sim", "serve the software rig (SMU on TCP, board on a pty)"),
    "autotune": ("controller.commands.autotune", "tune the heater's PID gains (relay experiment)"),
    "watch": ("controller.commands.watch", "watch rigs live over MQTT (status, samples, events)"),
    "detect": ("controller.commands.detect", "find shorts and voltage limits in a recorded CSV"),
    "doctor": ("controller.commands.doctor", "check the rig is fit to run unattended; a fix each"),
    "archive": ("controller.commands.archive", "compress finished runs (xz); list runs"),
    "service": ("controller.commands.service", "systemd entry: resume an interrupted run or idle"),
    "runs": ("controller.commands.runs", "list the runs in the data directory with their results"),
    "report": ("controller.commands.report", "a run's plots (PNG) and summary (Markdown, JSON)"),
    "compare": ("controller.commands.compare", "compare runs: one figure and a table"),
    "export": ("controller.commands.export", "export a run as Battery Data Format CSV/Parquet"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="heatcycler",
        description="Controller for a solid-state cell test rig with heat therapy.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from controller.problems import UserError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args._module.run(args)
        return code
    except UserError as exc:
        print(exc.format(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from drivers.base import InstrumentError

        if isinstance(exc, InstrumentError):
            print(f"error: {exc.message}", file=sys.stderr)
            if exc.hint:
                print(f"    hint: {exc.hint}", file=sys.stderr)
            return 3
        raise


if __name__ == "__main__":
    sys.exit(main())
