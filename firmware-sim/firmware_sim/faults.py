"""Fault injection: what goes wrong on a real bench, on demand and on a timetable.

A fault is named by a spec ``KIND[=VALUE][@AT][+FOR]``: ``tc_open``, ``tc_open@2h``
(at rig time 2 h), ``smu_timeout@100+30s`` (from 100 s for 30 s), ``loss=1.5@30min``,
``cell_short=hard@3h``. Times are seconds or carry ``ms``/``s``/``min``/``h``. Tests call
``rig.faults.inject(kind, value, at=..., duration=...)`` or ``rig.faults.apply(spec)``; the
command line passes specs to ``heatcycler sim serve --fault`` or ``heatcycler sim fault``.

Link faults (unplug, silence, garbage, corrupt crc) live in :class:`Wire`, the
:class:`drivers.transport.LineDevice` between a host and a firmware; the others change the
physics (the rig reads :attr:`Faults.active`).
"""

from __future__ import annotations

import contextlib
import heapq
import math
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from firmware_sim.thermal import hashed_gauss

if TYPE_CHECKING:
    from drivers.transport import LineDevice


class DeviceUnplugged(ConnectionError):
    """The link is gone (USB serial unplugged, Ethernet cable out). An in-process transport
    sees this exception from ``handle``; the pty and TCP front-ends close the link."""


