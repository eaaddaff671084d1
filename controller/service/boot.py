"""What ``heatcycler service`` does when systemd starts it: resume or wait.

At every start (boot, or a restart after a crash or a watchdog kill) the service looks
for an **interrupted** run of its rig (``runs.py``: nobody holds its lock, and its state is
running, paused or interrupted). The newest one is resumed when the rig's policy allows:

- ``resume.on_boot: never`` → left for a technician (``heatcycler resume RUN``);
- the clock is not synchronised (a Pi without RTC boots with the time saved before the
  power cut until NTP corrects it), after waiting ``sync_timeout`` for it → left: the
  length of the outage cannot be known (``--trust-clock`` trusts it anyway);
- the outage (now − the run's last sample, event or checkpoint) is longer than
  ``resume.max_gap``, or negative (the clock is behind the journal) → left;
- otherwise → the runner's ``resume_run(journal, rig, mqtt=…, hooks=…)`` (see
  :class:`ResumeEntry`), on the main thread with its own event loop and signal handling.
  Its ``hooks.ready()`` sends READY and starts the watchdog task on the runner's loop; its
  ``hooks.beat()`` on every control tick keeps the pings going.

With nothing to resume (or once the resumed run has finished) the service sends READY
with the reason as its status and idles, feeding the watchdog from its idle loop, until
systemd stops it. A resumed run that stops without finishing (SIGTERM at shutdown, an
instrument failure) ends the process with the runner's exit code, so
``Restart=on-failure`` and the next start decide again.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, Protocol, cast

from controller.clock import Clock
from controller.clock import run as run_loop
from controller.plan import duration_text
from controller.problems import UserError
from controller.rig import ResumePolicy, RigConfig
from controller.service.clocksync import ClockReader, ClockState
from controller.service.notify import Service
from controller.service.runs import RunInfo, journal_info, list_runs

log = logging.getLogger("heatcycler.service")

#: where the runner's resume entry point lives, and its name (issue 5's runner)
RUNNER_MODULE = "controller.runner.resume"
RUNNER_ENTRY = "resume_run"
#: the idle loop's tick: it beats the watchdog like a control loop would
IDLE_TICK = 1.0
SYNC_POLL = 2.0


class RunOutcome(Protocol):
    """What the runner's ``resume_run`` returns (``controller.runner.engine.RunOutcome``)."""

    @property
    def exit_code(self) -> int: ...

    @property
    def reason(self) -> str: ...


class ResumeEntry(Protocol):
    """The runner's resume, as the service calls it (synchronous: it runs its own loop)::

        outcome = resume_run(journal, rig, mqtt=None, hooks=hooks)

    It refuses (``UserError``) a run it cannot continue; otherwise it takes the journal's
    lock, verifies the instruments, calls ``hooks.ready()`` from its running loop once
    they are, ``hooks.beat()`` on every control tick, and returns when the run ends or is
    stopped (SIGTERM: safe state, ``meta.state = interrupted``).
    """

    def __call__(
        self, path: Path, rig: RigConfig, *, mqtt: str | None, hooks: RunnerHooks
    ) -> RunOutcome: ...


class RunnerHooks:
    """The runner's ``ServiceHooks`` (``ready()``, ``beat()``) on top of a :class:`Service`.

    ``ready()`` is called on the runner's event loop: READY goes out with the run's status
    line, and the watchdog task starts on that loop, so a hung runner loop stops the pings.
    """

    def __init__(self, service: Service, status: str) -> None:
        self.service = service
        self.ready_status = status
        self.task: asyncio.Task[None] | None = None

    def ready(self) -> None:
        self.service.ready(self.ready_status)
        with contextlib.suppress(RuntimeError):  # no running loop: no watchdog task
            self.task = asyncio.get_running_loop().create_task(self.service.run())

    def beat(self) -> None:
        self.service.beat()

    def status(self, text: str) -> None:
        """Optional for the runner: a state change for ``systemctl status``."""
        self.service.status(text)

    def stopping(self, text: str | None = None) -> None:
        """Optional for the runner: its shutdown has begun (safe state, drain)."""
        self.service.stopping(text)


class RunnerMissing(Exception):
    """This build has no runner resume entry point (the service then idles and says so)."""


