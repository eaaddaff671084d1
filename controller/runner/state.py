"""The run's state machine, kept as data (bluesky's run engine does the same).

``TRANSITIONS`` is the whole machine: (state, request) -> next state. Anything not in the
table is refused with the reason, so a remote ``resume`` of a running run or a ``pause``
of a finished one changes nothing. ``interrupted`` is where a signal (SIGTERM from
systemd, Ctrl-C) leaves a run: safe state, resumable by ``heatcycler resume`` or the
service; ``finished``/``aborted``/``faulted`` are final for the process.
"""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    ABORTED = "aborted"
    FAULTED = "faulted"
    INTERRUPTED = "interrupted"


class Request(StrEnum):
    START = "start"  # idle -> running (a new run, or a resumed journal)
    PAUSE = "pause"  # at a safe point: current off, temperature held
    RESUME = "resume"  # paused -> running
    FINISH = "finish"  # the protocol ended (or on_short: end)
    ABORT = "abort"  # an operator, a remote command, or on_short: abort
    FAULT = "fault"  # a safety trip or an instrument failure
    INTERRUPT = "interrupt"  # SIGTERM/SIGINT: stop here, resumable


S, R = RunState, Request

TRANSITIONS: dict[tuple[RunState, Request], RunState] = {
    (S.IDLE, R.START): S.RUNNING,
    (S.IDLE, R.ABORT): S.ABORTED,
    (S.IDLE, R.FAULT): S.FAULTED,
    (S.IDLE, R.INTERRUPT): S.INTERRUPTED,
    (S.RUNNING, R.PAUSE): S.PAUSED,
    (S.RUNNING, R.FINISH): S.FINISHED,
    (S.RUNNING, R.ABORT): S.ABORTED,
    (S.RUNNING, R.FAULT): S.FAULTED,
    (S.RUNNING, R.INTERRUPT): S.INTERRUPTED,
    (S.PAUSED, R.RESUME): S.RUNNING,
    (S.PAUSED, R.ABORT): S.ABORTED,
    (S.PAUSED, R.FAULT): S.FAULTED,
    (S.PAUSED, R.INTERRUPT): S.INTERRUPTED,
}

#: states a process never leaves
FINAL = frozenset({S.FINISHED, S.ABORTED, S.FAULTED, S.INTERRUPTED})

#: exit codes of ``heatcycler run``/``resume`` per final state (cli.py's conventions: 3 is
#: an instrument or safety failure, 130 an interrupt)
EXIT_CODES = {S.FINISHED: 0, S.ABORTED: 1, S.FAULTED: 3, S.INTERRUPTED: 130}


class TransitionRefused(Exception):
    """The request does not apply in this state; the text says why."""


def next_state(state: RunState, request: Request) -> RunState:
    """The state ``request`` leads to from ``state``; :class:`TransitionRefused` if none."""
    try:
        return TRANSITIONS[(state, request)]
    except KeyError:
        allowed = sorted(r.value for (s, r) in TRANSITIONS if s is state)
        raise TransitionRefused(
            f"cannot {request.value} a run that is {state.value}"
            + (f" (possible now: {', '.join(allowed)})" if allowed else "")
        ) from None