class FaultSpecError(ValueError):
    """A fault spec that does not parse; ``hint`` says what would."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def _number(text: str) -> float:
    return float(text)


def _short_kind(text: str) -> str:
    if text not in ("soft", "hard"):
        raise ValueError("a short is `soft` or `hard`")
    return text


def _positive(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError("must be a positive number")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be a count >= 1")
    return value


def _error_code(text: str) -> int:
    value = int(text)
    if value == 0:
        raise ValueError("an error code is not 0")
    return value


@dataclass(frozen=True, slots=True)
class Kind:
    """A fault kind: a lasting state (cleared by ``clear`` or ``+FOR``) or an event."""

    name: str
    help: str
    state: bool
    parse: Callable[[str], object] | None = None
    default: object = None


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("tc_open", "thermocouple open (MAX31855 fault bit 01)", True),
        Kind("tc_short_gnd", "thermocouple shorted to GND (fault bit 02)", True),
        Kind("tc_short_vcc", "thermocouple shorted to VCC (fault bit 04)", True),
        Kind("tc_shorted", "thermocouple wires touching: reads the cold junction", True),
        Kind("heater_dead", "heater cartridge open: no heat whatever the duty", True),
        Kind("heater_stuck_on", "SSR welded: full heat whatever the duty", True),
        Kind("frozen", "thermocouple readings frozen (counter stops)", True),
        Kind("serial_unplug", "heater board's USB serial unplugged", True),
        Kind("board_silent", "heater board hung: no replies", True),
        Kind("board_crc", "the next N board replies carry a wrong crc", False, _count, 1),
        Kind("smu_unplug", "SMU link gone (connection closed)", True),
        Kind("smu_timeout", "SMU hung: no replies", True),
        Kind("smu_garbage", "SMU replies are garbage bytes", True),
        Kind(
            "smu_error", "push an error CODE into the SMU's error queue", False, _error_code, -200
        ),
        Kind("smu_compliance", "cell leads open: the source runs into its limit", True),
        Kind("cell_short", "short the cell now: soft or hard", False, _short_kind, "hard"),
        Kind("loss", "heat-loss factor (1.5 = 50 % more loss)", False, _positive),
        Kind("ambient", "room temperature, degC", False, _number),
    )
}

_SPEC = re.compile(
    r"^(?P<kind>[a-z_]+)(?:=(?P<value>[^@+]+))?(?:@(?P<at>[^+]+))?(?:\+(?P<for>.+))?$"
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|min|h)?\s*$")
_SCALE = {"ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """``90`` / ``90s`` / ``1.5h`` / ``30min`` / ``250ms`` -> seconds."""
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a time; write e.g. 90, 90s, 30min or 1.5h")
    return float(m.group(1)) * _SCALE[m.group(2)]


def kinds_help() -> str:
    return "\n".join(f"  {k.name:<16} {k.help}" for k in KINDS.values())


@dataclass(frozen=True, slots=True)
class FaultSpec:
    kind: str
    value: object = None
    at: float | None = None  # rig time; None = now
    duration: float | None = None

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        text = text.strip()
        m = _SPEC.match(text)
        if m is None or m.group("kind") not in KINDS:
            what = m.group("kind") if m else text
            raise FaultSpecError(
                f"unknown fault {what!r}",
                "write KIND[=VALUE][@AT][+FOR], e.g. tc_open@2h or smu_timeout@100+30s; "
                "kinds: " + ", ".join(KINDS),
            )
        kind = KINDS[m.group("kind")]
        value: object = kind.default
        if m.group("value") is not None:
            if kind.parse is None:
                raise FaultSpecError(f"{kind.name} takes no value", f"write just {kind.name}")
            try:
                value = kind.parse(m.group("value"))
            except ValueError as exc:
                raise FaultSpecError(
                    f"bad value {m.group('value')!r} for {kind.name}: {exc}", kind.help
                ) from None
        elif kind.parse is not None and kind.default is None:
            raise FaultSpecError(
                f"{kind.name} needs a value", f"write {kind.name}=VALUE ({kind.help})"
            )
        try:
            at = parse_duration(m.group("at")) if m.group("at") else None
            duration = parse_duration(m.group("for")) if m.group("for") else None
        except ValueError as exc:
            raise FaultSpecError(str(exc), "times are seconds or carry ms, s, min or h") from None
        if duration is not None and not kind.state and kind.name not in ("loss", "ambient"):
            raise FaultSpecError(
                f"{kind.name} is a one-off event; it has no duration", f"drop the +{m['for']}"
            )
        return cls(kind.name, value, at, duration)

    def __str__(self) -> str:
        text = self.kind
        if self.value is not None and KINDS[self.kind].parse is not None:
            text += f"={self.value}"
        if self.at is not None:
            text += f"@{self.at:g}"
        if self.duration is not None:
            text += f"+{self.duration:g}"
        return text


#: (kind, value, on): what the rig does when a fault starts (on) or ends
Effect = Callable[[str, object, bool], None]


class Faults:
    """Active faults and the timetable of those to come. Bound to a rig, which supplies
    the present time (after advancing its physics) and applies the effects."""

    def __init__(self) -> None:
        self.active: dict[str, object] = {}
        self.log: list[tuple[float, str, bool]] = []  # (rig time, spec, started)
        self._schedule: list[tuple[float, int, bool, FaultSpec]] = []
        self._seq = 0
        self._now: Callable[[], float] = lambda: 0.0
        self._effect: Effect = lambda kind, value, on: None
        self._saved: dict[str, object] = {}  # values a timed `loss`/`ambient` restores
        self._lock: AbstractContextManager[Any] = contextlib.nullcontext()

    def bind(
        self, now: Callable[[], float], effect: Effect, lock: AbstractContextManager[Any]
    ) -> None:
        """``now`` advances the rig and returns its time; ``effect`` applies a fault;
        ``lock`` (re-entrant) serialises injection with the rig's requests."""
        self._now = now
        self._effect = effect
        self._lock = lock

    def is_active(self, kind: str) -> bool:
        return kind in self.active

    def inject(
        self,
        kind: str,
        value: object = None,
        *,
        at: float | None = None,
        duration: float | None = None,
    ) -> FaultSpec:
        """Start a fault now (or at rig time ``at``), optionally for ``duration`` s."""
        if kind not in KINDS:
            raise FaultSpecError(f"unknown fault {kind!r}", "kinds: " + ", ".join(KINDS))
        k = KINDS[kind]
        if value is None:
            value = k.default
        if value is None and k.parse is not None:
            raise FaultSpecError(f"{kind} needs a value", k.help)
        return self.apply(FaultSpec(kind, value, at, duration))

    def apply(self, spec: str | FaultSpec) -> FaultSpec:
        if isinstance(spec, str):
            spec = FaultSpec.parse(spec)
        with self._lock:
            now = self._now()
            start = now if spec.at is None else max(spec.at, now)
            if start <= now:
                self._start(spec, now)
            else:
                self._push(start, True, spec)
            if spec.duration is not None:
                self._push(start + spec.duration, False, spec)
        return spec

    def clear(self, kind: str) -> None:
        """End a lasting fault now (and drop its scheduled starts)."""
        if kind not in KINDS:
            raise FaultSpecError(f"unknown fault {kind!r}", "kinds: " + ", ".join(KINDS))
        with self._lock:
            now = self._now()
            self._schedule = [e for e in self._schedule if e[3].kind != kind]
            heapq.heapify(self._schedule)
            self._stop(FaultSpec(kind), now)

    def clear_all(self) -> None:
        with self._lock:
            for kind in list(self.active):
                self.clear(kind)
            self._schedule.clear()

    def scheduled(self) -> list[tuple[float, str, bool]]:
        """What is still to come: (rig time, spec, starting) in order."""
        return [(t, str(spec), start) for t, _, start, spec in sorted(self._schedule)]

    def next_time(self) -> float:
        return self._schedule[0][0] if self._schedule else math.inf

    def fire_due(self, t: float) -> None:
        """Start and end what is due at or before ``t`` (the rig has advanced to ``t``)."""
        while self._schedule and self._schedule[0][0] <= t:
            when, _, starting, spec = heapq.heappop(self._schedule)
            if starting:
                self._start(spec, when)
            else:
                self._stop(spec, when)

    def _push(self, when: float, starting: bool, spec: FaultSpec) -> None:
        self._seq += 1
        heapq.heappush(self._schedule, (when, self._seq, starting, spec))

    def _start(self, spec: FaultSpec, when: float) -> None:
        k = KINDS[spec.kind]
        self.log.append((when, str(spec), True))
        if k.state:
            self.active[spec.kind] = spec.value
        elif spec.kind in ("loss", "ambient") and spec.duration is not None:
            self._saved.setdefault(spec.kind, self.active.get(spec.kind))
            self.active[spec.kind] = spec.value
        elif spec.kind in ("loss", "ambient"):
            self.active[spec.kind] = spec.value
        self._effect(spec.kind, spec.value, True)

    def _stop(self, spec: FaultSpec, when: float) -> None:
        kind = spec.kind
        if kind in ("loss", "ambient"):
            restored = self._saved.pop(kind, None)
            if restored is None:
                self.active.pop(kind, None)
            else:
                self.active[kind] = restored
            self.log.append((when, kind, False))
            self._effect(kind, restored, False)
            return
        if kind in self.active:
            del self.active[kind]
            self.log.append((when, kind, False))
            self._effect(kind, None, False)


