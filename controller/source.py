"""Load YAML keeping line/column of every key and value, to point errors at the text."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.problems import Problem, UserError


@dataclass(frozen=True)
class Source:
    """A parsed YAML document with the positions of its nodes."""

    file: str
    text: str
    data: Any  # ruamel CommentedMap/CommentedSeq tree (dict/list subclasses)

    def position(self, loc: tuple[Any, ...], *, at_key: bool = False) -> tuple[int, int]:
        """1-based (line, col) of the node at ``loc``; the deepest existing node if the
        path runs past the data (a missing key points at its parent mapping)."""
        node = self.data
        pos = (1, 1)
        lc = getattr(node, "lc", None)
        if isinstance(node, dict) and node and lc is not None:
            line, col = lc.key(next(iter(node)))  # the mapping starts at its first key
            pos = (line + 1, col + 1)
        for i, part in enumerate(loc):
            last = i == len(loc) - 1
            lc = getattr(node, "lc", None)
            if isinstance(node, dict) and part in node:
                child = node[part]
                if lc is not None:
                    scalar_value = not isinstance(child, dict | list) and child is not None
                    line, col = (
                        lc.value(part) if last and scalar_value and not at_key else (lc.key(part))
                    )
                    pos = (line + 1, col + 1)
                node = child
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                if lc is not None:
                    line, col = lc.item(part)
                    pos = (line + 1, col + 1)
                node = node[part]
            else:
                break
        return pos


def load_yaml(path: Path | str, text: str | None = None) -> Source:
    """Parse one YAML file; syntax errors and duplicate keys become a UserError."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    name = str(path)
    if text is None:
        text = _read_text(name, Path(path))
    yaml = YAML(typ="rt")
    yaml.Constructor = _constructor()
    yaml.allow_duplicate_keys = False
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        problem = _syntax_problem(name, text, exc)
        raise UserError(problem.format(), problem.hint, [problem]) from None
    except (YAMLError, ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        # unmarked YAML errors, and the parser's own slips on odd text: still no traceback
        problem = Problem(
            name, 1, 1, "", f"YAML could not be read: {exc}", "check the file's syntax"
        )
        raise UserError(problem.format(), problem.hint, [problem]) from None
    return Source(name, text, data)


@functools.cache
def _constructor() -> type:
    """ruamel's round-trip constructor, but a scalar that only looks like a number or a
    date (`-_`, `._`, `2026-13-45`) stays text instead of crashing the loader; the
    validator then says what it expected there, at its line."""
    from ruamel.yaml.constructor import RoundTripConstructor

    class Constructor(RoundTripConstructor):
        def _or_text(self, construct: Any, node: Any) -> Any:
            try:
                return construct(self, node)
            except (ValueError, TypeError, IndexError, KeyError, OverflowError):
                return self.construct_scalar(node)

        def construct_yaml_int(self, node: Any) -> Any:
            return self._or_text(RoundTripConstructor.construct_yaml_int, node)

        def construct_yaml_float(self, node: Any) -> Any:
            return self._or_text(RoundTripConstructor.construct_yaml_float, node)

        def construct_yaml_timestamp(self, node: Any, values: Any = None) -> Any:
            return self._or_text(RoundTripConstructor.construct_yaml_timestamp, node)

    for tag, method in (
        ("tag:yaml.org,2002:int", Constructor.construct_yaml_int),
        ("tag:yaml.org,2002:float", Constructor.construct_yaml_float),
        ("tag:yaml.org,2002:timestamp", Constructor.construct_yaml_timestamp),
    ):
        Constructor.add_constructor(tag, method)
    return Constructor


def _read_text(name: str, path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _unreadable(name, "no such file", "check the path") from None
    except IsADirectoryError:
        raise _unreadable(
            name, "is a directory, not a YAML file", "give the path of a .yaml file"
        ) from None
    except OSError as exc:
        raise _unreadable(name, f"cannot read: {exc.strerror}", "check its permissions") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        col = len(raw[line_start : exc.start].decode("utf-8", errors="replace")) + 1
        bad = " ".join(f"0x{b:02x}" for b in raw[exc.start : exc.end])
        what = f"not UTF-8 text: byte {bad} cannot be read (another encoding, e.g. Latin-1?)"
        hint = (
            "save the file as UTF-8 (in the editor: Save As → Encoding: UTF-8); "
            "write degrees as `degC`"
        )
        problem = Problem(name, line, col, "", what, hint)
        raise UserError(problem.format(), hint, [problem]) from None


def _unreadable(name: str, what: str, hint: str) -> UserError:
    return UserError(f"{name}: {what}", hint, [Problem(name, 1, 1, "", what, hint)])


def _syntax_problem(name: str, text: str, exc: Any) -> Problem:
    """A located, plain-words account of a YAML syntax error."""
    lines = text.splitlines()
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    what = (exc.problem or "invalid YAML").strip()
    context = (exc.context or "").strip()
    ctx = exc.context_mark
    duplicate = re.match(r'found duplicate key "(.*?)"', what)
    if duplicate:
        key = duplicate.group(1)
        first = _first_key_line(lines, key, ctx.line if ctx else 0, line - 1)
        where = f" on line {first}" if first else ""
        return Problem(
            name,
            line,
            col,
            "",
            f"YAML syntax: duplicate key {key!r}",
            f"`{key}` is already given{where}; a key may appear once in a mapping: remove or "
            "rename one",
        )
    if "\t" in what or (0 <= col - 1 < len(here) and here[col - 1] == "\t"):
        return Problem(
            name,
            line,
            col,
            "",
            "YAML syntax: a tab character",
            "YAML indents with spaces, not tabs: replace the tab with spaces",
        )
    if "found another document" in what:
        return Problem(
            name,
            line,
            col,
            "",
            "YAML syntax: a second document (`---`) in one file",
            "a protocol file holds one document: remove the `---` line and what follows it, "
            "or split it into two files",
        )
    if "flow" in context and ctx is not None:
        opener = "{" if "mapping" in context else "["
        closer = "}" if opener == "{" else "]"
        if ctx.line + 1 != line:
            return Problem(
                name,
                ctx.line + 1,
                ctx.column + 1,
                "",
                f"YAML syntax: the `{opener}` opened here is never closed (line {line} is read "
                "as part of it)",
                f"add the missing `{closer}` at the end of line {ctx.line + 1}",
            )
        return Problem(
            name,
            line,
            col,
            "",
            f"YAML syntax: {what}",
            f"separate the entries of an inline `{opener}…{closer}` with commas, and close it "
            f"with `{closer}`",
        )
    if "mapping values are not allowed" in what:
        return Problem(name, line, col, "", f"YAML syntax: {what}", _colon_hint(lines, line))
    return Problem(name, line, col, "", f"YAML syntax: {what}", _syntax_hint(what))


def _first_key_line(lines: list[str], key: str, start: int, stop: int) -> int | None:
    pattern = re.compile(r"(^|[\s{,])" + re.escape(key) + r"\s*:")
    for i in range(max(start, 0), min(stop, len(lines))):
        if pattern.search(lines[i].split("#", 1)[0]):
            return i + 1
    return None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" -"))


