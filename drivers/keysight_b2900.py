"""Keysight (Agilent) B2900 precision source/measure units, one channel, in SCPI.

The second dialect behind :class:`SourceMeter` (B2900 SCPI Command Reference): the
channel is a suffix (``:SOUR2:FUNC:MODE CURR``), the compliance lives in the sense
subsystem (``:SENS1:VOLT:PROT 2``, ``…:PROT:TRIP?``), remote sense is one switch per
channel (``:SENS1:REM ON``), the output-off state is ``:OUTP1:OFF:MODE HIZ`` (the relay
opens; ZERO and NORMal would hold the cell at 0 V), and ``:MEAS? (@1)`` returns what
``:FORM:ELEM:SENS VOLT,CURR,TIME`` asks for, whichever function sources. A value that
does not exist reads ``+9.910000E+37``. Same rules as the 2450 driver: no ``*RST`` on a
live cell, a fixed source range, validators before sending, the error queue read after
the setup, a resync marker after a timeout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from drivers.base import (
    GarbledReply,
    Identity,
    InstrumentError,
    InstrumentReportedError,
    Measurement,
    OutOfRange,
    SourceFunction,
    SourceMeter,
    WrongInstrument,
)
from drivers.keithley2450 import parse_error, range_for
from drivers.transport import Transport

VENDORS = ("KEYSIGHT TECHNOLOGIES", "AGILENT TECHNOLOGIES")
#: model → channels
MODELS = {
    "B2901A": 1,
    "B2902A": 2,
    "B2911A": 1,
    "B2912A": 2,
    "B2901B": 1,
    "B2902B": 2,
    "B2911B": 1,
    "B2912B": 2,
}
CURRENT_RANGES = (10e-9, 100e-9, 1e-6, 10e-6, 100e-6, 1e-3, 10e-3, 100e-3, 1.0, 1.5)
VOLTAGE_RANGES = (0.2, 2.0, 20.0, 200.0)
OVERRANGE = 1.01  # a DC level may reach 101 % of its range (1.515 A on 1.5 A)
#: the driver's compliance bounds (the manual: "from the minimum to the maximum
#: measurement value of the channel")
VOLTAGE_COMPLIANCE = (0.1, 210.0)
CURRENT_COMPLIANCE = (1e-8, 1.515)
NPLC = (0.01, 10.0)  # the driver's (the instrument accepts down to 4e-4)
NOT_A_NUMBER = 9.9e37
ERROR_QUEUE = 100
MARKER = ("*OPC?;*OPC?", "1;1")


@dataclass(frozen=True, slots=True)
class _Commands:
    function: SourceFunction
    ranges: tuple[float, ...]
    limit_bounds: tuple[float, float]
    unit: str
    limit_unit: str
    level: str
    configure: str
    trip: str


def _table(channel: int) -> dict[SourceFunction, _Commands]:
    n = channel
    off = f":OUTP{n}:OFF:MODE HIZ;:OUTP{n} OFF"

    def setup(src: str, limit: str) -> str:
        return (
            f"{off};:SOUR{n}:FUNC:MODE {src};:SOUR{n}:{src}:RANG:AUTO OFF;:SOUR{n}:{src} 0;"
            f":SOUR{n}:{src}:RANG {{range:.6E}};:SENS{n}:{limit}:PROT {{limit:.6E}};"
            f':SENS{n}:FUNC "VOLT","CURR";:SENS{n}:{limit}:RANG:AUTO ON;'
            f":SENS{n}:REM {{rsen}};:SENS{n}:VOLT:NPLC {{nplc:g}};:SENS{n}:CURR:NPLC {{nplc:g}};"
            ":FORM:ELEM:SENS VOLT,CURR,TIME"
        )

    return {
        SourceFunction.CURRENT: _Commands(
            SourceFunction.CURRENT,
            CURRENT_RANGES,
            VOLTAGE_COMPLIANCE,
            "A",
            "V",
            f":SOUR{n}:CURR {{:.7E}}",
            setup("CURR", "VOLT"),
            f":SENS{n}:VOLT:PROT:TRIP?",
        ),
        SourceFunction.VOLTAGE: _Commands(
            SourceFunction.VOLTAGE,
            VOLTAGE_RANGES,
            CURRENT_COMPLIANCE,
            "V",
            "A",
            f":SOUR{n}:VOLT {{:.7E}}",
            setup("VOLT", "CURR"),
            f":SENS{n}:CURR:PROT:TRIP?",
        ),
    }


def _number(text: str) -> float:
    value = float(text)
    if value >= NOT_A_NUMBER or value <= -NOT_A_NUMBER:
        return math.copysign(math.inf, value)
    return value


class KeysightB2900(SourceMeter):
    """Channel ``channel`` (1 or 2) of a B2900 over any :class:`Transport`."""

    def __init__(
        self,
        transport: Transport,
        *,
        channel: int = 1,
        current_max: float = CURRENT_COMPLIANCE[1],
        voltage_max: float = VOLTAGE_COMPLIANCE[1],
    ) -> None:
        if channel not in (1, 2):
            raise OutOfRange(f"B2900 channel {channel} does not exist", "smu.channel: 1 or 2")
        self.transport = transport
        self.channel = channel
        self.current_max = current_max
        self.voltage_max = voltage_max
        self._commands = _table(channel)
        self._measure = f":MEAS? (@{channel})"
        self._off = f":OUTP{channel}:OFF:MODE HIZ;:OUTP{channel} OFF"
        self._on = f":OUTP{channel} ON"
        self._state = f":OUTP{channel}?"
        self._table: _Commands | None = None
        self._level_max = 0.0
        self.range = 0.0
        self.compliance = 0.0

    @property
    def function(self) -> SourceFunction | None:
        return self._table.function if self._table else None

    async def identify(self) -> Identity:
        reply = await self._query("*IDN?")
        fields = [f.strip() for f in reply.split(",")]
        if len(fields) != 4 or not reply.isprintable():
            self.transport.desynced = True
            raise GarbledReply(f"{self.transport.name}: *IDN? answered {reply!r}")
        vendor, model, serial, firmware = fields
        if vendor.upper() not in VENDORS or model.upper() not in MODELS:
            raise WrongInstrument(
                f"{self.transport.name} is a {vendor} {model}, not a Keysight B2900",
                "check smu.driver and smu.resource in the rig file",
            )
        if self.channel > MODELS[model.upper()]:
            raise WrongInstrument(
                f"{self.transport.name}: the {model} has no channel {self.channel}",
                "smu.channel: 1 (only the B29x2 models have two channels)",
            )
        return Identity(vendor, model, serial, firmware)

    async def configure(
        self,
        function: SourceFunction,
        *,
        compliance: float,
        source_range: float,
        nplc: float = 1.0,
        remote_sense: bool = True,
    ) -> None:
        table = self._commands[SourceFunction(function)]
        low, high = table.limit_bounds
        rig_max = self.voltage_max if table.limit_unit == "V" else self.current_max
        what = "voltage" if table.limit_unit == "V" else "current"
        if not (low <= compliance <= min(high, rig_max)):
            raise OutOfRange(
                f"compliance {compliance:g} {table.limit_unit} is outside "
                f"{low:g}…{min(high, rig_max):g} {table.limit_unit}",
                f"the B2900 driver allows {low:g}…{high:g} {table.limit_unit}; the rig "
                f"smu.{what}_max = {rig_max:g} {table.limit_unit}",
            )
        if not (0 < source_range <= table.ranges[-1]):
            raise OutOfRange(
                f"source range {source_range:g} {table.unit} is outside "
                f"{table.ranges[0]:g}…{table.ranges[-1]:g} {table.unit}"
            )
        if not (NPLC[0] <= nplc <= NPLC[1]):
            raise OutOfRange(f"NPLC {nplc:g} is outside {NPLC[0]:g}…{NPLC[1]:g}", "smu.nplc")
        fixed = range_for(source_range, table.ranges)
        self._table = None
        await self._write(
            table.configure.format(
                range=fixed, limit=compliance, rsen="ON" if remote_sense else "OFF", nplc=nplc
            )
        )
        errors = await self.drain_errors()
        if errors:
            code, text = errors[0]
            raise InstrumentReportedError(
                code, text, "the B2900's error queue was not empty after its setup"
            )
        level_max = self.current_max if table.unit == "A" else self.voltage_max
        self._table = table
        self.range = fixed
        self.compliance = compliance
        self._level_max = min(fixed * OVERRANGE, level_max)

    async def set_level(self, value: float) -> None:
        table = self._configured()
        if not (abs(value) <= self._level_max):
            raise OutOfRange(
                f"source level {value:g} {table.unit} is beyond ±{self._level_max:g} "
                f"{table.unit} (the {self.range:g} {table.unit} range and the rig's limit)",
                "configure a larger source range, or ask for less",
            )
        await self._write(table.level.format(value))

    async def output_on(self) -> None:
        self._configured()
        await self._write(self._on)

    async def output_off(self) -> None:
        await self._write(self._off)
        state = await self._query(self._state)
        if state != "0":
            self.transport.desynced = True
            raise GarbledReply(
                f"{self.transport.name}: channel {self.channel} output still {state!r}",
                "switch the output off at the instrument (front panel On/Off key)",
            )

    async def read(self) -> Measurement:
        self._configured()
        reply = await self._query(self._measure)
        parts = reply.split(",")
        try:
            if len(parts) != 3:
                raise ValueError
            return Measurement(_number(parts[0]), _number(parts[1]), float(parts[2]))
        except ValueError:
            self.transport.desynced = True
            raise GarbledReply(
                f"{self.transport.name}: {self._measure} answered {reply[:80]!r}"
            ) from None

    async def compliance_tripped(self) -> bool:
        table = self._configured()
        reply = await self._query(table.trip)
        if reply in ("1", "0"):
            return reply == "1"
        self.transport.desynced = True
        raise GarbledReply(f"{self.transport.name}: {table.trip} answered {reply[:80]!r}")

    async def found_sourcing(self) -> tuple[SourceFunction, float] | None:
        n = self.channel
        state = await self._query(self._state)
        if state == "0":
            return None
        mode = await self._query(f":SOUR{n}:FUNC:MODE?")
        function = {"CURR": SourceFunction.CURRENT, "VOLT": SourceFunction.VOLTAGE}.get(mode)
        if state != "1" or function is None:
            self.transport.desynced = True
            raise GarbledReply(
                f"{self.transport.name}: output state {state!r}, source mode {mode!r}"
            )
        level = await self._query(f":SOUR{n}:{mode}?")
        try:
            return function, _number(level)
        except ValueError:
            self.transport.desynced = True
            raise GarbledReply(f"{self.transport.name}: source level {level[:80]!r}") from None

    async def drain_errors(self) -> list[tuple[int, str]]:
        errors: list[tuple[int, str]] = []
        for _ in range(ERROR_QUEUE + 1):
            code, text = parse_error(await self._query(":SYST:ERR?"))
            if code == 0:
                return errors
            errors.append((code, text))
        raise GarbledReply(f"{self.transport.name}: the error queue does not run dry")

    async def close(self) -> None:
        await self.transport.close()

    def _configured(self) -> _Commands:
        if self._table is None:
            raise InstrumentError(
                f"{self.transport.name}: channel {self.channel} is not configured",
                "call configure() first (after every reconnect)",
            )
        return self._table

    async def _query(self, line: str) -> str:
        if self.transport.desynced:
            await self.transport.resync(*MARKER)
        return await self.transport.query(line)

    async def _write(self, line: str) -> None:
        if self.transport.desynced:
            await self.transport.resync(*MARKER)
        await self.transport.write(line)
