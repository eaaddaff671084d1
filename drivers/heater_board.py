"""Driver for the heater/thermocouple board (line protocol: firmware-sim/PROTOCOL.md).

A table of requests, like a pymeasure driver: each method is one request with its reply
parsed and checked. Every line carries a CRC-16/CCITT-FALSE; a corrupt reply (or a
request the board saw corrupted, ``ERR CHECKSUM``) is retried up to ``retries`` times,
then raised as :class:`GarbledReply`. Requests out of range raise before anything is sent.
After a timeout (or a reply to another request) the next request first resynchronises
the link on ``ID?`` (``Transport.resync``), so a late reply is never taken for an answer.
"""

from __future__ import annotations

import binascii

from drivers.base import (
    BoardStatus,
    BoardTripped,
    GarbledReply,
    HeaterBoard,
    Identity,
    InstrumentError,
    OutOfRange,
    ThermocoupleFault,
    ThermoReading,
    WrongInstrument,
)
from drivers.transport import Transport

MODELS = ("HCB-1",)
TTL_MIN = 0.1  # s
TTL_MAX = 10.0  # s
LIMIT_CEILING = 250.0  # degC, the board's hard ceiling
LIMIT_FLOOR = -50.0
#: after a timeout the link may still carry a late reply: this request's reply ends it
MARKER = "ID?"


