"""One module per ``heatcycler`` subcommand (see controller/cli.py)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_rig_arguments(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """``--rig RIG`` or ``--sim``: which rig's limits and instruments apply."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--rig", type=Path, metavar="RIG", help="rig configuration file (YAML)")
    group.add_argument("--sim", action="store_true", help="the built-in simulated rig")


def rig_from_args(args: argparse.Namespace) -> object | None:
    """The RigConfig chosen by ``--rig``/``--sim``, or None if neither was given."""
    from controller.rig import simulated_rig
    from controller.validate import load_rig

    if getattr(args, "rig", None) is not None:
        return load_rig(args.rig)
    if getattr(args, "sim", False):
        return simulated_rig(getattr(args, "data_dir", None))
    return None
