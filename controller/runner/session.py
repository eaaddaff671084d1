"""A run from start to end: journal, instruments, telemetry and the runner, wired.

``start_run`` (``heatcycler run``) creates a journal and runs a protocol from its first
step; ``controller.runner.resume.resume_run`` (``heatcycler resume`` and the service)
reopens a journal at its last checkpoint. Both end in :func:`execute`, which owns the
order of things: telemetry configuration checked before anything is energised,
instruments opened and identified, the run, the journal flushed, telemetry drained,
instruments closed — and on every path out the runner's safe state has already run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller import protocol as proto
from controller.clock import VIRTUAL_EPOCH, Clock, VirtualTimeLoop
from controller.instruments import CellOnBench, open_rig_instruments, simulated
from controller.journal import Journal, new_run_id
from controller.problems import UserError
from controller.rig import RigConfig
from controller.runner.engine import Observer, Runner, RunOutcome, ServiceHooks, StartPoint


@dataclass(frozen=True)
class RunOptions:
    """How to run: virtual time (``--sim`` default) or wall-clock, the software rig's seed
    and faults, the MQTT override, the live view and the service hooks."""

    virtual: bool = False
    seed: int | None = None
    faults: tuple[str, ...] = ()
    mqtt: str | None = None
    observer_factory: Callable[[Any], Observer | None] | None = None  # gets the Telemetry
    hooks: ServiceHooks | None = None
    handle_signals: bool = True
    notice: Callable[[str], None] | None = None


def load_valid_protocol(path: Path, rig: RigConfig, text: str | None = None) -> proto.Protocol:
    """The protocol, validated against the rig; a ``UserError`` listing every problem."""
    from controller.validate import load_protocol

    loaded = load_protocol(path, rig, text=text)
    if loaded.protocol is None or loaded.problems:
        problems = loaded.problems
        first = problems[0] if problems else None
        raise UserError(
            f"{path}: {len(problems)} problem(s); nothing was energised"
            if first is None
            else first.message,
            first.hint if first is not None else "run `heatcycler validate` on it",
            problems,
        )
    return loaded.protocol


def cell_on_bench(protocol: proto.Protocol) -> CellOnBench:
    cell = protocol.cell
    return CellOnBench(
        electrolyte=cell.electrolyte,
        type=cell.type.value,
        area_cm2=cell.area_cm2,
        thickness_cm=cell.thickness,
    )


def run_loop(main: Callable[[], Any], *, virtual: bool, unix_epoch: float = VIRTUAL_EPOCH) -> Any:
    """Run ``main()`` on a fresh loop: virtual time from ``unix_epoch``, or real time."""
    if not virtual:
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(unix_epoch=unix_epoch)) as runner:
        return runner.run(main())


def software_version() -> str:
    from controller.telemetry.service import software_version as version

    return version()


def start_run(
    protocol_path: Path,
    rig: RigConfig,
    *,
    data_dir: Path | None = None,
    options: RunOptions | None = None,
) -> RunOutcome:
    """``heatcycler run``: validate, create the run's journal, run it to the end."""
    options = options or RunOptions()
    protocol_path = Path(protocol_path)
    try:
        text = protocol_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{protocol_path}: cannot read it ({exc})", "check the path") from None
    protocol = load_valid_protocol(protocol_path, rig, text)
    directory = Path(data_dir) if data_dir is not None else Path(rig.data_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"data directory {directory}: {exc.strerror or exc}",
            "pass --data-dir DIR (a writable directory), or set data_dir in the rig file",
        ) from None
    # a virtual run's clock starts at VIRTUAL_EPOCH: its id says so too (as its samples do)
    started = VIRTUAL_EPOCH if options.virtual else time.time()
    run_id = new_run_id(rig.rig, protocol.cell.id, started)
    path = directory / f"{run_id}.sqlite"
    n = 1
    while path.exists():
        n += 1
        path = directory / f"{run_id}-{n}.sqlite"
    run_id = path.stem
    seed = options.seed if options.seed is not None else (rig.sim.seed if rig.sim else 0)
    meta = {
        "run_id": run_id,
        "rig": rig.model_dump(mode="json"),
        "protocol_text": text,
        "protocol_name": protocol.name,
        "protocol_path": str(protocol_path),
        "cell": {
            "id": protocol.cell.id,
            "electrolyte": protocol.cell.electrolyte,
            "type": protocol.cell.type.value,
            "area_cm2": protocol.cell.area_cm2,
            "thickness_cm": protocol.cell.thickness,
        },
        "state": "idle",
        "sim": "true" if simulated(rig) else "false",
        "seed": seed,
        "faults": list(options.faults),
        "virtual": "true" if options.virtual else "false",
        "software_version": software_version(),
        "sign_convention": "positive current plates lithium on the working electrode; "
        "voltage is V(working) - V(counter)",
    }
    journal = Journal.create(path, meta, durable=not options.virtual, threaded=not options.virtual)
    if not journal.lock():
        journal.close()
        raise UserError(f"{path} is held by another controller", "is a run already going?")

    async def main() -> RunOutcome:
        return await execute(protocol, rig, journal, run_id, StartPoint(), options)

    return run_loop(main, virtual=options.virtual)  # type: ignore[no-any-return]


async def execute(
    protocol: proto.Protocol,
    rig: RigConfig,
    journal: Journal,
    run_id: str,
    start: StartPoint,
    options: RunOptions,
) -> RunOutcome:
    """Telemetry, instruments, the runner; everything closed on the way out."""
    from controller.telemetry.service import Telemetry

    clock = Clock()
    try:
        telemetry = Telemetry(rig, options.mqtt, journal.path, None, notice=options.notice)
    except UserError:
        journal.set_meta("state", "idle")
        journal.close()
        raise
    try:
        instruments = await open_rig_instruments(
            rig,
            cell=cell_on_bench(protocol),
            seed=options.seed,
            faults=list(options.faults),
            now=clock.now,
        )
    except BaseException:
        journal.set_meta("reason", "the instruments could not be opened")
        journal.close()
        raise
    observer = options.observer_factory(telemetry) if options.observer_factory else None
    runner = Runner(
        protocol=protocol,
        rig=rig,
        journal=journal,
        smu=instruments.smu,
        board=instruments.board,
        clock=clock,
        run_id=run_id,
        start=start,
        observer=observer,
        hooks=options.hooks,
        handle_signals=options.handle_signals,
    )
    telemetry.control = runner
    telemetry_task = asyncio.ensure_future(telemetry.run())
    try:
        outcome = await runner.run()
    finally:
        with contextlib.suppress(Exception):
            await journal.flush()
        if telemetry.enabled:
            with contextlib.suppress(Exception):
                await telemetry.drain()
        if not telemetry_task.done():
            telemetry_task.cancel()
        with contextlib.suppress(BaseException):
            await telemetry_task
        await instruments.close()
        journal.close()
        if observer is not None and hasattr(observer, "close"):
            with contextlib.suppress(Exception):
                observer.close()
    return outcome


def results_text(outcome: RunOutcome) -> list[str]:
    """One line per step result worth reading (CCD, cycles to short, soaks, σ_e)."""
    return [
        f"step {r['step']} ({r.get('path')} {r.get('kind')}) {r.get('outcome')}: {r['summary']}"
        for r in outcome.results
        if r.get("summary")
    ]


def outcome_json(outcome: RunOutcome) -> str:
    return json.dumps(
        {
            "state": outcome.state.value,
            "reason": outcome.reason,
            "journal": str(outcome.journal),
            "results": outcome.results,
        },
        default=str,
    )