def runner_resume() -> ResumeEntry:
    """The runner's ``resume_run``; :class:`RunnerMissing` if this build has none."""
    try:
        module = importlib.import_module(RUNNER_MODULE)
    except ImportError as exc:
        raise RunnerMissing(f"{RUNNER_MODULE} cannot be imported ({exc})") from None
    entry = getattr(module, RUNNER_ENTRY, None)
    if entry is None:
        raise RunnerMissing(f"{RUNNER_MODULE} has no {RUNNER_ENTRY}()")
    return cast(ResumeEntry, entry)


@dataclass(frozen=True)
class Decision:
    action: Literal["resume", "idle"]
    reason: str
    run: RunInfo | None = None


def candidates(data_dir: Path, rig: str) -> tuple[list[RunInfo], RunInfo | None]:
    """This rig's interrupted runs (newest first), and its newest run if it faulted."""
    runs = [r for r in list_runs(data_dir) if r.rig in (None, rig) and not r.archived]
    runs.sort(key=lambda r: (r.last_unix or 0.0, r.run_id), reverse=True)
    interrupted = [r for r in runs if r.interrupted]
    newest = next((r for r in runs if not r.live), None)
    faulted = newest if newest is not None and newest.faulted else None
    return interrupted, faulted


def decide(
    rig: RigConfig,
    interrupted: list[RunInfo],
    *,
    now: float,
    clock: ClockState,
    trust_clock: bool = False,
    faulted: RunInfo | None = None,
) -> Decision:
    """Resume the newest interrupted run, or say why not (``interrupted`` newest first)."""
    if not interrupted:
        if faulted is not None:
            return Decision(
                "idle",
                f"run {faulted.run_id} faulted: fix the cause, then `heatcycler resume --force "
                f"{faulted.run_id}`",
                faulted,
            )
        return Decision("idle", "no interrupted run")
    run = interrupted[0]
    older = (
        f" (older interrupted runs left alone: {', '.join(r.run_id for r in interrupted[1:])})"
        if len(interrupted) > 1
        else ""
    )
    by_hand = f"resume it with `heatcycler resume {run.run_id}`"
    if rig.resume.on_boot == ResumePolicy.NEVER:
        return Decision(
            "idle",
            f"run {run.run_id} was interrupted; resume.on_boot is never: {by_hand}{older}",
            run,
        )
    if not clock.synchronised and not trust_clock:
        return Decision(
            "idle",
            f"run {run.run_id} was interrupted but the clock is not synchronised "
            f"({clock.source}), so the outage cannot be measured: {by_hand}{older}",
            run,
        )
    last = run.last_unix if run.last_unix is not None else run.started_unix
    if last is None:
        return Decision(
            "resume", f"run {run.run_id} was interrupted before its first sample{older}", run
        )
    gap = now - last
    if gap < 0:
        return Decision(
            "idle",
            f"run {run.run_id}: the clock ({_utc(now)}) is behind the journal's last entry "
            f"({_utc(last)}): not synchronised; {by_hand}{older}",
            run,
        )
    if gap > rig.resume.max_gap:
        return Decision(
            "idle",
            f"run {run.run_id} was interrupted {duration_text(gap)} ago, longer than "
            f"resume.max_gap ({duration_text(rig.resume.max_gap)}): {by_hand} if the cell "
            f"is still fit{older}",
            run,
        )
    return Decision(
        "resume",
        f"run {run.run_id} was interrupted {duration_text(gap)} ago "
        f"(≤ resume.max_gap {duration_text(rig.resume.max_gap)}){older}",
        run,
    )


def _utc(unix: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(unix))


@dataclass
class BootOptions:
    mqtt_url: str | None = None
    sync_timeout: float = 120.0
    trust_clock: bool = False


class Stop:
    """Why the service should stop: SIGTERM/SIGINT (on the main thread), or a test's
    ``threading.Event`` set from another thread (polled every 50 ms)."""

    def __init__(self, external: threading.Event | None = None, signals: bool = True) -> None:
        self.external = external or threading.Event()
        self.signals = signals
        self._event: asyncio.Event | None = None

    def is_set(self) -> bool:
        return self.external.is_set()

    def install(self) -> None:
        """On the running loop: SIGTERM (systemctl stop) and SIGINT set the stop."""
        self._event = asyncio.Event()
        if self.signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._set)

    def _set(self) -> None:
        self.external.set()
        if self._event is not None:
            self._event.set()

    async def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True as soon as a stop is asked for."""
        event = self._event or asyncio.Event()
        clock = Clock()
        end = clock.now() + seconds
        while not self.is_set():
            left = end - clock.now()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), left if self.signals else min(left, 0.05))
        return True


async def wait_for_sync(
    reader: ClockReader, patience: float, service: Service, stop: Stop
) -> ClockState:
    """Poll the clock's state until it is synchronised, ``patience`` s pass or a stop."""
    clock = Clock()
    deadline = clock.now() + patience
    state = reader()
    while not state.synchronised and clock.now() < deadline and not stop.is_set():
        left = deadline - clock.now()
        service.status(f"waiting up to {left:.0f} s for the clock to synchronise (NTP)")
        await stop.wait(min(SYNC_POLL, left))
        state = reader()
    return state


