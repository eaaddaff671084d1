"""Read a recorded trace from CSV with Battery Data Format column names.

Required: ``Test Time / s``, ``Voltage / V``, ``Current / A``. Used when present:
``Temperature T1 / degC``, ``Step Count / 1``, ``Cycle Count / 1``. Every other column is
ignored. pyarrow parses the file (fast, for week-long 10 Hz traces); when it refuses a
cell, a plain scan finds the line so the user is told where (``UserError``, exit 2).
"""

from __future__ import annotations

import csv
import difflib
import gzip
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from numpy.typing import NDArray

from controller.problems import UserError

TIME = "Test Time / s"
VOLTAGE = "Voltage / V"
CURRENT = "Current / A"
TEMPERATURE = "Temperature T1 / degC"
STEP = "Step Count / 1"
CYCLE = "Cycle Count / 1"
REQUIRED = (TIME, VOLTAGE, CURRENT)
OPTIONAL = (TEMPERATURE, STEP, CYCLE)
EXPECTED_HINT = (
    f"the file needs Battery Data Format headers '{TIME}', '{VOLTAGE}' and '{CURRENT}' "
    f"(optional: '{TEMPERATURE}', '{STEP}', '{CYCLE}'); other columns are ignored"
)


@dataclass(frozen=True, slots=True)
class Trace:
    """A recorded trace as arrays in canonical units (s, V, A, degC)."""

    path: str
    t: NDArray[np.float64]
    voltage: NDArray[np.float64]
    current: NDArray[np.float64]
    temperature: NDArray[np.float64] | None
    step: NDArray[np.int64] | None
    cycle: NDArray[np.int64] | None

    def __len__(self) -> int:
        return int(self.t.shape[0])


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _header(path: Path) -> tuple[list[str], str]:
    """The header's column names and the delimiter (comma, semicolon or tab)."""
    try:
        with _open_text(path) as fh:
            first = fh.readline()
    except FileNotFoundError:
        raise UserError(
            f"{path}: no such file", "check the path; the trace must be a CSV file"
        ) from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a CSV file", EXPECTED_HINT) from None
    except PermissionError:
        raise UserError(f"{path}: permission denied", "check the file's permissions") from None
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise UserError(
            f"{path}: cannot be read as text ({exc.__class__.__name__}: {exc})",
            "give a CSV file (UTF-8, optionally gzip-compressed as .csv.gz)",
        ) from None
    if not first.strip():
        raise UserError(f"{path}: the file is empty (no header line)", EXPECTED_HINT)
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    delim = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    names = next(csv.reader([first], delimiter=delim))
    return [name.strip() for name in names], delim


#: other cyclers' names for the required columns (lower case, no spaces) → (BDF, note)
ALIASES = {
    "time/s": (TIME, ""),
    "time(s)": (TIME, ""),
    "test_time(s)": (TIME, ""),
    "testtime(s)": (TIME, ""),
    "totaltime(s)": (TIME, ""),
    "ewe/v": (VOLTAGE, ""),
    "ecell/v": (VOLTAGE, ""),
    "voltage(v)": (VOLTAGE, ""),
    "u/v": (VOLTAGE, ""),
    "i/a": (CURRENT, ""),
    "<i>/a": (CURRENT, ""),
    "current(a)": (CURRENT, ""),
    "i/ma": (CURRENT, " (convert mA to A)"),
    "<i>/ma": (CURRENT, " (convert mA to A)"),
    "current(ma)": (CURRENT, " (convert mA to A)"),
}


def _missing_hint(missing: list[str], names: list[str]) -> str:
    close = []
    lowered = {n.lower().replace(" ", ""): n for n in names}
    for want in missing:
        key = want.lower().replace(" ", "")
        if key in lowered:
            close.append(f"'{lowered[key]}' → '{want}'")
            continue
        alias = [
            f"'{n}' → '{want}'{ALIASES[k][1]}"
            for k, n in lowered.items()
            if k in ALIASES and ALIASES[k][0] == want
        ]
        if alias:
            close.append(alias[0])
            continue
        guess = difflib.get_close_matches(want, names, n=1, cutoff=0.6)
        if guess:
            close.append(f"'{guess[0]}' → '{want}'")
    rename = f"; rename {', '.join(close)}" if close else ""
    return EXPECTED_HINT + rename


