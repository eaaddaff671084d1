"""A Keithley 2450 SourceMeter's SCPI firmware, in front of the rig's cell.

The command set, defaults and behaviour follow the 2450 Reference Manual (2450-901-01,
section 6): long/short forms, the error queue (``-113,"Undefined header;1;<time>"``),
source current or voltage with a limit (VLIM/ILIM) and ``...:TRIPped?``, sense function,
range and remote sense, output on/off with the output-off modes, and ``:READ?``/``:FETCh?``
with buffer elements. Power-on and ``*RST`` defaults are the manual's: source voltage
0 V, ILIM 105 µA, VLIM 21 V, sense current, autorange, NPLC 1, output off in the
**NORMal** output-off mode — which, when the output turns off, sources 0 V with a current
limit of 10 % of the present current range, and so discharges a cell. HIMPedance opens the
output relay instead.

Every value comes from the cell at the moment of the query (the rig advances the physics
before each request): in current mode the voltage clamps at VLIM and the current becomes
what the cell draws at that voltage; in voltage mode the same with ILIM. Measurement adds
noise (scaled by range and 1/√NPLC) and quantises to the range's resolution; an overrange
reading on a fixed range is ``9.9E+37``. In 2-wire sense the leads' resistance adds to the
measured voltage; 4-wire (``:SENS:VOLT:RSEN ON``) measures at the cell.

The command language can be ``SCPI`` (the default), ``TSP`` or ``SCPI2400`` (the 2400
emulation mode): a driver must check ``*LANG?`` and refuse the latter two.
"""

from __future__ import annotations

import math
import random
import time as _time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from firmware_sim.physics import CellPhysics
from firmware_sim.scpi import (
    Command,
    CommandTree,
    Handler,
    Param,
    ScpiError,
    mnemonic_matches,
    parse,
)

CURRENT_RANGES = (10e-9, 100e-9, 1e-6, 10e-6, 100e-6, 1e-3, 10e-3, 100e-3, 1.0)
VOLTAGE_RANGES = (20e-3, 200e-3, 2.0, 20.0, 200.0)
OVERRANGE = 1.05
OVERFLOW = 9.9e37
CURRENT_MAX = 1.05
VOLTAGE_MAX = 210.0
VLIM_RANGE = (0.02, 210.0)
ILIM_RANGE = (1e-9, 1.05)
DEFAULT_VLIM = 21.0
DEFAULT_ILIM = 105e-6
#: measurement resolution per range (6½ digits) and rms noise at NPLC 1, both × range
RESOLUTION = {"V": 5e-7, "I": 1e-6}
NOISE = {"V": 2e-6, "I": 4e-6}
#: source-status bits of a buffer reading (bufferVar.sourcestatuses)
STAT_PROTECTION, STAT_READBACK, STAT_LIMIT, STAT_SENSE, STAT_OUTPUT = 4, 8, 32, 64, 128
STAT_QUESTIONABLE = 1
PROTECTION_LEVELS = (2, 5, 10, 20, 40, 60, 80, 100, 120, 140, 160, 180)
OFF_MODES = ("NORMal", "HIMPedance", "ZERO", "GUARd")
ELEMENTS = (
    "READing",
    "SOURce",
    "RELative",
    "SEConds",
    "FRACtional",
    "TSTamp",
    "DATE",
    "TIME",
    "UNIT",
    "SOURUNIT",
    "STATus",
    "SOURSTATus",
    "FORMatted",
    "SOURFORMatted",
)
LANGUAGES = ("SCPI", "TSP", "SCPI2400")
ERROR_QUEUE = 1000
BUFFER_POINTS_MAX = 1_000_000


class Terminals(Protocol):
    """What the SMU's terminals are wired to, at the rig's present instant."""

    @property
    def time(self) -> float:
        """Rig time, s."""

    def unix(self) -> float:
        """Unix time of the rig's present instant."""

    @property
    def cell(self) -> CellPhysics: ...

    @property
    def cell_temperature(self) -> float: ...

    @property
    def connected(self) -> bool:
        """False when the leads are open (a fault): no current can flow."""


class _Terminal:
    """The cell as the SMU's HI-LO terminals see it. With the working electrode on HI
    (``polarity`` -1), current out of HI strips the working electrode and the terminal
    voltage is V(WE) - V(CE); on LO (+1), current out of HI plates it and the terminal
    voltage is V(CE) - V(WE). Either way the cell looks passive from the SMU."""

    __slots__ = ("cell", "s")

    def __init__(self, cell: CellPhysics, polarity: float) -> None:
        self.cell = cell
        self.s = polarity

    def voltage(self, current: float, temperature: float) -> float:
        return -self.s * self.cell.voltage(self.s * current, temperature)

    def current_for(self, voltage: float, temperature: float) -> float:
        return self.s * self.cell.current_for(-self.s * voltage, temperature)

    def open_circuit_voltage(self, temperature: float) -> float:
        return -self.s * self.cell.open_circuit_voltage(temperature)


@dataclass
class SourceSettings:
    """The settings the 2450 keeps per source function (the source configuration list)."""

    level: float = 0.0
    range: float = 0.0
    autorange: bool = True
    limit: float = 0.0
    readback: bool = True
    offmode: str = "NORMal"
    delay: float = 0.0
    delay_auto: bool = True


@dataclass
class SenseSettings:
    range: float
    autorange: bool = True
    nplc: float = 1.0
    rsense: bool = False
    azero: bool = True


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """Where the source and the cell meet. ``voltage``/``current`` are what the instrument
    sees (its sense point, its sign); ``cell_current`` is what flows through the cell, in
    the cell's convention (+ plates the working electrode)."""

    voltage: float
    current: float
    limited: bool
    cell_current: float
    relay_closed: bool


class Reading(NamedTuple):
    """One buffer entry (immutable; a named tuple because one is made per measurement,
    and a frozen dataclass costs five times as much to build)."""

    value: float
    source: float
    time: float  # rig time
    unix: float
    unit: str
    source_unit: str
    status: int
    source_status: int