def crc16(payload: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF); ``crc16(b"123456789") == 0x29B1``."""
    return binascii.crc_hqx(payload, 0xFFFF)


def frame(payload: str) -> str:
    return f"{payload}*{crc16(payload.encode('ascii')):04X}"


def unframe(line: str) -> str | None:
    """The payload of a framed line, or None if its crc is missing or wrong."""
    payload, star, crc = line.rpartition("*")
    if not star or len(crc) != 4:
        return None
    try:
        ok = int(crc, 16) == crc16(payload.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    return payload if ok else None


_MARKER_LINE = frame(MARKER)
#: framed request lines (the crc of a request never changes)
_FRAMES: dict[str, str] = {}
#: fault fields as the board sends them, parsed once
_FAULTS = {f"{bits:02X}": ThermocoupleFault(bits) for bits in range(8)}
#: applied-duty fields (permille) as the board sends them, as the fraction ``read`` returns
_DUTIES = {str(permille): permille / 1000 for permille in range(1001)}


class HeaterBoardDriver(HeaterBoard):
    """HCB-1 heater board over any :class:`Transport` (serial, or the software rig)."""

    def __init__(self, transport: Transport, *, retries: int = 2) -> None:
        self.transport = transport
        self.retries = retries
        self.corrupt_replies = 0  # replies that failed their crc (retried)
        #: (permille, lease s) -> the request, the echo, and the whole framed reply (the
        #: lease as given: the loop gives the same one every time, and rounds it only once)
        self._duty_lines: dict[tuple[int, float], tuple[str, list[str], str]] = {}

    # -- the request table -------------------------------------------------------

    async def identify(self) -> Identity:
        words = await self._ask("ID?", "ID", 3)
        model, firmware, serial = words
        if model not in MODELS:
            raise WrongInstrument(
                f"{self.transport.name}: board model {model!r} is not one this driver knows "
                f"({', '.join(MODELS)})",
                "check heater.port in the rig file: is this the heater board?",
            )
        return Identity("heatcycler", model, serial, firmware)

    async def read(self) -> ThermoReading:
        temp, cj, faults, counter, duty = await self._ask("T?", "T", 5)
        try:
            fault_bits = _FAULTS.get(faults)
            if fault_bits is None:
                fault_bits = ThermocoupleFault(int(faults, 16))
            applied = _DUTIES.get(duty)
            if applied is None:
                applied = int(duty) / 1000
            return ThermoReading(float(temp), float(cj), fault_bits, int(counter), applied)
        except ValueError as exc:
            raise GarbledReply(
                f"{self.transport.name}: bad T reply fields {temp, cj, faults}"
            ) from exc

    async def set_duty(self, duty: float, ttl: float) -> None:
        if not 0.0 <= duty <= 1.0:  # (NaN too)
            raise OutOfRange(f"heater duty {duty!r} is outside 0…1")
        if not (TTL_MIN <= ttl <= TTL_MAX):
            raise OutOfRange(
                f"heater lease {ttl:g} s is outside {TTL_MIN:g}…{TTL_MAX:g} s",
                "rig setting heater.lease",
            )
        request = (round(duty * 1000), ttl)
        cached = self._duty_lines.get(request)
        if cached is None:
            text = f"DUTY {request[0]} {round(ttl * 1000)}"
            cached = (text, text.split(" "), frame(f"OK {text}"))
            if len(self._duty_lines) < 4096:
                self._duty_lines[request] = cached
        text, expected_echo, expected_line = cached
        echo = await self._ask(text, "OK", 3, expected_line, expected_echo)
        if echo != expected_echo:
            raise GarbledReply(f"{self.transport.name}: DUTY echoed {' '.join(echo)!r}")

    async def set_limits(self, maximum: float, minimum: float) -> None:
        if not (LIMIT_FLOOR <= minimum < maximum <= LIMIT_CEILING):
            raise OutOfRange(
                f"board limits max {maximum:g} degC / min {minimum:g} degC are not "
                f"{LIMIT_FLOOR:g} ≤ min < max ≤ {LIMIT_CEILING:g} degC",
                "rig settings safety.temperature_max / safety.temperature_min",
            )
        await self._ask(f"LIMITS {maximum:.2f} {minimum:.2f}", "OK", 3)

    async def status(self) -> BoardStatus:
        state, reason, duty, lease, maximum, minimum, uptime, crc_errors = await self._ask(
            "STATUS?", "STATUS", 8
        )
        try:
            return BoardStatus(
                tripped=state == "TRIPPED",
                trip_reason=None if reason == "-" else reason,
                duty=int(duty) / 1000,
                lease_left=int(lease) / 1000,
                limit_max=float(maximum),
                limit_min=float(minimum),
                uptime=int(uptime) / 1000,
                checksum_errors=int(crc_errors),
            )
        except ValueError as exc:
            raise GarbledReply(f"{self.transport.name}: bad STATUS reply") from exc

    async def reset(self) -> None:
        await self._ask("RESET", "OK", 1)

    async def close(self) -> None:
        await self.transport.close()

    # -- framing, retries, errors ----------------------------------------------------

    async def _ask(
        self,
        request: str,
        head: str,
        fields: int,
        known_line: str | None = None,
        known_words: list[str] | None = None,
    ) -> list[str]:
        """Send ``request``; return the words after ``head``, exactly ``fields`` of them.
        A reply that is exactly ``known_line`` (the expected reply, framed) gives
        ``known_words`` without being taken apart."""
        line = _FRAMES.get(request)
        if line is None:
            line = frame(request)
            if len(_FRAMES) < 4096:  # duties 0…1000 at a few leases, and the queries
                _FRAMES[request] = line
        last = "no reply"
        transport = self.transport
        for _ in range(self.retries + 1):
            if transport.desynced:
                await transport.resync(_MARKER_LINE, "ID ")
            reply = await transport.query(line)
            if reply == known_line and known_words is not None:
                return known_words
            # unframe(reply), inlined (two of these a second for a whole campaign)
            payload, star, crc = reply.rpartition("*")
            try:
                clean = (
                    star == "*"
                    and len(crc) == 4
                    and int(crc, 16) == binascii.crc_hqx(payload.encode("ascii"), 0xFFFF)
                )
            except (ValueError, UnicodeEncodeError):
                clean = False
            if not clean:
                self.corrupt_replies += 1
                last = f"corrupt reply {reply!r} (crc)"
                continue
            words = payload.split(" ")
            if words[0] == "ERR":
                if words[1:2] == ["CHECKSUM"]:  # our request arrived corrupted: send again
                    last = "the board saw a corrupt request"
                    continue
                raise _board_error(self.transport.name, request, words[1:])
            if words[0] != head or len(words) != fields + 1:
                transport.desynced = True  # perhaps someone else's (late) reply
                raise GarbledReply(
                    f"{self.transport.name}: unexpected reply {payload!r} to {request!r}"
                )
            return words[1:]
        raise GarbledReply(
            f"{self.transport.name}: no clean reply to {request!r} after "
            f"{self.retries + 1} tries: {last}",
            "check the serial cable and its shielding (EMI from the SSR/heater wiring)",
        )


def _board_error(name: str, request: str, words: list[str]) -> InstrumentError:
    code = words[0] if words else "?"
    detail = " ".join(words[1:])
    if code == "TRIPPED":
        return BoardTripped(detail or "?", "find the cause, then reset the board (RESET)")
    if code == "STILL":
        still = BoardTripped(detail or "?", "fix the cause first (see the trip reason)")
        still.message = f"heater board refused RESET: the cause of its {detail} trip persists"
        still.args = (still.message,)
        return still
    if code == "ARG":
        return OutOfRange(f"{name}: the board refused the arguments of {request!r}")
    return InstrumentError(
        f"{name}: the board answered ERR {' '.join(words)} to {request!r}",
        "check the board's firmware version (ID?) against PROTOCOL.md",
    )