def run_service(
    rig: RigConfig,
    *,
    options: BootOptions,
    clock_reader: ClockReader,
    resume: ResumeEntry | None = None,
    environ: Mapping[str, str] | None = None,
    now: Callable[[], float] | None = None,
    stop: threading.Event | None = None,
    signals: bool = True,
) -> int:
    """The service's life — decide, maybe resume, then idle until stopped. Exit code.

    ``resume``: the runner's entry point (default: :func:`runner_resume`); ``stop``/
    ``signals``: tests stop it with an event from another thread instead of a signal.
    """
    service = Service.from_env(environ=environ)
    stopper = Stop(stop, signals)
    wall = now or time.time

    async def deciding() -> Decision | None:
        stopper.install()
        watchdog = asyncio.create_task(service.run(), name="watchdog")
        try:
            service.status("looking for an interrupted run")
            interrupted, faulted = candidates(Path(rig.data_dir), rig.rig)
            state = ClockState(True, "not needed")
            if interrupted and rig.resume.on_boot == ResumePolicy.AUTO and not options.trust_clock:
                state = await wait_for_sync(clock_reader, options.sync_timeout, service, stopper)
            if stopper.is_set():
                return None
            return decide(
                rig,
                interrupted,
                now=wall(),
                clock=state,
                trust_clock=options.trust_clock,
                faulted=faulted,
            )
        finally:
            watchdog.cancel()

    decision = run_loop(deciding, virtual=False)
    if decision is None:
        service.stopping("stopped before deciding")
        return 0
    log.info("%s: %s", decision.action, decision.reason)
    reason = decision.reason
    if decision.action == "resume" and decision.run is not None:
        journal = Path(decision.run.path)
        run_id = decision.run.run_id
        try:
            entry = resume or runner_resume()
        except RunnerMissing as exc:
            log.error("cannot resume %s: %s", run_id, exc)
            reason = f"cannot resume {run_id}: no runner in this build"
        else:
            service.status(f"resuming {run_id}")
            hooks = RunnerHooks(service, f"running {run_id} (resumed: {decision.reason})")
            try:
                outcome = entry(journal, rig, mqtt=options.mqtt_url, hooks=hooks)
            except UserError as exc:
                log.warning("run %s not resumed: %s", run_id, exc.message)
                reason = f"run {run_id} not resumed: {exc.message}"
            else:
                after = journal_info(journal)
                if not after.finished:
                    log.info(
                        "run %s stopped without finishing (%s, exit %d): %s",
                        run_id,
                        after.state,
                        outcome.exit_code,
                        outcome.reason,
                    )
                    return outcome.exit_code
                reason = f"run {run_id} ended ({after.state}): {outcome.reason}"
    if stopper.is_set():
        service.stopping("stopping")
        return 0

    async def idling() -> int:
        stopper.install()
        return await idle(service, stopper, reason)

    return run_loop(idling, virtual=False)


async def idle(service: Service, stop: Stop, reason: str) -> int:
    """Ready and idle: the watchdog is fed from this loop until a stop."""
    watchdog = asyncio.create_task(service.run(), name="watchdog")
    service.ready(f"idle: {reason}")
    stale = service.watchdog.stale_after
    tick = min(IDLE_TICK, stale / 4) if stale else IDLE_TICK
    try:
        while not stop.is_set():
            service.beat()
            await stop.wait(tick)
    finally:
        watchdog.cancel()
    service.stopping("stopping (idle)")
    return 0


class JournaldFormatter(logging.Formatter):
    """``<priority>`` prefixes: journald files each line at its level (SyslogLevelPrefix)."""

    PRIORITIES: ClassVar[dict[int, int]] = {
        logging.CRITICAL: 2,
        logging.ERROR: 3,
        logging.WARNING: 4,
        logging.INFO: 6,
        logging.DEBUG: 7,
    }

    def format(self, record: logging.LogRecord) -> str:
        level = self.PRIORITIES.get(record.levelno, 6)
        return f"<{level}>{super().format(record)}"
