"""What ``heatcycler service`` does when systemd starts it: resume or wait.

At every start (boot, or a restart after a crash or a watchdog kill) the service looks
for an **interrupted** run of its rig (``runs.py``: not live, never ended). The newest
one is resumed when the rig's policy allows it:

- ``resume.on_boot: never`` → left for a technician (``heatcycler resume RUN``);
- the clock is not synchronised (a Pi without RTC boots with the time saved before the
  power cut until NTP corrects it), after waiting ``sync_timeout`` for it → left: the
  length of the outage cannot be known (``--trust-clock`` trusts it anyway);
- the outage (now − the run's last sample, event or checkpoint) is longer than
  ``resume.max_gap``, or negative (the clock is behind the journal) → left;
- otherwise → ``resume_run(journal, rig, service=…, mqtt_url=…)``, the runner's entry
  point (see :data:`RUNNER_MODULE`). It sends READY once its instruments are verified and
  beats the watchdog on every control tick.

With nothing to resume (or once the resumed run has finished) the service sends READY
with the reason as its status and idles, feeding the watchdog from its idle loop, until
systemd stops it. A resumed run that stops without finishing (SIGTERM at shutdown, a
failure) ends the process with the runner's exit code, so ``Restart=on-failure`` and the
next boot decide again.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, Protocol, cast

from controller.clock import Clock
from controller.plan import duration_text
from controller.rig import ResumePolicy, RigConfig
from controller.service.clocksync import ClockReader, ClockState
from controller.service.notify import Service
from controller.service.runs import RunInfo, interrupted_runs, journal_info

log = logging.getLogger("heatcycler.service")

#: where the runner's resume entry point lives, and its name (issue 5's runner)
RUNNER_MODULE = "controller.runner"
RUNNER_ENTRY = "resume_run"
#: the idle loop's tick: it beats the watchdog like a control loop would
IDLE_TICK = 1.0
SYNC_POLL = 2.0


class ResumeEntry(Protocol):
    """The runner's resume, as the service calls it::

        code = await resume_run(journal, rig, service=service, mqtt_url=None)

    It takes the journal's lock, opens and verifies the instruments, calls
    ``service.ready(status)``, then ``service.beat()`` every control tick and
    ``service.status(text)`` on changes, ``service.stopping()`` when it shuts down, and
    returns the process exit code (0: the run finished, or was stopped by a signal
    after reaching its safe state; 3: instrument failure). A user mistake raises
    ``UserError``. It writes ``meta.state`` ∈ ``runs.FINISHED_STATES`` when the run ends.
    """

    def __call__(
        self, journal: Path, rig: RigConfig, *, service: Service, mqtt_url: str | None
    ) -> Awaitable[int]: ...


class RunnerMissing(Exception):
    pass


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


def decide(
    rig: RigConfig,
    candidates: list[RunInfo],
    *,
    now: float,
    clock: ClockState,
    trust_clock: bool = False,
) -> Decision:
    """Resume the newest interrupted run, or say why not (``candidates`` newest first)."""
    if not candidates:
        return Decision("idle", "no interrupted run")
    run = candidates[0]
    older = (
        f" (older interrupted runs left alone: {', '.join(r.run_id for r in candidates[1:])})"
        if len(candidates) > 1
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


async def wait_for_sync(
    reader: ClockReader, patience: float, service: Service, clock: Clock, stop: asyncio.Event
) -> ClockState:
    """Poll the clock's state until it is synchronised, ``patience`` s pass or a stop."""
    deadline = clock.now() + patience
    state = reader()
    while not state.synchronised and clock.now() < deadline and not stop.is_set():
        left = deadline - clock.now()
        service.status(f"waiting up to {left:.0f} s for the clock to synchronise (NTP)")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), min(SYNC_POLL, left))
        state = reader()
    return state


async def serve(
    rig: RigConfig,
    service: Service,
    *,
    options: BootOptions,
    clock_reader: ClockReader,
    stop: asyncio.Event,
    resume: ResumeEntry | None = None,
    now: Callable[[], float] | None = None,
    signals: bool = True,
) -> int:
    """The service's life: decide, maybe resume, then idle until ``stop``. Exit code.

    ``signals``: SIGTERM/SIGINT set ``stop`` (installed again after a resumed run, whose
    runner handles them while it runs)."""
    clock = Clock()
    wall = now or Clock().unix
    if signals:
        install_stop_handlers(stop)
    watchdog = asyncio.create_task(service.run(), name="watchdog")
    try:
        service.status("looking for an interrupted run")
        candidates = interrupted_runs(Path(rig.data_dir), rig.rig)
        state = ClockState(True, "not needed")
        if candidates and rig.resume.on_boot == ResumePolicy.AUTO and not options.trust_clock:
            state = await wait_for_sync(clock_reader, options.sync_timeout, service, clock, stop)
        if stop.is_set():
            service.stopping("stopped before deciding")
            return 0
        decision = decide(rig, candidates, now=wall(), clock=state, trust_clock=options.trust_clock)
        log.info("%s: %s", decision.action, decision.reason)
        reason = decision.reason
        if decision.action == "resume" and decision.run is not None:
            journal = Path(decision.run.path)
            try:
                entry = resume or runner_resume()
            except RunnerMissing as exc:
                log.error("cannot resume %s: %s", decision.run.run_id, exc)
                reason = f"cannot resume {decision.run.run_id}: no runner in this build"
            else:
                service.status(f"resuming {decision.run.run_id}")
                code = await entry(journal, rig, service=service, mqtt_url=options.mqtt_url)
                after = journal_info(journal)
                if not after.finished:
                    log.info("run %s stopped without finishing (exit %d)", after.run_id, code)
                    return code
                reason = f"run {after.run_id} ended ({after.state})"
                if signals:
                    install_stop_handlers(stop)
        return await idle(service, clock, stop, reason)
    finally:
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog


async def idle(service: Service, clock: Clock, stop: asyncio.Event, reason: str) -> int:
    """Ready and idle: the watchdog is fed from this loop until ``stop``."""
    service.ready(f"idle: {reason}")
    stale = service.watchdog.stale_after
    tick = min(IDLE_TICK, stale / 4) if stale else IDLE_TICK
    while not stop.is_set():
        service.beat()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), tick)
    service.stopping("stopping (idle)")
    return 0


def install_stop_handlers(stop: asyncio.Event) -> None:
    """SIGTERM (systemctl stop) and SIGINT end the idle wait."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


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
