"""Both SCPI drivers against scripted instruments: exact command/response pairs.

The Keysight B2900 is not emulated by the software rig; these scripts, written from the
B2900 SCPI Command Reference, pin every byte the driver sends. The 2450's setup line is
pinned too (full paths after every ``;``).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import pytest
from expected_protocol import Script, UnexpectedRequest

from controller.clock import VirtualTimeLoop
from drivers.base import (
    GarbledReply,
    InstrumentReportedError,
    InstrumentTimeout,
    Measurement,
    OutOfRange,
    SourceFunction,
    SourceMeter,
    WrongInstrument,
)
from drivers.keithley2450 import Keithley2450
from drivers.keysight_b2900 import KeysightB2900
from drivers.transport import InProcessTransport

CURRENT = SourceFunction.CURRENT
VOLTAGE = SourceFunction.VOLTAGE
NO_ERROR = '+0,"No error"'
IDN_B2902A = "Keysight Technologies,B2902A,MY51140112,3.4.2011.5100"


def play(
    steps: list[tuple[str, str | None]],
    test: Callable[[SourceMeter], Awaitable[None]],
    *,
    driver: str = "b2900",
    channel: int = 1,
) -> Script:
    script = Script(steps)
    transport = InProcessTransport(script, name="scripted", timeout=1.0)
    smu: SourceMeter
    if driver == "b2900":
        smu = KeysightB2900(transport, channel=channel, current_max=0.1, voltage_max=20.0)
    else:
        smu = Keithley2450(transport, current_max=0.1, voltage_max=20.0)
    loop = VirtualTimeLoop()
    try:
        loop.run_until_complete(test(smu))
    finally:
        loop.close()
    script.finished()
    return script


B2900_GALVANOSTAT_CH2 = (
    ":OUTP2:OFF:MODE HIZ;:OUTP2 OFF;:SOUR2:FUNC:MODE CURR;:SOUR2:CURR:RANG:AUTO OFF;"
    ":SOUR2:CURR 0;:SOUR2:CURR:RANG 1.000000E-02;:SENS2:VOLT:PROT 2.500000E+00;"
    ':SENS2:FUNC "VOLT","CURR";:SENS2:VOLT:RANG:AUTO ON;:SENS2:REM ON;'
    ":SENS2:VOLT:NPLC 2;:SENS2:CURR:NPLC 2;:FORM:ELEM:SENS VOLT,CURR,TIME"
)
B2900_GALVANOSTAT_CH1 = (
    ":OUTP1:OFF:MODE HIZ;:OUTP1 OFF;:SOUR1:FUNC:MODE CURR;:SOUR1:CURR:RANG:AUTO OFF;"
    ":SOUR1:CURR 0;:SOUR1:CURR:RANG 1.000000E-03;:SENS1:VOLT:PROT 2.000000E+00;"
    ':SENS1:FUNC "VOLT","CURR";:SENS1:VOLT:RANG:AUTO ON;:SENS1:REM ON;'
    ":SENS1:VOLT:NPLC 1;:SENS1:CURR:NPLC 1;:FORM:ELEM:SENS VOLT,CURR,TIME"
)


def test_b2900_galvanostat_on_channel_two() -> None:
    async def test(smu: SourceMeter) -> None:
        ident = await smu.identify()
        assert (ident.vendor, ident.model) == ("Keysight Technologies", "B2902A")
        await smu.configure(CURRENT, compliance=2.5, source_range=2e-3, nplc=2.0)
        await smu.set_level(-1.5e-3)
        await smu.output_on()
        reading = await smu.read()
        assert reading == Measurement(voltage=-0.1502, current=-1.5e-3, time=12.5)
        assert not await smu.compliance_tripped()
        await smu.output_off()

    play(
        [
            ("*IDN?", IDN_B2902A),
            (B2900_GALVANOSTAT_CH2, None),
            (":SYST:ERR?", NO_ERROR),
            (":SOUR2:CURR -1.5000000E-03", None),
            (":OUTP2 ON", None),
            (":MEAS? (@2)", "-1.502000E-01,-1.500000E-03,+1.250000E+01"),
            (":SENS2:VOLT:PROT:TRIP?", "0"),
            (":OUTP2:OFF:MODE HIZ;:OUTP2 OFF", None),
            (":OUTP2?", "0"),
        ],
        test,
        channel=2,
    )


def test_b2900_potentiostat_reads_voltage_current_time_in_the_same_order() -> None:
    async def test(smu: SourceMeter) -> None:
        await smu.configure(VOLTAGE, compliance=1e-3, source_range=0.5, remote_sense=False)
        await smu.set_level(0.5)
        await smu.output_on()
        reading = await smu.read()
        assert (reading.voltage, reading.current) == (0.5, 1e-3)
        assert reading.time == 3.0
        assert await smu.compliance_tripped()
        over = await smu.read()  # a value that does not exist: +9.91E+37
        assert over.current == math.inf

    play(
        [
            (
                ":OUTP1:OFF:MODE HIZ;:OUTP1 OFF;:SOUR1:FUNC:MODE VOLT;:SOUR1:VOLT:RANG:AUTO OFF;"
                ":SOUR1:VOLT 0;:SOUR1:VOLT:RANG 2.000000E+00;:SENS1:CURR:PROT 1.000000E-03;"
                ':SENS1:FUNC "VOLT","CURR";:SENS1:CURR:RANG:AUTO ON;:SENS1:REM OFF;'
                ":SENS1:VOLT:NPLC 1;:SENS1:CURR:NPLC 1;:FORM:ELEM:SENS VOLT,CURR,TIME",
                None,
            ),
            (":SYST:ERR?", NO_ERROR),
            (":SOUR1:VOLT 5.0000000E-01", None),
            (":OUTP1 ON", None),
            (":MEAS? (@1)", "+5.000000E-01,+1.000000E-03,+3.000000E+00"),
            (":SENS1:CURR:PROT:TRIP?", "1"),
            (":MEAS? (@1)", "+5.000000E-01,+9.910000E+37,+4.000000E+00"),
        ],
        test,
    )


def test_b2900_wrong_identity_and_missing_channel() -> None:
    async def keithley(smu: SourceMeter) -> None:
        with pytest.raises(WrongInstrument, match="not a Keysight B2900"):
            await smu.identify()

    play([("*IDN?", "KEITHLEY INSTRUMENTS,MODEL 2450,04412345,1.7.12b")], keithley)

    async def one_channel(smu: SourceMeter) -> None:
        with pytest.raises(WrongInstrument, match="no channel 2") as refused:
            await smu.identify()
        assert "smu.channel" in refused.value.hint

    play([("*IDN?", "Agilent Technologies,B2901A,MY1,2.0")], one_channel, channel=2)


def test_b2900_error_after_setup_carries_code_and_text() -> None:
    async def test(smu: SourceMeter) -> None:
        with pytest.raises(InstrumentReportedError) as reported:
            await smu.configure(CURRENT, compliance=2.5, source_range=2e-3, nplc=2.0)
        assert (reported.value.code, reported.value.text) == (-222, "Data out of range")

    play(
        [
            (B2900_GALVANOSTAT_CH2, None),
            (":SYST:ERR?", '-222,"Data out of range"'),
            (":SYST:ERR?", NO_ERROR),
        ],
        test,
        channel=2,
    )


def test_b2900_validates_before_sending() -> None:
    async def test(smu: SourceMeter) -> None:
        with pytest.raises(OutOfRange):
            await smu.configure(CURRENT, compliance=50.0, source_range=1e-3)  # rig: 20 V
        with pytest.raises(OutOfRange):
            await smu.configure(CURRENT, compliance=2.0, source_range=5.0)
        with pytest.raises(OutOfRange):
            await smu.configure(VOLTAGE, compliance=0.5, source_range=1.0)  # rig: 0.1 A

    play([], test)  # the script is empty: any request would fail the test
    with pytest.raises(OutOfRange):
        KeysightB2900(InProcessTransport(Script([])), channel=3)


def test_b2900_timeout_then_resync_on_the_marker() -> None:
    async def test(smu: SourceMeter) -> None:
        await smu.configure(CURRENT, compliance=2.0, source_range=1e-3)
        with pytest.raises(InstrumentTimeout):
            await smu.read()
        assert (await smu.read()).voltage == 0.1

    play(
        [
            (B2900_GALVANOSTAT_CH1, None),
            (":SYST:ERR?", NO_ERROR),
            (":MEAS? (@1)", None),  # no reply
            ("*OPC?;*OPC?", "1;1"),
            (":MEAS? (@1)", "+1.000000E-01,+1.000000E-03,+5.000000E+00"),
        ],
        test,
    )


def test_b2900_garbled_measurement() -> None:
    async def test(smu: SourceMeter) -> None:
        await smu.configure(CURRENT, compliance=2.0, source_range=1e-3)
        with pytest.raises(GarbledReply):
            await smu.read()

    play(
        [
            (B2900_GALVANOSTAT_CH1, None),
            (":SYST:ERR?", NO_ERROR),
            (":MEAS? (@1)", "+1.0E-01,+1.0E-03"),
        ],
        test,
    )


def test_keithley_2450_setup_line_is_pinned() -> None:
    async def test(smu: SourceMeter) -> None:
        await smu.configure(CURRENT, compliance=2.0, source_range=1e-3, nplc=0.5)
        await smu.set_level(1e-3)

    play(
        [
            (
                ":OUTP:CURR:SMOD HIMP;:OUTP:VOLT:SMOD HIMP;:OUTP OFF;:SOUR:FUNC CURR;"
                ":SOUR:CURR:LEV 0;:SOUR:CURR:RANG 1.000000E-03;:SOUR:CURR:VLIM 2.000000E+00;"
                ':SOUR:CURR:READ:BACK ON;:SENS:FUNC "VOLT";:SENS:VOLT:RANG:AUTO ON;'
                ":SENS:VOLT:RSEN ON;:SENS:CURR:RSEN ON;:SENS:VOLT:NPLC 0.5;:SENS:CURR:NPLC 0.5",
                None,
            ),
            (":SYST:ERR?", '0,"No error;0;0 0"'),
            (":SOUR:CURR:LEV 1.0000000E-03", None),
        ],
        test,
        driver="2450",
    )


def test_the_script_fails_on_anything_unexpected() -> None:
    async def test(smu: SourceMeter) -> None:
        await smu.output_on()

    with pytest.raises(Exception, match="not configured"):
        play([], test)

    async def stray(smu: SourceMeter) -> None:
        await smu.identify()

    with pytest.raises(UnexpectedRequest, match="expected '\\*OPC\\?'"):
        play([("*OPC?", "1")], stray)


def test_b2900_found_sourcing_reads_state_mode_and_level_of_its_channel() -> None:
    async def test(smu: SourceMeter) -> None:
        assert await smu.found_sourcing() == (SourceFunction.VOLTAGE, 0.25)
        assert await smu.found_sourcing() is None
        with pytest.raises(GarbledReply, match="source mode 'RES'"):
            await smu.found_sourcing()

    play(
        [
            (":OUTP2?", "1"),
            (":SOUR2:FUNC:MODE?", "VOLT"),
            (":SOUR2:VOLT?", "+2.500000E-01"),
            (":OUTP2?", "0"),
            (":OUTP2?", "1"),
            (":SOUR2:FUNC:MODE?", "RES"),
        ],
        test,
        channel=2,
    )
