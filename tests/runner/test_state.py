"""The run state machine is a table; these pin what it allows and refuses."""

from __future__ import annotations

import pytest

from controller.runner.state import (
    EXIT_CODES,
    FINAL,
    TRANSITIONS,
    Request,
    RunState,
    TransitionRefused,
    next_state,
)


def test_the_issue_paths_exist() -> None:
    s, r = RunState, Request
    assert next_state(s.IDLE, r.START) is s.RUNNING
    assert next_state(s.RUNNING, r.PAUSE) is s.PAUSED
    assert next_state(s.PAUSED, r.RESUME) is s.RUNNING
    for end, request in ((s.FINISHED, r.FINISH), (s.ABORTED, r.ABORT), (s.FAULTED, r.FAULT)):
        assert next_state(s.RUNNING, request) is end
    assert next_state(s.PAUSED, r.ABORT) is s.ABORTED
    assert next_state(s.RUNNING, r.INTERRUPT) is s.INTERRUPTED


@pytest.mark.parametrize(
    ("state", "ask"),
    [
        (RunState.RUNNING, Request.RESUME),
        (RunState.PAUSED, Request.PAUSE),
        (RunState.PAUSED, Request.FINISH),  # a paused run never "finishes" by itself
        (RunState.IDLE, Request.PAUSE),
    ],
)
def test_refused_requests_say_what_is_possible(state: RunState, ask: Request) -> None:
    with pytest.raises(TransitionRefused, match=f"cannot {ask.value} a run that is"):
        next_state(state, ask)


def test_final_states_are_never_left_and_have_exit_codes() -> None:
    for state in FINAL:
        assert not [r for (s, r) in TRANSITIONS if s is state]
        assert state in EXIT_CODES
    assert EXIT_CODES[RunState.FINISHED] == 0
    with pytest.raises(TransitionRefused, match="finished"):
        next_state(RunState.FINISHED, Request.RESUME)
