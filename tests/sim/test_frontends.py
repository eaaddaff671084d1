"""The wire front-ends: pyvisa-py over TCP, pyserial over the pty, the control port, and
`heatcycler sim serve` itself."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvisa
import serial
from firmware_sim.board import frame, unframe
from firmware_sim.ohmic import OhmicCell
from firmware_sim.rig import ManualClock, SimRig
from firmware_sim.serve import SimServer, serve_in_thread

pytestmark = pytest.mark.wire
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[SimRig, ManualClock, SimServer]]:
    clock = ManualClock()
    rig = SimRig(clock, cell=OhmicCell(resistance=100.0), seed=2)
    with serve_in_thread(rig, link=tmp_path / "heater") as server:
        yield rig, clock, server


def wait_for(condition: object, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


# ------------------------------------------------------------------------ TCP


def test_pyvisa_py_talks_to_the_smu_through_its_resource_string(
    served: tuple[SimRig, ManualClock, SimServer],
) -> None:
    _, _, server = served
    assert server.resource == f"TCPIP::127.0.0.1::{server.tcp.port}::SOCKET"
    rm = pyvisa.ResourceManager("@py")
    inst = rm.open_resource(server.resource, read_termination="\n", write_termination="\n")
    inst.timeout = 2000
    try:
        assert inst.query("*IDN?").startswith("KEITHLEY INSTRUMENTS,MODEL 2450,")
        inst.write(":SOUR:FUNC CURR;:SOUR:CURR 2e-3;:SOUR:CURR:VLIM 1")
        inst.write(':SENS:FUNC "VOLT";:SENS:VOLT:RSEN ON;:OUTP ON')
        v, i, rel = inst.query_ascii_values(':READ? "defbuffer1", READ, SOUR, REL')
        assert v == pytest.approx(0.2, abs=1e-4)
        assert i == pytest.approx(2e-3, abs=2e-7)  # readback on the 10 mA range
        assert rel == 0.0
        inst.write(":SOUR:CURR:BOGUS?")  # a query in error: no reply, a timeout
        inst.timeout = 300
        with pytest.raises(pyvisa.errors.VisaIOError):
            inst.read()
        inst.timeout = 2000
        assert inst.query(":SYST:ERR?").startswith('-113,"Undefined header;1;')
    finally:
        inst.close()
        rm.close()


def test_smu_unplug_cuts_the_connection_and_refuses_new_ones_until_cleared(
    served: tuple[SimRig, ManualClock, SimServer],
) -> None:
    rig, _, server = served
    sock = socket.create_connection(("127.0.0.1", server.tcp.port), timeout=2.0)
    rig.faults.inject("smu_unplug")
    sock.sendall(b"*IDN?\n")
    with contextlib.suppress(ConnectionResetError):  # closed by the far end
        assert sock.recv(100) == b""
    sock.close()
    again = socket.create_connection(("127.0.0.1", server.tcp.port), timeout=2.0)
    with contextlib.suppress(ConnectionResetError):
        assert again.recv(100) == b""
    again.close()
    rig.faults.clear("smu_unplug")
    with socket.create_connection(("127.0.0.1", server.tcp.port), timeout=2.0) as back:
        back.sendall(b"*IDN?\n")
        assert back.makefile("rb").readline().startswith(b"KEITHLEY")


def test_a_hung_smu_answers_nothing_over_tcp(served: tuple[SimRig, ManualClock, SimServer]) -> None:
    rig, _, server = served
    rig.faults.inject("smu_timeout")
    with socket.create_connection(("127.0.0.1", server.tcp.port), timeout=2.0) as sock:
        sock.sendall(b"*IDN?\n")
        assert select.select([sock], [], [], 0.3)[0] == []
        rig.faults.clear("smu_timeout")
        sock.sendall(b"*IDN?\n")
        assert sock.makefile("rb").readline().startswith(b"KEITHLEY")


# ------------------------------------------------------------------------ pty


def test_serial_unplug_closes_the_pty_and_removes_the_link_then_replugs(
    served: tuple[SimRig, ManualClock, SimServer], tmp_path: Path
) -> None:
    rig, _, server = served
    link = tmp_path / "heater"
    first = server.serial_path
    assert os.readlink(link) == first
    port = serial.Serial(str(link), 115200, timeout=1.0)
    port.write(frame("ID?") + b"\n")
    assert unframe(port.readline().rstrip(b"\n")) == "ID HCB-1 1.2.0 B0042"
    rig.faults.inject("serial_unplug")
    wait_for(lambda: not link.is_symlink())
    with pytest.raises(serial.SerialException):  # EIO, as when a USB adapter is pulled
        port.write(frame("T?") + b"\n")
    port.close()
    rig.faults.clear("serial_unplug")
    wait_for(link.is_symlink)
    assert server.serial_path is not None
    assert os.readlink(link) == server.serial_path
    with serial.Serial(str(link), 115200, timeout=1.0) as back:
        back.write(frame("ID?") + b"\n")
        assert unframe(back.readline().rstrip(b"\n")) == "ID HCB-1 1.2.0 B0042"


def test_a_host_may_close_and_reopen_the_port(
    served: tuple[SimRig, ManualClock, SimServer], tmp_path: Path
) -> None:
    for _ in range(3):
        with serial.Serial(str(tmp_path / "heater"), 115200, timeout=1.0) as port:
            port.write(frame("ID?") + b"\n")
            assert port.readline().startswith(b"ID HCB-1")


# -------------------------------------------------------------------- control


def test_the_control_port_injects_reports_and_clears(
    served: tuple[SimRig, ManualClock, SimServer],
) -> None:
    rig, clock, server = served
    assert server.control_address is not None
    with socket.create_connection(server.control_address, timeout=2.0) as sock:
        stream = sock.makefile("rwb")

        def ask(line: str) -> str:
            stream.write(line.encode() + b"\n")
            stream.flush()
            return stream.readline().decode().rstrip("\n")

        assert ask("fault tc_open heater_stuck_on@10") == "OK tc_open heater_stuck_on@10"
        clock.set(20.0)
        status = json.loads(ask("status")[3:])
        assert set(status["faults"]) == {"tc_open", "heater_stuck_on"}
        assert status["board_trip"] == "tcfault"
        assert status["block_temperature"] > 30.0
        assert ask("fault nonsense").startswith("ERR unknown fault 'nonsense' | write KIND")
        assert ask("clear all") == "OK"
        assert rig.faults.active == {}
        assert ask("kinds").startswith("OK tc_open,")
        assert ask("dance").startswith("ERR unknown request")


# ------------------------------------------------------------------------ CLI


def heatcycler(*args: str) -> list[str]:
    return [sys.executable, "-m", "controller.cli", *args]


@pytest.fixture
def sim_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    proc = subprocess.Popen(
        heatcycler(
            "sim",
            "serve",
            "--port",
            "0",
            "--json",
            "--seed",
            "3",
            "--link",
            str(tmp_path / "heater"),
            "--state",
            str(tmp_path / "state.json"),
            "--protocol",
            str(ROOT / "protocols" / "ccd-ramp-125C.yaml"),
            "--fault",
            "heater_dead@1h",
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        pytest.fail(f"sim serve did not start: {proc.stderr.read() if proc.stderr else ''}")
    try:
        yield proc, json.loads(line)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_sim_serve_prints_both_addresses_serves_them_and_stops_cleanly(
    sim_process: tuple[subprocess.Popen[str], dict[str, str]], tmp_path: Path
) -> None:
    proc, addresses = sim_process
    assert addresses["smu"].startswith("TCPIP::127.0.0.1::")
    assert addresses["smu"].endswith("::SOCKET")
    assert addresses["heater"].startswith("/dev/pts/")
    assert os.readlink(tmp_path / "heater") == addresses["heater"]
    assert json.loads((tmp_path / "state.json").read_text())["control"] == addresses["control"]
    port = int(addresses["smu"].split("::")[2])
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.sendall(b"*IDN?\n")
        assert sock.makefile("rb").readline().startswith(b"KEITHLEY INSTRUMENTS,MODEL 2450")
    with serial.Serial(addresses["heater"], 115200, timeout=2.0) as board:
        board.write(frame("T?") + b"\n")
        assert board.readline().startswith(b"T ")

    state = ["--state", str(tmp_path / "state.json")]  # found without --control
    done = subprocess.run(
        heatcycler("sim", "fault", "smu_error=-222", "loss=1.5", *state),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fault: smu_error=-222 loss=1.5"
    status = subprocess.run(
        heatcycler("sim", "status", "--control", addresses["control"]),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    snapshot = json.loads(status.stdout)
    assert snapshot["loss_factor"] == 1.5
    assert snapshot["cell_spec"]["electrolyte"] == "LiBH4"  # from the protocol file
    assert snapshot["seed"] == 3
    bad = subprocess.run(
        heatcycler("sim", "fault", "tc_melted", *state),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2
    assert "unknown fault 'tc_melted'" in bad.stderr
    assert "hint:" in bad.stderr

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert not (tmp_path / "heater").exists()
    assert not (tmp_path / "state.json").exists()
    assert proc.stderr is not None
    assert "Traceback" not in proc.stderr.read()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fault", "tc_open@soon"], "'soon' is not a time"),
        (["--speed", "0"], "--speed must be positive"),
        (["--protocol", "tests/sim/no-such.yaml"], "no-such.yaml"),
    ],
)
def test_sim_serve_refuses_bad_arguments_with_a_hint(args: list[str], message: str) -> None:
    done = subprocess.run(
        heatcycler("sim", "serve", "--port", "0", "--control-port", "0", *args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_sim_serve_reports_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            heatcycler("sim", "serve", "--port", str(port), "--state", str(tmp_path / "s")),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "--port 0" in done.stderr
