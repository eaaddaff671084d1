"""The safety supervisor: sees every temperature reading, trips to the safe state.

It is an observer plus a watchdog task, independent of the control law:

- :meth:`SafetySupervisor.observe` gets every board reading (the thermal loop calls it
  each period, the supervisor's own confirmation reads too) with a *view* of what the loop
  is doing (setpoint, target, duty…), and runs the reading checks;
- :meth:`SafetySupervisor.run` is the watchdog task: it wakes when the newest reading
  would become stale, so a hung or crashed loop, a frozen amplifier or a silent board trip
  it even when nothing calls ``observe``;
- the instrument links report their failures (:meth:`board_missed`, :meth:`smu_read_failed`)
  and successes (:meth:`board_ok`, :meth:`smu_read_ok`): the runner calls the SMU pair on
  every SMU read.

A trip is latched: the first one wins, is journaled as a ``trip`` event (check, measured
value, limit and the rig setting that controls it) and engages the safe-state action;
nothing clears it but a new supervisor (a new run). Limits come from the rig's
``safety`` block (:class:`controller.rig.SafetyLimits`, defaults from DESIGN.md).

Thermocouple fault bits are confirmed at 4 Hz: the first reading with fault bits starts
re-reads every 0.25 s, so N = 3 faulty reads in a row trip within 1.5 s of the fault with
the loop itself reading only once a second.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from controller.clock import Clock
from controller.rig import SafetyLimits
from controller.safe_state import EventSink, SafeState, emit
from drivers.base import HeaterBoard, InstrumentError, ThermocoupleFault, ThermoReading

#: s between confirmation reads after a reading with thermocouple fault bits (≥ 4 Hz)
CONFIRM_PERIOD = 0.25
#: K below the sustained-overshoot limit a reading must fall to restart its clock (two
#: thermocouple steps: a noisy reading at the limit is not the end of an overshoot)
SUSTAINED_HYSTERESIS = 0.5


class ThermalView(Protocol):
    """What the supervisor needs to know about the loop at a reading (plain attributes)."""

    @property
    def setpoint(self) -> float | None:
        """The ramped setpoint now; None = heater off."""

    @property
    def target(self) -> float | None:
        """Where the present move ends."""

    @property
    def duty(self) -> float:
        """The duty the loop asks for now."""

    @property
    def move(self) -> int:
        """Changes at every new target or off."""

    @property
    def coasting_down(self) -> bool:
        """Duty 0 while the block cools towards a lower target."""


@dataclass(frozen=True, slots=True)
class Trip:
    """A latched safety trip: which check, what was measured, the limit, the setting."""

    check: str  # e.g. temperature_max, thermocouple, stale, heating_while_off
    message: str
    value: float | None
    limit: float | None
    setting: str  # the rig setting(s) that control this limit
    t: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "message": self.message,
            "value": self.value,
            "limit": self.limit,
            "setting": self.setting,
            "t": self.t,
        }


class SafetySupervisor:
    """Checks of DESIGN.md's safety table; see the module doc."""

    def __init__(
        self,
        limits: SafetyLimits,
        clock: Clock,
        safe_state: SafeState,
        *,
        board: HeaterBoard | None = None,
        events: EventSink | None = None,
    ) -> None:
        self.limits = limits
        self.clock = clock
        self.safe_state = safe_state
        self.board = board
        self.events = events
        self.trip: Trip | None = None
        self._tripped = asyncio.Event()
        self._safe_task: asyncio.Future[Any] | None = None
        self._confirm_task: asyncio.Task[None] | None = None
        self._view: ThermalView | None = None
        # readings
        self._counter: int | None = None
        self._fresh: float | None = None  # when the newest conversion first arrived
        self._seen: float | None = None  # when any reading last arrived
        self._last: float | None = None  # time of the previous clean reading
        self._fault_run = 0
        self._board_missed = 0
        self._smu_missed = 0
        # per move
        self._move: int | None = None
        self._reached = False
        self._runaway = 0.0
        self._slow_ref: float | None = None
        self._slow_from = 0.0
        self._slow_deadline = 0.0
        self._over_since: float | None = None
        # heating while off: since when the duty is 0, and a sliding minimum of readings
        self._off_since: float | None = None
        self._off_min: deque[tuple[float, float]] = deque()

    # ------------------------------------------------------------------ state

    @property
    def tripped(self) -> bool:
        return self.trip is not None

    async def wait(self) -> Trip:
        """Until a trip, and the safe-state action it started, are done."""
        await self._tripped.wait()
        if self._safe_task is not None:
            await asyncio.shield(self._safe_task)
        assert self.trip is not None
        return self.trip

    # ------------------------------------------------------------------ inputs

    def observe(self, t: float, reading: ThermoReading, view: ThermalView) -> None:
        """Check one board reading (the thermal loop calls this every period)."""
        if self.trip is not None:
            return
        self._view = view
        self._seen = t
        if reading.counter != self._counter:
            self._counter = reading.counter
            self._fresh = t
        limits = self.limits
        temperature = reading.temperature
        if reading.faults or math.isnan(temperature):
            self._fault_run += 1
            if self._fault_run >= limits.thermocouple_fault_reads:
                bits = ThermocoupleFault(reading.faults)
                names = "|".join(f.name or "?" for f in ThermocoupleFault if f and f in bits)
                self._trip(
                    "thermocouple",
                    f"thermocouple fault ({names or 'no valid reading'}) on "
                    f"{self._fault_run} reads in a row (limit {limits.thermocouple_fault_reads}, "
                    "rig setting safety.thermocouple_fault_reads): open or shorted probe",
                    float(self._fault_run),
                    float(limits.thermocouple_fault_reads),
                    "safety.thermocouple_fault_reads",
                    t,
                )
            else:
                self._confirm_soon()
            return
        self._fault_run = 0
        if temperature > limits.temperature_max:
            self._trip(
                "temperature_max",
                f"temperature {temperature:.2f} degC above the hard maximum "
                f"{limits.temperature_max:g} degC (rig setting safety.temperature_max)",
                temperature,
                limits.temperature_max,
                "safety.temperature_max",
                t,
            )
            return
        if temperature < limits.temperature_min:
            self._trip(
                "temperature_min",
                f"temperature {temperature:.2f} degC below the minimum "
                f"{limits.temperature_min:g} degC (rig setting safety.temperature_min): "
                "broken or wrongly wired thermocouple",
                temperature,
                limits.temperature_min,
                "safety.temperature_min",
                t,
            )
            return
        last = self._last
        dt = t - last if last is not None else 0.0
        self._last = t
        if view.move != self._move:
            self._move = view.move
            self._reached = False
            self._runaway = 0.0
            self._slow_ref = None
            self._over_since = None
        setpoint = view.setpoint
        if setpoint is not None:
            self._check_setpoint(t, dt, temperature, setpoint, view)
            if self.trip is not None:
                return
        if reading.duty == 0.0 and view.duty == 0.0:
            self._check_off(t, temperature)
        else:
            self._off_since = None

    def board_ok(self) -> None:
        """A whole exchange with the board (read and lease) succeeded."""
        self._board_missed = 0

    def board_missed(self, t: float, error: BaseException) -> None:
        """A board request failed (timeout, link lost, garbled after retries)."""
        if self.trip is not None:
            return
        self._board_missed += 1
        if self._board_missed >= self.limits.missed_reads:
            self._trip(
                "board_silent",
                f"heater board silent: {self._board_missed} missed reads in a row (limit "
                f"{self.limits.missed_reads}, rig setting safety.missed_reads); last: "
                f"{_describe(error)}",
                float(self._board_missed),
                float(self.limits.missed_reads),
                "safety.missed_reads",
                t,
            )

    def board_tripped(self, t: float, reason: str) -> None:
        """The board refused a duty: it has latched a trip of its own."""
        self._trip(
            "board_trip",
            f"the heater board latched a trip of its own: {reason} (its limits come from the rig "
            "settings safety.temperature_max / safety.temperature_min)",
            None,
            None,
            "safety.temperature_max, safety.temperature_min",
            t,
        )

    def smu_read_ok(self) -> None:
        """The runner read the SMU successfully."""
        self._smu_missed = 0

    def smu_read_failed(self, error: BaseException) -> None:
        """An SMU read failed; the runner calls this on every failed sample."""
        if self.trip is not None:
            return
        self._smu_missed += 1
        if self._smu_missed >= self.limits.missed_reads:
            self._trip(
                "smu_silent",
                f"SMU silent: {self._smu_missed} missed reads in a row (limit "
                f"{self.limits.missed_reads}, rig setting safety.missed_reads); last: "
                f"{_describe(error)}",
                float(self._smu_missed),
                float(self.limits.missed_reads),
                "safety.missed_reads",
                self.clock.now(),
            )

    # ------------------------------------------------------------------ the watchdog

    async def run(self) -> None:
        """Watchdog task: trips when no new reading arrived for ``stale_after``. Returns
        after a trip (of any check); cancel it when the run ends.

        The check runs as a timer callback at ``fresh + stale_after + 1 ms`` (re-armed from
        there while readings keep coming), not as this task waking up: the same instants
        and the same trip, without a task switch every two seconds of a campaign."""
        clock = self.clock
        loop = asyncio.get_running_loop()
        if self._fresh is None:
            self._fresh = clock.now()
        stopped: asyncio.Future[None] = loop.create_future()
        timer: asyncio.TimerHandle | None = None

        def check() -> None:
            nonlocal timer
            timer = None
            if self.trip is None:
                now = clock.now()
                delay = self._stale_check(now)
                if delay is not None:
                    # clock.sleep(delay): the timer asyncio.sleep would set
                    timer = loop.call_at(now + max(0.0, delay), check)
                    return
            if not stopped.done():
                stopped.set_result(None)

        check()
        try:
            await stopped
        finally:
            if timer is not None:
                timer.cancel()
        await self.wait()

    def _stale_check(self, now: float) -> float | None:
        """Trip if the newest reading is older than ``stale_after``; else how long until it
        would be (plus 1 ms), for the watchdog's next look."""
        stale_after = self.limits.stale_after
        assert self._fresh is not None
        age = now - self._fresh
        if age <= stale_after:
            return stale_after - age + 1e-3
        seen = self._seen
        if seen is not None and now - seen <= stale_after:
            what = (
                f"readings frozen: the thermocouple's conversion counter has not "
                f"moved for {age:.1f} s"
            )
        else:
            what = f"no temperature reading for {age:.1f} s"
        self._trip(
            "stale",
            f"{what} (limit {stale_after:g} s, rig setting safety.stale_after)",
            age,
            stale_after,
            "safety.stale_after",
            now,
        )
        return None

    # ------------------------------------------------------------------ checks

    def _check_setpoint(
        self, t: float, dt: float, temperature: float, setpoint: float, view: ThermalView
    ) -> None:
        limits = self.limits
        # overshoot (not while the block coasts down to a lower target: nothing heats it
        # then, and heating while off watches for whatever would)
        over = temperature - setpoint
        if view.coasting_down:
            self._over_since = None
        elif over > limits.overshoot_instant:
            self._trip(
                "overshoot",
                f"overshoot: {temperature:.2f} degC is {over:.2f} K above the setpoint "
                f"{setpoint:.2f} degC (limit +{limits.overshoot_instant:g} K, rig setting "
                "safety.overshoot_instant)",
                over,
                limits.overshoot_instant,
                "safety.overshoot_instant",
                t,
            )
            return
        elif over > limits.overshoot_sustained:
            if self._over_since is None:
                self._over_since = t
            elif t - self._over_since >= limits.overshoot_for:
                self._trip(
                    "overshoot_sustained",
                    f"overshoot: more than {limits.overshoot_sustained:g} K above the setpoint "
                    f"for {t - self._over_since:.0f} s, now {temperature:.2f} degC vs "
                    f"{setpoint:.2f} degC (limit +{limits.overshoot_sustained:g} K for "
                    f"{limits.overshoot_for:g} s, rig settings safety.overshoot_sustained / "
                    "safety.overshoot_for)",
                    over,
                    limits.overshoot_sustained,
                    "safety.overshoot_sustained, safety.overshoot_for",
                    t,
                )
                return
        elif over <= limits.overshoot_sustained - SUSTAINED_HYSTERESIS:
            self._over_since = None  # (noise at the limit does not restart the clock)
        # heating too slowly: while heat is asked for, every heating_within the reading
        # must rise by heating_rise (Klipper's verify_heater, with our limits)
        below = setpoint - temperature
        rise = limits.heating_rise
        if below >= rise and view.duty > 0.0:
            ref = self._slow_ref
            if ref is None or temperature >= ref + rise:
                self._slow_ref = temperature
                self._slow_from = t
                self._slow_deadline = t + limits.heating_within
            elif t > self._slow_deadline:
                self._trip(
                    "heating_too_slow",
                    f"heating too slowly: {temperature - ref:+.2f} K in "
                    f"{t - self._slow_from:.0f} s while the heater was asked for heat, "
                    f"{below:.1f} K below the setpoint "
                    f"(limit +{rise:g} K within {limits.heating_within:g} s, rig settings "
                    "safety.heating_rise / safety.heating_within): dead heater, loose "
                    "thermocouple or a block that lost its insulation",
                    temperature - ref,
                    rise,
                    "safety.heating_rise, safety.heating_within",
                    t,
                )
                return
        elif below < 0.5 * rise:
            self._slow_ref = None
        # runaway while holding: below target − band for too many K·s
        target = view.target
        if target is not None and setpoint == target:
            band = limits.runaway_band
            if not self._reached:
                self._reached = abs(temperature - target) <= band
            if self._reached:
                deficit = target - band - temperature
                if deficit > 0.0:
                    self._runaway += deficit * dt
                    if self._runaway > limits.runaway_integral:
                        self._trip(
                            "runaway",
                            f"runaway while holding: {self._runaway:.0f} K·s below the setpoint "
                            f"{target:.2f} degC − {band:g} K, now {temperature:.2f} degC (limit "
                            f"{limits.runaway_integral:g} K·s, rig settings safety.runaway_band "
                            "/ safety.runaway_integral): the heater cannot hold the setpoint",
                            self._runaway,
                            limits.runaway_integral,
                            "safety.runaway_band, safety.runaway_integral",
                            t,
                        )
                else:
                    self._runaway = 0.0

    def _check_off(self, t: float, temperature: float) -> None:
        limits = self.limits
        window = self._off_min
        if self._off_since is None:
            self._off_since = t
            window.clear()
        if t - self._off_since < limits.heating_while_off_after:
            return
        while window and window[-1][1] >= temperature:
            window.pop()
        window.append((t, temperature))
        horizon = t - limits.heating_while_off_within
        while window[0][0] < horizon:
            window.popleft()
        since, lowest = window[0]
        rise = temperature - lowest
        if rise >= limits.heating_while_off_rise:
            self._trip(
                "heating_while_off",
                f"heating while off: {rise:+.2f} K in {t - since:.0f} s with the heater duty "
                f"at 0 (limit +{limits.heating_while_off_rise:g} K within "
                f"{limits.heating_while_off_within:g} s, rig settings "
                "safety.heating_while_off_rise / safety.heating_while_off_within): stuck SSR or "
                "a self-heating cell",
                rise,
                limits.heating_while_off_rise,
                "safety.heating_while_off_rise, safety.heating_while_off_within",
                t,
            )

    # ------------------------------------------------------------------ tripping

    def _trip(
        self,
        check: str,
        message: str,
        value: float | None,
        limit: float | None,
        setting: str,
        t: float,
    ) -> None:
        if self.trip is not None:
            return
        trip = Trip(check, message, value, limit, setting, t)
        self.trip = trip
        emit(self.events, "trip", f"safety trip: {message}", severity="fault", data=trip.as_dict())
        self._safe_task = asyncio.ensure_future(
            self.safe_state.engage(message, source=f"safety:{check}")
        )
        self._tripped.set()

    def _confirm_soon(self) -> None:
        """Re-read at 4 Hz while fault bits persist (fault bits N reads in a row)."""
        if self.board is None or self._view is None:
            return
        task = self._confirm_task
        if task is None or task.done():
            self._confirm_task = asyncio.ensure_future(self._confirm(self.board, self._view))

    async def _confirm(self, board: HeaterBoard, view: ThermalView) -> None:
        clock = self.clock
        while self.trip is None and 0 < self._fault_run < self.limits.thermocouple_fault_reads:
            await clock.sleep(CONFIRM_PERIOD)
            try:
                reading = await board.read()
            except InstrumentError as exc:
                self.board_missed(clock.now(), exc)
                continue
            self.observe(clock.now(), reading, view)


def _describe(error: BaseException) -> str:
    message = getattr(error, "message", None) or str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__