def garbage(n: int, length: int = 24) -> bytes:
    """Deterministic line noise: bytes that are neither a valid reply nor a newline."""
    out = bytearray()
    for i in range(length):
        b = int((hashed_gauss(n, i) + 4.0) * 32) & 0xFF
        out.append(b if b not in (0x0A, 0x0D) else 0x7F)
    return bytes(out)


class Wire:
    """The link between a host and one firmware, where link faults happen.

    ``handle`` advances the rig to now, then: an unplugged link raises
    :class:`DeviceUnplugged`; a hung device (``*_timeout``/``board_silent``) answers
    nothing and executes nothing; otherwise the firmware runs and its reply may be
    replaced by garbage or get a corrupt crc.
    """

    def __init__(
        self,
        firmware: LineDevice,
        *,
        faults: Faults,
        sync: Callable[[], float],
        lock: AbstractContextManager[Any],
        unplug: str,
        silent: str,
        garbage_kind: str | None = None,
    ) -> None:
        self.firmware = firmware
        self.faults = faults
        self._sync = sync
        self._lock = lock
        self.unplug_kind = unplug
        self._silent = silent
        self._garbage = garbage_kind
        self._corrupt_left = 0
        self._garbage_count = 0
        self.requests = 0

    @property
    def unplugged(self) -> bool:
        return self.faults.is_active(self.unplug_kind)

    def corrupt_next(self, n: int) -> None:
        self._corrupt_left += n

    def handle(self, line: bytes) -> bytes | None:
        with self._lock:
            self._sync()
            self.requests += 1
            active = self.faults.active
            if not active and self._corrupt_left <= 0:
                return self.firmware.handle(line)  # no fault armed: the reply as it is
            if active:
                if self.unplug_kind in active:
                    raise DeviceUnplugged(f"{self.unplug_kind}: the link is gone")
                if self._silent in active:
                    return None
            reply = self.firmware.handle(line)
            if reply is None:
                return None
            if self._garbage and self._garbage in active:
                self._garbage_count += 1
                return garbage(self._garbage_count)
            if self._corrupt_left > 0:
                self._corrupt_left -= 1
                payload, _, crc = reply.rpartition(b"*")
                bad = (int(crc, 16) ^ 0x5A5A) if crc else 0
                return payload + b"*" + f"{bad:04X}".encode()
            return reply