@dataclass
class ReadingBuffer:
    name: str
    capacity: int
    readings: deque[Reading] = field(default_factory=deque)
    origin: float | None = None  # rig time of the first reading since the last clear

    def add(self, reading: Reading) -> None:
        if self.origin is None:
            self.origin = reading.time
        readings = self.readings
        readings.append(reading)
        while len(readings) > self.capacity:
            readings.popleft()

    def clear(self) -> None:
        self.readings.clear()
        self.origin = None


_ELEMENT_LISTS: dict[tuple[Param, ...], list[str]] = {}
_new_reading = tuple.__new__
#: a unit of a request line, ready to run: (command, its handler, the error it raises
#: instead); a syntax error is (None, None, error)
_Prepared = tuple[Command | None, Handler | None, ScpiError | None]
#: request lines kept ready to run, per instrument (the same few lines come millions of
#: times in a campaign)
_PREPARED_MAX = 4096
_UNITS = {"VOLTage": "Volt DC", "CURRent": "Amp DC", "RESistance": "Ohm"}
#: format specs of ``number`` by significant digits (``:FORM:ASC:PREC``; 0 means 7)
_NUMBER_SPECS = {digits: f".{digits - 1}E" for digits in range(1, 18)}
#: elements that need the reading's date and time
_CLOCK_ELEMENTS = frozenset({"SEConds", "FRACtional", "DATE", "TIME", "TSTamp"})
#: elements that are plain numbers of a reading, in ``_numbers_template``'s argument order
_NUMERIC_ELEMENTS = ("READing", "SOURce", "RELative")
#: ``measure``'s inlined _digitize: the constants by kind, and each range with the bound
#: ``_range_for`` compares against (the same products, worked out once)
_NOISE_V, _NOISE_I = NOISE["V"], NOISE["I"]
_RESOLUTION_V, _RESOLUTION_I = RESOLUTION["V"], RESOLUTION["I"]
_V_BOUNDS = tuple((r, r * (1 + 1e-9)) for r in VOLTAGE_RANGES)
_I_BOUNDS = tuple((r, r * (1 + 1e-9)) for r in CURRENT_RANGES)


def _range_for(value: float, ranges: tuple[float, ...]) -> float:
    """The smallest range that holds ``|value|``."""
    magnitude = abs(value)
    for r in ranges:
        if magnitude <= r * (1 + 1e-9):
            return r
    return ranges[-1]


def _numbers_template(names: list[str], precision: int) -> str:
    """A ``%`` template of the reading's numbers ``names`` (the first ``len(names)`` of
    ``_NUMERIC_ELEMENTS``, in order) at ``precision``: the text ``_format`` makes of them
    (``"%.6E" % x`` is ``format(x, ".6E")``, a third faster for three numbers than one
    ``str.format``)."""
    digits = precision or 7
    spec = _NUMBER_SPECS[digits] if digits < 18 else f".{digits - 1}E"
    return ",".join(f"%{spec}" for _ in names)


def _word(value: bool) -> str:
    return "1" if value else "0"


