"""What the service does at start: resume the rig's interrupted run per its policy, or idle.

The decision is tested on real journals in a data directory. The runner's resume entry
point (issue 5, built elsewhere) is stood in for by a function that keeps its contract —
synchronous, its own event loop, ``hooks.ready()`` from that loop once the instruments are
verified, ``hooks.beat()`` per tick, a final state in the journal — so that what is under
test (which run, when, and what systemd hears) is real. ``heatcycler service`` itself
runs as a subprocess on a notify socket with a watchdog, as systemd starts it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from servicekit import UNIX0, NotifySocket, make_journal

from controller.journal import Journal
from controller.problems import UserError
from controller.rig import RigConfig
from controller.service import boot
from controller.service.boot import BootOptions, Decision, RunnerHooks, candidates, decide
from controller.service.clocksync import ClockState

SYNCED = ClockState(True, "test")
UNSYNCED = ClockState(False, "test", detail="STA_UNSYNC")


def rig(data_dir: Path, **resume: Any) -> RigConfig:
    return RigConfig.model_validate(
        {
            "rig": "rig-01",
            "smu": {"resource": "sim"},
            "heater": {"port": "sim"},
            "data_dir": str(data_dir),
            "resume": resume,
        }
    )


def _decide(data_dir: Path, now: float, clock: ClockState = SYNCED, **resume: Any) -> Decision:
    interrupted, faulted = candidates(data_dir, "rig-01")
    return decide(rig(data_dir, **resume), interrupted, now=now, clock=clock, faulted=faulted)


# ------------------------------------------------------------------- the decision


def test_nothing_interrupted_means_idle(tmp_path: Path) -> None:
    make_journal(tmp_path, "20260101T000000Z-rig-01-done", state="finished")
    make_journal(tmp_path, "20251231T000000Z-rig-01-old", state="aborted", last_unix=UNIX0)
    make_journal(tmp_path, "20260101T000000Z-rig-02-S1", rig="rig-02")  # another rig's
    d = _decide(tmp_path, UNIX0 + 3700)
    assert (d.action, d.reason) == ("idle", "no interrupted run")


def test_an_interrupted_run_within_max_gap_is_resumed(tmp_path: Path) -> None:
    path = make_journal(tmp_path, "20260101T000000Z-rig-01-S7", last_unix=UNIX0 + 3600)
    d = _decide(tmp_path, UNIX0 + 3600 + 25 * 60)
    assert d.action == "resume"
    assert d.run is not None
    assert d.run.path == str(path)
    assert "interrupted 25 min ago (≤ resume.max_gap 2 h)" in d.reason


def test_the_newest_interrupted_run_is_resumed_and_older_ones_named(tmp_path: Path) -> None:
    make_journal(tmp_path, "20251201T000000Z-rig-01-old", last_unix=UNIX0 - 86400 * 20)
    make_journal(tmp_path, "20260101T000000Z-rig-01-new", last_unix=UNIX0 + 3600)
    d = _decide(tmp_path, UNIX0 + 3660)
    assert d.action == "resume"
    assert d.run is not None
    assert d.run.run_id == "20260101T000000Z-rig-01-new"
    assert "older interrupted runs left alone: 20251201T000000Z-rig-01-old" in d.reason


def test_an_outage_longer_than_max_gap_is_left_to_a_technician(tmp_path: Path) -> None:
    make_journal(tmp_path, "20260101T000000Z-rig-01-S7", last_unix=UNIX0 + 3600)
    d = _decide(tmp_path, UNIX0 + 3600 + 3 * 3600, max_gap="2 h")
    assert d.action == "idle"
    assert "interrupted 3 h ago, longer than resume.max_gap (2 h)" in d.reason
    assert "heatcycler resume 20260101T000000Z-rig-01-S7" in d.reason
    # a looser policy resumes the same run
    assert _decide(tmp_path, UNIX0 + 3600 + 3 * 3600, max_gap="4 h").action == "resume"


def test_policy_never_leaves_it(tmp_path: Path) -> None:
    make_journal(tmp_path, "20260101T000000Z-rig-01-S7")
    d = _decide(tmp_path, UNIX0 + 3660, on_boot="never")
    assert d.action == "idle"
    assert "resume.on_boot is never" in d.reason


def test_an_unsynchronised_or_backward_clock_does_not_guess_the_outage(tmp_path: Path) -> None:
    make_journal(tmp_path, "20260101T000000Z-rig-01-S7", last_unix=UNIX0 + 3600)
    d = _decide(tmp_path, UNIX0 + 3660, clock=UNSYNCED)
    assert d.action == "idle"
    assert "clock is not synchronised" in d.reason
    # a Pi without RTC boots with the time saved before the cut: behind the journal
    d = _decide(tmp_path, UNIX0 + 1800)
    assert d.action == "idle"
    assert "behind the journal" in d.reason
    interrupted, _ = candidates(tmp_path, "rig-01")
    trusted = decide(rig(tmp_path), interrupted, now=UNIX0 + 3660, clock=UNSYNCED, trust_clock=True)
    assert trusted.action == "resume"


def test_a_live_run_is_never_taken(tmp_path: Path) -> None:
    path = make_journal(tmp_path, "20260101T000000Z-rig-01-S7")
    holder = Journal.open(path, threaded=False)
    assert holder.lock()
    try:
        assert _decide(tmp_path, UNIX0 + 3660).action == "idle"
    finally:
        holder.close()
    assert _decide(tmp_path, UNIX0 + 3660).action == "resume"


def test_signalled_and_paused_runs_resume_but_a_faulted_one_waits_for_a_human(
    tmp_path: Path,
) -> None:
    make_journal(tmp_path, "20260101T000000Z-rig-01-S7", state="interrupted")
    assert _decide(tmp_path, UNIX0 + 3660).action == "resume"
    make_journal(tmp_path, "20260101T010000Z-rig-01-S8", state="paused", last_unix=UNIX0 + 3500)
    d = _decide(tmp_path, UNIX0 + 3660)
    assert d.run is not None
    assert d.run.run_id == "20260101T000000Z-rig-01-S7"  # the latest activity, not the id
    faulted = tmp_path / "f"
    faulted.mkdir()
    make_journal(faulted, "20260101T000000Z-rig-01-S9", state="faulted")
    d = _decide(faulted, UNIX0 + 3660)
    assert d.action == "idle"
    assert "faulted: fix the cause, then `heatcycler resume --force" in d.reason


# ------------------------------------------------------------ the service's life


class FakeRunner:
    """Stands in for ``controller.runner.resume.resume_run``, keeping its contract."""

    def __init__(self, end_state: str = "finished", code: int = 0) -> None:
        self.calls: list[tuple[Path, str, str | None]] = []
        self.end_state = end_state
        self.code = code
        self.refuse: str | None = None

    def __call__(self, path: Path, rig: RigConfig, *, mqtt: str | None, hooks: RunnerHooks) -> Any:
        self.calls.append((path, rig.rig, mqtt))
        if self.refuse:
            raise UserError(self.refuse, "fix it")

        async def session() -> None:  # the runner's own loop
            hooks.ready()
            for _ in range(20):
                hooks.beat()
                await asyncio.sleep(0.02)
            hooks.status("step 1/1 rest completed")
            hooks.stopping("safe state")

        asyncio.run(session())
        j = Journal.open(path, threaded=False)
        j.set_meta("state", self.end_state)
        j.close()

        class Outcome:
            exit_code = self.code
            reason = "protocol completed" if self.end_state == "finished" else "SIGTERM"

        return Outcome()


def _serve(
    data_dir: Path,
    ns: NotifySocket,
    runner: FakeRunner | None,
    *,
    now: float,
    clock: ClockState = SYNCED,
    options: BootOptions | None = None,
) -> int:
    """Run the service in a thread as systemd would (notify socket, 0.2 s watchdog); stop
    it once it idles (a test's stand-in for SIGTERM)."""
    stop = threading.Event()
    result: list[int] = []

    def target() -> None:
        result.append(
            boot.run_service(
                rig(data_dir),
                options=options or BootOptions(sync_timeout=0.3),
                clock_reader=lambda: clock,
                resume=runner,
                environ={"NOTIFY_SOCKET": ns.address, "WATCHDOG_USEC": "200000"},
                now=lambda: now,
                stop=stop,
                signals=False,
            )
        )

    thread = threading.Thread(target=target)
    thread.start()
    end = time.monotonic() + 20
    while thread.is_alive() and time.monotonic() < end:
        if any(t.startswith("READY=1\nSTATUS=idle") for t in ns.texts()):
            time.sleep(0.3)  # a few watchdog periods while idle
            break
        time.sleep(0.01)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    time.sleep(0.05)
    return result[0]


def test_idle_service_is_ready_feeds_the_watchdog_and_stops(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    assert _serve(tmp_path, notify_socket, FakeRunner(), now=UNIX0) == 0
    texts = notify_socket.texts()
    assert "READY=1\nSTATUS=idle: no interrupted run" in texts
    assert texts.count("WATCHDOG=1") >= 2
    assert texts[-1] == "STOPPING=1\nSTATUS=stopping (idle)"


def test_the_service_resumes_through_the_runner_then_idles(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    path = make_journal(tmp_path, "20260101T000000Z-rig-01-S7", last_unix=UNIX0 + 3600)
    runner = FakeRunner()
    assert _serve(tmp_path, notify_socket, runner, now=UNIX0 + 3700) == 0
    assert runner.calls == [(path, "rig-01", None)]
    texts = notify_socket.texts()
    resuming = texts.index("STATUS=resuming 20260101T000000Z-rig-01-S7")
    ready = next(i for i, t in enumerate(texts) if t.startswith("READY=1\nSTATUS=running"))
    assert resuming < ready
    assert "(resumed: run 20260101T000000Z-rig-01-S7 was interrupted 1 min 40 s ago" in texts[ready]
    # the runner's loop fed the watchdog: pings between its READY and the idle READY
    idle = texts.index(
        "READY=1\nSTATUS=idle: run 20260101T000000Z-rig-01-S7 ended (finished): protocol completed"
    )
    assert "WATCHDOG=1" in texts[ready:idle]
    assert texts.index("STATUS=step 1/1 rest completed") < idle
    assert "STOPPING=1\nSTATUS=safe state" in texts[ready:idle]


def test_a_resumed_run_that_stops_unfinished_ends_the_process_with_its_code(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    make_journal(tmp_path, "20260101T000000Z-rig-01-S7", last_unix=UNIX0 + 3600)
    runner = FakeRunner(end_state="interrupted", code=130)
    # systemd's Restart=on-failure and the start limits take it from here
    assert _serve(tmp_path, notify_socket, runner, now=UNIX0 + 3700) == 130
    assert not any(t.startswith("READY=1\nSTATUS=idle") for t in notify_socket.texts())


def test_a_run_the_runner_refuses_leaves_the_service_idle_with_the_reason(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    make_journal(tmp_path, "20260101T000000Z-rig-01-S7", last_unix=UNIX0 + 3600)
    runner = FakeRunner()
    runner.refuse = "the protocol no longer validates against this rig"
    assert _serve(tmp_path, notify_socket, runner, now=UNIX0 + 3700) == 0
    assert (
        "READY=1\nSTATUS=idle: run 20260101T000000Z-rig-01-S7 not resumed: the protocol no "
        "longer validates against this rig" in notify_socket.texts()
    )


def test_the_service_waits_for_the_clock_before_judging_the_outage(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    make_journal(tmp_path, "20260101T000000Z-rig-01-S7", last_unix=UNIX0 + 3600)
    runner = FakeRunner()
    assert _serve(tmp_path, notify_socket, runner, now=UNIX0 + 3700, clock=UNSYNCED) == 0
    assert runner.calls == []
    texts = notify_socket.texts()
    assert any(t.startswith("STATUS=waiting up to") for t in texts)
    assert any("the clock is not synchronised" in t for t in texts if t.startswith("READY=1"))


def test_without_a_runner_the_service_says_so_and_idles(
    tmp_path: Path, notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(boot, "RUNNER_MODULE", "controller.no_such_runner")
    make_journal(tmp_path, "20260101T000000Z-rig-01-S7", last_unix=UNIX0 + 3600)
    assert _serve(tmp_path, notify_socket, None, now=UNIX0 + 3700) == 0
    assert (
        "READY=1\nSTATUS=idle: cannot resume 20260101T000000Z-rig-01-S7: no runner in this build"
        in notify_socket.texts()
    )


# ------------------------------------------------- heatcycler service, as systemd runs it


def test_heatcycler_service_under_a_notify_socket_and_watchdog(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    rig_file = tmp_path / "rig.yaml"
    data = tmp_path / "data"
    data.mkdir()
    rig_file.write_text(
        f"rig: rig-01\nsmu: {{resource: sim}}\nheater: {{port: sim}}\ndata_dir: {data}\n"
    )
    env = {
        **os.environ,
        "NOTIFY_SOCKET": notify_socket.address,
        "WATCHDOG_USEC": "400000",  # pings every 0.2 s
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "service", "--rig", str(rig_file)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        notify_socket.wait_for(lambda m: m.startswith("READY=1"), timeout=30)
        time.sleep(1.0)
        assert len(notify_socket.pings()) >= 3
        # a hung process (frozen as a blocked loop would be): no pings; systemd would kill
        proc.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        time.sleep(1.0)
        thawed_at = time.monotonic()
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.6)
        pings = notify_socket.pings()
        assert [p for p in pings if frozen_at + 0.05 < p < thawed_at] == []
        assert [p for p in pings if p > thawed_at]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    texts = notify_socket.texts()
    assert texts[0] == "STATUS=looking for an interrupted run"
    assert "READY=1\nSTATUS=idle: no interrupted run" in texts
    assert texts[-1] == "STOPPING=1\nSTATUS=stopping (idle)"
    assert "<6>heatcycler.service: idle: no interrupted run" in err  # journald priority


def test_heatcycler_service_refuses_a_bad_rig_file_with_exit_2(tmp_path: Path) -> None:
    rig_file = tmp_path / "rig.yaml"
    rig_file.write_text("rig: rig-01\nsmu: {resource: sim}\n")
    done = subprocess.run(
        [sys.executable, "-m", "controller.cli", "service", "--rig", str(rig_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2  # RestartPreventExitStatus=2: no restart loop
    assert "heater" in done.stderr
    assert "Traceback" not in done.stderr
