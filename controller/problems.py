"""User-facing problems: where, what, how to fix. Never a traceback for a user mistake."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a file, located by line/column (1-based) and key path."""

    file: str
    line: int
    col: int
    path: str
    message: str
    hint: str = ""

    def format(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        head = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return f"{head}\n    hint: {self.hint}" if self.hint else head

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
        }


class UserError(Exception):
    """A mistake the user can fix; the CLI prints it (with its hint) and exits 2."""

    def __init__(self, message: str, hint: str = "", problems: list[Problem] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.problems = problems or []

    def format(self) -> str:
        if self.problems:
            return "\n".join(p.format() for p in self.problems)
        return f"error: {self.message}" + (f"\n    hint: {self.hint}" if self.hint else "")


def key_path(loc: tuple[Any, ...]) -> str:
    """('steps', 2, 'cycle', 'count') -> 'steps[2].cycle.count' (jq style, 0-based)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