def _rows(path: Path, delim: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for every data row; physical line numbers (header = 1)."""
    with _open_text(path) as fh:
        reader = csv.reader(fh, delimiter=delim)
        next(reader, None)
        for cells in reader:
            yield reader.line_num, cells


def _line_of_row(path: Path, delim: str, row: int) -> int:
    """The physical line of data row ``row`` (0-based, blank lines skipped as pyarrow does)."""
    k = 0
    for line, cells in _rows(path, delim):
        if not cells or all(not c.strip() for c in cells):
            continue
        if k == row:
            return line
        k += 1
    return 0


def _bad_cell(path: Path, delim: str, names: list[str], columns: tuple[str, ...]) -> UserError:
    """Scan for the first cell that is not a number (the slow path, on errors only)."""
    where = {c: names.index(c) for c in columns}
    for line, cells in _rows(path, delim):
        if not cells or all(not c.strip() for c in cells):
            continue
        for col, k in where.items():
            text = cells[k].strip() if k < len(cells) else ""
            if not text:
                if col in REQUIRED:
                    return UserError(
                        f"{path}:{line}: column '{col}' is empty",
                        "every row needs a time, a voltage and a current; remove or fill the row",
                    )
                continue
            try:
                value = float(text)
            except ValueError:
                return UserError(
                    f"{path}:{line}: column '{col}': {text!r} is not a number",
                    "cells must be plain numbers in the column's unit (e.g. 0.0123), "
                    "with '.' as the decimal point",
                )
            if col in REQUIRED and not math.isfinite(value):
                return UserError(
                    f"{path}:{line}: column '{col}': {text!r} is not a finite number",
                    "remove the row or replace the value",
                )
    return UserError(
        f"{path}: the CSV cannot be parsed",
        "check that every row has as many cells as the header and that the columns hold numbers",
    )


def read_bdf(path: Path | str) -> Trace:
    """Read a BDF CSV trace; a ``UserError`` (with file:line and a hint) if it cannot."""
    path = Path(path)
    names, delim = _header(path)
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        found = ", ".join(f"'{n}'" for n in names[:12]) + (" …" if len(names) > 12 else "")
        raise UserError(
            f"{path}: missing column{'s' * (len(missing) > 1)} "
            + ", ".join(f"'{c}'" for c in missing)
            + f" (found {found})",
            _missing_hint(missing, names),
        )
    dupes = [c for c in REQUIRED + OPTIONAL if names.count(c) > 1]
    if dupes:
        raise UserError(
            f"{path}: column '{dupes[0]}' appears more than once in the header",
            "keep one column of each name",
        )
    present = tuple(c for c in REQUIRED + OPTIONAL if c in names)
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(delimiter=delim),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(present),
                column_types={c: pa.float64() for c in present},
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, ValueError):
        raise _bad_cell(path, delim, names, present) from None
    if table.num_rows == 0:
        raise UserError(
            f"{path}: the file has a header but no data rows",
            "record some samples first, or check that this is the right file",
        )

    def column(name: str) -> NDArray[np.float64]:
        col = table.column(name)
        if name in REQUIRED and col.null_count:
            raise _bad_cell(path, delim, names, present)
        arr: NDArray[np.float64] = col.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        return arr

    t, v, i = column(TIME), column(VOLTAGE), column(CURRENT)
    if not (np.isfinite(t).all() and np.isfinite(v).all() and np.isfinite(i).all()):
        raise _bad_cell(path, delim, names, present)
    back = np.flatnonzero(np.diff(t) < 0)
    if back.shape[0]:
        row = int(back[0]) + 1
        raise UserError(
            f"{path}:{_line_of_row(path, delim, row)}: '{TIME}' goes backwards "
            f"({t[row - 1]:g} s → {t[row]:g} s)",
            "the detector needs samples in time order; sort the file or split it where the "
            "test time restarts",
        )
    temperature = column(TEMPERATURE) if TEMPERATURE in names else None

    def counts(name: str) -> NDArray[np.int64] | None:
        if name not in names:
            return None
        arr = column(name)
        arr = np.where(np.isfinite(arr), arr, 0.0)
        out: NDArray[np.int64] = arr.astype(np.int64)
        return out

    return Trace(str(path), t, v, i, temperature, counts(STEP), counts(CYCLE))
