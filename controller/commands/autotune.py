"""Tune the heater's PID gains with a relay experiment at a setpoint.

Heats the block at full power to the setpoint, then drives a biased relay (Marlin M303's
scheme) around it; from the oscillation it derives the plant (K/s per unit duty, dead
time, holding duty), the ultimate gain Ku and period Tu, and Tyreus–Luyben PI gains for
this lag-dominated block. The safety supervisor watches throughout; the experiment aborts
in the safe state on an overshoot beyond +15 K or when no oscillation finishes in time.

--sim runs on the simulated block in virtual time (seconds of wall time). With --write,
the rig file's heater.pid (and the measured heater.heat_capacity and heater.loss) are
updated in place; the rest of the file and its comments stay as they are. For example
`heatcycler autotune --setpoint 160degC --sim`, or `heatcycler autotune --setpoint 160degC
--rig /etc/heatcycler/rig.yaml --write` on the rig itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.commands import add_rig_arguments

if TYPE_CHECKING:
    from controller.rig import RigConfig
    from controller.thermal.autotune import Tuning


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--setpoint", required=True, help="where to tune, with its unit, e.g. 160degC"
    )
    add_rig_arguments(parser, required=True)
    parser.add_argument(
        "--write",
        action="store_true",
        help="write the gains (and the measured block model) into the --rig file",
    )
    parser.add_argument(
        "--hysteresis",
        default="0.5 degC",
        help="relay hysteresis around the setpoint (default 0.5 degC: two thermocouple steps)",
    )
    parser.add_argument(
        "--cycles", type=int, default=12, help="relay cycles; the last half is analysed (12)"
    )
    parser.add_argument(
        "--time-limit", default="45 min", help="abort without an oscillation by then (45 min)"
    )
    parser.add_argument("--seed", type=int, default=0, help="--sim: the software rig's seed")


def _quantity(text: str, kind: Any, option: str) -> float:
    from pydantic_core import PydanticCustomError

    from controller.problems import UserError
    from controller.units import parse

    try:
        return parse(text, kind)
    except PydanticCustomError as exc:
        context = exc.context or {}
        raise UserError(
            f"{option}: {context.get('what', exc.message())}", context.get("hint", "")
        ) from None


def run(args: argparse.Namespace) -> int:
    from controller.commands import rig_from_args
    from controller.problems import UserError
    from controller.units import DURATION, TEMPERATURE, TEMPERATURE_DELTA

    setpoint = _quantity(args.setpoint, TEMPERATURE, "--setpoint")
    hysteresis = _quantity(args.hysteresis, TEMPERATURE_DELTA, "--hysteresis")
    time_limit = _quantity(args.time_limit, DURATION, "--time-limit")
    if not hysteresis > 0:
        raise UserError("--hysteresis must be positive", "e.g. --hysteresis 0.5degC")
    if args.cycles < 4:
        raise UserError("--cycles must be at least 4", "e.g. --cycles 8")
    if args.write and args.rig is None:
        raise UserError(
            "--write needs a rig file to write to",
            "use --rig RIG --write (with --sim nothing is written)",
        )
    rig = rig_from_args(args)
    from controller.rig import RigConfig

    assert isinstance(rig, RigConfig)
    limits = rig.safety
    if not (limits.temperature_min < setpoint <= limits.setpoint_max):
        raise UserError(
            f"--setpoint {setpoint:g} degC is outside {limits.temperature_min:g}…"
            f"{limits.setpoint_max:g} degC",
            "the rig settings safety.temperature_min / safety.setpoint_max limit it",
        )
    where = (
        f"the simulated rig (seed {args.seed}, virtual time)"
        if rig.heater.port == "sim"
        else f"{rig.heater.port}"
    )
    print(f"autotune at {setpoint:g} degC on {where}", flush=True)
    tuning = _tune(rig, setpoint, hysteresis, args.cycles, time_limit, args.seed)
    print(tuning.summary())
    if args.write:
        _write(args.rig, tuning)
        print(
            f"wrote heater.pid (kp {tuning.gains.kp:g}, ki {tuning.gains.ki:g}, kd "
            f"{tuning.gains.kd:g}), heater.heat_capacity and heater.loss to {args.rig}"
        )
    elif args.rig is not None:
        print(f"{args.rig} not changed (add --write to store the gains)")
    return 0


def _tune(
    rig: RigConfig, setpoint: float, hysteresis: float, cycles: int, time_limit: float, seed: int
) -> Tuning:
    from controller.clock import Clock
    from controller.clock import run as run_loop
    from controller.problems import UserError
    from controller.safe_state import SafeState
    from controller.thermal.autotune import AutotuneAborted, autotune
    from controller.thermal.loop import ThermalLoop
    from controller.thermal.supervisor import SafetySupervisor
    from drivers.factory import open_heater_board

    simulated = rig.heater.port == "sim"

    def show(kind: str, message: str, *, severity: str, data: dict[str, Any]) -> None:
        if severity != "info":  # trips and a safe state that could not be confirmed
            print(f"{severity}: {message}", file=sys.stderr, flush=True)

    async def main() -> Tuning:
        clock = Clock()
        device = None
        if simulated:
            # the software rig, in process, as the runner's --sim builds it
            from controller.instruments import CellOnBench, build_sim_rig

            device = build_sim_rig(rig, CellOnBench(), clock.now, seed=seed).board
        board = await open_heater_board(rig.heater, device=device)
        safe = SafeState(board, None, clock, events=show, lease=rig.heater.lease)
        supervisor = SafetySupervisor(rig.safety, clock, safe, board=board, events=show)
        loop = ThermalLoop(board, clock, rig.heater, supervisor)
        try:
            await loop.prepare()
            loop.start()
            return await autotune(
                loop, setpoint, hysteresis=hysteresis, cycles=cycles, time_limit=time_limit
            )
        except AutotuneAborted as exc:
            raise UserError(exc.message, exc.hint) from None
        finally:
            await loop.stop()
            await safe.engage("autotune finished", source="autotune")
            await board.close()

    return run_loop(main, virtual=simulated)


def _write(path: Path, tuning: Tuning) -> None:
    """Update heater.pid, heater.heat_capacity and heater.loss in place (ruamel round
    trip: comments, order and quoting of everything else are kept)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    from controller.problems import UserError
    from controller.validate import load_rig

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    text = path.read_text(encoding="utf-8")
    data = yaml.load(text)
    heater = data.get("heater")
    if not isinstance(heater, dict):
        raise UserError(f"{path}: no `heater:` mapping to write the gains into", "see deploy/")
    pid = heater.get("pid")
    if not isinstance(pid, dict):
        pid = CommentedMap()
        heater["pid"] = pid
    gains = tuning.gains
    pid["kp"] = float(f"{gains.kp:.4g}")
    pid["ki"] = float(f"{gains.ki:.4g}")
    pid["kd"] = float(f"{gains.kd:.4g}")
    heater["heat_capacity"] = round(tuning.heat_capacity, 1)
    heater["loss"] = round(tuning.loss, 4)
    temporary = path.with_name(path.name + ".autotune")
    with temporary.open("w", encoding="utf-8") as out:
        yaml.dump(data, out)
    try:
        load_rig(temporary)
    except UserError:
        temporary.unlink()
        raise
    temporary.replace(path)