class Keithley2450:
    """The 2450's firmware as a :class:`drivers.transport.LineDevice`."""

    def __init__(
        self,
        terminals: Terminals,
        *,
        serial: str = "04412345",
        firmware: str = "1.7.12b",
        language: str = "SCPI",
        seed: int = 0,
        lead_resistance: float = 0.2,
        working_electrode: str = "HI",
    ) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {LANGUAGES}")
        if working_electrode not in ("HI", "LO"):
            raise ValueError("working_electrode is 'HI' or 'LO'")
        self.working_electrode = working_electrode
        #: cell current per SMU current: with the WE on HI, current out of HI strips it
        self.polarity = -1.0 if working_electrode == "HI" else 1.0
        self.terminals = terminals
        self.serial = serial
        self.firmware = firmware
        self.language = language
        self.pending_language = language
        self.lead_resistance = lead_resistance
        self._rng = random.Random(seed)
        self._gauss = self._rng.gauss
        #: ``:READ?`` commands seen (by identity: the parse cache hands out the same
        #: objects) with their element names, buffer name and, when the elements are
        #: READ[, SOUR[, REL]], their ``_numbers_template`` by precision
        self._read_plans: dict[int, tuple[Command, list[str], str, dict[int, str] | None]] = {}
        self._prepared: dict[bytes, tuple[_Prepared, ...]] = {}
        #: the prepared lines that are one runnable command
        self._single: dict[bytes, tuple[Command, Handler]] = {}
        self.errors: deque[tuple[int, str, float]] = deque()
        self._tree = self._build_tree()
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """``*RST``: the manual's defaults. The error queue is not touched."""
        self.source_function = "VOLTage"
        self.sources = {
            "CURRent": SourceSettings(range=CURRENT_RANGES[0], limit=DEFAULT_VLIM),
            "VOLTage": SourceSettings(range=VOLTAGE_RANGES[0], limit=DEFAULT_ILIM),
        }
        self.sense_function = "CURRent"
        self.senses = {
            "CURRent": SenseSettings(range=100e-6),
            "VOLTage": SenseSettings(range=20e-3),
            "RESistance": SenseSettings(range=200e3),
        }
        self.output = False
        self.protection: int | None = None  # overvoltage protection, V (None = NONE)
        self.terminal_select = "FRONt"
        self.precision = 0
        self.count = 1
        self.buffers = {
            "defbuffer1": ReadingBuffer("defbuffer1", 100_000),
            "defbuffer2": ReadingBuffer("defbuffer2", 10),
        }

    def power_cycle(self) -> None:
        """Power off and on: a pending ``*LANG`` takes effect; the error queue empties."""
        self.language = self.pending_language
        self.errors.clear()
        self.reset()

    def push_error(self, code: int, message: str | None = None) -> None:
        """Put an error in the queue (also used by fault injection)."""
        text = message or ScpiError(code).message
        if len(self.errors) >= ERROR_QUEUE:
            self.errors.pop()
            self.errors.append((-350, "Queue overflow", self.terminals.unix()))
            return
        self.errors.append((code, text, self.terminals.unix()))

    # -------------------------------------------------------------- physics

    def _level_limit(self) -> tuple[float, float]:
        src = self.sources[self.source_function]
        return src.level, src.limit

    def operating_point(self) -> OperatingPoint:
        """The source against the cell, now (after the rig advanced the physics)."""
        v, i, limited, relay = self._point()
        return OperatingPoint(v, i, limited, self.polarity * i, relay)

    def _point(self) -> tuple[float, float, bool, bool]:
        """``operating_point`` as a plain tuple (voltage, current, limited, relay closed):
        the rig asks for it at every physics step."""
        t = self.terminals
        cell_wired = t.connected and self.terminal_select == "FRONt"
        temperature = t.cell_temperature
        if self.output and cell_wired and self.source_function == "CURRent":
            # a galvanostat inside its voltage limit — the common case — as
            # _output_on_point works it out, without the detours
            src = self.sources["CURRent"]
            level = src.level
            vlim = src.limit if self.protection is None else self._vlim(src.limit)
            r_lead = 0.0 if self.senses[self.sense_function].rsense else self.lead_resistance
            s = self.polarity
            v = -s * t.cell.voltage(s * level, temperature) + level * r_lead  # _Terminal
            if abs(v) <= vlim:
                return v, level, False, True
        cell = _Terminal(t.cell, self.polarity)
        if not self.output:
            v, i, limited, relay = self._output_off_point(cell, temperature, cell_wired)
        elif not cell_wired:  # leads open: nothing flows, the source runs to its limit
            level, limit = self._level_limit()
            if self.source_function == "CURRent":
                vlim = self._vlim(limit)
                v, i, limited = (math.copysign(vlim, level) if level else 0.0), 0.0, level != 0
            else:
                v, i, limited = self._protected(level), 0.0, False
            relay = True
        else:
            v, i, limited = self._output_on_point(cell, temperature)
            relay = True
        return v, i, limited, relay

    def _vlim(self, vlim: float) -> float:
        return vlim if self.protection is None else min(vlim, float(self.protection))

    def _protected(self, level: float) -> float:
        if self.protection is None:
            return level
        return math.copysign(min(abs(level), float(self.protection)), level)

    def _output_on_point(self, cell: _Terminal, temperature: float) -> tuple[float, float, bool]:
        # the measure function's sense setting decides 2- or 4-wire
        r_lead = 0.0 if self.senses[self.sense_function].rsense else self.lead_resistance
        level, limit = self._level_limit()
        if self.source_function == "CURRent":
            vlim = self._vlim(limit)
            v = cell.voltage(level, temperature) + level * r_lead
            if abs(v) <= vlim:
                return v, level, False
            v_limit = math.copysign(vlim, v)
            return v_limit, self._current_at(cell, temperature, v_limit, r_lead), True
        level = self._protected(level)
        i = self._current_at(cell, temperature, level, r_lead)
        if abs(i) <= limit:
            return level, i, False
        i = math.copysign(limit, i)
        return cell.voltage(i, temperature) + i * r_lead, i, True

    @staticmethod
    def _current_at(cell: _Terminal, temperature: float, v: float, r_lead: float) -> float:
        """Current when ``v`` is applied through the leads' resistance (fixed point)."""
        i = cell.current_for(v, temperature)
        for _ in range(3 if r_lead else 0):
            i = cell.current_for(v - i * r_lead, temperature)
        return i

    def _present_current_range(self) -> float:
        if self.source_function == "CURRent":
            return self.sources["CURRent"].range
        return _range_for(self.sources["VOLTage"].limit, CURRENT_RANGES)

    def _output_off_point(
        self, cell: _Terminal, temperature: float, cell_wired: bool
    ) -> tuple[float, float, bool, bool]:
        mode = self.sources[self.source_function].offmode
        if mode == "HIMPedance":
            return 0.0, 0.0, False, False
        if mode == "GUARd" or not cell_wired:  # a 0 A current source, or nothing attached
            v = cell.open_circuit_voltage(temperature) if cell_wired else 0.0
            return (v if mode == "GUARd" else 0.0), 0.0, False, True
        # NORMal and ZERO: a 0 V voltage source with a current limit.
        limit = 0.1 * self._present_current_range()
        if mode == "ZERO" and self.source_function == "CURRent":
            limit = max(limit, abs(self.sources["CURRent"].level))
        elif mode == "ZERO":
            limit = self.sources["VOLTage"].limit
        i = cell.current_for(0.0, temperature)
        if abs(i) <= limit:
            return 0.0, i, False, True
        i = math.copysign(limit, i)
        return cell.voltage(i, temperature), i, True, True

    def cell_current(self) -> float:
        """What flows through the cell now, in the cell's convention (+ plates the working
        electrode): the rig integrates the cell with it."""
        return self.polarity * self._point()[1]

    # ----------------------------------------------------------- measuring

    def _digitize(self, value: float, kind: str, fixed_range: float | None, nplc: float) -> float:
        ranges = VOLTAGE_RANGES if kind == "V" else CURRENT_RANGES
        rng = fixed_range if fixed_range is not None else _range_for(value / OVERRANGE, ranges)
        if abs(value) > rng * OVERRANGE:
            return OVERFLOW
        noisy = value + NOISE[kind] * rng / math.sqrt(nplc) * self._rng.gauss(0.0, 1.0)
        step = RESOLUTION[kind] * rng
        return round(noisy / step) * step

    def _sense(self, function: str, voltage: float, current: float) -> float:
        s = self.senses[function]
        if function == "RESistance":
            v = self._sense_value("VOLTage", voltage, s)
            i = self._sense_value("CURRent", current, s)
            if i == 0 or abs(i) >= OVERFLOW or abs(v) >= OVERFLOW:
                return OVERFLOW
            return v / i
        value = voltage if function == "VOLTage" else current
        return self._sense_value(function, value, s)

    def _sense_value(self, function: str, value: float, s: SenseSettings) -> float:
        kind = "V" if function == "VOLTage" else "I"
        fixed: float | None = None
        if function == self.source_function and self.output:
            fixed = self.sources[function].range  # measuring the source: its range
        elif not s.autorange:
            fixed = s.range
        return self._digitize(value, kind, fixed, s.nplc)

    def measure(self) -> Reading:
        """One source-measure cycle at the present instant."""
        # One call per sample of a campaign: _sense, _sense_value, _digitize and
        # _range_for are inlined for a voltage or current measurement, with the same
        # arithmetic in the same order (and the same noise draws: sense, then source).
        voltage, current, limited, _ = self._point()
        sense_function = self.sense_function
        source_function = self.source_function
        output = self.output
        src = self.sources[source_function]
        senses = self.senses
        gauss = self._gauss
        if sense_function == "RESistance":
            value = self._sense(sense_function, voltage, current)
        else:
            s = senses[sense_function]
            if sense_function == "VOLTage":
                x, noise, resolution, bounds = voltage, _NOISE_V, _RESOLUTION_V, _V_BOUNDS
            else:
                x, noise, resolution, bounds = current, _NOISE_I, _RESOLUTION_I, _I_BOUNDS
            if sense_function == source_function and output:
                rng = src.range  # measuring the source: its range
            elif not s.autorange:
                rng = s.range
            else:  # _range_for(x / OVERRANGE, ranges)
                magnitude = abs(x / OVERRANGE)
                rng = bounds[-1][0]
                for r, bound in bounds:
                    if magnitude <= bound:
                        rng = r
                        break
            if abs(x) > rng * OVERRANGE:
                value = OVERFLOW
            else:
                noisy = x + noise * rng / math.sqrt(s.nplc) * gauss(0.0, 1.0)
                step = resolution * rng
                value = round(noisy / step) * step
        current_source = source_function == "CURRent"
        programmed = src.level
        if not output:
            source = 0.0 if src.offmode == "HIMPedance" else programmed
        elif src.readback:  # _digitize(actual, kind, src.range, VOLTage nplc)
            actual, noise, resolution = (
                (current, _NOISE_I, _RESOLUTION_I)
                if current_source
                else (voltage, _NOISE_V, _RESOLUTION_V)
            )
            rng = src.range
            if abs(actual) > rng * OVERRANGE:
                source = OVERFLOW
            else:
                noisy = actual + noise * rng / math.sqrt(senses["VOLTage"].nplc) * gauss(0.0, 1.0)
                step = resolution * rng
                source = round(noisy / step) * step
        else:
            source = programmed
        source_status = STAT_READBACK if src.readback else 0
        if output:
            source_status |= STAT_OUTPUT
            if senses[sense_function].rsense:
                source_status |= STAT_SENSE
            if limited:
                source_status |= STAT_LIMIT
        status = STAT_QUESTIONABLE if abs(value) >= OVERFLOW else 0
        t = self.terminals
        fields = (
            value,
            source,
            t.time,
            t.unix(),
            _UNITS[sense_function],
            "Amp DC" if current_source else "Volt DC",
            status,
            source_status,
        )
        return _new_reading(Reading, fields)  # Reading(*fields), without a Python call

    # ----------------------------------------------------------- formatting

    def number(self, value: float) -> str:
        digits = self.precision or 7
        return format(value, _NUMBER_SPECS[digits] if digits < 18 else f".{digits - 1}E")

    def _element(self, name: str, reading: Reading, buffer: ReadingBuffer) -> str:
        if name == "READing":
            return self.number(reading.value)
        if name == "SOURce":
            return self.number(reading.source)
        if name == "RELative":
            origin = buffer.origin if buffer.origin is not None else reading.time
            return self.number(reading.time - origin)
        if name not in _CLOCK_ELEMENTS:
            return self._other_element(name, reading)
        seconds = math.floor(reading.unix)
        frac = reading.unix - seconds
        stamp = _time.gmtime(seconds)
        if name == "SEConds":
            return str(seconds)
        if name == "FRACtional":
            return self.number(frac)
        if name == "DATE":
            return _time.strftime("%m/%d/%Y", stamp)
        if name == "TIME":
            return _time.strftime("%H:%M:%S", stamp) + f"{frac:.9f}"[1:]
        return _time.strftime("%m/%d/%Y %H:%M:%S", stamp) + f"{frac:.9f}"[1:]  # TSTamp

    def _other_element(self, name: str, reading: Reading) -> str:
        if name == "UNIT":
            return reading.unit
        if name == "SOURUNIT":
            return reading.source_unit
        if name == "STATus":
            return str(reading.status)
        if name == "SOURSTATus":
            return str(reading.source_status)
        if name == "FORMatted":
            return f"{reading.value:+.6f} {reading.unit.split()[0][0]}"
        return f"{reading.source:+.6f} {reading.source_unit.split()[0][0]}"  # SOURFORMatted

    def _elements(self, params: tuple[Param, ...]) -> list[str]:
        names = _ELEMENT_LISTS.get(params)
        if names is None:
            names = [p.choice(*ELEMENTS) for p in params]
            if len(names) > 14:
                raise ScpiError(-108)
            names = names or ["READing"]
            if len(_ELEMENT_LISTS) < 1024:
                _ELEMENT_LISTS[params] = names
        return names

    def _buffer(self, param: Param | None) -> ReadingBuffer:
        if param is None:
            return self.buffers["defbuffer1"]
        name = param.string()
        buffer = self.buffers.get(name)  # the buffers' names differ even in lower case
        if buffer is not None:
            return buffer
        for key, buffer in self.buffers.items():
            if key.lower() == name.lower():
                return buffer
        raise ScpiError(-224, "Illegal parameter value")

    # ------------------------------------------------------------- protocol

    def handle(self, line: bytes) -> bytes | None:
        single = self._single.get(line)
        if single is not None and self.language == "SCPI":
            # a line of one runnable command (a :READ?, mostly): as the one-command case
            # below, without the detours
            try:
                reply = single[1](single[0])
            except ScpiError as exc:
                self.push_error(exc.code, exc.message)
                return None
            return None if reply is None else reply.encode("ascii")
        prepared = self._prepared.get(line)
        if prepared is None or self.language == "TSP":
            try:
                text = line.decode("ascii")
            except UnicodeDecodeError:
                self.push_error(-101)
                return None
            text = text.rstrip("\r\n")
            if self.language == "TSP":
                return self._handle_tsp(text)
            # What a line means up to its execution — its commands, syntax errors and
            # handlers — depends on its bytes alone, so it is worked out once per line.
            prepared = tuple(self._prepare(item) for item in parse(text))
            if len(self._prepared) < _PREPARED_MAX:
                self._prepared[line] = prepared
                if len(prepared) == 1 and prepared[0][0] is not None and prepared[0][1]:
                    self._single[line] = (prepared[0][0], prepared[0][1])
        if len(prepared) == 1 and self.language == "SCPI":  # one command (a :READ?, mostly)
            command, handler, error = prepared[0]
            if command is not None and handler is not None:
                try:
                    reply = handler(command)
                except ScpiError as exc:
                    self.push_error(exc.code, exc.message)
                    return None
                return None if reply is None else reply.encode("ascii")
        replies: list[str] = []
        for command, handler, error in prepared:
            if command is None:  # a syntax error ends the line
                assert error is not None
                self.push_error(error.code, error.message)
                break
            try:
                if self.language == "SCPI2400" and not self._shared_with_2400(command):
                    raise ScpiError(-113)
                if handler is None:
                    assert error is not None
                    raise ScpiError(error.code, error.message)
                reply = handler(command)
            except ScpiError as exc:
                self.push_error(exc.code, exc.message)
                if exc.command_error:
                    break
                continue
            if reply is not None:
                replies.append(reply)
        return ";".join(replies).encode("ascii") if replies else None

    def _prepare(self, item: Command | ScpiError) -> _Prepared:
        """A parsed unit with its handler, or with the error that running it will raise
        (the command tree is fixed, so looking a header up always gives the same answer)."""
        if isinstance(item, ScpiError):
            return None, None, item
        try:
            entry = self._tree.lookup(item.header)
        except ScpiError as exc:
            return item, None, exc
        handler = entry.query if item.query else entry.write
        if handler is None:
            return item, None, ScpiError(-113)
        return item, handler, None

    def _shared_with_2400(self, command: Command) -> bool:
        """In 2400 emulation only the common commands and the error queue are the 2450's."""
        if command.common:
            return True
        return self._tree.lookup(command.header).pattern.startswith(":SYSTem:ERRor")

    def _handle_tsp(self, text: str) -> bytes | None:
        """TSP mode: only what both languages share answers; the rest is a Lua error."""
        word = text.strip().upper()
        if word == "*IDN?":
            return self._idn().encode()
        if word == "*LANG?":
            return self.language.encode()
        if word.startswith("*LANG "):
            self._set_language(text.strip()[6:].strip())
            return None
        if word in ("*RST", "*CLS"):
            if word == "*RST":
                self.reset()
            else:
                self.errors.clear()
            return None
        near = text.strip()[:1] or "<eof>"
        self.push_error(-285, f"TSP Syntax error at line 1: unexpected symbol near `{near}'")
        return None

    def _idn(self) -> str:
        if self.language == "SCPI2400":  # the emulation mode identifies as the 2400
            return f"KEITHLEY INSTRUMENTS INC.,MODEL 2400,{self.serial},C33   2450 emulation"
        return f"KEITHLEY INSTRUMENTS,MODEL 2450,{self.serial},{self.firmware}"

    def _set_language(self, name: str) -> None:
        name = name.strip().strip('"').upper()
        if name not in LANGUAGES:
            raise ScpiError(-224)
        self.pending_language = name  # takes effect at the next power cycle

    # --------------------------------------------------------- command tree

    def _build_tree(self) -> CommandTree:
        tree = CommandTree()
        add = tree.add

        def done(fn: Callable[[Command], None]) -> Callable[[Command], str | None]:
            def run(cmd: Command) -> str | None:
                fn(cmd)
                return None

            return run

        def action(fn: Callable[[], object]) -> Callable[[Command], str | None]:
            """A command without parameters."""

            def run(cmd: Command) -> str | None:
                cmd.expect(0)
                fn()
                return None

            return run

        def answer(fn: Callable[[], str]) -> Callable[[Command], str | None]:
            """A query without parameters."""

            def run(cmd: Command) -> str | None:
                cmd.expect(0)
                return fn()

            return run

        def nothing() -> None:
            return None

        # common commands
        add("*IDN", query=answer(self._idn))
        add("*RST", write=action(self.reset))
        add("*CLS", write=action(self.errors.clear))
        add("*OPC", write=action(nothing), query=answer(lambda: "1"))
        add("*WAI", write=action(nothing))
        add("*TRG", write=action(nothing))
        add("*TST", query=answer(lambda: "0"))
        add("*ESR", query=answer(lambda: "0"))
        add("*STB", query=answer(lambda: "0"))
        add("*ESE", write=done(lambda c: c.expect(1)), query=answer(lambda: "0"))
        add("*SRE", write=done(lambda c: c.expect(1)), query=answer(lambda: "0"))
        add("*LANG", write=done(self._lang), query=answer(lambda: self.language))

        # source
        add(":SOURce[1]:FUNCtion[:MODE]", write=done(self._source_function), query=self._q_sfunc)
        for fn in ("CURRent", "VOLTage"):
            root = f":SOURce[1]:{fn}"
            add(
                f"{root}[:LEVel][:IMMediate][:AMPLitude]",
                write=done(self._setter_level(fn)),
                query=self._getter_level(fn),
            )
            add(f"{root}:RANGe", write=done(self._setter_srange(fn)), query=self._getter_srange(fn))
            write, query = self._switch("source", fn, "autorange")
            add(f"{root}:RANGe:AUTO", write=write, query=query)
            limit = "VLIMit" if fn == "CURRent" else "ILIMit"
            add(
                f"{root}:{limit}[:LEVel]",
                write=done(self._setter_limit(fn)),
                query=self._getter_limit(fn),
            )
            add(f"{root}:{limit}[:LEVel]:TRIPped", query=self._tripped(fn))
            write, query = self._switch("source", fn, "readback")
            add(f"{root}:READ:BACK", write=write, query=query)
            add(
                f"{root}:DELay",
                write=done(self._setter_delay(fn)),
                query=self._number_q("source", fn, "delay"),
            )
            write, query = self._switch("source", fn, "delay_auto")
            add(f"{root}:DELay:AUTO", write=write, query=query)
        add(
            ":SOURce[1]:VOLTage:PROTection[:LEVel]",
            write=done(self._set_protection),
            query=answer(lambda: "NONE" if self.protection is None else f"PROT{self.protection}"),
        )
        add(":SOURce[1]:VOLTage:PROTection[:LEVel]:TRIPped", query=self._protection_tripped)

        # sense
        add("[:SENSe[1]]:FUNCtion[:ON]", write=done(self._sense_function), query=self._q_func)
        for fn, dc in (("CURRent", "[:DC]"), ("VOLTage", "[:DC]"), ("RESistance", "")):
            root = f"[:SENSe[1]]:{fn}{dc}"
            add(
                f"{root}:RANGe[:UPPer]",
                write=done(self._setter_mrange(fn)),
                query=self._number_q("sense", fn, "range"),
            )
            for node, attr in (
                ("RANGe:AUTO", "autorange"),
                ("RSENse", "rsense"),
                ("AZERo[:STATe]", "azero"),
            ):
                write, query = self._switch("sense", fn, attr)
                add(f"{root}:{node}", write=write, query=query)
            add(
                f"{root}:NPLCycles",
                write=done(self._setter_nplc(fn)),
                query=self._number_q("sense", fn, "nplc"),
            )
        add("[:SENSe[1]]:COUNt", write=done(self._set_count), query=answer(lambda: str(self.count)))

        # output
        add(
            ":OUTPut[1][:STATe]",
            write=done(self._flag(self._set_output)),
            query=self._bool_q(lambda: self.output),
        )
        add(
            ":OUTPut[1]:SMODe",
            write=done(self._setter_offmode(None)),
            query=self._getter_offmode(None),
        )
        for fn in ("CURRent", "VOLTage"):
            add(
                f":OUTPut[1]:{fn}:SMODe",
                write=done(self._setter_offmode(fn)),
                query=self._getter_offmode(fn),
            )
        add(
            ":ROUTe:TERMinals",
            write=done(self._set_terminals),
            query=lambda c: self.terminal_select[:4].upper(),
        )

        # measurement
        add(":READ", query=self._read)
        add(":FETCh", query=self._fetch)
        add(":MEASure", query=lambda c: self._measure_query(None, c))
        add(":MEASure:CURRent[:DC]", query=lambda c: self._measure_query("CURRent", c))
        add(":MEASure:VOLTage[:DC]", query=lambda c: self._measure_query("VOLTage", c))
        add(":MEASure:RESistance", query=lambda c: self._measure_query("RESistance", c))
        add(":INITiate[:IMMediate]", write=done(self._initiate))
        add(":ABORt", write=action(nothing))

        # buffers
        add(":TRACe:CLEar", write=done(self._trace_clear))
        add(":TRACe:POINts", write=done(self._trace_points), query=self._trace_points_q)
        add(":TRACe:ACTual", query=lambda c: str(len(self._trace_buffer(c).readings)))
        add(":TRACe:ACTual:STARt", query=lambda c: "1" if self._trace_buffer(c).readings else "0")
        add(":TRACe:ACTual:END", query=lambda c: str(len(self._trace_buffer(c).readings)))
        add(":TRACe:DATA", query=self._trace_data)

        # system, status, format
        add(":SYSTem:ERRor[:NEXT]", query=self._next_error)
        add(":SYSTem:ERRor:COUNt", query=answer(lambda: str(len(self.errors))))
        add(":SYSTem:CLEar", write=action(self.errors.clear))
        add(":SYSTem:BEEPer[:IMMediate]", write=done(lambda c: c.expect(2)))
        add(":STATus:PRESet", write=action(nothing))
        add(":STATus:CLEar", write=action(nothing))
        add(
            ":FORMat:ASCii:PRECision",
            write=done(self._set_precision),
            query=self._precision_q,
        )
        add(":FORMat[:DATA]", write=done(self._set_format), query=lambda c: "ASC")
        return tree

    # -------------------------------------------------------------- handlers

    def _lang(self, c: Command) -> None:
        c.expect(1)
        self._set_language(c.param(0).text)

    def _flag(self, setter: Callable[[bool], None]) -> Callable[[Command], None]:
        def run(c: Command) -> None:
            c.expect(1)
            setter(c.param(0).boolean())

        return run

    def _bool_q(self, getter: Callable[[], bool]) -> Callable[[Command], str]:
        def run(c: Command) -> str:
            c.expect(0)
            return _word(getter())

        return run

    def _settings(self, kind: str, fn: str) -> SourceSettings | SenseSettings:
        return self.sources[fn] if kind == "source" else self.senses[fn]

    def _switch(self, kind: str, fn: str, attr: str) -> tuple[Handler, Handler]:
        """ON/OFF setting ``attr`` of a source or sense function: (write, query)."""

        def write(c: Command) -> None:
            c.expect(1)
            on = c.param(0).boolean()
            setattr(self._settings(kind, fn), attr, on)
            if attr == "autorange" and kind == "source" and on:
                src = self.sources[fn]
                ranges = CURRENT_RANGES if fn == "CURRent" else VOLTAGE_RANGES
                src.range = _range_for(src.level, ranges)

        def query(c: Command) -> str:
            c.expect(0)
            return _word(bool(getattr(self._settings(kind, fn), attr)))

        def run_write(c: Command) -> None:
            write(c)
            return None

        return run_write, query

    def _number_q(self, kind: str, fn: str, attr: str) -> Handler:
        def query(c: Command) -> str:
            c.expect(0)
            return self.number(float(getattr(self._settings(kind, fn), attr)))

        return query

    def _source_function(self, c: Command) -> None:
        c.expect(1)
        self.source_function = c.param(0).choice("CURRent", "VOLTage")

    def _q_sfunc(self, c: Command) -> str:
        c.expect(0)
        return self.source_function[:4].upper()

    def _bounds(self, fn: str) -> float:
        return CURRENT_MAX if fn == "CURRent" else VOLTAGE_MAX

    def _setter_level(self, fn: str) -> Callable[[Command], None]:
        def run(c: Command) -> None:
            c.expect(1)
            top = self._bounds(fn)
            unit = "A" if fn == "CURRent" else "V"
            value = c.param(0).number(unit, minimum=-top, maximum=top, default=0.0)
            src = self.sources[fn]
            if src.autorange:
                src.range = _range_for(value, CURRENT_RANGES if fn == "CURRent" else VOLTAGE_RANGES)
            elif abs(value) > src.range * OVERRANGE:
                raise ScpiError(-222)
            src.level = value

        return run

    def _getter_level(self, fn: str) -> Callable[[Command], str]:
        def run(c: Command) -> str:
            c.expect(0, 1)
            if c.params:
                top = self._bounds(fn)
                return self.number(c.param(0).number(minimum=-top, maximum=top, default=0.0))
            return self.number(self.sources[fn].level)

        return run

    def _setter_srange(self, fn: str) -> Callable[[Command], None]:
        def run(c: Command) -> None:
            c.expect(1)
            ranges = CURRENT_RANGES if fn == "CURRent" else VOLTAGE_RANGES
            top = ranges[-1] * OVERRANGE
            value = c.param(0).number(
                "A" if fn == "CURRent" else "V", minimum=-top, maximum=top, default=ranges[0]
            )
            src = self.sources[fn]
            new = _range_for(value, ranges)
            if abs(src.level) > new * OVERRANGE:
                raise ScpiError(-221)
            src.range = new
            src.autorange = False

        return run

    def _getter_srange(self, fn: str) -> Callable[[Command], str]:
        def run(c: Command) -> str:
            c.expect(0, 1)
            ranges = CURRENT_RANGES if fn == "CURRent" else VOLTAGE_RANGES
            if c.params:
                return self.number(
                    c.param(0).number(minimum=ranges[0], maximum=ranges[-1], default=ranges[0])
                )
            return self.number(self.sources[fn].range)

        return run

    def _limit_bounds(self, fn: str) -> tuple[float, float, float]:
        if fn == "CURRent":
            return VLIM_RANGE[0], VLIM_RANGE[1], DEFAULT_VLIM
        return ILIM_RANGE[0], ILIM_RANGE[1], DEFAULT_ILIM

    def _setter_limit(self, fn: str) -> Callable[[Command], None]:
        def run(c: Command) -> None:
            c.expect(1)
            low, high, default = self._limit_bounds(fn)
            unit = "V" if fn == "CURRent" else "A"
            value = abs(c.param(0).number(unit, minimum=-high, maximum=high, default=default))
            if value < low:
                raise ScpiError(-222)
            self.sources[fn].limit = value

        return run

    def _getter_limit(self, fn: str) -> Callable[[Command], str]:
        def run(c: Command) -> str:
            c.expect(0, 1)
            low, high, default = self._limit_bounds(fn)
            if c.params:
                return self.number(c.param(0).number(minimum=low, maximum=high, default=default))
            return self.number(self.sources[fn].limit)

        return run

    def _tripped(self, fn: str) -> Callable[[Command], str]:
        def run(c: Command) -> str:
            c.expect(0)
            if not self.output or self.source_function != fn:
                return "0"
            return _word(self.operating_point().limited)

        return run

    def _setter_delay(self, fn: str) -> Callable[[Command], None]:
        def run(c: Command) -> None:
            c.expect(1)
            self.sources[fn].delay = c.param(0).number("S", minimum=0.0, maximum=10_000.0)
            self.sources[fn].delay_auto = False

        return run

    def _set_protection(self, c: Command) -> None:
        c.expect(1)
        word = c.param(0).text.upper()
        if word == "NONE":
            self.protection = None
            return
        for level in PROTECTION_LEVELS:
            if word == f"PROT{level}":
                self.protection = level
                return
        raise ScpiError(-141)

    def _protection_tripped(self, c: Command) -> str:
        c.expect(0)
        if self.protection is None or not self.output:
            return "0"
        op = self.operating_point()
        return _word(abs(op.voltage) >= self.protection * (1 - 1e-9))

    def _parse_sense_function(self, p: Param) -> str:
        parts = p.string().strip().split(":")
        if len(parts) > 2 or (len(parts) == 2 and not mnemonic_matches(parts[1], "DC")):
            raise ScpiError(-224)
        for fn in ("VOLTage", "CURRent", "RESistance"):
            if mnemonic_matches(parts[0], fn):
                if fn == "RESistance" and len(parts) == 2:
                    raise ScpiError(-224)
                return fn
        raise ScpiError(-224)

    def _sense_function(self, c: Command) -> None:
        c.expect(1)
        self.sense_function = self._parse_sense_function(c.param(0))

    def _q_func(self, c: Command) -> str:
        c.expect(0)
        return {"VOLTage": '"VOLT:DC"', "CURRent": '"CURR:DC"', "RESistance": '"RES"'}[
            self.sense_function
        ]

    def _setter_mrange(self, fn: str) -> Callable[[Command], None]:
        def run(c: Command) -> None:
            c.expect(1)
            if fn == "RESistance":
                value = c.param(0).number("OHM", minimum=0.0, maximum=200e6, default=200e3)
                self.senses[fn].range = value
            else:
                ranges = CURRENT_RANGES if fn == "CURRent" else VOLTAGE_RANGES
                top = ranges[-1] * OVERRANGE
                unit = "A" if fn == "CURRent" else "V"
                value = c.param(0).number(unit, minimum=-top, maximum=top, default=ranges[-1])
                self.senses[fn].range = _range_for(value, ranges)
            self.senses[fn].autorange = False

        return run

    def _setter_nplc(self, fn: str) -> Callable[[Command], None]:
        def run(c: Command) -> None:
            c.expect(1)
            self.senses[fn].nplc = c.param(0).number(minimum=0.01, maximum=10.0, default=1.0)

        return run

    def _set_count(self, c: Command) -> None:
        c.expect(1)
        self.count = c.param(0).integer(minimum=1, maximum=300_000)

    def _set_output(self, on: bool) -> None:
        self.output = on

    def _setter_offmode(self, fn: str | None) -> Callable[[Command], None]:
        def run(c: Command) -> None:
            c.expect(1)
            mode = c.param(0).choice(*OFF_MODES)
            for name in (fn,) if fn else ("CURRent", "VOLTage"):
                self.sources[name].offmode = mode

        return run

    def _getter_offmode(self, fn: str | None) -> Callable[[Command], str]:
        def run(c: Command) -> str:
            c.expect(0)
            mode = self.sources[fn or self.source_function].offmode
            return mode[:4].upper()

        return run

    def _set_terminals(self, c: Command) -> None:
        c.expect(1)
        choice = c.param(0).choice("FRONt", "REAR")
        if choice != self.terminal_select:
            self.output = False  # switching terminals turns the output off
        self.terminal_select = choice

    def _take(self, buffer: ReadingBuffer) -> Reading:
        reading = self.measure()
        if self.count == 1 and buffer.origin is not None:  # buffer.add(reading), inlined
            readings = buffer.readings
            readings.append(reading)
            while len(readings) > buffer.capacity:
                readings.popleft()
            return reading
        for _ in range(self.count):
            buffer.add(reading)
        return reading

    def _format(self, reading: Reading, buffer: ReadingBuffer, names: list[str]) -> str:
        digits = self.precision or 7
        spec = _NUMBER_SPECS[digits] if digits < 18 else f".{digits - 1}E"
        parts = []
        for name in names:  # the numbers inline (``number``), the rest by ``_element``
            if name == "READing":
                parts.append(format(reading.value, spec))
            elif name == "SOURce":
                parts.append(format(reading.source, spec))
            elif name == "RELative" and buffer.origin is not None:
                parts.append(format(reading.time - buffer.origin, spec))
            else:
                parts.append(self._element(name, reading, buffer))
        return ",".join(parts)

    def _read(self, c: Command) -> str:
        plan = self._read_plans.get(id(c))
        if plan is None or plan[0] is not c:
            key = self._buffer(c.params[0] if c.params else None).name
            names = self._elements(c.params[1:])
            in_order = tuple(names) == _NUMERIC_ELEMENTS[: len(names)]
            plan = (c, names, key, {} if in_order else None)
            if len(self._read_plans) < 256:  # the entry keeps c alive: its id stays its own
                self._read_plans[id(c)] = plan
        buffer = self.buffers[plan[2]]
        templates = plan[3]
        if templates is None or self.count != 1 or buffer.origin is None:
            return self._format(self._take(buffer), buffer, plan[1])
        # The campaign's :READ? (one call per sample): _take and _format inlined, the
        # numbers formatted by one template per precision ("%.6E,%.6E,%.6E")
        reading = self.measure()
        readings = buffer.readings
        readings.append(reading)
        while len(readings) > buffer.capacity:
            readings.popleft()
        precision = self.precision
        template = templates.get(precision)
        if template is None:
            template = templates[precision] = _numbers_template(plan[1], precision)
        numbers = (reading.value, reading.source, reading.time - buffer.origin)
        reply: str = template % numbers[: len(plan[1])]
        return reply

    def _fetch(self, c: Command) -> str:
        buffer = self._buffer(c.params[0] if c.params else None)
        names = self._elements(c.params[1:])
        if not buffer.readings:
            raise ScpiError(-230)
        return self._format(buffer.readings[-1], buffer, names)

    def _measure_query(self, fn: str | None, c: Command) -> str:
        if fn is not None:
            self.sense_function = fn
        return self._read(c)

    def _initiate(self, c: Command) -> None:
        c.expect(0)
        self._take(self.buffers["defbuffer1"])

    def _trace_buffer(self, c: Command) -> ReadingBuffer:
        c.expect(0, 1)
        return self._buffer(c.params[0] if c.params else None)

    def _trace_clear(self, c: Command) -> None:
        self._trace_buffer(c).clear()

    def _trace_points(self, c: Command) -> None:
        c.expect(1, 2)
        buffer = self._buffer(c.params[1] if len(c.params) > 1 else None)
        buffer.capacity = c.param(0).integer(minimum=1, maximum=BUFFER_POINTS_MAX)
        buffer.clear()

    def _trace_points_q(self, c: Command) -> str:
        return str(self._trace_buffer(c).capacity)

    def _trace_data(self, c: Command) -> str:
        c.expect(2, 2 + 1 + 14)
        buffer = self._buffer(c.params[2] if len(c.params) > 2 else None)
        names = self._elements(c.params[3:])
        n = len(buffer.readings)
        start = c.param(0).integer(minimum=1, maximum=max(n, 1))
        end = c.param(1).integer(minimum=start, maximum=max(n, 1))
        if n == 0:
            raise ScpiError(-230)
        rows = list(buffer.readings)[start - 1 : end]
        return ",".join(self._format(r, buffer, names) for r in rows)

    def _next_error(self, c: Command) -> str:
        c.expect(0)
        if not self.errors:
            return '0,"No error;0;0 0"'
        code, text, unix = self.errors.popleft()
        stamp = _time.strftime("%Y/%m/%d %H:%M:%S", _time.gmtime(unix))
        millis = f"{unix % 1:.3f}"[1:]
        return f'{code},"{text};1;{stamp}{millis}"'

    def _set_precision(self, c: Command) -> None:
        c.expect(1)
        self.precision = c.param(0).integer(minimum=0, maximum=16)

    def _precision_q(self, c: Command) -> str:
        c.expect(0, 1)
        if c.params:
            return str(c.param(0).integer(minimum=0, maximum=16))
        return str(self.precision)

    def _set_format(self, c: Command) -> None:
        c.expect(1, 2)
        c.param(0).choice("ASCii")
