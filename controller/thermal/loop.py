"""The thermal loop: once per control period, read the board, compute, lease the duty.

:class:`ThermalLoop` is what the runner holds. Its task (:meth:`ThermalLoop.run`) ticks at
the rig's ``heater.period`` on the controller's clock (virtual or real) and each tick:

1. reads the board (``T?``: temperature, cold junction, fault bits, counter, applied duty);
2. asks the control law (:class:`~controller.thermal.control.HeaterControl`, or the
   autotune's relay while it runs) for a duty — 0 for a reading with fault bits;
3. shows the reading to the safety supervisor, which may trip;
4. sends the duty as a lease, ``DUTY <permille> <heater.lease>``: if the host stops
   refreshing it, the board drops the heater within the lease;
5. advances the soaks.

A failed read skips the tick (the lease keeps the last duty for at most ``heater.lease``)
and is counted by the supervisor; a board that refuses a duty because it has latched a
trip of its own is a supervisor trip. Cancelling the task sends DUTY 0 on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Protocol

from controller.clock import Clock, Periodic
from controller.rig import HeaterConfig
from controller.thermal.control import HeaterControl, Mode
from controller.thermal.soak import Soak
from controller.thermal.supervisor import SafetySupervisor
from drivers.base import BoardStatus, BoardTripped, HeaterBoard, InstrumentError, ThermoReading

#: how long the way out (DUTY 0 after a cancel) may take, s
RELEASE_TIMEOUT = 2.0


class SetpointRefused(ValueError):
    """A target the rig's limits do not allow; the message names the setting."""


class Control(Protocol):
    """A control law the loop can run: HeaterControl, or the autotune's relay."""

    @property
    def mode(self) -> str: ...
    @property
    def setpoint(self) -> float | None: ...
    @property
    def target(self) -> float | None: ...
    @property
    def move(self) -> int: ...
    @property
    def coasting_down(self) -> bool: ...

    def update(self, now: float, temperature: float, ambient: float) -> float: ...

    def off(self) -> None: ...


