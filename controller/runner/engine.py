"""The runner: a validated protocol, step by step, against the two instruments.

One task samples the cell every ``record.sample_period`` and drives the step executors
(``steps.py``); the thermal loop runs beside it at ``heater.period`` with the safety
supervisor. Per sample: read V and I → short detector (every sample) → record rule
(which samples are stored) → the step's bookkeeping (what to source next, whether it is
over). Everything the run does goes to its journal; checkpoints (every
``CHECKPOINT_EVERY`` s of test time and at every step and phase boundary) let
``resume`` continue it after a crash.

Every way out — the end of the protocol, ``abort``, a hard short with ``on_short:
abort``, a safety trip, an instrument failure, an exception, SIGTERM/SIGINT — goes
through one ``finally``: the safe-state action (heater duty 0, SMU output off in high
impedance, journaled), then the final state in the journal.

The run state lives in ``self.state`` and only changes through ``_to(request)``, which
looks the transition up in ``state.TRANSITIONS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from controller import protocol as proto
from controller.clock import Clock, Periodic
from controller.control import CommandRefused
from controller.detect.events import EventKind, ShortEvent
from controller.detect.stream import ShortDetector
from controller.journal import Journal
from controller.plan import TIMEOUT_MARGIN, Plan, make_plan
from controller.rig import RigConfig
from controller.runner.channel import CURRENT, CellChannel, Source
from controller.runner.record import RecordRule
from controller.runner.state import (
    EXIT_CODES,
    FINAL,
    Request,
    RunState,
    TransitionRefused,
    next_state,
)
from controller.runner.status import EventStatus, RunStatus, StepStatus
from controller.runner.steps import End, Executor, Setup, make_executor, summarize
from controller.safe_state import SafeState
from controller.samples import Sample
from controller.thermal.loop import SetpointRefused, ThermalLoop
from controller.thermal.supervisor import SafetySupervisor
from drivers.base import HeaterBoard, InstrumentError, SourceFunction, SourceMeter

log = logging.getLogger("heatcycler.runner")

#: a checkpoint at least this often (test time, s), besides every step/phase boundary
CHECKPOINT_EVERY = 60.0
#: the console/observer is updated at most this often (wall seconds)
VIEW_EVERY = 0.25
#: on resume, the block must stay in band this long before current flows again (s)
SETTLE_BEFORE_RESUME = 60.0
#: how long pause/abort wait for the sample loop to reach its safe point (s)
COMMAND_TIMEOUT = 15.0


class ServiceHooks(Protocol):
    """What the systemd service gives the runner (controller/service/boot.py)."""

    def ready(self) -> None: ...
    def beat(self) -> None: ...


class Observer(Protocol):
    """A live view of the run (controller/ui/console.py)."""

    def started(self, status: RunStatus) -> None: ...
    def update(self, status: RunStatus) -> None: ...
    def event(self, event: EventStatus, status: RunStatus) -> None: ...
    def finished(self, status: RunStatus) -> None: ...


@dataclass
class RunOutcome:
    state: RunState
    reason: str
    journal: Path
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.state, 1)


class _Stop(Exception):
    """Leave the step loop: the run ends with ``request`` for ``reason``."""

    def __init__(self, request: Request, reason: str) -> None:
        super().__init__(reason)
        self.request = request
        self.reason = reason


@dataclass(frozen=True)
class StartPoint:
    """Where a run starts: the beginning, or a checkpoint of an interrupted run."""

    position: int = 0  # index into the executed steps
    step_state: dict[str, Any] | None = None  # the executor's state at the checkpoint
    step_started: bool = False  # the step's record exists (resume inside it)
    cycle: int = 0  # the run's cycle count
    t: float = 0.0  # test time to continue from
    sample_t: float | None = None  # test time of the last stored sample
    #: samples of the step stored after the checkpoint: (t, current, temperature)
    replay: tuple[tuple[float, float, float | None], ...] = ()
    replay_from: float = 0.0  # test time of the checkpoint
    gap: tuple[float, float, float, int] | None = None  # from, to, length, samples replayed


def step_at(steps: list[Any], index: tuple[int, ...]) -> Any:
    """The step model at an index path through nested repeats."""
    step = steps[index[0]]
    for i in index[1:]:
        step = step.repeat.steps[i]
    return step


class Runner:
    """One run. Build it, then ``await runner.run()``; it implements ``RunControl``."""

    def __init__(
        self,
        *,
        protocol: proto.Protocol,
        rig: RigConfig,
        journal: Journal,
        smu: SourceMeter,
        board: HeaterBoard,
        clock: Clock,
        run_id: str,
        start: StartPoint | None = None,
        observer: Observer | None = None,
        hooks: ServiceHooks | None = None,
        plan: Plan | None = None,
        handle_signals: bool = True,
    ) -> None:
        self.protocol = protocol
        self.rig = rig
        self.journal = journal
        self.clock = clock
        self.run_id = run_id
        self.start_point = start or StartPoint()
        self.observer = observer
        self.hooks = hooks
        self.handle_signals = handle_signals
        self.plan = plan or make_plan(protocol, rig)
        self.steps = self.plan.steps
        self.state = RunState.IDLE
        self.reason: str | None = None
        self.area = protocol.cell.area_cm2
        self.period = protocol.record.sample_period
        self.safe = SafeState(board, smu, clock, events=self._safety_event, lease=rig.heater.lease)
        self.supervisor = SafetySupervisor(
            rig.safety, clock, self.safe, board=board, events=self._safety_event
        )
        self.thermal = ThermalLoop(board, clock, rig.heater, self.supervisor)
        self.channel = CellChannel(
            smu,
            working_electrode=rig.smu.working_electrode,
            nplc=rig.smu.nplc,
            remote_sense=rig.smu.remote_sense,
        )
        self.safe.add_hook(self.channel.forget)
        window = protocol.safety.voltage
        self.compliance = min(max(abs(window.min), abs(window.max)), rig.smu.voltage_max)
        self.detector = ShortDetector.for_protocol(protocol)
        self.record = RecordRule(protocol.record)
        self.setup = Setup(
            area=self.area,
            thickness=protocol.cell.thickness,
            compliance=self.compliance,
            current_max=rig.smu.current_max,
            thermal=self.thermal,
        )
        # where the run is
        self.position = self.start_point.position
        self.executor: Executor | None = None
        self.step_started_t = 0.0
        self.cycle = self.start_point.cycle
        self._cycle_base = self.cycle
        self.results: list[dict[str, Any]] = []
        self.steps_done = self.position
        self.events: deque[EventStatus] = deque(maxlen=8)
        self.samples_seen = 0
        self.last: tuple[float, float, float] | None = None  # t, V, I
        self._t0 = 0.0
        self._t_offset = self.start_point.t
        self._last_checkpoint = -math.inf
        self._last_range = 1e-6
        self._next_view = 0.0
        # commands
        self._pause_ack: asyncio.Future[None] | None = None
        self._resumed = asyncio.Event()
        self._abort: tuple[str, str] | None = None
        self._interrupt: str | None = None
        self._done: asyncio.Future[None] | None = None
        # remaining-time table: the plan's step durations summed from each step on
        self._suffix_min = [0.0] * (len(self.steps) + 1)
        self._suffix_max: list[float] = [0.0] * (len(self.steps) + 1)
        for k in range(len(self.steps) - 1, -1, -1):
            d = self.steps[k].duration
            self._suffix_min[k] = self._suffix_min[k + 1] + d.min
            self._suffix_max[k] = self._suffix_max[k + 1] + d.max

    # ------------------------------------------------------------------ time

    def now(self) -> float:
        """Test time: seconds since the run started, gaps of a resume included."""
        return self._t_offset + self.clock.now() - self._t0

    # ------------------------------------------------------------------ the run

    async def run(self) -> RunOutcome:
        """Execute the protocol from the start point to the end; never leaves the rig
        energised, whatever happens."""
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._t0 = self.clock.now()
        installed = self._install_signals(loop)
        request, reason = Request.FINISH, "the protocol ended"
        try:
            found = await self._smu_to_known_state()
            await self.thermal.prepare()
            self.thermal.start()
            self._to(Request.START, "runner")
            if self.start_point.gap is not None:
                self._journal_gap(self.start_point.gap)
                if found is not None:
                    self._journal_left_sourcing(found, self.start_point.gap)
            if self.hooks is not None:
                self.hooks.ready()
            if self.observer is not None:
                self.observer.started(self.snapshot())
            await self._steps()
        except _Stop as stop:
            request, reason = stop.request, stop.reason
        except asyncio.CancelledError:
            request, reason = Request.INTERRUPT, self._interrupt or "cancelled"
        except InstrumentError as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            request, reason = Request.FAULT, f"instrument failure: {exc.message}{hint}"
        except SetpointRefused as exc:
            request, reason = Request.FAULT, f"setpoint refused: {exc}"
        except Exception as exc:  # a bug: still the safe state, then the traceback
            log.exception("runner failed")
            request, reason = Request.FAULT, f"internal error: {type(exc).__name__}: {exc}"
        finally:
            await self._finish(request, reason)
            for sig in installed:
                loop.remove_signal_handler(sig)
        assert self.reason is not None
        return RunOutcome(self.state, self.reason, self.journal.path, list(self.results))

    async def _finish(self, request: Request, reason: str) -> None:
        """The one way out: safe state, thermal loop stopped, final state journaled."""
        with contextlib.suppress(Exception):
            await self.safe.engage(reason, source="runner")
        with contextlib.suppress(Exception):
            await self.thermal.stop()
        if self.executor is not None and self.state in (RunState.RUNNING, RunState.PAUSED):
            # the step that was running ends with the run (resume reopens it if resumable)
            outcome = {
                Request.ABORT: "aborted",
                Request.FAULT: "faulted",
                Request.INTERRUPT: "interrupted",
            }.get(request)
            if outcome is not None:
                self._checkpoint(force=True)
                if request is not Request.INTERRUPT:
                    self._end_step(outcome)
        if self.state not in FINAL:
            try:
                self._to(request, "runner", reason)
            except TransitionRefused:
                self.state = {
                    Request.FINISH: RunState.FINISHED,
                    Request.ABORT: RunState.ABORTED,
                    Request.INTERRUPT: RunState.INTERRUPTED,
                }.get(request, RunState.FAULTED)
        self.reason = reason
        t = self.now()
        self.journal.set_meta("reason", reason, t=t)
        self.journal.set_meta("ended_unix", self.clock.unix(), t=t)
        with contextlib.suppress(Exception):
            await self.journal.flush()
        if self.observer is not None:
            with contextlib.suppress(Exception):
                self.observer.finished(self.snapshot())
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        if not self.handle_signals:
            return []
        installed: list[int] = []
        task = asyncio.current_task()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig, task)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            installed.append(sig)
        return installed

    def _on_signal(self, sig: int, task: asyncio.Task[Any] | None) -> None:
        name = signal.Signals(sig).name
        if self._interrupt is None:
            self._interrupt = f"{name}: stopped, resumable with `heatcycler resume`"
            self._resumed.set()
            if task is not None:
                task.cancel()

    # ------------------------------------------------------------------ steps

    async def _steps(self) -> None:
        start = self.start_point
        while self.position < len(self.steps):
            planned = self.steps[self.position]
            step = step_at(self.protocol.steps, planned.index)
            resumed = self.position == start.position and start.step_state is not None
            ex = make_executor(
                step,
                self.setup,
                timeout=self._temperature_timeout(planned),
                rest=self._rest_source(),
            )
            self.executor = ex
            count = self.position + 1
            if resumed:
                assert start.step_state is not None
                ex.restore(start.step_state)
                ex.catch_up(start.replay, start.replay_from)
                started = start.step_started
                outcome = ex.interrupted_outcome()
                if outcome is not None:
                    if not started:
                        self._start_step(planned, step)
                    self._event(
                        "step",
                        f"step {count} ({planned.label}) does not continue after the "
                        f"interruption: it ends as {outcome}",
                        severity="warning",
                        data={"step": count, "outcome": outcome},
                    )
                    self._end_step(outcome)
                    action = getattr(proto.params(step), "on_interrupt", proto.ShortAction.NEXT)
                    self._after(action, f"step {count} was interrupted")
                    self.position += 1
                    self._checkpoint(force=True)
                    continue
                if not started:
                    self._start_step(planned, step)
                await self._reheat(planned)
            else:
                self._start_step(planned, step)
            end, event = await self._run_step(ex, count)
            outcome = end.outcome
            self._end_step(outcome)
            if event is not None and event.kind is EventKind.HARD_SHORT:
                action = proto.params(step).on_short  # type: ignore[union-attr]
                self._after(action, f"hard short in step {count} ({planned.label})")
            elif outcome == "soft_short":
                action = proto.params(step).on_soft_short  # type: ignore[union-attr]
                if action is not proto.SoftShortAction.NEXT:
                    self._after(proto.ShortAction(action.value), f"soft short in step {count}")
            elif outcome == "timeout" and ex.kind == "temperature":
                raise _Stop(
                    Request.FAULT,
                    f"step {count} ({planned.label}): the block did not reach "
                    f"{step.temperature.setpoint:g} °C ± {step.temperature.band:g} within "
                    f"{self._temperature_timeout(planned) / 60:.0f} min (the step's `timeout`): "
                    "check the heater and the thermocouple",
                )
            self.position += 1
            self._checkpoint(force=True)

    async def _reheat(self, planned: Any) -> None:
        """Before a resumed electrochemical step: the block cooled during the gap, so bring
        it back to the last temperature step's setpoint and wait until it is in the band
        (current off meanwhile); beats, trips, abort and signals are honoured."""
        if planned.kind == "temperature":
            return  # the step sets its own target and soaks
        previous = [
            step_at(self.protocol.steps, p.index)
            for p in self.steps[: self.position]
            if p.kind == "temperature"
        ]
        if not previous:
            return
        p = previous[-1].temperature
        self.thermal.set_target(p.setpoint, p.ramp)
        if self.thermal.in_band(p.band):
            return
        self._event(
            "resume",
            f"re-heating to {p.setpoint:g} °C ± {p.band:g} before continuing step "
            f"{self.position + 1} (the block cooled during the gap)",
            data={"setpoint": p.setpoint, "band": p.band},
        )
        deadline = (
            self.clock.now()
            + TIMEOUT_MARGIN
            + abs(p.setpoint - 25.0) / (self.rig.heater.max_ramp_up)
        )
        periodic = Periodic(self.clock, self.rig.heater.period)
        inside = 0.0
        while inside < SETTLE_BEFORE_RESUME:
            await periodic.tick()
            self._honour_stop()
            if self.supervisor.trip is not None:
                raise _Stop(Request.FAULT, f"safety trip: {self.supervisor.trip.message}")
            if self.hooks is not None:
                self.hooks.beat()
            inside = inside + self.rig.heater.period if self.thermal.in_band(p.band) else 0.0
            if self.clock.now() > deadline:
                raise _Stop(
                    Request.FAULT,
                    f"resume: the block did not come back to {p.setpoint:g} °C ± {p.band:g} "
                    "in time: check the heater and the thermocouple",
                )

    def _honour_stop(self) -> None:
        """Raise for a pending abort (``_Stop``) or signal (``CancelledError``)."""
        if self._abort is not None:
            source, reason = self._abort
            raise _Stop(Request.ABORT, f"aborted by {source}: {reason}")
        if self._interrupt is not None:
            raise asyncio.CancelledError

    async def _smu_to_known_state(self) -> tuple[SourceFunction, float] | None:
        """Output off (high impedance) before anything else, whatever the SMU was left
        doing. After a crash an SMU has no lease: it may still be sourcing. Returns what
        it was sourcing (function, level in the cell's convention), for the journal."""
        found = None
        if self.start_point.gap is not None:
            with contextlib.suppress(InstrumentError):
                found = await self.channel.smu.found_sourcing()
        await self.channel.off()
        if found is None:
            return None
        function, level = found
        if function is SourceFunction.CURRENT and level == 0.0:
            return None  # holding 0 A (a rest, a temperature step): nothing passed
        sign = (
            self.channel.current_sign
            if function is SourceFunction.CURRENT
            else self.channel.voltage_sign
        )
        return function, sign * level

    def _journal_left_sourcing(
        self, found: tuple[SourceFunction, float], gap: tuple[float, float, float, int]
    ) -> None:
        function, level = found
        length = gap[2]
        data: dict[str, Any] = {"function": function.value, "level": level, "gap_s": length}
        if function is SourceFunction.CURRENT:
            charge = abs(level) * length / 3.6 / self.area  # mAh/cm², at most
            data["charge_mAh_per_cm2_max"] = charge
            what = (
                f"{level * 1e3:.4g} mA: up to {charge:.3g} mAh/cm² passed during the "
                f"{length:.0f} s gap and is not in the step's charge"
            )
        else:
            what = f"{level:.4g} V through the {length:.0f} s gap"
        self._event(
            "resume",
            f"the SMU was still sourcing {what} (the controller stopped without reaching "
            "its safe state, and an SMU has no lease); output switched off",
            severity="warning",
            data=data,
        )

    def _journal_gap(self, gap: tuple[float, float, float, int]) -> None:
        start, end, length, replayed = gap
        self._event(
            "gap",
            f"resumed after a gap of {length:.0f} s (test time {start:.0f} → {end:.0f} s); "
            f"{replayed} stored samples after the last checkpoint were accounted for",
            severity="warning",
            data={"from_t": start, "to_t": end, "gap_s": length, "replayed": replayed},
        )

    def _after(self, action: proto.ShortAction, what: str) -> None:
        if action is proto.ShortAction.END:
            raise _Stop(Request.FINISH, f"{what}; on_short: end")
        if action is proto.ShortAction.ABORT:
            raise _Stop(Request.ABORT, f"{what}; on_short: abort")

    def _temperature_timeout(self, planned: Any) -> float:
        step = step_at(self.protocol.steps, planned.index)
        if not isinstance(step, proto.TemperatureStep):
            return math.inf
        p = step.temperature
        if p.timeout is not None:
            return float(p.timeout)
        # the plan's upper bound is timeout + soak
        return max(float(planned.duration.max) - p.soak, TIMEOUT_MARGIN)

    def _rest_source(self) -> Source:
        return Source(CURRENT, 0.0, self._last_range, self.compliance)

    def _start_step(self, planned: Any, step: Any) -> None:
        t = self.now()
        self.step_started_t = t
        self.journal.start_step(
            self.position + 1,
            planned.number,
            planned.kind,
            proto.params(step).label,
            t=t,
            unix=self.clock.unix(),
        )
        self._event(
            "step",
            f"step {self.position + 1}/{len(self.steps)} ({planned.number} {planned.label}) "
            "started",
            data={"step": self.position + 1, "path": planned.number, "kind": planned.kind},
        )

    def _end_step(self, outcome: str) -> None:
        ex = self.executor
        assert ex is not None
        result = ex.result()
        result["summary"] = summarize(result)
        t = self.now()
        count = self.position + 1
        self.journal.end_step(count, outcome, result, t=t, unix=self.clock.unix())
        planned = self.steps[self.position]
        self.results.append({"step": count, "path": planned.number, "outcome": outcome, **result})
        self._event(
            "step",
            f"step {count} ({planned.label}) ended: {outcome}"
            + (f" ({ex.ended_by})" if ex.ended_by else ""),
            data={"step": count, "outcome": outcome, "result": result},
        )
        self.executor = None
        self.steps_done += 1

    async def _run_step(self, ex: Executor, count: int) -> tuple[End, ShortEvent | None]:
        """The sample loop of one step."""
        channel = self.channel
        detector = self.detector
        thermal = self.thermal
        supervisor = self.supervisor
        journal = self.journal
        record = self.record
        hooks = self.hooks
        clock = self.clock
        await self._apply(ex.begin(self.now()))
        # the step's first sample belongs to the cycle it begins in (a resumed step: the
        # interrupted one), not to the count before it
        self.cycle = self._cycle_base + ex.cycles_started
        self._checkpoint(force=True)
        periodic = Periodic(clock, self.period)
        prev_t: float | None = None
        force_store = True
        while True:
            await periodic.tick()
            if self.state is not RunState.RUNNING or self._abort or self._interrupt:
                await self._safe_point(ex)
                prev_t = None
                force_store = True
                continue
            if supervisor.trip is not None:
                raise _Stop(Request.FAULT, f"safety trip: {supervisor.trip.message}")
            try:
                v, i = await channel.read()
            except InstrumentError as exc:
                supervisor.smu_read_failed(exc)
                if supervisor.trip is not None:
                    raise _Stop(Request.FAULT, f"safety trip: {supervisor.trip.message}") from None
                continue
            supervisor.smu_read_ok()
            t = self._t_offset + clock.now() - self._t0
            dt = 0.0 if prev_t is None else t - prev_t
            prev_t = t
            self.samples_seen += 1
            self.last = (t, v, i)
            temperature = thermal.temperature
            level = channel.level
            events = detector.feed(
                t,
                v,
                i,
                temperature=temperature,
                level=level,
                source=channel.mode,
                step=count,
                cycle=self.cycle,
            )
            if force_store or events or record.store(t, v, i):
                record.stored(t, v, i)
                force_store = False
                journal.add_sample(
                    Sample(
                        t,
                        v,
                        i,
                        temperature,
                        level,
                        channel.mode,
                        count,
                        self.cycle,
                        clock.unix(),
                        thermal.setpoint,
                        thermal.duty,
                    )
                )
            if hooks is not None:
                hooks.beat()
            if events:
                end = await self._detected(ex, events, temperature)
                if end is not None:
                    return end
            change = ex.sample(t, dt, v, i)
            self.cycle = self._cycle_base + ex.cycles_started
            if change is not None:
                if isinstance(change, End):
                    self._cycle_base = self.cycle
                    return change, None
                await self._apply(change)
                force_store = True
                self._checkpoint(force=True)
            elif t - self._last_checkpoint >= CHECKPOINT_EVERY:
                self._checkpoint()
            if self.observer is not None:
                wall = time.monotonic()
                if wall >= self._next_view:
                    self._next_view = wall + VIEW_EVERY
                    self.observer.update(self.snapshot())

    async def _detected(
        self, ex: Executor, events: Any, temperature: float | None
    ) -> tuple[End, ShortEvent | None] | None:
        """Journal the detector's events; a hard short stops the current at once."""
        for ev in events:
            if ev.kind is EventKind.HARD_SHORT:
                with contextlib.suppress(InstrumentError):
                    await self.channel.off()  # within this sample: the current stops
                self._event(
                    "hard_short",
                    f"hard short: {ev.reason} (V {ev.voltage:.4g} V at "
                    f"{(ev.current_density or 0) * 1e3:.3g} mA/cm², cycle {ev.cycle})",
                    severity="warning",
                    data=ev.as_dict(),
                )
                ex.short(ev, temperature)
                self._cycle_base = self.cycle
                return End("short", "short"), ev
        for ev in events:
            if ev.kind is EventKind.SOFT_SHORT:
                self._event(
                    "soft_short",
                    f"soft short: {ev.reason}",
                    severity="warning",
                    data=ev.as_dict(),
                )
                params = ex.params
                action = getattr(params, "on_soft_short", proto.SoftShortAction.EVENT)
                if action is not proto.SoftShortAction.EVENT:
                    ex.ended_by = "soft_short"
                    self._cycle_base = self.cycle
                    return End("soft_short", "soft_short"), ev
            elif ev.kind is EventKind.VOLTAGE_LIMIT:
                with contextlib.suppress(InstrumentError):
                    await self.channel.off()
                self._event(
                    "voltage_limit",
                    f"voltage limit: {ev.reason} (V {ev.voltage:.4g} V; the protocol's "
                    "safety.voltage window)",
                    severity="warning",
                    data=ev.as_dict(),
                )
                ex.ended_by = "voltage_limit"
                self._cycle_base = self.cycle
                return End("voltage_limit", "voltage_limit"), ev
        return None

    async def _apply(self, source: Source) -> None:
        if source.mode == CURRENT:
            self._last_range = source.range
        await self.channel.apply(source)

    async def _safe_point(self, ex: Executor) -> None:
        """Between samples: honour abort, interrupt and pause (current off, temperature
        held, beats continue) until resumed."""
        self._honour_stop()
        if self.state is RunState.PAUSED:
            await self.channel.off()
            self._checkpoint(force=True)
            if self._pause_ack is not None and not self._pause_ack.done():
                self._pause_ack.set_result(None)
            while self.state is RunState.PAUSED and not (self._abort or self._interrupt):
                if self.supervisor.trip is not None:
                    raise _Stop(Request.FAULT, f"safety trip: {self.supervisor.trip.message}")
                if self.hooks is not None:
                    self.hooks.beat()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._resumed.wait(), self.rig.heater.period)
            self._honour_stop()
            await self._apply(ex.source)

    # ------------------------------------------------------------------ state

    def _to(self, request: Request, source: str, reason: str | None = None) -> RunState:
        new = next_state(self.state, request)
        old, self.state = self.state, new
        t = self.now()
        self.journal.set_meta("state", new.value, t=t)
        if request is Request.START and old is RunState.IDLE:
            self.journal.set_meta("started_unix", self.clock.unix(), t=t)
        why = f": {reason}" if reason else ""
        self._event(
            "state",
            f"{old.value} → {new.value} ({source}){why}",
            severity="fault" if new is RunState.FAULTED else "info",
            data={"from": old.value, "to": new.value, "source": source, "reason": reason},
        )
        if self.hooks is not None and hasattr(self.hooks, "status"):
            with contextlib.suppress(Exception):
                self.hooks.status(f"{new.value}: {self.run_id}")
        return new

    def _checkpoint(self, *, force: bool = False) -> None:
        t = self.now()
        if not force and t - self._last_checkpoint < CHECKPOINT_EVERY:
            return
        self._last_checkpoint = t
        ex = self.executor
        self.journal.checkpoint(
            {
                "position": self.position,
                "step_started": ex is not None,
                "step_state": ex.state() if ex is not None else None,
                "cycle": self.cycle,
                "cycle_base": self._cycle_base,
                "t": t,
                "sample_t": self.record.last_t,
                "state": self.state.value,
            },
            t=t,
            unix=self.clock.unix(),
        )

    # ------------------------------------------------------------------ events

    def _event(
        self,
        kind: str,
        message: str,
        *,
        severity: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        t, unix = self.now(), self.clock.unix()
        self.journal.add_event(
            kind,
            message,
            t=t,
            unix=unix,
            step=self.position + 1 if self.executor is not None else self.position,
            severity=severity,
            data=data,
        )
        ev = EventStatus(t, unix, kind, severity, message)
        self.events.appendleft(ev)
        if self.observer is not None:
            with contextlib.suppress(Exception):
                self.observer.event(ev, self.snapshot())

    def _safety_event(
        self, kind: str, message: str, *, severity: str, data: dict[str, Any]
    ) -> None:
        self._event(kind, message, severity=severity, data=data)

    # ------------------------------------------------------------------ RunControl

    async def pause(self, *, source: str) -> str:
        try:
            self._to(Request.PAUSE, source)
        except TransitionRefused as exc:
            raise CommandRefused(str(exc)) from None
        self._resumed.clear()
        self._pause_ack = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._pause_ack), COMMAND_TIMEOUT)
        return f"paused at t = {self.now():.0f} s: current off, temperature held"

    async def resume(self, *, source: str) -> str:
        try:
            self._to(Request.RESUME, source)
        except TransitionRefused as exc:
            raise CommandRefused(str(exc)) from None
        self._resumed.set()
        return "resumed"

    async def abort(self, *, source: str, reason: str) -> str:
        try:
            next_state(self.state, Request.ABORT)
        except TransitionRefused as exc:
            raise CommandRefused(str(exc)) from None
        if self._abort is None:
            self._abort = (source, reason)
        self._resumed.set()
        if self._done is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._done), COMMAND_TIMEOUT)
        return "aborted: heater off, output off (high impedance)"

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        return self.snapshot().as_dict()

    def snapshot(self) -> RunStatus:
        t = self.now()
        step_status = None
        ex = self.executor
        remaining_min = self._suffix_min[min(self.position, len(self.steps))]
        remaining_max: float | None = self._suffix_max[min(self.position, len(self.steps))]
        if ex is not None and self.position < len(self.steps):
            planned = self.steps[self.position]
            elapsed = max(ex.elapsed, 0.0)
            s_min = max(0.0, planned.duration.min - elapsed)
            s_max = max(0.0, planned.duration.max - elapsed)
            step_status = StepStatus(
                count=self.position + 1,
                path=planned.number,
                kind=planned.kind,
                label=planned.label,
                started_t=self.step_started_t,
                elapsed=elapsed,
                remaining=(s_min, s_max),
                detail=ex.detail(),
            )
            remaining_min = s_min + self._suffix_min[self.position + 1]
            remaining_max = s_max + self._suffix_max[self.position + 1]
        if self.state in FINAL:
            remaining_min, remaining_max = 0.0, 0.0
        last = self.last
        thermal = self.thermal
        return RunStatus(
            rig=self.rig.rig,
            run=self.run_id,
            protocol=self.protocol.name,
            cell={
                "id": self.protocol.cell.id,
                "electrolyte": self.protocol.cell.electrolyte,
                "type": self.protocol.cell.type.value,
                "area_cm2": self.area,
            },
            state=self.state.value,
            t=t,
            unix=self.clock.unix(),
            step=step_status,
            steps_done=self.steps_done,
            steps_total=len(self.steps),
            remaining=(remaining_min, remaining_max),
            cycle=self.cycle,
            temperature=thermal.temperature,
            setpoint=thermal.setpoint,
            target=thermal.target,
            duty=thermal.duty,
            in_band=(
                thermal.in_band(ex.params.band)
                if ex is not None and ex.kind == "temperature"
                else None
            ),
            voltage=last[1] if last else None,
            current=last[2] if last else None,
            current_density=last[2] / self.area if last else None,
            source=self.channel.mode,
            last_sample=(
                {"seq": self.journal.last_seq, "t": self.record.last_t, "unix": None}
                if self.journal.last_seq
                else None
            ),
            samples_seen=self.samples_seen,
            events=list(self.events),
            results=list(self.results),
            reason=self.reason,
        )
