"""An SCPI parser and command tree, as SCPI-99 and IEEE 488.2 define them.

What an instrument accepts (and the Keithley 2450 reference manual documents):

- headers are mnemonics in long or short form (``SOURce`` = ``SOUR`` = ``source``),
  case-insensitive, nothing in between (``SOURC`` is undefined); a leading colon is optional;
- optional nodes in brackets may be left out (``:SOURce[1]:CURRent[:LEVel][:IMMediate]``);
  a ``[1]`` suffix may be given as ``SOUR1`` but no other number;
- several commands in one line are separated by ``;``; a command after ``;`` without a
  leading colon continues at the level of the previous header (``:SOUR:CURR 1e-3;VLIM 2``
  is ``:SOUR:CURR:VLIM 2``); common commands (``*IDN?``) do not move that level;
- a trailing ``?`` makes a query; parameters follow after white space, separated by
  commas: numbers (``1e-3``, ``10mA``, ``MIN``/``MAX``/``DEF``), booleans (``ON``/``OFF``/
  ``1``/``0``), character data (``HIMPedance``), quoted strings (``"defbuffer1"``).

Errors carry the standard numbers and texts (``-113,"Undefined header"``). A command error
(-1xx) discards the rest of the line, an execution error (-2xx) does not.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

# -------------------------------------------------------------------- errors

MESSAGES: dict[int, str] = {
    0: "No error",
    -100: "Command error",
    -101: "Invalid character",
    -102: "Syntax error",
    -103: "Invalid separator",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -114: "Header suffix out of range",
    -120: "Numeric data error",
    -131: "Invalid suffix",
    -141: "Invalid character data",
    -151: "Invalid string data",
    -200: "Execution error",
    -221: "Settings conflict",
    -222: "Parameter data out of range",
    -224: "Illegal parameter value",
    -230: "Data corrupt or stale",
    -285: "Program syntax error",
    -350: "Queue overflow",
}


class ScpiError(Exception):
    """An error the instrument puts in its error queue."""

    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = code
        self.message = message or MESSAGES.get(code, "Error")
        super().__init__(f"{code},{self.message}")

    @property
    def command_error(self) -> bool:
        """-1xx: the parser gives up on the rest of the line."""
        return -199 <= self.code <= -100


# ---------------------------------------------------------------- parameters

_NUMBER = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z%]*)$")
#: SCPI-99 suffix multipliers (7.7.3); "MA" alone is mega, "M" is milli.
_MULTIPLIERS: dict[str, float] = {
    "EX": 1e18,
    "PE": 1e15,
    "T": 1e12,
    "G": 1e9,
    "MA": 1e6,
    "K": 1e3,
    "M": 1e-3,
    "U": 1e-6,
    "N": 1e-9,
    "P": 1e-12,
    "F": 1e-15,
}


def mnemonic_matches(word: str, long_form: str) -> bool:
    """``word`` is the long form or its short form (the upper-case letters, plus a
    trailing digit run), case-insensitively."""
    return word.upper() in _forms(long_form)


@functools.cache
def _forms(long_form: str) -> tuple[str, str]:
    return long_form.upper(), short_form(long_form)


@functools.cache
def short_form(long_form: str) -> str:
    """``HIMPedance`` -> ``HIMP``; ``SCPI2400`` -> ``SCPI2400``."""
    if long_form.isupper() or not any(c.isupper() for c in long_form):
        return long_form.upper()
    return "".join(c for c in long_form if c.isupper() or c.isdigit())


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter as sent; typed by the handler that consumes it."""

    text: str
    quoted: bool = False

    def string(self) -> str:
        """A quoted string parameter (``"defbuffer1"``); bare words are accepted too."""
        return self.text

    def is_word(self, *long_forms: str) -> bool:
        return not self.quoted and any(mnemonic_matches(self.text, f) for f in long_forms)

    def choice(self, *long_forms: str) -> str:
        """Character data: returns the matching long form, or -141 Invalid character data."""
        if self.quoted:
            raise ScpiError(-104, "Data type error")
        for form in long_forms:
            if mnemonic_matches(self.text, form):
                return form
        raise ScpiError(-141)

    def boolean(self) -> bool:
        """ON/OFF or a number (non-zero after rounding is ON)."""
        if self.quoted:
            raise ScpiError(-104)
        word = self.text.upper()
        if word == "ON":
            return True
        if word == "OFF":
            return False
        m = _NUMBER.match(self.text)
        if m is None or m.group(2):
            raise ScpiError(-104)
        return round(float(m.group(1))) != 0

    def number(
        self,
        unit: str = "",
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        default: float | None = None,
    ) -> float:
        """A numeric value with optional multiplier/unit suffix (``10mA`` with unit ``A``),
        or MINimum/MAXimum/DEFault when the handler gives those. Out of ``[minimum,
        maximum]`` is -222."""
        if self.quoted:
            raise ScpiError(-104)
        word = self.text.upper()
        special = {"MIN": minimum, "MINIMUM": minimum, "MAX": maximum, "MAXIMUM": maximum}
        special |= {"DEF": default, "DEFAULT": default}
        if word in special:
            value = special[word]
            if value is None:
                raise ScpiError(-224)
            return value
        m = _NUMBER.match(self.text)
        if m is None:
            if word in ("INF", "NINF", "NAN") or word[:1].isalpha():
                raise ScpiError(-104)
            raise ScpiError(-120 if word[:1] in "+-.0123456789" else -104)
        value = float(m.group(1))
        suffix = m.group(2).upper()
        if suffix:
            value *= _suffix_scale(suffix, unit.upper())
        if not math.isfinite(value):
            raise ScpiError(-222)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise ScpiError(-222)
        return value

    def integer(self, *, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.number(
            minimum=None if minimum is None else float(minimum),
            maximum=None if maximum is None else float(maximum),
        )
        return round(value)


def _suffix_scale(suffix: str, unit: str) -> float:
    if not unit:
        raise ScpiError(-131)
    if suffix == unit:
        return 1.0
    if not suffix.endswith(unit):
        raise ScpiError(-131)
    multiplier = suffix[: -len(unit)]
    if multiplier == "MA" and unit in ("OHM", "HZ"):  # MOHM and MHZ are mega
        return 1e6
    if multiplier in _MULTIPLIERS:
        return _MULTIPLIERS[multiplier]
    raise ScpiError(-131)


# ------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class Command:
    """One program message unit, with its header resolved against the path."""

    header: tuple[str, ...]  # mnemonics as sent, upper case; ('*IDN',) for common commands
    query: bool
    params: tuple[Param, ...]

    @property
    def common(self) -> bool:
        return len(self.header) == 1 and self.header[0].startswith("*")

    def param(self, index: int) -> Param:
        if index >= len(self.params):
            raise ScpiError(-109)
        return self.params[index]

    def expect(self, low: int, high: int | None = None) -> None:
        """Check the number of parameters: -109 too few, -108 too many."""
        n = len(self.params)
        if n < low:
            raise ScpiError(-109)
        if n > (low if high is None else high):
            raise ScpiError(-108)


def split_units(message: str) -> list[str]:
    """Split a program message at ``;`` outside quoted strings."""
    if '"' not in message and "'" not in message:
        return message.split(";")
    units: list[str] = []
    buf: list[str] = []
    quote: str | None = None
    for ch in message:
        if quote is not None:
            buf.append(ch)
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            buf.append(ch)
        elif ch == ";":
            units.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    if quote is not None:
        raise ScpiError(-151)
    units.append("".join(buf))
    return units


_HEADER = re.compile(r"^(:?)([A-Za-z][A-Za-z0-9_]*(?::[A-Za-z][A-Za-z0-9_]*)*)(\?)?$")
_COMMON = re.compile(r"^:?(\*[A-Za-z]+)(\?)?$")


_PARAMS_CACHE: dict[str, tuple[Param, ...]] = {}


def split_params(text: str) -> tuple[Param, ...]:
    """Comma-separated parameters; quoted strings keep commas and doubled quotes."""
    cached = _PARAMS_CACHE.get(text)
    if cached is None:
        cached = _split_params(text)
        if len(_PARAMS_CACHE) < 4096:  # instruments repeat themselves; keep the usual ones
            _PARAMS_CACHE[text] = cached
    return cached


def _split_params(text: str) -> tuple[Param, ...]:
    text = text.strip()
    if not text:
        return ()
    params: list[Param] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] in "\"'":
            quote = text[i]
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise ScpiError(-151)
                if text[i] == quote:
                    if i + 1 < n and text[i + 1] == quote:
                        chars.append(quote)
                        i += 2
                        continue
                    i += 1
                    break
                chars.append(text[i])
                i += 1
            params.append(Param("".join(chars), quoted=True))
            while i < n and text[i] in " \t":
                i += 1
        else:
            start = i
            while i < n and text[i] != ",":
                if text[i] in "\"'":
                    raise ScpiError(-102)
                i += 1
            word = text[start:i].strip()
            if not word:
                raise ScpiError(-102)
            params.append(Param(word))
        if i >= n:
            return tuple(params)
        if text[i] != ",":
            raise ScpiError(-102)
        i += 1
        if i >= n:
            raise ScpiError(-102)  # a trailing comma: a parameter is missing


