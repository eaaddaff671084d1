"""The heater board firmware over a real pseudo-terminal, with pyserial (PROTOCOL.md)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial
from firmware_sim.board import crc16, frame, unframe
from firmware_sim.ohmic import OhmicCell
from firmware_sim.rig import ManualClock, SimRig
from firmware_sim.serve import serve_in_thread

pytestmark = pytest.mark.wire


class BoardClient:
    def __init__(self, port: str) -> None:
        self.port = serial.Serial(port, 115200, timeout=1.0)

    def raw(self, line: bytes) -> bytes:
        self.port.write(line + b"\n")
        reply = self.port.readline()
        assert reply.endswith(b"\n"), f"no reply to {line!r}"
        return reply[:-1]

    def ask(self, payload: str) -> str:
        reply = self.raw(frame(payload))
        text = unframe(reply)
        assert text is not None, f"bad crc on {reply!r}"
        return text

    def status(self) -> list[str]:
        return self.ask("STATUS?").split()[1:]

    def temperature(self) -> list[str]:
        return self.ask("T?").split()


class Bench:
    def __init__(self, rig: SimRig, clock: ManualClock, board: BoardClient) -> None:
        self.rig, self.clock, self.board = rig, clock, board


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    clock = ManualClock()
    rig = SimRig(clock, cell=OhmicCell(), seed=1)
    link = tmp_path / "heater"
    with serve_in_thread(rig, link=link) as server:
        assert server.serial_path is not None
        assert server.serial_path.startswith("/dev/pts/")
        client = BoardClient(str(link))
        try:
            yield Bench(rig, clock, client)
        finally:
            client.port.close()


# ------------------------------------------------------------------- framing


def test_crc_is_ccitt_false() -> None:
    assert crc16(b"123456789") == 0x29B1
    assert frame("T?") == b"T?*18C8"
    assert unframe(b"T?*18c8") == "T?"
    assert unframe(b"T?*18C9") is None
    assert unframe(b"T?") is None


def test_identity_and_every_reply_is_framed(bench: Bench) -> None:
    b = bench.board
    assert b.ask("ID?") == "ID HCB-1 1.2.0 B0042"
    reply = b.raw(b"STATUS?*" + f"{crc16(b'STATUS?'):04x}".encode())  # lower-case crc is fine
    payload, _, crc = reply.rpartition(b"*")
    assert int(crc, 16) == crc16(payload)
    assert crc == crc.upper()
    assert b.raw(frame("ID?") + b"\r") == frame("ID HCB-1 1.2.0 B0042")  # CR before LF


def test_corrupt_requests_are_refused_and_counted(bench: Bench) -> None:
    b = bench.board
    assert b.raw(b"T?*0000") == frame("ERR CHECKSUM")
    assert b.raw(b"T?") == frame("ERR CHECKSUM")
    assert b.raw(b"T?*18C8junk") == frame("ERR CHECKSUM")
    assert b.status()[-1] == "3"


def test_an_empty_line_is_ignored(bench: Bench) -> None:
    b = bench.board
    b.port.write(b"\n\r\n")
    assert b.ask("ID?").startswith("ID ")  # the first reply is to ID?, not to the blanks
    assert b.status()[-1] == "0"


@pytest.mark.parametrize(
    ("request_", "reply"),
    [
        ("FOO 1", "ERR UNKNOWN FOO"),
        ("t?", "ERR UNKNOWN t?"),
        ("ID? x", "ERR ARG"),
        ("DUTY 1001 3000", "ERR ARG"),
        ("DUTY 500 50", "ERR ARG"),
        ("DUTY 500 10001", "ERR ARG"),
        ("DUTY 500", "ERR ARG"),
        ("DUTY 5.5 1000", "ERR ARG"),
        ("DUTY -1 1000", "ERR ARG"),
        ("LIMITS hot cold", "ERR ARG"),
        ("LIMITS 100", "ERR ARG"),
        ("LIMITS nan 0", "ERR ARG"),
        ("RESET now", "ERR ARG"),
    ],
)
def test_malformed_requests(bench: Bench, request_: str, reply: str) -> None:
    assert bench.board.ask(request_) == reply
    assert bench.board.status()[:2] == ["OK", "-"]  # none of them trips or changes state


def test_an_overlong_line_is_answered_err_long(bench: Bench) -> None:
    b = bench.board
    assert b.raw(frame("LIMITS " + "1" * 120 + " 0")) == frame("ERR LONG")
    assert b.raw(b"x" * 400) == frame("ERR LONG")
    assert b.ask("ID?").startswith("ID ")


# --------------------------------------------------------------------- lease


def test_the_duty_is_a_lease_that_runs_out(bench: Bench) -> None:
    b, clock, rig = bench.board, bench.clock, bench.rig
    assert b.ask("DUTY 500 1000") == "OK DUTY 500 1000"
    assert b.temperature()[-1] == "500"
    state, reason, duty, lease = b.status()[:4]
    assert (state, reason, duty, lease) == ("OK", "-", "500", "1000")
    clock.advance(0.6)
    assert b.status()[3] == "400"
    assert b.ask("DUTY 700 1000") == "OK DUTY 700 1000"  # a new lease replaces the old
    clock.advance(0.9)
    assert b.temperature()[-1] == "700"
    clock.advance(0.2)  # 1.1 s after the last DUTY: expired
    assert b.temperature()[-1] == "0"
    assert b.status()[:4] == ["OK", "-", "0", "0"]  # not a trip
    # the SSR time-proportions over 1 s windows from power-up and stops at expiry:
    # on 0–0.5 s (500 ‰), 0.6–0.7 s (700 ‰ from 0.6), 1.0–1.6 s (lease ends) = 1.2 s
    rise = rig.heater.block - 25.0
    assert rise == pytest.approx(100.0 * 1.2 / 90.0, rel=0.01)
    clock.advance(60.0)
    rig.sync()
    assert rig.heater.block < 25.0 + rise  # only cooling since


# --------------------------------------------------------------------- trips


def test_overtemp_trips_latches_and_resets_only_when_cool(bench: Bench) -> None:
    b, clock, rig = bench.board, bench.clock, bench.rig
    assert b.ask("LIMITS 30 0") == "OK LIMITS 30.00 0.00"
    assert b.ask("DUTY 1000 10000") == "OK DUTY 1000 10000"
    clock.advance(8.0)
    assert b.status()[:4] == ["TRIPPED", "overtemp", "0", "0"]
    # the heater went off when the reading passed 30 °C, not at the next request (8 s):
    # with the sensor 2 s behind a block rising 1.1 K/s that is at ≈ 6.6 s
    trip_time = rig.board_firmware.trip_time
    assert trip_time is not None
    assert 6.2 < trip_time < 7.0
    rig.sync()
    assert rig.heater.block < 25.0 + 100.0 * 7.0 / 90.0
    assert b.ask("DUTY 500 1000") == "ERR TRIPPED overtemp"
    assert b.ask("DUTY 0 1000") == "OK DUTY 0 1000"  # the safe state is always accepted
    assert b.ask("RESET") == "ERR STILL overtemp"
    clock.advance(900.0)
    assert float(b.temperature()[1]) < 30.0
    assert b.ask("RESET") == "OK RESET"
    assert b.status()[:2] == ["OK", "-"]
    assert b.ask("DUTY 100 1000") == "OK DUTY 100 1000"


def test_undertemp_trips_at_once_when_the_limit_is_above_the_reading(bench: Bench) -> None:
    b = bench.board
    assert b.ask("LIMITS 100 50") == "OK LIMITS 100.00 50.00"
    assert b.status()[:2] == ["TRIPPED", "undertemp"]
    assert b.ask("RESET") == "ERR STILL undertemp"
    assert b.ask("LIMITS 100 5") == "OK LIMITS 100.00 5.00"
    assert b.ask("RESET") == "OK RESET"


def test_three_faulty_conversions_trip_tcfault(bench: Bench) -> None:
    b, clock, rig = bench.board, bench.clock, bench.rig
    clock.advance(1.0)
    rig.faults.inject("tc_open")
    temp, cj, faults = b.temperature()[1:4]
    assert (temp, faults) == ("nan", "01")
    assert float(cj) == pytest.approx(26.5, abs=0.2)
    clock.advance(0.15)  # two conversions with the fault: not yet
    assert b.status()[0] == "OK"
    clock.advance(0.1)  # the third
    assert b.status()[:2] == ["TRIPPED", "tcfault"]
    assert b.ask("RESET") == "ERR STILL tcfault"
    rig.faults.clear("tc_open")
    clock.advance(0.1)
    assert b.temperature()[3] == "00"
    assert b.ask("RESET") == "OK RESET"


@pytest.mark.parametrize(("kind", "bits"), [("tc_short_gnd", "02"), ("tc_short_vcc", "04")])
def test_short_to_a_rail_sets_its_fault_bit(bench: Bench, kind: str, bits: str) -> None:
    bench.rig.faults.inject(kind)
    assert bench.board.temperature()[1:4:2] == ["nan", bits]
    bench.clock.advance(0.5)
    assert bench.board.status()[:2] == ["TRIPPED", "tcfault"]


@pytest.mark.parametrize("limits", ["100 200", "300 0", "100 -60", "50 50"])
def test_bad_limits_trip_and_reset_always_clears(bench: Bench, limits: str) -> None:
    b = bench.board
    assert b.ask(f"LIMITS {limits}") == "ERR TRIPPED limits"
    status = b.status()
    assert status[:2] == ["TRIPPED", "limits"]
    assert status[4:6] == ["200.00", "0.00"]  # the bad limits were not applied
    assert b.ask("RESET") == "OK RESET"


def test_a_checksum_storm_trips(bench: Bench) -> None:
    b, clock = bench.board, bench.clock
    for _ in range(4):
        assert b.raw(b"DUTY 1000 10000*0000") == frame("ERR CHECKSUM")
        clock.advance(2.0)
    assert b.status()[0] == "OK"  # 4 within 10 s: not yet
    b.raw(b"garbage")
    assert b.status()[:2] == ["TRIPPED", "checksum"]
    assert b.status()[-1] == "5"
    assert b.ask("DUTY 500 1000") == "ERR TRIPPED checksum"
    assert b.ask("RESET") == "OK RESET"


def test_corrupt_lines_spread_out_do_not_trip(bench: Bench) -> None:
    b, clock = bench.board, bench.clock
    for _ in range(8):
        b.raw(b"T?*FFFF")
        clock.advance(2.6)  # at most 4 in any 10 s
    assert b.status()[:2] == ["OK", "-"]
    assert b.status()[-1] == "8"


# ------------------------------------------------------------------ readings


def test_the_conversion_counter_and_frozen_readings(bench: Bench) -> None:
    b, clock, rig = bench.board, bench.clock, bench.rig
    first = int(b.temperature()[4])
    clock.advance(2.0)
    assert int(b.temperature()[4]) - first == 20  # a conversion every 100 ms
    b.ask("DUTY 1000 10000")
    rig.faults.inject("frozen")
    frozen = b.temperature()[1:5]
    clock.advance(5.0)
    assert b.temperature()[1:5] == frozen  # heating, but the reading does not move
    assert rig.heater.sensor > float(frozen[0]) + 3.0
    rig.faults.clear("frozen")
    now = b.temperature()
    assert int(now[4]) > int(frozen[3])
    assert float(now[1]) > float(frozen[0]) + 3.0


def test_readings_are_quantised_and_the_cold_junction_is_near_ambient(bench: Bench) -> None:
    b, clock = bench.board, bench.clock
    for _ in range(30):
        clock.advance(0.1)
        _, temp, cj, faults, _, _ = b.temperature()
        assert faults == "00"
        assert float(temp) * 4 == round(float(temp) * 4)
        assert float(cj) * 16 == round(float(cj) * 16)
        assert abs(float(temp) - 25.0) <= 0.5
        assert math.isclose(float(cj), 26.5, abs_tol=0.2)
