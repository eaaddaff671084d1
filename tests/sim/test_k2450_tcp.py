"""The Keithley 2450 emulator driven with raw SCPI over TCP, as a plain socket client.

The cell is an ohmic fixture (R, OCV) so every expected value is exact up to the
instrument's noise (a few ppm of range).
"""

from __future__ import annotations

import re
import select
import socket
from collections.abc import Iterator

import pytest
from firmware_sim.ohmic import OhmicCell
from firmware_sim.rig import VIRTUAL_EPOCH, ManualClock, SimRig
from firmware_sim.serve import SimServer, serve_in_thread

pytestmark = pytest.mark.wire


class ScpiClient:
    """Newline-terminated SCPI over a socket, nothing else."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=2.0)
        self.file = self.sock.makefile("rb")

    def write(self, line: str) -> None:
        self.sock.sendall(line.encode("ascii") + b"\n")

    def send(self, line: str) -> None:
        """Write, then wait until the instrument has processed it (``*OPC?``)."""
        self.write(line)
        assert self.query("*OPC?") == "1"

    def query(self, line: str) -> str:
        self.write(line)
        return self.file.readline().decode("ascii").rstrip("\n")

    def errors(self) -> list[str]:
        out = []
        while (e := self.query(":SYST:ERR?")) != '0,"No error;0;0 0"':
            out.append(e)
            assert len(out) < 50
        return out

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class Bench:
    def __init__(self, rig: SimRig, clock: ManualClock, server: SimServer) -> None:
        self.rig, self.clock, self.server = rig, clock, server
        self.smu = ScpiClient(server.tcp.port)


def bench_with(cell: OhmicCell) -> Iterator[Bench]:
    clock = ManualClock()
    rig = SimRig(clock, cell=cell, seed=7)
    with serve_in_thread(rig) as server:
        bench = Bench(rig, clock, server)
        try:
            yield bench
        finally:
            bench.smu.close()


@pytest.fixture
def bench() -> Iterator[Bench]:
    yield from bench_with(OhmicCell(resistance=100.0, ocv=0.0))


def floats(reply: str) -> list[float]:
    return [float(x) for x in reply.split(",")]


def galvanostat(smu: ScpiClient, current: float, vlim: float = 5.0) -> None:
    smu.send(
        f":SOUR:FUNC CURR;:SOUR:CURR {current:g};:SOUR:CURR:VLIM {vlim:g};"
        ':SENS:FUNC "VOLT";:SENS:VOLT:RSEN ON;:OUTP ON'
    )


# ------------------------------------------------------------------ identity


def test_identity_language_and_power_on_defaults(bench: Bench) -> None:
    smu = bench.smu
    assert smu.query("*IDN?") == "KEITHLEY INSTRUMENTS,MODEL 2450,04412345,1.7.12b"
    assert smu.query("*LANG?") == "SCPI"
    assert smu.query(":SOUR:FUNC?") == "VOLT"
    assert smu.query(":SENS:FUNC?") == '"CURR:DC"'
    assert floats(smu.query(":SOUR:CURR:VLIM?")) == [21.0]
    assert floats(smu.query(":SOUR:VOLT:ILIM?")) == [105e-6]
    assert smu.query(":OUTP?") == "0"
    assert smu.query(":OUTP:CURR:SMOD?") == "NORM"  # the real default: NORMal, not HIMP
    assert smu.query(":OUTP:VOLT:SMOD?") == "NORM"
    assert smu.query(":SENS:VOLT:RSEN?") == "0"
    assert floats(smu.query(":SENS:VOLT:NPLC?")) == [1.0]
    assert smu.query(":SOUR:CURR:RANG:AUTO?") == "1"
    assert smu.errors() == []


def test_reset_restores_defaults_but_keeps_the_error_queue(bench: Bench) -> None:
    smu = bench.smu
    smu.send(":SOUR:FUNC CURR;:OUTP:SMOD HIMP;:OUTP ON;:BOGUS")
    smu.send("*RST")
    assert smu.query(":SOUR:FUNC?;:OUTP?;:OUTP:CURR:SMOD?") == "VOLT;0;NORM"
    assert [e.split(",")[0] for e in smu.errors()] == ["-113"]


# ----------------------------------------------------------------- the syntax


def test_long_short_forms_and_semicolon_chains(bench: Bench) -> None:
    smu = bench.smu
    smu.send(":SOURce:FUNCtion CURRent;:SOURce:CURRent:LEVel 1.5e-3;VLIMit 2.5")
    assert smu.query(":sour:curr:lev?;vlim?") == "1.500000E-03;2.500000E+00"
    assert smu.query(":SOUR:CURR?") == "1.500000E-03"
    smu.send("sour1:curr:lev:imm:ampl 2mA")
    assert smu.query(":SOURCE:CURRENT:LEVEL?") == "2.000000E-03"
    smu.send(':sense:function "voltage"')
    assert smu.query(":FUNC?") == '"VOLT:DC"'  # [:SENSe] is the optional root
    smu.send(":OUTPut:STATe ON")
    assert smu.query("OUTP?") == "1"
    # a command after ';' without a colon continues at the same level:
    smu.send(":SOUR:CURR 1e-3;VLIM 3")  # is :SOUR:VLIM, which does not exist
    assert floats(smu.query(":SOUR:CURR:VLIM?")) == [2.5]
    assert [e.split(",")[0] for e in smu.errors()] == ["-113"]
    assert smu.errors() == []


def test_the_error_queue_reports_in_order_with_event_type_and_time(bench: Bench) -> None:
    smu = bench.smu
    bench.clock.advance(12.25)
    smu.write(":SOUR:CURR:BOGUS 1")
    smu.write(":SOUR:CURR:VLIM 500")
    smu.write(":SOUR:FUNC")
    smu.write(":OUTP ON,OFF")
    smu.write(":SOUR2:FUNC CURR")
    smu.write(":SOUR:CURR 1 V")
    errors = smu.errors()
    assert [e.split(";")[0] for e in errors] == [
        '-113,"Undefined header',
        '-222,"Parameter data out of range',
        '-109,"Missing parameter',
        '-108,"Parameter not allowed',
        '-114,"Header suffix out of range',
        '-131,"Invalid suffix',
    ]
    for e in errors:
        assert re.fullmatch(r'-\d+,"[A-Za-z ]+;1;2026/01/01 00:00:12\.250"', e), e
    assert smu.query(":SYST:ERR:NEXT?") == '0,"No error;0;0 0"'
    smu.write(":BOGUS")
    smu.write(":BOGUS")
    assert smu.query(":SYST:ERR:COUN?") == "2"
    smu.send("*CLS")
    assert smu.query(":SYST:ERR:COUN?") == "0"


def test_a_command_error_drops_the_rest_of_the_line_an_execution_error_does_not(
    bench: Bench,
) -> None:
    smu = bench.smu
    smu.send(":BOGUS;:OUTP ON")
    assert smu.query(":OUTP?") == "0"
    smu.send(":SOUR:CURR:VLIM 500;:OUTP ON")
    assert smu.query(":OUTP?") == "1"
    assert [e[:4] for e in smu.errors()] == ["-113", "-222"]


def test_a_query_in_error_answers_nothing(bench: Bench) -> None:
    smu = bench.smu
    smu.write(":SOUR:CURR:BOGUS?")
    readable, _, _ = select.select([smu.sock], [], [], 0.3)
    assert readable == []  # no reply: the host's read times out
    assert smu.query("*IDN?").startswith("KEITHLEY")
    assert smu.errors()[0].startswith("-113")


# ------------------------------------------------------------- source/measure


def test_galvanostat_reads_the_cell_four_wire_and_two_wire(bench: Bench) -> None:
    smu = bench.smu
    galvanostat(smu, 1e-3)
    v, i = floats(smu.query(':READ? "defbuffer1", READ, SOUR'))
    assert v == pytest.approx(0.1, abs=2e-5)  # 1 mA · 100 Ω at the cell
    assert i == pytest.approx(1e-3, abs=5e-9)
    smu.send(":SENS:VOLT:RSEN OFF")  # 2-wire: the leads' 0.2 Ω add
    (v,) = floats(smu.query(":READ?"))
    assert v == pytest.approx(0.1002, abs=2e-5)
    assert smu.query(":SOUR:CURR:VLIM:TRIP?") == "0"


def test_voltage_limit_clamps_and_trips(bench: Bench) -> None:
    smu = bench.smu
    galvanostat(smu, 50e-3, vlim=2.0)  # 50 mA · 100 Ω = 5 V > 2 V
    v, i = floats(smu.query(':READ? "defbuffer1", READ, SOUR'))
    assert v == pytest.approx(2.0, abs=1e-4)
    assert i == pytest.approx(20e-3, abs=1e-6)  # what the cell draws at 2 V
    assert smu.query(":SOUR:CURR:VLIM:TRIP?") == "1"
    smu.send(":SOUR:CURR 1e-3")
    assert smu.query(":SOUR:CURR:VLIM:TRIP?") == "0"
    assert floats(smu.query(":READ?"))[0] == pytest.approx(0.1, abs=2e-5)


def test_current_limit_clamps_in_voltage_mode(bench: Bench) -> None:
    smu = bench.smu
    smu.send(':SOUR:FUNC VOLT;:SOUR:VOLT 1;:SOUR:VOLT:ILIM 1e-3;:SENS:FUNC "CURR";:OUTP ON')
    i, v = floats(smu.query(':READ? "defbuffer1", READ, SOUR'))
    assert i == pytest.approx(1e-3, abs=1e-8)
    assert v == pytest.approx(0.1002, abs=1e-5)  # readback: 1 mA · (100 Ω + 0.2 Ω leads)
    assert smu.query(":SOUR:VOLT:ILIM:TRIP?") == "1"
    smu.send(":SOUR:VOLT 0.05")
    assert floats(smu.query(":READ?"))[0] == pytest.approx(0.05 / 100.2, abs=1e-8)
    assert smu.query(":SOUR:VOLT:ILIM:TRIP?") == "0"


def test_a_fixed_range_overflows_to_9_9e37(bench: Bench) -> None:
    smu = bench.smu
    galvanostat(smu, 1e-3)
    smu.send(":SENS:VOLT:RANG 0.02")
    assert smu.query(":SENS:VOLT:RANG:AUTO?") == "0"
    value, status = smu.query(':READ? "defbuffer1", READ, STAT').split(",")
    assert float(value) == 9.9e37
    assert int(status) & 1  # questionable
    smu.send(":SENS:VOLT:RANG 2")
    assert floats(smu.query(":READ?"))[0] == pytest.approx(0.1, abs=2e-5)


def test_source_range_limits_the_level_unless_autoranging(bench: Bench) -> None:
    smu = bench.smu
    smu.send(":SOUR:FUNC CURR;:SOUR:CURR:RANG 5e-3")  # picks the 10 mA range
    assert smu.query(":SOUR:CURR:RANG?;RANG:AUTO?") == "1.000000E-02;0"
    smu.send(":SOUR:CURR 20e-3")
    assert smu.errors()[0].startswith("-222")
    smu.send(":SOUR:CURR:RANG:AUTO ON;:SOUR:CURR 20e-3")
    assert smu.query(":SOUR:CURR:RANG?") == "1.000000E-01"
    assert smu.errors() == []


# ------------------------------------------------------------ output-off modes


@pytest.fixture
def charged_cell_bench() -> Iterator[Bench]:
    yield from bench_with(OhmicCell(resistance=100.0, ocv=0.5, capacitance=10.0))


@pytest.mark.parametrize(("mode", "discharges"), [("NORM", True), ("HIMP", False)])
def test_output_off_normal_discharges_the_cell_himp_does_not(
    charged_cell_bench: Bench, mode: str, discharges: bool
) -> None:
    bench = charged_cell_bench
    smu = bench.smu
    # a 0 A rest on the 1 mA range measures the open-circuit voltage
    smu.send(f":SOUR:FUNC CURR;:SOUR:CURR:RANG 1e-3;:SOUR:CURR 0;:OUTP:CURR:SMOD {mode};:OUTP ON")
    smu.send(':SENS:FUNC "VOLT";:SENS:VOLT:RSEN ON')
    assert floats(smu.query(":READ?"))[0] == pytest.approx(0.5, abs=1e-4)
    smu.send(':OUTP OFF;:SENS:FUNC "CURR"')
    bench.clock.advance(3600.0)
    (i_off,) = floats(smu.query(":READ?"))
    if discharges:
        # NORMal: 0 V source, limit 10 % of the 1 mA range; the cell pushes 5 mA
        assert i_off == pytest.approx(-1e-4, abs=1e-8)
    else:
        assert abs(i_off) < 1e-10  # the relay is open: noise on the lowest range
    smu.send(':SENS:FUNC "VOLT";:OUTP ON')
    (ocv,) = floats(smu.query(":READ?"))
    expected = 0.5 - 1e-4 * 3600 / 10.0 if discharges else 0.5
    assert ocv == pytest.approx(expected, abs=1e-4)
    # the cell's own convention: discharging its +0.5 V plates the working electrode
    assert bench.rig.charge == pytest.approx(0.36 if discharges else 0.0, abs=1e-6)


def test_output_off_modes_are_kept_per_source_function(bench: Bench) -> None:
    smu = bench.smu
    smu.send(":OUTP:CURR:SMOD HIMPedance;:OUTP:VOLT:SMOD ZERO")
    assert smu.query(":OUTP:CURR:SMOD?;:OUTP:VOLT:SMOD?") == "HIMP;ZERO"
    smu.send(":SOUR:FUNC CURR")
    assert smu.query(":OUTP:SMOD?") == "HIMP"
    smu.send(":OUTP:SMOD GUAR")  # without a function: all of them
    assert smu.query(":OUTP:CURR:SMOD?;:OUTP:VOLT:SMOD?") == "GUAR;GUAR"
    smu.send(":OUTP:SMOD BOGUS")
    assert smu.errors()[0].startswith("-141")


# ------------------------------------------------------------- buffer elements


def test_read_element_lists_fetch_and_the_buffer(bench: Bench) -> None:
    smu = bench.smu
    galvanostat(smu, 1e-3)
    bench.clock.advance(100.5)
    first = smu.query(
        ':READ? "defbuffer1", READ, SOUR, REL, SEC, FRAC, UNIT, SOURUNIT, SOURSTAT, STAT'
    ).split(",")
    assert float(first[0]) == pytest.approx(0.1, abs=2e-5)
    assert float(first[1]) == pytest.approx(1e-3, abs=5e-9)
    assert float(first[2]) == 0.0  # relative to the first reading in the buffer
    assert int(first[3]) == int(VIRTUAL_EPOCH) + 100
    assert float(first[4]) == pytest.approx(0.5)
    assert first[5:7] == ["Volt DC", "Amp DC"]
    assert int(first[7]) == 128 | 64 | 8  # output on, 4-wire, readback
    assert first[8] == "0"
    bench.clock.advance(2.0)
    rel, tstamp = smu.query(':READ? "defbuffer1", REL, TST').split(",")
    assert float(rel) == pytest.approx(2.0)
    assert tstamp == "01/01/2026 00:01:42.500000000"
    assert smu.query(":FETC?") == smu.query(':FETCh? "defbuffer1", READ')
    assert smu.query(":TRAC:ACT?") == "2"
    data = floats(smu.query(':TRAC:DATA? 1, 2, "defbuffer1", REL, READ'))
    assert data[0] == 0.0
    assert data[2] == pytest.approx(2.0)
    smu.send(":TRAC:CLE")
    assert smu.query(":TRAC:ACT?") == "0"
    smu.send(":TRAC:POIN 10")
    assert smu.query(":TRAC:POIN?") == "10"
    smu.write(":FETC?")
    smu.write(':READ? "nobuffer"')
    smu.write(":READ? 'defbuffer1', BOGUS")
    assert [e[:4] for e in smu.errors()] == ["-230", "-224", "-141"]


def test_compliance_shows_in_the_source_status(bench: Bench) -> None:
    smu = bench.smu
    galvanostat(smu, 50e-3, vlim=2.0)
    _, status = smu.query(':READ? "defbuffer1", READ, SOURSTAT').split(",")
    assert int(status) & 32  # source function level was limited
