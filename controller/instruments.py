"""The rig's two instruments, opened from a rig config: real ones, or the software rig.

This is the one place in the controller that builds a simulated rig. ``smu.resource:
sim`` / ``heater.port: sim`` (``--sim``) put the software rig in this process: its
firmware emulators are handed to the drivers as ``LineDevice``s over an in-process
transport, so the controller still speaks SCPI and the board's line protocol to them. Any
other resource is a real transport (VISA, serial) — the software rig served by
``heatcycler sim serve`` is reached that way too (``TCPIP::127.0.0.1::5025::SOCKET`` and
the board's pty), which is what ``--realtime`` rehearsals and the crash tests use.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from controller.rig import RigConfig
from drivers.base import HeaterBoard, SourceMeter
from drivers.factory import SIM, open_heater_board, open_source_meter


@dataclass(frozen=True, slots=True)
class CellOnBench:
    """What the software rig needs to know of the cell (from the protocol's ``cell``)."""

    electrolyte: str = "LiBH4"
    type: str = "symmetric"
    area_cm2: float = 0.785
    thickness_cm: float = 0.1


@dataclass
class Instruments:
    smu: SourceMeter
    board: HeaterBoard
    sim: Any = None  # the in-process SimRig, when there is one (tests inspect it)
    closed: bool = field(default=False)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for part in (self.smu, self.board):
            with contextlib.suppress(Exception):
                await part.close()


def simulated(rig: RigConfig) -> bool:
    """Whether this rig's instruments live in this process (``sim`` resources)."""
    return rig.smu.resource == SIM or rig.heater.port == SIM


def build_sim_rig(
    rig: RigConfig,
    cell: CellOnBench,
    now: Any,
    *,
    seed: int | None = None,
    faults: list[str] | None = None,
) -> Any:
    """The in-process software rig for ``rig`` (seed, ambient and wiring from it)."""
    from firmware_sim.physics import CellSpec
    from firmware_sim.rig import SimRig

    sim_cfg = rig.sim
    ambient = sim_cfg.ambient if sim_cfg is not None else 25.0
    chosen = seed if seed is not None else (sim_cfg.seed if sim_cfg is not None else 0)
    return SimRig(
        now,
        seed=chosen,
        cell_spec=CellSpec(
            electrolyte=cell.electrolyte,
            type=cell.type,
            area_cm2=cell.area_cm2,
            thickness_cm=cell.thickness_cm,
        ),
        working_electrode=rig.smu.working_electrode.upper(),
        faults=[f"ambient={ambient}", *(faults or [])],
    )


async def open_rig_instruments(
    rig: RigConfig,
    *,
    cell: CellOnBench | None = None,
    seed: int | None = None,
    faults: list[str] | None = None,
    now: Any = None,
) -> Instruments:
    """Open (and identify) both instruments of ``rig``. For ``sim`` resources the
    software rig is built in process on ``now`` (the running loop's clock by default)."""
    sim = None
    smu_device = board_device = None
    if simulated(rig):
        if now is None:
            from controller.clock import Clock

            now = Clock().now
        sim = build_sim_rig(rig, cell or CellOnBench(), now, seed=seed, faults=faults)
        smu_device = sim.smu if rig.smu.resource == SIM else None
        board_device = sim.board if rig.heater.port == SIM else None
    board = await open_heater_board(rig.heater, device=board_device)
    try:
        smu = await open_source_meter(rig.smu, device=smu_device)
    except BaseException:
        with contextlib.suppress(Exception):
            await board.close()
        raise
    return Instruments(smu=smu, board=board, sim=sim)
