"""The two instrument interfaces the runner depends on, and their typed errors.

Everything else in ``drivers/`` implements these: a source-measure channel (Keithley 2450,
Keysight B2900, …) and a heater/thermocouple board. All methods are coroutines; the
implementations keep blocking I/O off the event loop (one worker and one lock per
instrument, a timeout on every call).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from enum import IntFlag, StrEnum
from typing import Any

# ----------------------------------------------------------------------- errors


class InstrumentError(Exception):
    """Something went wrong talking to an instrument. ``hint`` names what to check."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class LinkLost(InstrumentError):
    """The link is gone: socket closed, serial port vanished (USB unplugged)."""


class InstrumentTimeout(InstrumentError):
    """No (complete) reply within the call's timeout."""


class GarbledReply(InstrumentError):
    """A reply that does not parse, or whose checksum is wrong (after retries)."""


class WrongInstrument(InstrumentError):
    """Identity or command language is not what the driver drives (e.g. TSP mode)."""


class InstrumentReportedError(InstrumentError):
    """The instrument's own error queue reported an error (code and text kept)."""

    def __init__(self, code: int, text: str, hint: str = "") -> None:
        super().__init__(f"instrument error {code}: {text}", hint)
        self.code = code
        self.text = text


class OutOfRange(InstrumentError, ValueError):
    """A request outside the instrument's or the rig's range; raised before sending."""


class BoardTripped(InstrumentError):
    """The heater board has latched a trip; only an explicit reset clears it."""

    def __init__(self, reason: str, hint: str = "") -> None:
        super().__init__(f"heater board tripped: {reason}", hint)
        self.reason = reason


# ------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Identity:
    vendor: str
    model: str
    serial: str
    firmware: str


def _slot_setters(cls: type, *names: str) -> tuple[Any, ...]:
    """The slots' own setters, which a frozen dataclass's ``__setattr__`` does not guard."""
    return tuple(cls.__dict__[name].__set__ for name in names)


@dataclass(frozen=True, slots=True, init=False)
class Measurement:
    """One reading of a source-measure channel."""

    voltage: float  # V, measured
    current: float  # A, measured (or sourced, for a current source)
    time: float  # s, the instrument's own timestamp

    def __init__(self, voltage: float, current: float, time: float) -> None:
        # the generated __init__ of a frozen dataclass goes through object.__setattr__
        # per field, ≈ 40 % slower: a campaign makes one Measurement per sample
        _set_voltage(self, voltage)
        _set_current(self, current)
        _set_time(self, time)


_set_voltage, _set_current, _set_time = _slot_setters(Measurement, "voltage", "current", "time")


class SourceFunction(StrEnum):
    CURRENT = "current"  # galvanostat
    VOLTAGE = "voltage"  # potentiostat


class ThermocoupleFault(IntFlag):
    """MAX31855 fault bits."""

    NONE = 0
    OPEN = 0x1  # open circuit
    SHORT_GND = 0x2  # thermocouple shorted to GND
    SHORT_VCC = 0x4  # thermocouple shorted to VCC


@dataclass(frozen=True, slots=True, init=False)
class ThermoReading:
    """One reading of the heater board."""

    temperature: float  # degC; NaN when a fault bit is set
    cold_junction: float  # degC
    faults: ThermocoupleFault
    counter: int  # conversion counter; frozen readings keep the same counter
    duty: float  # 0..1, what the board is applying now (0 after a lease expired or a trip)

    def __init__(
        self,
        temperature: float,
        cold_junction: float,
        faults: ThermocoupleFault,
        counter: int,
        duty: float,
    ) -> None:
        # as Measurement's: one per thermal-loop tick
        _set_temperature(self, temperature)
        _set_cold_junction(self, cold_junction)
        _set_faults(self, faults)
        _set_counter(self, counter)
        _set_duty(self, duty)


_set_temperature, _set_cold_junction, _set_faults, _set_counter, _set_duty = _slot_setters(
    ThermoReading, "temperature", "cold_junction", "faults", "counter", "duty"
)


@dataclass(frozen=True, slots=True)
class BoardStatus:
    tripped: bool
    trip_reason: str | None
    duty: float  # 0..1
    lease_left: float  # s
    limit_max: float  # degC
    limit_min: float  # degC
    uptime: float  # s
    checksum_errors: int


# ---------------------------------------------------------------- interfaces


class SourceMeter(abc.ABC):
    """One source-measure channel, used as a galvanostat or a potentiostat."""

    @abc.abstractmethod
    async def identify(self) -> Identity:
        """Query identity and mode; raise WrongInstrument if this driver cannot drive it."""

    @abc.abstractmethod
    async def configure(
        self,
        function: SourceFunction,
        *,
        compliance: float,
        source_range: float,
        nplc: float = 1.0,
        remote_sense: bool = True,
    ) -> None:
        """Set up the source (current or voltage) with its compliance (V or A), leaving the
        output off in high impedance. Checks the error queue afterwards."""

    @abc.abstractmethod
    async def set_level(self, value: float) -> None:
        """Source level in A (current source) or V (voltage source); range-checked."""

    @abc.abstractmethod
    async def output_on(self) -> None: ...

    @abc.abstractmethod
    async def output_off(self) -> None:
        """Output off in high-impedance mode: the relay opens; the cell is not discharged."""

    @abc.abstractmethod
    async def read(self) -> Measurement:
        """Measure V and I (and the instrument's time) in one query."""

    @abc.abstractmethod
    async def compliance_tripped(self) -> bool:
        """Whether the source is in compliance (the limit is active)."""

    @abc.abstractmethod
    async def drain_errors(self) -> list[tuple[int, str]]:
        """Read the error queue until it is empty."""

    @abc.abstractmethod
    async def found_sourcing(self) -> tuple[SourceFunction, float] | None:
        """What the output is doing, asked of the instrument itself (no configure needed):
        ``None`` with the output off, else the source function and its level (A or V).
        An SMU has no lease: after a controller crash it may still be sourcing."""

    @abc.abstractmethod
    async def close(self) -> None: ...


class HeaterBoard(abc.ABC):
    """The heater/thermocouple board. It keeps itself safe: duty is a lease."""

    @abc.abstractmethod
    async def identify(self) -> Identity: ...

    @abc.abstractmethod
    async def read(self) -> ThermoReading: ...

    @abc.abstractmethod
    async def set_duty(self, duty: float, ttl: float) -> None:
        """Apply ``duty`` (0..1) for ``ttl`` seconds; the board drops it to 0 afterwards."""

    @abc.abstractmethod
    async def set_limits(self, maximum: float, minimum: float) -> None:
        """The board's own trip limits in degC."""

    @abc.abstractmethod
    async def status(self) -> BoardStatus: ...

    @abc.abstractmethod
    async def reset(self) -> None:
        """Clear a latched trip (refused by the board while its cause persists)."""

    @abc.abstractmethod
    async def close(self) -> None: ...
