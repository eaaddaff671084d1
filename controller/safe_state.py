"""The one safe-state action: heater duty 0, SMU output off (high impedance), an event.

Every exit path calls it — abort, safety trip, exception, signal, short, normal end — so it
must work whatever state the rig is in:

- **Idempotent.** Calling it again does the same harmless things again (DUTY 0, output off)
  and journals another event naming its caller; concurrent calls are serialised.
- **Bounded.** Every instrument call has its own timeout (``timeout``, on top of the
  transport's), so a hung instrument costs at most that long.
- **Never raises** (except the caller's own cancellation). A dead board or SMU is reported
  in the :class:`SafeStateReport` and the event, and the other half is still done: the
  heater half first, because the heater is the hazard and the SMU in high impedance only
  protects the cell.
- **Works on a tripped board**: ``DUTY 0`` is accepted while the board is latched
  (firmware-sim/PROTOCOL.md), and the board drops any lease on its own anyway.
- **Survives cancellation**: the work runs in its own task; a caller cancelled while
  waiting leaves it running to the end.

Before touching the instruments it calls the registered *hooks* (``add_hook``), so that
whoever drives the outputs (the thermal loop) stops asking for heat first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from controller.clock import Clock
from drivers.base import HeaterBoard, SourceMeter

if TYPE_CHECKING:
    from controller.journal import Journal

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """Where the safety code reports events: the runner's journal (with its step number).

    ``kind`` e.g. ``trip`` or ``safe_state``; ``severity`` ``info | warning | fault``. A sink
    must not raise; if it does, the caller logs it and carries on (a full disk must not stop
    a heater from going off)."""

    def __call__(self, kind: str, message: str, *, severity: str, data: dict[str, Any]) -> None: ...


def journal_events(
    journal: Journal, clock: Clock, step: Callable[[], int] = lambda: 0
) -> EventSink:
    """An :class:`EventSink` writing to a run journal at the clock's time; ``step()`` is
    the runner's step count at the moment of the event."""

    def sink(kind: str, message: str, *, severity: str, data: dict[str, Any]) -> None:
        t, unix = clock.now(), clock.unix()
        journal.add_event(kind, message, t=t, unix=unix, step=step(), severity=severity, data=data)

    return sink


def emit(
    events: EventSink | None, kind: str, message: str, *, severity: str, data: dict[str, Any]
) -> None:
    """Report an event; a failing sink is logged, never raised into the safety path."""
    if events is None:
        log.warning("%s: %s", kind, message)
        return
    try:
        events(kind, message, severity=severity, data=data)
    except Exception:
        log.exception("could not record event %s: %s", kind, message)


@dataclass(frozen=True, slots=True)
class SafeStateReport:
    """What one safe-state action did. ``None`` errors mean that half succeeded."""

    reason: str
    source: str
    t: float
    heater_error: str | None
    smu_error: str | None
    duration: float

    @property
    def complete(self) -> bool:
        return self.heater_error is None and self.smu_error is None


class SafeState:
    """Heater off and SMU output off in high impedance, journaled. See the module doc.

    ``board``/``smu`` may be None where a rig part is absent (autotune needs no SMU); that
    half is then reported as not present, not as a failure.
    """

    def __init__(
        self,
        board: HeaterBoard | None,
        smu: SourceMeter | None,
        clock: Clock,
        *,
        events: EventSink | None = None,
        lease: float = 3.0,
        timeout: float = 2.0,
    ) -> None:
        self.board = board
        self.smu = smu
        self.clock = clock
        self.events = events
        self.lease = lease
        self.timeout = timeout
        self.hooks: list[Callable[[], object]] = []
        self.reports: list[SafeStateReport] = []
        self._lock = asyncio.Lock()

    @property
    def engaged(self) -> bool:
        return bool(self.reports)

    @property
    def last(self) -> SafeStateReport | None:
        return self.reports[-1] if self.reports else None

    def add_hook(self, hook: Callable[[], object]) -> None:
        """``hook()`` is called (synchronously, first) on every engage: e.g. the thermal
        loop's ``off``, so that nothing asks for heat again after the action."""
        self.hooks.append(hook)

    async def engage(self, reason: str, *, source: str = "runner") -> SafeStateReport:
        """Do it (see the module doc). ``reason`` and ``source`` go into the event."""
        task = asyncio.ensure_future(self._engage(reason, source))
        return await asyncio.shield(task)

    async def _engage(self, reason: str, source: str) -> SafeStateReport:
        for hook in self.hooks:
            try:
                hook()
            except Exception:
                log.exception("safe-state hook %r failed", hook)
        async with self._lock:
            start = self.clock.now()
            heater_error = smu_error = None
            if self.board is not None:
                heater_error = await self._bounded(self.board.set_duty(0.0, self.lease))
            if self.smu is not None:
                smu_error = await self._bounded(self.smu.output_off())
            report = SafeStateReport(
                reason, source, start, heater_error, smu_error, self.clock.now() - start
            )
            self.reports.append(report)
        parts = [
            "heater off" if heater_error is None else f"HEATER NOT CONFIRMED OFF ({heater_error})",
            "SMU output off (high impedance)"
            if smu_error is None
            else f"SMU NOT CONFIRMED OFF ({smu_error})",
        ]
        if self.board is None:
            parts[0] = "no heater board"
        if self.smu is None:
            parts[1] = "no SMU"
        emit(
            self.events,
            "safe_state",
            f"safe state ({source}: {reason}): {', '.join(parts)}",
            severity="info" if report.complete else "fault",
            data={
                "reason": reason,
                "source": source,
                "heater_error": heater_error,
                "smu_error": smu_error,
                "heater": self.board is not None,
                "smu": self.smu is not None,
            },
        )
        return report

    async def _bounded(self, call: Awaitable[None]) -> str | None:
        """Run one instrument call with a timeout; its failure as text, or None."""
        try:
            await asyncio.wait_for(call, self.timeout)
        except TimeoutError:
            return f"no answer within {self.timeout:g} s"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            return f"{type(exc).__name__}: {message}"
        return None
