"""Load YAML keeping line/column of every key and value, to point errors at the text."""

from __future__ import annotations

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
        try:
            raw = Path(path).read_bytes()
        except FileNotFoundError:
            raise UserError(f"{name}: no such file", "check the path") from None
        except IsADirectoryError:
            raise UserError(
                f"{name}: is a directory, not a protocol file", "give the path of a .yaml file"
            ) from None
        except OSError as exc:
            raise UserError(f"{name}: cannot read: {exc.strerror}", "check permissions") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(
                f"{name}: not UTF-8 text (byte {exc.start})",
                "save the file as UTF-8",
                [
                    Problem(
                        name,
                        1,
                        1,
                        "",
                        f"not UTF-8 text (byte {exc.start})",
                        "save the file as UTF-8",
                    )
                ],
            ) from None
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = (exc.problem or "invalid YAML").strip()
        if "duplicate key" in what or "found duplicate key" in str(exc):
            key = str(exc).split('"')[1] if '"' in str(exc) else "?"
            what = f"duplicate key {key!r}"
            hint = "each key may appear once in a mapping; remove or rename one"
        elif "\t" in text.splitlines()[line - 1] if line - 1 < len(text.splitlines()) else False:
            hint = "YAML indents with spaces, not tabs"
        else:
            hint = _syntax_hint(what)
        problem = Problem(name, line, col, "", f"YAML syntax: {what}", hint)
        raise UserError(problem.format(), problem.hint, [problem]) from None
    except YAMLError as exc:  # pragma: no cover - unmarked errors are rare
        problem = Problem(name, 1, 1, "", f"YAML error: {exc}", "check the file's syntax")
        raise UserError(problem.format(), problem.hint, [problem]) from None
    return Source(name, text, data)


def _syntax_hint(what: str) -> str:
    if "mapping values are not allowed" in what:
        return "a value containing ': ' must be quoted, or a key is indented wrongly"
    if "could not find expected ':'" in what:
        return "each line of a mapping needs `key: value`"
    if "found character '\\t'" in what or "tab" in what:
        return "YAML indents with spaces, not tabs"
    if "expected <block end>" in what or "did not find expected" in what:
        return "check the indentation of this line against the lines above"
    if "flow" in what:
        return "check the brackets/braces of this inline mapping or list"
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