class ThermalLoop:
    """The 1 s heater task and the runner's handle on the block's temperature.

    Read-only attributes, updated every tick: ``temperature`` (latest valid reading, degC,
    None before the first), ``reading`` (the latest :class:`ThermoReading`), ``setpoint``
    (the ramped setpoint now; None = heater off), ``target``, ``duty`` (asked for this
    period), ``mode`` (off | full | coast | pid | relay), ``ambient`` (the board's
    cold-junction temperature).
    """

    def __init__(
        self,
        board: HeaterBoard,
        clock: Clock,
        heater: HeaterConfig,
        supervisor: SafetySupervisor,
    ) -> None:
        self.board = board
        self.clock = clock
        self.config = heater
        self.supervisor = supervisor
        self.period = heater.period
        self.lease = heater.lease
        self.heater = HeaterControl(heater)
        self.control: Control = self.heater
        self.temperature: float | None = None
        self.reading: ThermoReading | None = None
        self.ambient = 25.0
        # the view the supervisor reads (plain attributes, set every tick)
        self.setpoint: float | None = None
        self.target: float | None = None
        self.duty = 0.0
        self.move = 0
        self.coasting_down = False
        self.mode: str = Mode.OFF
        self.soaks: list[Soak] = []
        self.ticks = 0
        self.read_errors = 0
        self._last_tick: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        supervisor.safe_state.add_hook(self.off)

    # ------------------------------------------------------------------ commands

    def set_target(self, target: float, ramp: float | None = None) -> None:
        """Heat or cool to ``target`` degC at ``ramp`` K/s (None: the rig's maximum in that
        direction, ``heater.max_ramp_up``/``max_ramp_down``; faster is capped to it). The
        ramp starts from the present setpoint, or from the reading if the heater was off.
        Refused after a safety trip, while autotune runs, and beyond the rig's limits."""
        limits = self.supervisor.limits
        if self.supervisor.trip is not None:
            raise SetpointRefused(
                f"the safety supervisor has tripped ({self.supervisor.trip.message}); "
                "the heater stays off for the rest of this run"
            )
        if self.control is not self.heater:
            raise SetpointRefused("the heater is under autotune; wait for it to finish")
        if not (limits.temperature_min < target <= limits.setpoint_max):
            raise SetpointRefused(
                f"setpoint {target:g} degC is outside {limits.temperature_min:g}…"
                f"{limits.setpoint_max:g} degC (rig settings safety.temperature_min / "
                "safety.setpoint_max)"
            )
        self.heater.set_target(target, ramp, self.temperature)
        self._sync_view()

    def off(self) -> None:
        """Heater off (duty 0 from the next tick); the safe-state action calls this too."""
        self.control.off()
        if self.control is not self.heater:
            self.heater.off()
        self._sync_view()

    def use(self, control: Control) -> Control:
        """Run another control law (the autotune's relay); returns the one it replaces."""
        previous = self.control
        self.control = control
        self._sync_view()
        return previous

    def in_band(self, band: float) -> bool:
        """Whether the latest reading is within ±``band`` of the target."""
        t, target = self.temperature, self.target
        return t is not None and target is not None and abs(t - target) <= band

    def soak(self, band: float, duration: float, *, elapsed: float = 0.0) -> Soak:
        """Start counting time inside ±``band`` of the target towards ``duration`` s
        (``elapsed`` carries a resumed soak over). Await ``soak.wait()``."""
        soak = Soak(band, duration, elapsed=elapsed)
        if not soak.done:
            self.soaks.append(soak)
        return soak

    # ------------------------------------------------------------------ lifecycle

    async def prepare(self) -> BoardStatus:
        """Before the first tick: identify the board, give it the rig's hard limits as
        its own trip limits, and refuse to start on a board that has latched a trip."""
        await self.board.identify()
        limits = self.supervisor.limits
        await self.board.set_limits(limits.temperature_max, limits.temperature_min)
        status = await self.board.status()
        if status.tripped:
            raise BoardTripped(
                status.trip_reason or "?",
                "find the cause, then reset the board (RESET) before starting a run",
            )
        return status

    def start(self) -> None:
        """Start the loop task and the supervisor's watchdog task (see :meth:`stop`)."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self.run())
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.ensure_future(self.supervisor.run())

    async def stop(self) -> None:
        """Cancel both tasks; the loop sends DUTY 0 on its way out."""
        for task in (self._task, self._watchdog):
            if task is not None and not task.done():
                task.cancel()
        for task in (self._task, self._watchdog):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._watchdog = None

    async def run(self) -> None:
        """The loop task: one :meth:`tick` per ``heater.period``, until cancelled; then
        duty 0 (bounded by a timeout, never raising)."""
        periodic = Periodic(self.clock, self.period)
        try:
            while True:
                await periodic.tick()
                await self.tick()
        finally:
            self.off()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.board.set_duty(0.0, self.lease), RELEASE_TIMEOUT)

    # ------------------------------------------------------------------ one period

    async def tick(self) -> None:
        board = self.board
        supervisor = self.supervisor
        self.ticks += 1
        try:
            reading = await board.read()
        except InstrumentError as exc:
            self.read_errors += 1
            supervisor.board_missed(self.clock.now(), exc)
            return
        now = self.clock.now()
        last = self._last_tick
        self._last_tick = now
        self.reading = reading
        temperature = reading.temperature
        valid = not reading.faults and not math.isnan(temperature)
        control = self.control
        if valid:
            self.temperature = temperature
            self.ambient = reading.cold_junction
            duty = control.update(now, temperature, reading.cold_junction)
        else:
            duty = 0.0  # no control on a reading that is not one
        self.duty = duty
        self.setpoint = control.setpoint
        self.target = control.target
        self.move = control.move
        self.coasting_down = control.coasting_down
        self.mode = control.mode
        supervisor.observe(now, reading, self)
        if supervisor.trip is not None:
            self.duty = duty = 0.0
        try:
            await board.set_duty(duty, self.lease)
        except BoardTripped as exc:
            supervisor.board_tripped(now, exc.reason)
        except InstrumentError as exc:
            supervisor.board_missed(now, exc)
        else:
            supervisor.board_ok()
        if self.soaks:
            dt = now - last if last is not None else self.period
            if dt > 2 * self.period:
                dt = 2 * self.period  # a gap in the readings is not time in the band
            target = self.target
            off = abs(temperature - target) if valid and target is not None else math.inf
            self.soaks = [s for s in self.soaks if not s.advance(now, dt, off <= s.band)]

    def _sync_view(self) -> None:
        control = self.control
        self.setpoint = control.setpoint
        self.target = control.target
        self.move = control.move
        self.coasting_down = control.coasting_down
        self.mode = control.mode
        if control.setpoint is None:
            self.duty = 0.0
