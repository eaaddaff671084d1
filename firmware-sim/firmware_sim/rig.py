"""The software rig: a cell in a heater block, wired to a Keithley 2450 and a heater board.

:class:`SimRig` composes the clock, the cell (anything that implements
:class:`~firmware_sim.physics.CellPhysics`), the heater block, both firmwares and the
faults. Nothing runs in the background: every request first advances all physics to the
clock's present (``sync``), in chunks short enough to be accurate and to catch the
board's trips and lease expiry at their time. The clock is any callable returning seconds
— the event loop's ``time`` in-process (virtual time included), ``time.monotonic() *
speed`` when serving. Given the same seed and the same requests at the same times, a run
is identical.

The host reaches the rig through two :class:`drivers.transport.LineDevice` objects:
``rig.smu`` (SCPI lines, no terminator) and ``rig.board`` (framed board lines).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import threading
from collections.abc import Callable, Iterable
from typing import Any, cast

from firmware_sim.board import MARGIN, HeaterBoardFirmware
from firmware_sim.faults import Faults, FaultSpec, Wire
from firmware_sim.k2450 import Keithley2450
from firmware_sim.ohmic import OhmicCell
from firmware_sim.physics import CellPhysics, CellSpec
from firmware_sim.thermal import (
    CONVERSION_PERIOD,
    BlockParams,
    HeaterBlock,
    Max31855,
    ThermocoupleReading,
)

#: 2026-01-01T00:00:00Z, where virtual runs start their unix clock (as controller.clock).
VIRTUAL_EPOCH = 1_767_225_600.0
#: longest physics step while the heater is on / off (s)
STEP_HEATING = 1.0
STEP_IDLE = 10.0
#: steps of one conversion this close (degC) to the board's limits
NEAR_LIMIT = 3.0

_TC_PROBES = {"tc_open": "open", "tc_short_gnd": "short_gnd", "tc_short_vcc": "short_vcc"}
_TC_PROBES["tc_shorted"] = "shorted"


class ManualClock:
    """A clock the test moves by hand: ``clock.advance(5)``."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("time does not run backwards")
        self.t += seconds
        return self.t

    def set(self, t: float) -> None:
        if t < self.t:
            raise ValueError("time does not run backwards")
        self.t = t


def default_cell(spec: CellSpec, seed: int) -> CellPhysics:
    """The cell model (``firmware_sim.cell.make_cell``) if present, else an ohmic cell."""
    try:
        module = importlib.import_module("firmware_sim.cell")
    except ImportError:
        return OhmicCell()
    make_cell = cast(Callable[[CellSpec, int], CellPhysics], module.make_cell)
    return make_cell(spec, seed)