def parse_unit(unit: str, path: tuple[str, ...]) -> tuple[Command, tuple[str, ...]]:
    """Parse one unit against the current path; returns the command and the next path."""
    unit = unit.strip(" \t\r\n")
    head, _, rest = unit.partition(" ")
    if "\t" in head:
        head, _, rest2 = head.partition("\t")
        rest = rest2 + " " + rest
    m = _COMMON.match(head)
    if m is not None:
        return Command((m.group(1).upper(),), bool(m.group(2)), split_params(rest)), path
    m = _HEADER.match(head)
    if m is None:
        raise ScpiError(-102 if any(not (c.isalnum() or c in ":?*_") for c in head) else -113)
    words = tuple(w.upper() for w in m.group(2).split(":"))
    header = words if m.group(1) or not path else path + words
    return Command(header, bool(m.group(3)), split_params(rest)), header[:-1]


def parse(message: str) -> Iterable[Command | ScpiError]:
    """Commands of one line in order; a command error ends the line (yielded, then stop)."""
    try:
        units = split_units(message)
    except ScpiError as exc:
        yield exc
        return
    path: tuple[str, ...] = ()
    for unit in units:
        if not unit.strip():
            continue
        try:
            command, path = parse_unit(unit, path)
        except ScpiError as exc:
            yield exc
            return
        yield command