def _colon_hint(lines: list[str], line: int) -> str:
    """`mapping values are not allowed here`: an unquoted ': ' or a wrongly indented line."""
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    body = here.split("#", 1)[0]
    if re.match(r"^\s*-?\s*[\w.-]+:\s+[^{\[\'\"].*:(\s|$)", body):
        key, value = body.strip().lstrip("- ").split(":", 1)
        return f'a value containing ": " must be quoted: `{key}: "{value.strip()}"`'
    previous = next(
        (
            (i + 1, lines[i])
            for i in range(line - 2, -1, -1)
            if lines[i].strip() and not lines[i].lstrip().startswith("#")
        ),
        None,
    )
    if previous and _indent(here) > _indent(previous[1]):
        return (
            f"line {line} is indented deeper than line {previous[0]} above it; the keys of "
            "one mapping must line up (check both lines)"
        )
    return "a value containing ': ' must be quoted, or a key is indented wrongly"


def _syntax_hint(what: str) -> str:
    if "could not find expected ':'" in what:
        return "each line of a mapping needs `key: value`"
    if "expected <block end>" in what or "did not find expected" in what:
        return "check the indentation of this line against the lines above"
    return "check the indentation and quoting around this line"


def plain(data: Any) -> Any:
    """ruamel's commented containers to plain dict/list (what pydantic validates)."""
    if isinstance(data, dict):
        return {str(k) if not isinstance(k, str) else k: plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [plain(v) for v in data]
    if type(data).__module__.startswith("ruamel"):
        # ScalarFloat, ScalarInt, ScalarBoolean, TaggedScalar…
        for base in (bool, int, float, str):
            if isinstance(data, base):
                return base(data)
    return data
