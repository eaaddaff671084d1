"""Keithley 2450 SourceMeter in SCPI mode, as a galvanostat or a potentiostat.

Written like a pymeasure driver: a table of SCPI command strings (precomputed; full paths
after every ``;``, because ``:SOUR:CURR 1e-3;VLIM 2`` is read as ``:SOUR:VLIM``) and
validators that raise :class:`OutOfRange` before anything is sent — never clip. Replies
are parsed with plain ``str`` methods: the in-process path runs ~700 000 reads in a
virtual-time campaign, so every microsecond counts.

What the real instrument does and this driver therefore does (2450 Reference Manual,
2450-901-01):

- ``*LANG?`` must be ``SCPI``: in ``TSP`` or ``SCPI2400`` the SCPI commands fail, and the
  language only changes at the next power cycle.
- No ``*RST`` in :meth:`configure`: a reset would set the output-off mode back to NORMal
  under a live cell. The output-off mode is HIMPedance for *both* source functions (the
  mode is kept per function; NORMal sources 0 V and discharges the cell).
- The source range is fixed: autoranging a 0 A source drops to the 10 nA range.
- Remote sense is a setting of each measure function: both are set.
- A query in error gets no reply (the host times out) and leaves the error in the queue.
  After a timeout a late reply may still arrive: the next request first resynchronises on
  a marker query (``*LANG?;*OPC?`` → ``SCPI;1``) and drops whatever came before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from drivers.base import (
    GarbledReply,
    Identity,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
    Measurement,
    OutOfRange,
    SourceFunction,
    SourceMeter,
    WrongInstrument,
)
from drivers.transport import Transport

VENDOR = "KEITHLEY INSTRUMENTS"
MODEL = "MODEL 2450"
CURRENT_RANGES = (10e-9, 100e-9, 1e-6, 10e-6, 100e-6, 1e-3, 10e-3, 100e-3, 1.0)
VOLTAGE_RANGES = (20e-3, 200e-3, 2.0, 20.0, 200.0)
#: a source level may reach 105 % of its range
OVERRANGE = 1.05
VLIM = (0.02, 210.0)  # V, the voltage limit of a current source
ILIM = (1e-9, 1.05)  # A, the current limit of a voltage source
NPLC = (0.01, 10.0)
#: what a reading beyond its fixed range reads
OVERFLOW = 9.9e37
#: the error queue holds at most this many entries (and one "queue overflow")
ERROR_QUEUE = 1001
#: a query whose reply is known and unlike any other reply of this driver
MARKER = ("*LANG?;*OPC?", "SCPI;1")

LANGUAGE_HINT = (
    "switch the 2450 to SCPI: on the front panel MENU > System > Settings > Command Set: "
    "SCPI (or send *LANG SCPI), then power the instrument off and on"
)


@dataclass(frozen=True, slots=True)
class _Commands:
    """The SCPI of one source function (a pymeasure-style command table)."""

    function: SourceFunction
    ranges: tuple[float, ...]
    limit_bounds: tuple[float, float]
    unit: str  # of the level
    limit_unit: str
    level: str  # format string
    configure: str  # format string: range, limit, remote sense, nplc
    trip: str


_HIMP = ":OUTP:CURR:SMOD HIMP;:OUTP:VOLT:SMOD HIMP"
_OFF = f"{_HIMP};:OUTP OFF"


def _setup(src: str, sense: str, limit: str) -> str:
    return (
        f"{_OFF};:SOUR:FUNC {src};:SOUR:{src}:LEV 0;:SOUR:{src}:RANG {{range:.6E}};"
        f":SOUR:{src}:{limit} {{limit:.6E}};:SOUR:{src}:READ:BACK ON;"
        f':SENS:FUNC "{sense}";:SENS:{sense}:RANG:AUTO ON;'
        ":SENS:VOLT:RSEN {rsen};:SENS:CURR:RSEN {rsen};"
        ":SENS:VOLT:NPLC {nplc:g};:SENS:CURR:NPLC {nplc:g}"
    )


COMMANDS = {
    SourceFunction.CURRENT: _Commands(
        function=SourceFunction.CURRENT,
        ranges=CURRENT_RANGES,
        limit_bounds=VLIM,
        unit="A",
        limit_unit="V",
        level=":SOUR:CURR:LEV {:.7E}",
        configure=_setup("CURR", "VOLT", "VLIM"),
        trip=":SOUR:CURR:VLIM:TRIP?",
    ),
    SourceFunction.VOLTAGE: _Commands(
        function=SourceFunction.VOLTAGE,
        ranges=VOLTAGE_RANGES,
        limit_bounds=ILIM,
        unit="V",
        limit_unit="A",
        level=":SOUR:VOLT:LEV {:.7E}",
        configure=_setup("VOLT", "CURR", "ILIM"),
        trip=":SOUR:VOLT:ILIM:TRIP?",
    ),
}
READ = ':READ? "defbuffer1", READ, SOUR, REL'
ERROR = ":SYST:ERR?"


def range_for(value: float, ranges: tuple[float, ...]) -> float:
    """The smallest range that holds ``|value|`` (what the instrument picks)."""
    magnitude = abs(value)
    for r in ranges:
        if magnitude <= r * (1 + 1e-9):
            return r
    raise OutOfRange(f"{value:g} is beyond the largest range {ranges[-1]:g}")


def parse_error(reply: str) -> tuple[int, str]:
    """``-113,"Undefined header;1;2026/01/01 00:00:12.250"`` → ``(-113, "Undefined
    header")``; the 2450 appends the event type and time after ``;``."""
    code, comma, text = reply.partition(",")
    try:
        number = int(code)
    except ValueError:
        raise GarbledReply(f"error queue reply {reply!r} has no error number") from None
    if not comma:
        raise GarbledReply(f"error queue reply {reply!r} has no message")
    return number, text.strip().strip('"').split(";", 1)[0]


class Keithley2450(SourceMeter):
    """One 2450 over any :class:`Transport` (VISA, or the software rig in process).

    ``current_max``/``voltage_max`` are the rig's own limits (``smu.current_max``,
    ``smu.voltage_max``), checked on top of the instrument's ranges.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        current_max: float = ILIM[1],
        voltage_max: float = VLIM[1],
    ) -> None:
        self.transport = transport
        self.current_max = current_max
        self.voltage_max = voltage_max
        self._table: _Commands | None = None
        self._level_max = 0.0
        self.range = 0.0  # the fixed source range in use
        self.compliance = 0.0

    @property
    def function(self) -> SourceFunction | None:
        return self._table.function if self._table else None

    # -- the request table ----------------------------------------------------------

    async def identify(self) -> Identity:
        reply = await self._query("*IDN?")
        fields = [f.strip() for f in reply.split(",")]
        if len(fields) != 4 or not reply.isprintable():
            self.transport.desynced = True
            raise GarbledReply(f"{self.transport.name}: *IDN? answered {reply!r}")
        vendor, model, serial, firmware = fields
        if vendor.upper().startswith(VENDOR) and model.upper() == "MODEL 2400":
            raise await self._refuse_2400(model)
        if not vendor.upper().startswith(VENDOR) or model.upper() != MODEL:
            raise WrongInstrument(
                f"{self.transport.name} is a {vendor} {model}, not a Keithley 2450",
                "check smu.driver and smu.resource in the rig file",
            )
        language = (await self._query("*LANG?")).strip()
        if language != "SCPI":
            raise WrongInstrument(
                f"{self.transport.name}: the 2450 speaks {language}, not SCPI",
                LANGUAGE_HINT,
            )
        return Identity(vendor, model, serial, firmware)

    async def _refuse_2400(self, model: str) -> WrongInstrument:
        """A 2450 in 2400-emulation mode identifies as a 2400 but answers ``*LANG?``."""
        try:
            language = (await self._query("*LANG?")).strip()
        except InstrumentTimeout:
            language = ""
        if language == "SCPI2400":
            return WrongInstrument(
                f"{self.transport.name}: the 2450 is in 2400-emulation mode (SCPI2400)",
                LANGUAGE_HINT,
            )
        return WrongInstrument(
            f"{self.transport.name} is a Keithley {model[6:]}, not a 2450",
            "check smu.driver and smu.resource in the rig file",
        )

    async def configure(
        self,
        function: SourceFunction,
        *,
        compliance: float,
        source_range: float,
        nplc: float = 1.0,
        remote_sense: bool = True,
    ) -> None:
        """Output off (HIMP) first, then the source, its fixed range and limit, the sense
        function, remote sense and NPLC in one line; then the error queue is read and any
        entry — this setup's or an older one — raises :class:`InstrumentReportedError`."""
        table = COMMANDS[SourceFunction(function)]
        low, high = table.limit_bounds
        rig_max = self.voltage_max if table.limit_unit == "V" else self.current_max
        what = "voltage" if table.limit_unit == "V" else "current"
        if not (low <= compliance <= min(high, rig_max)):
            raise OutOfRange(
                f"compliance {compliance:g} {table.limit_unit} is outside "
                f"{low:g}…{min(high, rig_max):g} {table.limit_unit}",
                f"the 2450 limits it to {low:g}…{high:g} {table.limit_unit}; the rig to "
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
        self._table = None  # until the instrument has accepted the new setup
        await self._write(
            table.configure.format(
                range=fixed, limit=compliance, rsen="ON" if remote_sense else "OFF", nplc=nplc
            )
        )
        errors = await self.drain_errors()
        if errors:
            code, text = errors[0]
            more = "; then " + "; ".join(f"{c} {t}" for c, t in errors[1:]) if errors[1:] else ""
            raise InstrumentReportedError(
                code,
                text,
                f"the 2450's error queue was not empty after its setup{more}; read it "
                "with drain_errors() and check the rig's smu settings",
            )
        level_max = self.current_max if table.unit == "A" else self.voltage_max
        self._table = table
        self.range = fixed
        self.compliance = compliance
        self._level_max = min(fixed * OVERRANGE, level_max)

    async def set_level(self, value: float) -> None:
        table = self._configured()
        if not (abs(value) <= self._level_max):  # NaN fails too
            raise OutOfRange(
                f"source level {value:g} {table.unit} is beyond ±{self._level_max:g} "
                f"{table.unit} (the {self.range:g} {table.unit} range, and the rig's "
                f"smu.{'current' if table.unit == 'A' else 'voltage'}_max)",
                "configure a larger source range, or ask for less",
            )
        await self._write(table.level.format(value))

    async def output_on(self) -> None:
        self._configured()
        await self._write(":OUTP ON")

    async def output_off(self) -> None:
        """High impedance (set again every time: a power cycle restores NORMal), then
        checked: the safe state is not taken on trust."""
        await self._write(_OFF)
        state = await self._query(":OUTP?")
        if state != "0":
            self.transport.desynced = True
            raise GarbledReply(
                f"{self.transport.name}: output still {state!r} after :OUTP OFF",
                "switch the output off at the instrument (front panel OUTPUT key)",
            )

    async def read(self) -> Measurement:
        # the hot path of a campaign: _configured, _query and _measured inlined
        table = self._table
        if table is None:
            table = self._configured()  # raises
        transport = self.transport
        if transport.desynced:
            await transport.resync(*MARKER)
        reply = await transport.query(READ)
        try:
            first_text, second_text, time_text = reply.split(",")
            first, second, time = float(first_text), float(second_text), float(time_text)
        except ValueError:
            transport.desynced = True
            raise GarbledReply(
                f"{transport.name}: :READ? answered {reply[:80]!r}", "check the link"
            ) from None
        if first >= OVERFLOW or first <= -OVERFLOW:
            first = math.copysign(math.inf, first)  # over range: never a plausible number
        if second >= OVERFLOW or second <= -OVERFLOW:
            second = math.copysign(math.inf, second)
        if table.function is SourceFunction.CURRENT:
            return Measurement(first, second, time)
        return Measurement(second, first, time)

    async def compliance_tripped(self) -> bool:
        table = self._configured()
        reply = await self._query(table.trip)
        if reply == "1":
            return True
        if reply == "0":
            return False
        self.transport.desynced = True
        raise GarbledReply(f"{self.transport.name}: {table.trip} answered {reply[:80]!r}")

    async def found_sourcing(self) -> tuple[SourceFunction, float] | None:
        state = await self._query(":OUTP?")
        if state == "0":
            return None
        mode = await self._query(":SOUR:FUNC?")
        function = {"CURR": SourceFunction.CURRENT, "VOLT": SourceFunction.VOLTAGE}.get(mode)
        if state != "1" or function is None:
            self.transport.desynced = True
            raise GarbledReply(
                f"{self.transport.name}: output state {state!r}, source function {mode!r}"
            )
        level = await self._query(f":SOUR:{mode}?")
        try:
            return function, float(level)
        except ValueError:
            self.transport.desynced = True
            raise GarbledReply(f"{self.transport.name}: source level {level[:80]!r}") from None

    async def drain_errors(self) -> list[tuple[int, str]]:
        errors: list[tuple[int, str]] = []
        for _ in range(ERROR_QUEUE + 1):
            reply = await self._query(ERROR)
            try:
                code, text = parse_error(reply)
            except GarbledReply as exc:
                self.transport.desynced = True
                raise GarbledReply(f"{self.transport.name}: {exc.message}") from None
            if code == 0:
                return errors
            errors.append((code, text))
        raise GarbledReply(f"{self.transport.name}: the error queue does not run dry")

    async def close(self) -> None:
        await self.transport.close()

    # -- plumbing --------------------------------------------------------------------

    def _configured(self) -> _Commands:
        if self._table is None:
            raise InstrumentError(
                f"{self.transport.name}: the source is not configured",
                "call configure() first (after every reconnect)",
            )
        return self._table

    async def _query(self, line: str) -> str:
        transport = self.transport
        if transport.desynced:
            await transport.resync(*MARKER)
        return await transport.query(line)

    async def _write(self, line: str) -> None:
        transport = self.transport
        if transport.desynced:
            await transport.resync(*MARKER)
        await transport.write(line)
