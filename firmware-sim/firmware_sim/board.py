"""The heater board's firmware: the line protocol of ``firmware-sim/PROTOCOL.md``.

A pure state machine over the rig's time: :meth:`HeaterBoardFirmware.handle` answers one
request line, :meth:`HeaterBoardFirmware.tick` is called by the rig as time passes (lease
expiry, over-/under-temperature, thermocouple faults), :meth:`next_event` tells the rig
when the board must next look, and :meth:`output_duty` is what drives the SSR.
"""

from __future__ import annotations

import binascii
import math
from collections import deque
from typing import Protocol

from firmware_sim.thermal import CONVERSION_PERIOD, ThermocoupleReading

MODEL = "HCB-1"
FIRMWARE = "1.2.0"
MAX_LINE = 120
DEFAULT_MAX = 200.0
DEFAULT_MIN = 0.0
HARD_CEILING = 250.0
FLOOR = -50.0
TTL_MIN_MS = 100
TTL_MAX_MS = 10_000
TC_FAULT_CONVERSIONS = 3
STORM_COUNT = 5
STORM_WINDOW = 10.0  # s
COUNTER_WRAP = 1 << 32
#: a healthy reading cannot be further than this from the sensor (noise + 1/2 step), degC
MARGIN = 0.5


def crc16(payload: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor."""
    return binascii.crc_hqx(payload, 0xFFFF)


def frame(payload: str) -> bytes:
    """``T?`` -> ``b"T?*18C8"`` (no line terminator)."""
    data = payload.encode("ascii")
    return b"%s*%04X" % (data, binascii.crc_hqx(data, 0xFFFF))


#: framed replies that recur (``OK DUTY 100 3000``, ``ID …``, errors); a ``T`` reply
#: changes with every conversion and is framed afresh
_FRAMED: dict[str, bytes] = {}
#: payloads of request lines with a good crc (a pure function of the line)
_UNFRAMED: dict[bytes, str] = {}
#: valid ``DUTY`` request lines: (permille, ttl_ms, the framed ``OK DUTY`` reply)
_DUTY_LINES: dict[bytes, tuple[int, int, bytes]] = {}
_CACHE_MAX = 4096
#: the framed ``T?`` request
_T_LINE = frame("T?")
#: fields of the ``T`` reply as sent: the fault bits and the applied duty are a few values
_SMALL_TEXT = {value: b"%d" % value for value in range(1001)}  # the applied duty, permille
_FAULT_TEXT = {bits: b"%02X" % bits for bits in range(256)}


def _frame_cached(payload: str) -> bytes:
    framed = _FRAMED.get(payload)
    if framed is None:
        framed = frame(payload)
        if len(_FRAMED) < _CACHE_MAX:
            _FRAMED[payload] = framed
    return framed


def unframe(line: bytes) -> str | None:
    """The payload of a framed line, or None if the crc is missing or wrong."""
    payload, star, crc = line.rpartition(b"*")
    if not star or len(crc) != 4:
        return None
    try:
        if int(crc, 16) != crc16(payload):
            return None
        return payload.decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None


class BoardBench(Protocol):
    """What the board sees of the rig: the time and its thermocouple amplifier."""

    @property
    def time(self) -> float: ...

    def thermocouple(self) -> ThermocoupleReading: ...

    def probe_clear(self) -> float | None:
        """The sensor temperature when the probe is healthy and live (no fault, not
        frozen), else None: lets the board skip converting when nothing can trip."""


def _fmt(value: float, decimals: int = 2) -> str:
    return "nan" if math.isnan(value) else f"{value:.{decimals}f}"


class HeaterBoardFirmware:
    """HCB-1 firmware: a duty lease, own trip limits, latched trips, CRC framing."""

    def __init__(self, bench: BoardBench, *, serial: str = "B0042") -> None:
        self.bench = bench
        self.serial = serial
        self.limit_max = DEFAULT_MAX
        self.limit_min = DEFAULT_MIN
        self.permille = 0
        self.lease_until = -math.inf
        self.trip: str | None = None
        self.trip_time: float | None = None  # rig time the trip latched
        self.crc_errors = 0
        self._corrupt_times: deque[float] = deque()
        self._fault_first: int | None = None  # first conversion of a run with fault bits

    # ----------------------------------------------------------- physics side

    def output_duty(self) -> float:
        """SSR duty (0..1) now: 0 when tripped or the lease has run out."""
        if self.trip is not None or self.bench.time >= self.lease_until:
            return 0.0
        return self.permille / 1000.0

    def lease_left(self) -> float:
        if self.trip is not None:
            return 0.0
        return max(0.0, self.lease_until - self.bench.time)

    def next_event(self) -> float:
        """When the board must look next (lease expiry, third faulty conversion)."""
        t = math.inf
        now = self.bench.time
        if self.trip is None and self.permille and self.lease_until > now:
            t = self.lease_until
        if self.trip is None and self._fault_first is not None:
            t = min(t, (self._fault_first + TC_FAULT_CONVERSIONS - 1) * CONVERSION_PERIOD)
        return t

    def tick(self) -> None:
        """Look at the world at the bench's present time: lease, readings, trips."""
        now = self.bench.time
        if now >= self.lease_until:
            self.permille = 0
        if self.trip is not None:
            return  # latched: nothing more to decide until RESET
        if self._fault_first is None:
            sensor = self.bench.probe_clear()
            if sensor is not None and self.limit_min + MARGIN < sensor < self.limit_max - MARGIN:
                return  # a clean probe this far inside the limits cannot trip
        reading = self.bench.thermocouple()
        if reading.faults:
            if self._fault_first is None or reading.counter < self._fault_first:
                self._fault_first = reading.counter
            if reading.counter - self._fault_first >= TC_FAULT_CONVERSIONS - 1:
                self._latch("tcfault")
        else:
            self._fault_first = None
            if reading.temperature > self.limit_max:
                self._latch("overtemp")
            elif reading.temperature < self.limit_min:
                self._latch("undertemp")

    def _latch(self, reason: str) -> None:
        if self.trip is None:
            self.trip = reason
            self.trip_time = self.bench.time
        self.permille = 0
        self.lease_until = -math.inf

    # ------------------------------------------------------------- protocol

    def handle(self, line: bytes) -> bytes | None:
        # the two requests of every rig-second before any parsing: ``T?`` (its reply is new
        # every time) and a DUTY line seen before (parsed and checked once, by ``_duty``)
        if line == _T_LINE:
            return self._temperature_frame()
        duty = _DUTY_LINES.get(line)
        if duty is None:
            line = line.rstrip(b"\r\n")
            if not line:
                return None  # empty lines are ignored (a host may send one to resync)
            if len(line) > MAX_LINE:
                self._corrupt()
                return frame("ERR LONG")
            payload = _UNFRAMED.get(line)
            if payload is None:
                payload = unframe(line)
                if payload is None:
                    self._corrupt()
                    return frame("ERR CHECKSUM")
                if len(_UNFRAMED) < _CACHE_MAX:
                    _UNFRAMED[line] = payload
            if payload == "T?":
                return self._temperature_frame()
            duty = _DUTY_LINES.get(line)
            if duty is None:
                reply = self._request(payload)
                if reply.startswith("OK DUTY") and len(_DUTY_LINES) < _CACHE_MAX:
                    _, _, permille_text, ttl_text = reply.split(" ")
                    _DUTY_LINES[line] = int(permille_text), int(ttl_text), _frame_cached(reply)
                if reply.startswith("STATUS"):  # carries the uptime: new every time
                    return frame(reply)
                return _frame_cached(reply)
        permille, ttl_ms, ok = duty
        if self.trip is not None:
            return frame(f"ERR TRIPPED {self.trip}") if permille else ok
        self.permille = permille
        self.lease_until = self.bench.time + ttl_ms / 1000.0
        return ok

    def _corrupt(self) -> None:
        now = self.bench.time
        self.crc_errors += 1
        self._corrupt_times.append(now)
        while self._corrupt_times and self._corrupt_times[0] <= now - STORM_WINDOW:
            self._corrupt_times.popleft()
        if len(self._corrupt_times) >= STORM_COUNT:
            self._latch("checksum")

    def _request(self, payload: str) -> str:
        words = payload.split(" ")
        word, args = words[0], words[1:]
        if word == "ID?":
            return "ERR ARG" if args else f"ID {MODEL} {FIRMWARE} {self.serial}"
        if word == "T?":
            return "ERR ARG" if args else self._temperature()
        if word == "STATUS?":
            return "ERR ARG" if args else self._status()
        if word == "DUTY":
            return self._duty(args)
        if word == "LIMITS":
            return self._limits(args)
        if word == "RESET":
            return "ERR ARG" if args else self._reset()
        return f"ERR UNKNOWN {word[:16]}"

    def _temperature(self) -> str:
        return self._temperature_frame().rpartition(b"*")[0].decode("ascii")

    def _temperature_frame(self) -> bytes:
        """The framed ``T`` reply, as bytes (once a rig-second): ``%.2f`` gives what
        ``f"{x:.2f}"`` does, ``nan`` for a fault included; the applied duty is
        ``output_duty()`` in permille, i.e. ``permille`` or 0."""
        bench = self.bench
        temperature, cold_junction, faults, counter = bench.thermocouple()
        duty = 0 if self.trip is not None or bench.time >= self.lease_until else self.permille
        data = b"T %.2f %.4f %s %d %s" % (
            temperature,
            cold_junction,
            _FAULT_TEXT.get(faults) or b"%02X" % faults,
            counter % COUNTER_WRAP,
            _SMALL_TEXT.get(duty) or b"%d" % duty,
        )
        return b"%s*%04X" % (data, binascii.crc_hqx(data, 0xFFFF))

    def _status(self) -> str:
        state = "TRIPPED" if self.trip else "OK"
        return (
            f"STATUS {state} {self.trip or '-'} {round(self.output_duty() * 1000)} "
            f"{round(self.lease_left() * 1000)} {_fmt(self.limit_max)} {_fmt(self.limit_min)} "
            f"{round(self.bench.time * 1000)} {self.crc_errors}"
        )

    def _duty(self, args: list[str]) -> str:
        if len(args) != 2 or not (args[0].isdigit() and args[1].isdigit()):
            return "ERR ARG"
        permille, ttl_ms = int(args[0]), int(args[1])
        if not (0 <= permille <= 1000 and TTL_MIN_MS <= ttl_ms <= TTL_MAX_MS):
            return "ERR ARG"
        if self.trip is not None and permille:
            return f"ERR TRIPPED {self.trip}"
        if self.trip is None:
            self.permille = permille
            self.lease_until = self.bench.time + ttl_ms / 1000.0
        return f"OK DUTY {permille} {ttl_ms}"

    def _limits(self, args: list[str]) -> str:
        if len(args) != 2:
            return "ERR ARG"
        try:
            high, low = float(args[0]), float(args[1])
        except ValueError:
            return "ERR ARG"
        if not (math.isfinite(high) and math.isfinite(low)):
            return "ERR ARG"
        if high <= low or high > HARD_CEILING or low < FLOOR:
            self._latch("limits")
            return "ERR TRIPPED limits"
        self.limit_max, self.limit_min = high, low
        self.tick()  # a reading already beyond the new limits trips at once
        return f"OK LIMITS {_fmt(high)} {_fmt(low)}"

    def _reset(self) -> str:
        if self.trip is None:
            return "OK RESET"
        r = self.bench.thermocouple()
        still = (
            (self.trip == "overtemp" and not r.temperature < self.limit_max)
            or (self.trip == "undertemp" and not r.temperature > self.limit_min)
            or (self.trip == "tcfault" and r.faults != 0)
        )
        if still:
            return f"ERR STILL {self.trip}"
        self.trip = None
        self._fault_first = None
        self._corrupt_times.clear()
        return "OK RESET"
