"""In-process runs on the software rig, in virtual time, with the rig at hand.

``run_sim(text, tmp_path, …)`` validates a protocol, builds the in-process software rig
and the real drivers over it (controller/instruments.py), runs the real ``Runner`` on a
``VirtualTimeLoop`` and returns the outcome, the journal path and the ``SimRig`` (whose
``snapshot()`` shows what the hardware is doing: output relay, heater duty).
``during(runner, sim)`` may be an async callback started beside the run (pause, abort,
signals at chosen virtual times).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.clock import Clock
from controller.instruments import open_rig_instruments
from controller.journal import Journal
from controller.rig import RigConfig, simulated_rig
from controller.runner.engine import Runner, RunOutcome, StartPoint
from controller.runner.session import cell_on_bench, load_valid_protocol, run_loop

HEADER = """\
name: {name}
cell: {{id: T1, electrolyte: LiBH4, type: symmetric, area: 0.785 cm^2, thickness: 1.0 mm}}
safety:
  voltage: {{min: -1 V, max: 1 V}}
  temperature_max: 175 degC
record: {{sample_period: 1 s, every: 10 s, delta_voltage: 1 mV}}
steps:
"""


def protocol_text(steps: str, name: str = "test") -> str:
    return HEADER.format(name=name) + steps


@dataclass
class SimRun:
    outcome: RunOutcome
    journal: Path
    sim: Any
    runner: Runner
    snapshot: dict[str, Any]  # the software rig right after the run returned


Callback = Callable[[Runner, Any], Awaitable[None]]


def run_sim(
    text: str,
    tmp_path: Path,
    *,
    seed: int = 0,
    faults: list[str] | None = None,
    during: Callback | None = None,
    rig: RigConfig | None = None,
    runner_class: type[Runner] = Runner,
    name: str = "run",
) -> SimRun:
    rig = rig or simulated_rig(tmp_path / "data", seed=seed)
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / f"{name}.yaml"
    source.write_text(text, encoding="utf-8")
    protocol = load_valid_protocol(source, rig, text)
    path = tmp_path / "data" / f"{name}.sqlite"
    journal = Journal.create(
        path,
        {"run_id": name, "protocol_text": text, "protocol_path": str(source), "state": "idle"},
        durable=False,
        threaded=False,
    )

    async def main() -> SimRun:
        clock = Clock()
        inst = await open_rig_instruments(
            rig, cell=cell_on_bench(protocol), seed=seed, faults=faults, now=clock.now
        )
        runner = runner_class(
            protocol=protocol,
            rig=rig,
            journal=journal,
            smu=inst.smu,
            board=inst.board,
            clock=clock,
            run_id=name,
            start=StartPoint(),
            handle_signals=during is not None,
        )
        side = asyncio.ensure_future(during(runner, inst.sim)) if during else None
        try:
            outcome = await runner.run()
        finally:
            if side is not None and not side.done():
                side.cancel()
        snap = inst.sim.snapshot()
        await inst.close()
        journal.close()
        return SimRun(outcome, path, inst.sim, runner, snap)

    result: SimRun = run_loop(main, virtual=True)
    return result


@pytest.fixture
def sim_run(tmp_path: Path) -> Callable[..., SimRun]:
    def go(text: str, **kw: Any) -> SimRun:
        return run_sim(text, tmp_path, **kw)

    return go
