"""``heatcycler doctor`` against the software rig — served on TCP and a pty, and in
process — and real Mosquitto brokers, with each check failing in turn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from firmware_sim.rig import SimRig
from firmware_sim.serve import SimServer, serve_in_thread
from servicekit import UNIX0, make_journal

from controller.cli import main
from controller.journal import Journal
from controller.plan import make_plan
from controller.rig import RigConfig
from controller.service import disk
from controller.service.clocksync import ClockState, read_adjtimex, read_clock
from controller.service.doctor import Check, PlannedRun, Probes, Report, Status, diagnose
from controller.validate import load_protocol
from drivers.factory import open_heater_board

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "telemetry"))
from mqttbroker import DEPLOY, Mosquitto, add_user, free_port, user_line, wait_port

REPO = Path(__file__).resolve().parents[2]
SYNCED = ClockState(True, "test", 0.004, "injected")


def by_name(report: Report) -> dict[str, Check]:
    return {c.name: c for c in report.checks}


def statuses(report: Report) -> dict[str, str]:
    return {c.name: c.status.value for c in report.checks}


def rig_config(
    data_dir: Path,
    smu: str = "sim",
    heater: str = "sim",
    smu_settings: dict[str, Any] | None = None,
    **extra: Any,
) -> RigConfig:
    doc: dict[str, Any] = {
        "rig": "rig-01",
        "smu": {"resource": smu, "timeout": "0.5 s", **(smu_settings or {})},
        "heater": {"port": heater, "timeout": "0.3 s"},
        "data_dir": str(data_dir),
        **extra,
    }
    return RigConfig.model_validate(doc)


@contextlib.contextmanager
def served(tmp_path: Path, **kwargs: Any) -> Iterator[tuple[SimRig, SimServer]]:
    """The software rig on real transports, its clock the wall clock (conversions move)."""
    rig = SimRig(time.monotonic, seed=3, **kwargs)
    with serve_in_thread(rig, link=tmp_path / "heatcycler-heater") as server:
        yield rig, server


def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    return d


async def served_report(
    tmp_path: Path, *, probes: Probes | None = None, rig_kwargs: Any = None, **config: Any
) -> Report:
    with served(tmp_path, **(rig_kwargs or {})) as (_, server):
        cfg = rig_config(data_dir(tmp_path), server.resource, str(server.pty.link), **config)
        return await diagnose(cfg, None, probes or Probes(clock=lambda: SYNCED))


# ------------------------------------------------------------------- all is well


@pytest.mark.wire
@pytest.mark.mqtt
async def test_every_check_passes_on_a_healthy_served_rig(tmp_path: Path) -> None:
    broker = Mosquitto.open(tmp_path / "broker").start()
    try:
        report = await served_report(tmp_path, mqtt={"url": broker.url})
    finally:
        broker.stop()
    assert statuses(report) == {
        "data directory": "PASS",
        "clock": "PASS",
        "broker": "PASS",
        "SMU": "PASS",
        "heater board": "PASS",
        "thermocouple": "PASS",
    }, report.checks
    checks = by_name(report)
    assert "KEITHLEY INSTRUMENTS MODEL 2450 #04412345" in checks["SMU"].detail
    assert "SCPI mode" in checks["SMU"].detail
    assert "HCB-1 #B0042, firmware 1.2.0" in checks["heater board"].detail
    assert "counter moving" in checks["thermocouple"].detail
    assert "connected anonymously without TLS" in checks["broker"].detail
    assert not report.failed


# --------------------------------------------- the instruments, each failing in turn


def _trip_the_board(rig: SimRig) -> None:
    rig.board_firmware.handle  # noqa: B018 - the firmware exists
    import asyncio

    async def trip() -> None:
        from controller.rig import HeaterConfig

        board = await open_heater_board(HeaterConfig(port="sim"), device=rig.board)
        await board.set_limits(20.0, 5.0)  # the block is at 25 °C: overtemp, latched
        await board.close()

    asyncio.run(trip())


FAILURES: dict[str, dict[str, Any]] = {
    "SMU in TSP mode": {
        "rig": {"language": "TSP"},
        "fails": "SMU",
        "says": "speaks TSP, not SCPI",
        "fix": "SCPI",
    },
    "SMU in 2400 emulation": {
        "rig": {"language": "SCPI2400"},
        "fails": "SMU",
        "says": "2400-emulation mode",
        "fix": "SCPI",
    },
    "wrong SMU identity": {
        "config": {"smu_settings": {"driver": "keysight_b2900"}},
        "fails": "SMU",
        "says": "not a Keysight B2900",
        "fix": "smu.driver",
    },
    "SMU hung": {"fault": "smu_timeout", "fails": "SMU", "says": "no reply to '*IDN?'", "fix": ""},
    "board tripped": {
        "trip": True,
        "fails": "heater board",
        "says": "TRIPPED (overtemp)",
        "fix": "find the cause",
    },
    "board silent": {
        "fault": "board_silent",
        "fails": "heater board",
        "says": "does not answer",
        "fix": "power-cycle",
        "skips": "thermocouple",
    },
    "board unplugged": {
        "fault": "serial_unplug",
        "fails": "heater board",
        "says": ("link lost", "cannot open"),  # in process; the pty vanished
        "fix": "plugged in",
        "skips": "thermocouple",
    },
    "open thermocouple": {
        "fault": "tc_open",
        "fails": "thermocouple",
        "says": "open circuit",
        "fix": "unplugged or broken",
    },
    "frozen readings": {
        "fault": "frozen",
        "fails": "thermocouple",
        "says": "frozen",
        "fix": "power-cycle",
    },
}


def _check_failure(report: Report, case: dict[str, Any]) -> None:
    checks = by_name(report)
    failing = checks[case["fails"]]
    assert failing.status is Status.FAIL, report.checks
    says = case["says"] if isinstance(case["says"], tuple) else (case["says"],)
    assert any(words in failing.detail for words in says), failing.detail
    assert case["fix"] in failing.fix
    assert failing.fix  # every failure comes with a fix
    assert report.failed
    if "skips" in case:
        assert checks[case["skips"]].status is Status.SKIP
    # the unrelated checks are unaffected
    assert checks["data directory"].status is Status.PASS
    assert checks["clock"].status is Status.PASS
    if case["fails"] != "SMU":
        assert checks["SMU"].status is Status.PASS
    if case["fails"] == "SMU":
        assert checks["heater board"].status is Status.PASS
        assert checks["thermocouple"].status is Status.PASS


@pytest.mark.wire
@pytest.mark.parametrize("name", list(FAILURES))
def test_each_instrument_check_fails_on_the_served_rig(tmp_path: Path, name: str) -> None:
    import asyncio

    case = FAILURES[name]
    with served(tmp_path, **case.get("rig", {})) as (rig, server):
        if case.get("fault"):
            rig.faults.apply(case["fault"])
        if case.get("trip"):
            _trip_the_board(rig)
        time.sleep(0.35)  # three conversions: a board with a fault latches its trip
        cfg = rig_config(
            data_dir(tmp_path), server.resource, str(server.pty.link), **case.get("config", {})
        )
        report = asyncio.run(diagnose(cfg, None, Probes(clock=lambda: SYNCED)))
    _check_failure(report, case)


@pytest.mark.parametrize("name", list(FAILURES))
async def test_each_instrument_check_fails_in_process(tmp_path: Path, name: str) -> None:
    import asyncio

    case = FAILURES[name]
    rig = SimRig(asyncio.get_running_loop().time, seed=3, **case.get("rig", {}))
    if case.get("fault"):
        rig.faults.apply(case["fault"])
    if case.get("trip"):
        from controller.rig import HeaterConfig

        board = await open_heater_board(HeaterConfig(port="sim"), device=rig.board)
        await board.set_limits(20.0, 5.0)
        await board.close()
    await asyncio.sleep(0.35)
    cfg = rig_config(data_dir(tmp_path), **case.get("config", {}))
    probes = Probes(clock=lambda: SYNCED, smu_device=rig.smu, board_device=rig.board)
    _check_failure(await diagnose(cfg, None, probes), case)


async def test_board_limits_outside_its_range_fail_before_anything_is_set(tmp_path: Path) -> None:
    import asyncio

    rig = SimRig(asyncio.get_running_loop().time, seed=3)
    cfg = rig_config(
        data_dir(tmp_path),
        safety={"temperature_max": "300 degC", "setpoint_max": "170 degC"},
    )
    probes = Probes(clock=lambda: SYNCED, smu_device=rig.smu, board_device=rig.board)
    board = by_name(await diagnose(cfg, None, probes))["heater board"]
    assert board.status is Status.FAIL
    assert "setting them would trip it" in board.detail
    assert rig.board_firmware.trip is None  # doctor changed nothing
    assert rig.board_firmware.limit_max == 200.0


async def test_a_board_already_at_the_rigs_limits_says_so(tmp_path: Path) -> None:
    import asyncio

    from controller.rig import HeaterConfig

    rig = SimRig(asyncio.get_running_loop().time, seed=3)
    board = await open_heater_board(HeaterConfig(port="sim"), device=rig.board)
    await board.set_limits(185.0, 5.0)
    await board.close()
    probes = Probes(clock=lambda: SYNCED, smu_device=rig.smu, board_device=rig.board)
    check = by_name(await diagnose(rig_config(data_dir(tmp_path)), None, probes))["heater board"]
    assert check.status is Status.PASS
    assert "limits 185/5 °C = the rig's safety limits" in check.detail


async def test_a_live_run_keeps_doctor_off_its_instruments(tmp_path: Path) -> None:
    data = data_dir(tmp_path)
    path = make_journal(data, "20260101T000000Z-rig-01-S7")
    holder = Journal.open(path, threaded=False)
    assert holder.lock()
    try:
        rig = SimRig(lambda: 0.0, seed=3, faults=["board_silent", "smu_timeout"])
        probes = Probes(clock=lambda: SYNCED, smu_device=rig.smu, board_device=rig.board)
        report = await diagnose(rig_config(data), None, probes)
    finally:
        holder.close()
    checks = by_name(report)
    for name in ("SMU", "heater board", "thermocouple"):
        assert checks[name].status is Status.SKIP
        assert "20260101T000000Z-rig-01-S7 is live" in checks[name].detail
    assert not report.failed


# ----------------------------------------------------------------------- the broker


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, int, Path]]:
    """TLS + password broker with the shipped certificate script (deploy/mosquitto)."""
    etc = tmp_path / "mqtt-etc"
    etc.mkdir()
    env = {**os.environ, "SAN": "DNS:localhost,IP:127.0.0.1"}
    subprocess.run(
        ["sh", str(DEPLOY / "make-certs.sh"), str(etc / "certs"), "localhost"],
        check=True,
        capture_output=True,
        env=env,
    )
    add_user(etc / "passwd", "rig-01", "rig-01-secret")
    port = free_port()
    config = (
        user_line() + f"listener {port} 127.0.0.1\n"
        "allow_anonymous false\n"
        f"password_file {etc / 'passwd'}\n"
        f"cafile {etc / 'certs' / 'ca.crt'}\n"
        f"certfile {etc / 'certs' / 'broker.crt'}\n"
        f"keyfile {etc / 'certs' / 'broker.key'}\n"
        "log_dest stdout\n"
    )
    broker = Mosquitto(tmp_path / "broker", config, port)
    broker.start()
    wait_port(port)
    try:
        yield broker, port, etc
    finally:
        broker.stop()


async def _broker_check(tmp_path: Path, mqtt: dict[str, Any]) -> Check:
    rig = SimRig(lambda: 0.0, seed=3)
    probes = Probes(
        clock=lambda: SYNCED, smu_device=rig.smu, board_device=rig.board, broker_timeout=3.0
    )
    report = await diagnose(rig_config(data_dir(tmp_path), mqtt=mqtt), None, probes)
    return by_name(report)["broker"]


@pytest.mark.mqtt
async def test_broker_over_tls_with_the_right_credentials_passes(
    tmp_path: Path, tls_broker: tuple[Mosquitto, int, Path]
) -> None:
    _, port, etc = tls_broker
    (tmp_path / "pw").write_text("rig-01-secret\n")
    check = await _broker_check(
        tmp_path,
        {
            "url": f"mqtts://localhost:{port}",
            "username": "rig-01",
            "password_file": str(tmp_path / "pw"),
            "ca_file": str(etc / "certs" / "ca.crt"),
        },
    )
    assert check.status is Status.PASS, check
    assert (
        check.detail == f"mqtts://rig-01@localhost:{port}: connected as rig-01 over TLS "
        "(certificate verified)"
    )


@pytest.mark.mqtt
async def test_broker_refusing_a_wrong_password_fails_with_a_fix(
    tmp_path: Path, tls_broker: tuple[Mosquitto, int, Path]
) -> None:
    _, port, etc = tls_broker
    (tmp_path / "pw").write_text("not-the-secret\n")
    check = await _broker_check(
        tmp_path,
        {
            "url": f"mqtts://localhost:{port}",
            "username": "rig-01",
            "password_file": str(tmp_path / "pw"),
            "ca_file": str(etc / "certs" / "ca.crt"),
        },
    )
    assert check.status is Status.FAIL
    assert "refused the credentials" in check.detail
    assert "add-user.sh" in check.fix
    assert "not-the-secret" not in check.detail + check.fix


@pytest.mark.mqtt
async def test_broker_with_a_certificate_from_another_ca_fails_on_tls(
    tmp_path: Path, tls_broker: tuple[Mosquitto, int, Path]
) -> None:
    _, port, _ = tls_broker
    other = tmp_path / "other-ca"
    make_ca = ["sh", str(DEPLOY / "make-certs.sh"), str(other), "localhost"]
    await asyncio.to_thread(subprocess.run, make_ca, check=True, capture_output=True)
    (tmp_path / "pw").write_text("rig-01-secret\n")
    check = await _broker_check(
        tmp_path,
        {
            "url": f"mqtts://localhost:{port}",
            "username": "rig-01",
            "password_file": str(tmp_path / "pw"),
            "ca_file": str(other / "ca.crt"),
        },
    )
    assert check.status is Status.FAIL
    assert "TLS failed" in check.detail
    assert "ca_file" in check.fix


@pytest.mark.mqtt
async def test_broker_down_fails_with_a_fix(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    check = await _broker_check(tmp_path, {"url": f"mqtt://127.0.0.1:{port}"})
    assert check.status is Status.FAIL
    assert "cannot connect" in check.detail
    assert "systemctl status mosquitto" in check.fix


async def test_a_missing_password_file_is_a_failed_check_not_a_traceback(tmp_path: Path) -> None:
    check = await _broker_check(
        tmp_path,
        {"url": "mqtt://127.0.0.1:1883", "username": "u", "password_file": "/nonexistent/pw"},
    )
    assert check.status is Status.FAIL
    assert "cannot read the MQTT password file /nonexistent/pw" in check.detail
    assert "mqtt.password_file" in check.fix


# ------------------------------------------------------------ data directory, clock


@contextlib.contextmanager
def read_only_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory the doctor cannot write to: a read-only bind mount (root), or one
    without write permission (anyone else). Yields (path, expected words)."""
    src = tmp_path / "ro-src"
    src.mkdir()
    if os.geteuid() != 0:
        src.chmod(0o555)
        try:
            yield src, "Permission denied"
        finally:
            src.chmod(0o755)
        return
    target = tmp_path / "ro"
    target.mkdir()
    bind = subprocess.run(["mount", "--bind", str(src), str(target)], capture_output=True)
    if bind.returncode != 0:
        pytest.skip(f"root without CAP_SYS_ADMIN cannot make a read-only mount: {bind.stderr!r}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
        yield target, "Read-only file system"
    finally:
        subprocess.run(["umount", str(target)], check=False)


async def test_a_read_only_data_directory_fails(tmp_path: Path) -> None:
    rig = SimRig(lambda: 0.0, seed=3)
    with read_only_dir(tmp_path) as (ro, words):
        probes = Probes(clock=lambda: SYNCED, smu_device=rig.smu, board_device=rig.board)
        check = by_name(await diagnose(rig_config(ro), None, probes))["data directory"]
    assert check.status is Status.FAIL
    assert f"cannot write to {ro}: {words}" == check.detail
    assert ("read-only" in check.fix) if words.startswith("Read-only") else ("chown" in check.fix)


def _planned(protocol: str) -> PlannedRun:
    loaded = load_protocol(REPO / "protocols" / protocol)
    assert loaded.protocol is not None
    plan = make_plan(loaded.protocol, None)
    record = loaded.protocol.record
    return PlannedRun(loaded.protocol.name, plan.duration.max, record.every, record.sample_period)


async def test_a_run_bigger_than_the_free_space_fails_and_one_that_fits_passes(
    tmp_path: Path,
) -> None:
    planned = _planned("heat-therapy-LiBH4.yaml")
    est = disk.estimate(planned.duration, planned.every, planned.sample_period)
    assert planned.duration > 30 * 86400  # until-short with max_count: weeks at most
    rig = SimRig(lambda: 0.0, seed=3)

    async def data_check(free: float) -> Check:
        probes = Probes(
            clock=lambda: SYNCED,
            smu_device=rig.smu,
            board_device=rig.board,
            free_space=lambda _: int(free),
        )
        report = await diagnose(rig_config(data_dir(tmp_path)), planned, probes)
        return by_name(report)["data directory"]

    short = await data_check(est.required - 1)
    assert short.status is Status.FAIL
    assert "heat-therapy-LiBH4 (at most" in short.detail
    assert "heatcycler archive" in short.fix
    tight = await data_check(est.required + 1)
    assert tight.status is Status.WARN  # fits, but not if every measurement were stored
    roomy = await data_check(est.worst + disk.RESERVE + 1)
    assert roomy.status is Status.PASS


async def test_interrupted_runs_and_a_missing_data_dir_are_warnings(tmp_path: Path) -> None:
    rig = SimRig(lambda: 0.0, seed=3)
    probes = Probes(clock=lambda: SYNCED, smu_device=rig.smu, board_device=rig.board)
    data = data_dir(tmp_path)
    make_journal(data, "20260101T000000Z-rig-01-S7", last_unix=UNIX0)
    check = by_name(await diagnose(rig_config(data), None, probes))["data directory"]
    assert check.status is Status.WARN
    assert "interrupted, not resumed: 20260101T000000Z-rig-01-S7" in check.detail
    missing = by_name(await diagnose(rig_config(tmp_path / "new"), None, probes))
    assert missing["data directory"].status is Status.WARN
    assert "does not exist yet" in missing["data directory"].detail
    gone = by_name(await diagnose(rig_config(Path("/proc/no/such/dir")), None, probes))
    assert gone["data directory"].status is Status.FAIL


async def test_an_unsynchronised_clock_fails(tmp_path: Path) -> None:
    rig = SimRig(lambda: 0.0, seed=3)
    for state, words in (
        (ClockState(False, "adjtimex", 16.0, "kernel clock state 5"), "not synchronised"),
        (ClockState(None, "none", detail="no adjtimex"), "cannot tell"),
    ):
        probes = Probes(clock=lambda s=state: s, smu_device=rig.smu, board_device=rig.board)
        check = by_name(await diagnose(rig_config(data_dir(tmp_path)), None, probes))["clock"]
        assert check.status is Status.FAIL
        assert words in check.detail
        assert "timedatectl" in check.fix


def test_the_clock_readers_answer_on_this_host() -> None:
    state = read_adjtimex()  # the kernel always answers a read-only adjtimex
    assert state.source == "adjtimex"
    assert isinstance(state.synchronised, bool)
    assert state.max_error is not None
    assert state.max_error >= 0
    assert read_clock().source == "adjtimex"


# --------------------------------------------------------------------- the command


@pytest.mark.wire
def test_the_command_exits_1_with_one_line_per_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with served(tmp_path) as (rig, server):
        rig.faults.apply("board_silent")
        rig_file = tmp_path / "rig.yaml"
        rig_file.write_text(
            f"rig: rig-01\nsmu: {{resource: '{server.resource}', timeout: 0.5 s}}\n"
            f"heater: {{port: '{server.pty.link}', timeout: 0.3 s}}\n"
            f"data_dir: {data_dir(tmp_path)}\n"
        )
        code = main(["doctor", "--rig", str(rig_file)])
        out = capsys.readouterr().out
        code_json = main(["doctor", "--rig", str(rig_file), "--json"])
        doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert code_json == 1
    lines = out.splitlines()
    assert lines[0].startswith("PASS  data directory")
    assert any(line.startswith("PASS  SMU") for line in lines)
    assert any(line.startswith("FAIL  heater board") for line in lines)
    assert any(line.startswith("SKIP  thermocouple") for line in lines)
    assert any(line.strip().startswith("fix: power-cycle the board") for line in lines)
    assert lines[-1].endswith("failed")
    assert doc["ok"] is False
    assert [c["check"] for c in doc["checks"]] == [
        "data directory",
        "clock",
        "broker",
        "SMU",
        "heater board",
        "thermocouple",
    ]


def test_the_command_with_sim_and_a_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--sim", "--protocol", str(REPO / "protocols" / "ccd-ramp-125C.yaml")])
    out = capsys.readouterr().out
    assert "PASS  SMU" in out
    assert "PASS  thermocouple" in out
    assert "ccd-ramp-125C" in out
    clock_ok = read_clock().synchronised
    assert code == (0 if clock_ok else 1)


def test_a_bad_protocol_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps: 3\n")
    assert main(["doctor", "--sim", "--protocol", str(bad)]) == 2
    assert "bad.yaml:" in capsys.readouterr().err