# --------------------------------------------------------------- command tree


@dataclass(frozen=True, slots=True)
class Node:
    long: str
    short: str
    optional: bool
    suffix: int | None  # the one numeric suffix allowed ([1]), or None


_NODE = re.compile(r"(\[)?:([A-Za-z*]+)(?:\[(\d)\])?(\])?")


def compile_pattern(pattern: str) -> tuple[Node, ...]:
    """``:SOURce[1]:CURRent[:LEVel]`` -> nodes; bracketed nodes are optional."""
    nodes: list[Node] = []
    pos = 0
    while pos < len(pattern):
        m = _NODE.match(pattern, pos)
        if m is None or bool(m.group(1)) != bool(m.group(4)):
            raise ValueError(f"bad SCPI pattern {pattern!r} at {pos}")
        long_form = m.group(2)
        suffix = int(m.group(3)) if m.group(3) else None
        nodes.append(Node(long_form, short_form(long_form), bool(m.group(1)), suffix))
        pos = m.end()
    return tuple(nodes)


_SUFFIX = re.compile(r"^([A-Z_*]+?)(\d+)?$")


def _node_matches(node: Node, word: str) -> bool:
    m = _SUFFIX.match(word)
    if m is None:
        return False
    base, digits = m.group(1), m.group(2)
    if base not in (node.long.upper(), node.short):
        return False
    if digits is None:
        return True
    if node.suffix is None or int(digits) != node.suffix:
        raise ScpiError(-114)
    return True


def _match(nodes: Sequence[Node], words: Sequence[str], i: int = 0, j: int = 0) -> bool:
    if j == len(words):
        return all(n.optional for n in nodes[i:])
    if i == len(nodes):
        return False
    node = nodes[i]
    if _node_matches(node, words[j]) and _match(nodes, words, i + 1, j + 1):
        return True
    return node.optional and _match(nodes, words, i + 1, j)


Handler = Callable[[Command], str | None]


@dataclass
class Entry:
    pattern: str
    nodes: tuple[Node, ...]
    write: Handler | None = None
    query: Handler | None = None


@dataclass
class CommandTree:
    """Patterns and their handlers. Lookups are cached per header as sent."""

    entries: list[Entry] = field(default_factory=list)
    common: dict[str, Entry] = field(default_factory=dict)
    _cache: dict[tuple[str, ...], Entry | None] = field(default_factory=dict)

    def add(
        self, pattern: str, *, write: Handler | None = None, query: Handler | None = None
    ) -> None:
        """``pattern`` as the manual writes it (``:OUTPut[1][:STATe]``), or a common
        command (``*IDN``)."""
        if pattern.startswith("*"):
            self.common[pattern.upper()] = Entry(pattern, (), write, query)
            return
        self.entries.append(Entry(pattern, compile_pattern(pattern), write, query))
        self._cache.clear()

    def lookup(self, header: tuple[str, ...]) -> Entry:
        if len(header) == 1 and header[0].startswith("*"):
            common = self.common.get(header[0])
            if common is None:
                raise ScpiError(-113)
            return common
        if header in self._cache:
            entry = self._cache[header]
        else:
            entry = None
            for candidate in self.entries:
                if _match(candidate.nodes, header):
                    entry = candidate
                    break
            self._cache[header] = entry
        if entry is None:
            raise ScpiError(-113)
        return entry

    def execute(self, command: Command) -> str | None:
        entry = self.lookup(command.header)
        handler = entry.query if command.query else entry.write
        if handler is None:
            raise ScpiError(-113)
        return handler(command)