class SimRig:
    """The whole software rig. Construct, then talk to ``smu`` and ``board``.

    ``clock`` returns seconds (any origin); rig time starts at 0 when the rig is made.
    ``faults`` are specs applied at construction (``"tc_open@2h"``).
    ``working_electrode`` is the SMU terminal the cell's working electrode is wired to:
    on ``"HI"`` (default) a positive SMU current strips it and the SMU reads V(WE) − V(CE);
    on ``"LO"`` a positive SMU current plates it and the SMU reads V(CE) − V(WE).
    """

    def __init__(
        self,
        clock: Callable[[], float] | None = None,
        *,
        seed: int = 0,
        cell: CellPhysics | None = None,
        cell_spec: CellSpec | None = None,
        block: BlockParams | None = None,
        language: str = "SCPI",
        working_electrode: str = "HI",
        smu_serial: str = "04412345",
        board_serial: str = "B0042",
        unix_start: float = VIRTUAL_EPOCH,
        faults: Iterable[str | FaultSpec] = (),
    ) -> None:
        self.clock = clock or ManualClock()
        self._t0 = self.clock()
        self.time = 0.0
        self.seed = seed
        self.unix_start = unix_start
        self.lock = threading.RLock()
        self.cell_spec = cell_spec or CellSpec()
        self.cell: CellPhysics = cell if cell is not None else default_cell(self.cell_spec, seed)
        self.heater = HeaterBlock(block)
        self.amplifier = Max31855(seed)
        self.charge = 0.0  # C through the cell (+ = plating the working electrode)
        self._frozen: ThermocoupleReading | None = None
        self.faults = Faults()
        self.faults.bind(self.sync, self._fault_effect, self.lock)
        self.smu_firmware = Keithley2450(
            self,
            serial=smu_serial,
            language=language,
            seed=seed,
            working_electrode=working_electrode,
        )
        self.board_firmware = HeaterBoardFirmware(self, serial=board_serial)
        self.smu = Wire(
            self.smu_firmware,
            faults=self.faults,
            sync=self._sync_locked,
            lock=self.lock,
            unplug="smu_unplug",
            silent="smu_timeout",
            garbage_kind="smu_garbage",
        )
        self.board = Wire(
            self.board_firmware,
            faults=self.faults,
            sync=self._sync_locked,
            lock=self.lock,
            unplug="serial_unplug",
            silent="board_silent",
        )
        self.board_firmware.tick()
        for spec in faults:
            self.faults.apply(spec)

    # ------------------------------------------------------------ the bench

    def now(self) -> float:
        """Rig time the clock says it is (the physics may lag until ``sync``)."""
        return self.clock() - self._t0

    def unix(self) -> float:
        return self.unix_start + self.time

    @property
    def cell_temperature(self) -> float:
        return self.heater.block

    @property
    def connected(self) -> bool:
        return "smu_compliance" not in self.faults.active

    def thermocouple(self) -> ThermocoupleReading:
        """The MAX31855's latest conversion at the rig's present time."""
        if self._frozen is not None:
            return self._frozen
        counter = int(self.time / CONVERSION_PERIOD + 1e-6)
        probe = "ok"
        active = self.faults.active
        if active:
            for kind, name in _TC_PROBES.items():
                if kind in active:
                    probe = name
                    break
        return self.amplifier.convert(counter, self.heater.sensor, self.heater.ambient, probe)

    def probe_clear(self) -> float | None:
        if self._frozen is not None:
            return None
        active = self.faults.active
        if active and any(k in active for k in _TC_PROBES):
            return None
        if self.amplifier.noise * 3.5 + 0.125 > MARGIN:  # too noisy for the shortcut
            return None
        return self.heater.sensor

    @property
    def heater_duty(self) -> float:
        """What the cartridge gets: the board's SSR duty, unless the hardware is broken."""
        active = self.faults.active
        if active:
            if "heater_stuck_on" in active:
                return 1.0
            if "heater_dead" in active:
                return 0.0
        return self.board_firmware.output_duty()

    # ------------------------------------------------------------- physics

    def sync(self) -> float:
        """Advance everything to the clock's present; returns the rig time."""
        with self.lock:
            return self._sync_locked()

    def _sync_locked(self) -> float:
        """``sync`` for a caller that holds the lock (the wires, at every request)."""
        t = self.clock() - self._t0
        if self.time < t:
            self._advance_to(t)
        return self.time

    def advance_to(self, t: float) -> None:
        with self.lock:
            self._advance_to(t)

    def _advance_to(self, t: float) -> None:
        """``advance_to`` with the lock held."""
        heater, board, faults = self.heater, self.board_firmware, self.faults
        smu, cell = self.smu_firmware, self.cell
        while self.time < t:
            now = self.time
            duty = self.heater_duty
            step = STEP_HEATING if duty > 0 else STEP_IDLE
            sensor = heater.sensor
            if board.trip is None and not (
                board.limit_min + NEAR_LIMIT < sensor < board.limit_max - NEAR_LIMIT
            ):
                step = CONVERSION_PERIOD  # near a limit: look at every conversion
            t_next = min(t, now + step)
            for event in (board.next_event(), faults.next_time()):
                if now < event < t_next:
                    t_next = event
            current = smu.cell_current()
            before = heater.block
            heater.advance(t_next, duty)
            dt = t_next - now
            cell.advance(dt, current, 0.5 * (before + heater.block))
            self.charge += current * dt
            self.time = t_next
            faults.fire_due(t_next)
            board.tick()

    def _fault_effect(self, kind: str, value: object, on: bool) -> None:
        if kind == "cell_short":
            self.cell.inject_short(str(value))
        elif kind == "smu_error":
            self.smu_firmware.push_error(cast(int, value))
        elif kind == "board_crc":
            self.board.corrupt_next(cast(int, value))
        elif kind == "loss":
            self.heater.loss_factor = 1.0 if value is None else cast(float, value)
        elif kind == "ambient":
            ambient = self.heater.params.ambient if value is None else cast(float, value)
            self.heater.set_ambient(ambient)
        elif kind == "frozen":
            self._frozen = None
            self._frozen = self.thermocouple() if on else None
        self.board_firmware.tick()

    # ---------------------------------------------------------- observation

    def snapshot(self) -> dict[str, Any]:
        """Everything a test or a technician may want to see, at the present time."""
        with self.lock:
            self.sync()
            op = self.smu_firmware.operating_point()
            reading = self.thermocouple()
            board = self.board_firmware
            return {
                "time": self.time,
                "block_temperature": self.heater.block,
                "sensor_temperature": self.heater.sensor,
                "thermocouple": None if math.isnan(reading.temperature) else reading.temperature,
                "heater_duty": self.heater_duty,
                "loss_factor": self.heater.loss_factor,
                "ambient": self.heater.ambient,
                "board_trip": board.trip,
                "lease_left": board.lease_left(),
                "smu_output": self.smu_firmware.output,
                "cell_voltage": op.voltage,
                "cell_current": op.cell_current,
                "in_limit": op.limited,
                "charge": self.charge,
                "cell_hard_shorted": self.cell.hard_shorted,
                "cell_spec": dataclasses.asdict(self.cell_spec),
                "seed": self.seed,
                "faults": {k: v for k, v in self.faults.active.items()},
                "scheduled": [
                    {"at": t, "fault": spec, "starts": start}
                    for t, spec, start in self.faults.scheduled()
                ],
            }
