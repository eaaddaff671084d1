"""The systemd notify protocol on a socket the test opens (as systemd would), and the
watchdog: pings at half the interval while the control loop beats, none once it stalls —
whether the event loop is blocked or only the control task stopped ticking."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import socket
import statistics
import tempfile
import time

import pytest
from servicekit import NotifySocket

from controller.clock import Clock, VirtualTimeLoop
from controller.service.notify import Notifier, Service, socket_address, watchdog_interval


def _env(
    ns: NotifySocket, watchdog_usec: int | None = None, pid: int | None = None
) -> dict[str, str]:
    env = {"NOTIFY_SOCKET": ns.address}
    if watchdog_usec is not None:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
        env["WATCHDOG_PID"] = str(os.getpid() if pid is None else pid)
    return env


def _wait_messages(ns: NotifySocket, n: int, timeout: float = 5.0) -> list[str]:
    end = time.monotonic() + timeout
    while len(ns.messages) < n and time.monotonic() < end:
        time.sleep(0.01)
    return ns.texts()


def would_systemd_fire(pings: list[float], start: float, end: float, interval: float) -> bool:
    """systemd's judgement: a gap longer than WatchdogSec between pings (or since the start,
    or until the end) means the service is killed."""
    marks = [start, *pings, end]
    return any(b - a > interval for a, b in itertools.pairwise(marks))


# ------------------------------------------------------------------ the protocol


def test_without_notify_socket_everything_is_a_no_op() -> None:
    service = Service.from_env(environ={})
    assert not service.supervised
    assert not service.watchdog.enabled
    service.ready("ready")
    service.status("busy")
    service.beat()
    service.stopping()
    assert service.notifier.sent == []
    # the watchdog task ends at once: nothing to ping
    asyncio.run(asyncio.wait_for(service.run(), 1.0))


def test_ready_status_and_stopping_reach_a_path_socket(notify_socket: NotifySocket) -> None:
    service = Service.from_env(environ=_env(notify_socket))
    assert service.supervised
    service.ready("idle: no interrupted run")
    service.status("resuming run X")
    service.status("resuming run X")  # unchanged: not sent again
    service.status("line one\nline two")  # STATUS is one line
    service.extend_timeout(90)
    service.stopping("safe state")
    texts = _wait_messages(notify_socket, 5)
    assert texts == [
        "READY=1\nSTATUS=idle: no interrupted run",
        "STATUS=resuming run X",
        "STATUS=line one line two",
        "EXTEND_TIMEOUT_USEC=90000000",
        "STOPPING=1\nSTATUS=safe state",
    ]


def test_the_abstract_namespace_is_reached_with_its_at_sign(
    abstract_notify_socket: NotifySocket,
) -> None:
    assert socket_address(abstract_notify_socket.address)[:1] == b"\0"  # type: ignore[index]
    service = Service.from_env(environ=_env(abstract_notify_socket))
    service.ready()
    assert _wait_messages(abstract_notify_socket, 1) == ["READY=1"]


def test_a_vanished_socket_is_logged_once_and_never_raises(
    tmp_path: os.PathLike[str], caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(os.path.join(str(tmp_path), "gone"))
    assert notifier.send("READY=1") is False
    assert notifier.send("STATUS=x") is False
    assert sum("cannot notify systemd" in r.getMessage() for r in caplog.records) == 1
    assert Notifier("vsock:2:1234").enabled is False


def test_watchdog_environment_is_ours_only_when_the_pid_matches() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 30
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({}) is None


def test_a_watchdog_without_a_notify_socket_is_off() -> None:
    service = Service.from_env(environ={"WATCHDOG_USEC": "1000000"})
    assert not service.watchdog.enabled


# ------------------------------------------------------------------- the watchdog


def _virtual_watchdog_run(
    interval_usec: int, control: str, seconds: float
) -> tuple[list[float], list[tuple[float, str]], Service]:
    """Run a control loop in virtual time; returns the virtual times of the pings the
    socket received, every message with its virtual time, and the service. The socket is
    read by the loop itself, so each message is stamped with the virtual time it came."""
    received: list[tuple[float, str]] = []
    tmp = tempfile.mkdtemp(prefix="hcn-")
    address = os.path.join(tmp, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.setblocking(False)
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": str(interval_usec)}

    async def main() -> Service:
        loop = asyncio.get_running_loop()
        clock = Clock()

        def readable() -> None:
            while True:
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    return
                received.append((clock.now(), data.decode()))

        loop.add_reader(sock.fileno(), readable)
        service = Service.from_env(clock, environ=env)
        watchdog = asyncio.create_task(service.run())

        async def control_loop() -> None:
            service.ready("running")
            tick = 0
            while True:
                await clock.sleep(1.0)
                tick += 1
                if control == "stops beating" and tick > 20:
                    await asyncio.Event().wait()  # alive, but no longer ticking
                service.beat()

        task = asyncio.create_task(control_loop())
        await clock.sleep(seconds)
        task.cancel()
        watchdog.cancel()
        await asyncio.sleep(0)
        await clock.sleep(0.01)
        loop.remove_reader(sock.fileno())
        return service

    loop = VirtualTimeLoop()
    try:
        service = loop.run_until_complete(main())
    finally:
        loop.close()
        sock.close()
        shutil.rmtree(tmp)
    pings = [t for t, m in received if m == "WATCHDOG=1"]
    return pings, received, service


def test_pings_come_at_half_the_interval_while_the_loop_beats() -> None:
    # WatchdogSec=4s, a control tick every second, 60 s of virtual time
    pings, received, service = _virtual_watchdog_run(4_000_000, "beats", 60.0)
    assert received[0][1] == "READY=1\nSTATUS=running"
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert len(pings) >= 29
    assert all(g == pytest.approx(2.0) for g in gaps), gaps
    assert not would_systemd_fire(pings, 0.0, 60.0, 4.0)
    assert service.watchdog.withheld == 0


def test_pings_stop_when_the_control_task_stops_ticking_while_the_loop_lives() -> None:
    # the control task beats for 20 s, then waits forever: the event loop keeps running
    # (the watchdog task itself is scheduled), but nothing beats any more
    pings, received, service = _virtual_watchdog_run(4_000_000, "stops beating", 60.0)
    last_beat = 20.0
    assert pings, "it pinged while beating"
    assert max(pings) <= last_beat + 2.0  # stale after interval/2 = 2 s
    assert [p for p in pings if p > last_beat + 2.0] == []
    assert would_systemd_fire(pings, 0.0, 60.0, 4.0)
    stalled = [m for _, m in received if m.startswith("STATUS=control loop stalled")]
    assert len(stalled) == 1  # said once, not at every withheld ping
    assert service.watchdog.withheld >= 15


def test_pings_stop_while_the_event_loop_is_blocked(notify_socket: NotifySocket) -> None:
    # real time: WatchdogSec=0.4 s, pings every 0.2 s; a control step blocks the whole
    # event loop for 1.2 s (a synchronous call that hangs), then the loop recovers
    interval = 0.4

    async def main() -> tuple[float, float, float, float]:
        clock = Clock()
        service = Service.from_env(clock, environ=_env(notify_socket, int(interval * 1e6)))
        watchdog = asyncio.create_task(service.run())
        service.ready("running")
        start = time.monotonic()
        while time.monotonic() - start < 1.0:
            service.beat()
            await asyncio.sleep(0.02)
        blocked_at = time.monotonic()
        time.sleep(1.2)  # noqa: ASYNC251 - the hang under test
        unblocked_at = time.monotonic()
        while time.monotonic() - unblocked_at < 1.0:
            service.beat()
            await asyncio.sleep(0.02)
        watchdog.cancel()
        return start, blocked_at, unblocked_at, time.monotonic()

    start, blocked_at, unblocked_at, end = asyncio.run(main())
    time.sleep(0.05)
    pings = notify_socket.pings()
    before = [p for p in pings if p < blocked_at]
    during = [p for p in pings if blocked_at + 0.01 < p < unblocked_at]
    after = [p for p in pings if p > unblocked_at]
    assert len(before) >= 3
    assert len(after) >= 3
    assert during == []
    assert would_systemd_fire(pings, start, end, interval)
    spacing = statistics.median(b - a for a, b in itertools.pairwise(before))
    assert 0.15 < spacing < 0.3  # half the interval, give or take a noisy machine
    # a loop that recovers on its own (shorter than WatchdogSec) pings again at once
    assert after[0] - unblocked_at < 0.25


def test_a_stale_after_longer_than_a_tick_keeps_a_slow_but_healthy_loop_alive(
    notify_socket: NotifySocket,
) -> None:
    async def main() -> Service:
        clock = Clock()
        service = Service.from_env(clock, environ=_env(notify_socket, 2_000_000), stale_after=5.0)
        watchdog = asyncio.create_task(service.run())
        service.ready()
        for _ in range(30):  # a beat every 3 s: slower than the 1 s ping period
            await clock.sleep(3.0)
            service.beat()
        watchdog.cancel()
        return service

    loop = VirtualTimeLoop()
    try:
        service = loop.run_until_complete(main())
    finally:
        loop.close()
    assert service.watchdog.withheld == 0
    assert service.watchdog.pings >= 85
