"""The runs in a data directory, live or archived, and which of them were interrupted.

A journal (``<data_dir>/<run_id>.sqlite``) is

- **live** while a controller holds its lock file (``<run_id>.lock``, flocked);
- **finished** once the runner has written a final state in its ``meta`` table
  (``state`` ∈ :data:`FINISHED_STATES`: finished, aborted) — only those are archived
  (faulted ones too on request);
- **interrupted** when nobody holds it and its state says a controller was driving it or
  was stopped by a signal (:data:`RESUMABLE_STATES`: a power cut, a crash, a watchdog
  kill, SIGTERM). ``heatcycler service`` resumes the newest one of its rig at start when
  the rig's resume policy allows;
- **faulted** after a safety trip or an instrument failure: a technician decides.

Archived runs live in ``<data_dir>/archive/<run_id>.sqlite.xz`` with a JSON summary
beside them (``<run_id>.json``), so that listing them needs no decompression.
"""

from __future__ import annotations

import contextlib
import json
import lzma
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from controller.journal import JournalReader, is_locked, run_paths
from controller.ui.results import headline, step_infos

#: ``meta.state`` of a run that is over (the runner's FINAL states: it never leaves them)
FINISHED_STATES = frozenset({"finished", "aborted"})
#: ``meta.state`` of a run a dead controller left behind: the service may resume it
#: (``running``/``paused``: it crashed or lost power; ``interrupted``: stopped by a signal)
RESUMABLE_STATES = frozenset({"running", "paused", "interrupted"})
#: a safety trip or an instrument failure ended it; only a technician resumes it (--force)
FAULTED = "faulted"
ARCHIVE_DIR = "archive"
ARCHIVE_SUFFIX = ".sqlite.xz"


@dataclass(frozen=True)
class RunInfo:
    """What ``archive --list``, ``doctor`` and the boot decision need to know of a run."""

    run_id: str
    path: str  # the journal, or the archive (.sqlite.xz)
    archived: bool
    rig: str | None
    state: str | None
    live: bool
    started_unix: float | None
    last_unix: float | None  # last sample, event, step or checkpoint
    samples: int
    events: int
    checkpoints: int
    size: int  # bytes on disk (journal + WAL, or the archive)
    original_size: int | None = None  # an archive's uncompressed size
    sha256: str | None = None  # an archive's uncompressed content
    protocol: str | None = None  # meta.protocol_name
    cell: str | None = None  # the cell's id (meta.cell)
    ended_unix: float | None = None  # meta.ended_unix (set when the run stopped)
    result: str | None = None  # e.g. "short after 154 cycles" (controller.ui.results)

    @property
    def duration_s(self) -> float | None:
        end = self.ended_unix if self.ended_unix is not None else self.last_unix
        if end is None or self.started_unix is None:
            return None
        return max(0.0, end - self.started_unix)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def interrupted(self) -> bool:
        return not self.archived and not self.live and self.state in RESUMABLE_STATES

    @property
    def faulted(self) -> bool:
        return self.state == FAULTED

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "finished": self.finished,
            "interrupted": self.interrupted,
            "faulted": self.faulted,
            "duration_s": self.duration_s,
        }


def rig_of(meta: dict[str, str]) -> str | None:
    """The rig id a journal's ``meta.rig`` names (the rig config as JSON, or its id)."""
    raw = meta.get("rig")
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    if isinstance(value, dict):
        rig = value.get("rig")
        return rig if isinstance(rig, str) else None
    return value if isinstance(value, str) else None


def _one(conn: sqlite3.Connection, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    return row[0] if row else None


def _summary(path: Path, run_id: str, *, archived: bool, live: bool) -> RunInfo:
    conn = sqlite3.connect(path, timeout=5)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        meta: dict[str, str] = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        times = [
            _one(conn, "SELECT unix FROM samples ORDER BY seq DESC LIMIT 1"),
            _one(conn, "SELECT unix FROM events ORDER BY seq DESC LIMIT 1"),
            _one(conn, "SELECT unix FROM checkpoints ORDER BY id DESC LIMIT 1"),
            _one(conn, "SELECT max(coalesce(ended_unix, started_unix)) FROM steps"),
        ]
        first = [
            _one(conn, "SELECT unix FROM samples ORDER BY seq LIMIT 1"),
            _one(conn, "SELECT min(started_unix) FROM steps"),
        ]
        samples = int(_one(conn, "SELECT coalesce(max(seq), 0) FROM samples"))
        events = int(_one(conn, "SELECT coalesce(max(seq), 0) FROM events"))
        checkpoints = int(_one(conn, "SELECT count(*) FROM checkpoints") or 0)
        cols = ("step", "path", "kind", "label", "started_t", "ended_t", "outcome", "result")
        step_rows = [
            dict(zip(cols, r, strict=True))
            for r in conn.execute(f"SELECT {', '.join(cols)} FROM steps ORDER BY step")
        ]
    finally:
        conn.close()
    known = [float(t) for t in times if t is not None]
    starts = [float(t) for t in first if t is not None]
    started = _number(meta.get("started_unix"))
    size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    return RunInfo(
        run_id=run_id,
        path=str(path),
        archived=archived,
        rig=rig_of(meta),
        state=meta.get("state"),
        live=live,
        started_unix=started if started is not None else (min(starts) if starts else None),
        last_unix=max(known) if known else None,
        samples=samples,
        events=events,
        checkpoints=checkpoints,
        size=size,
        protocol=meta.get("protocol_name"),
        cell=_cell_id(meta.get("cell")),
        ended_unix=_number(meta.get("ended_unix")),
        result=headline(step_infos(step_rows)),
    )


def _cell_id(raw: str | None) -> str | None:
    """The cell's id from ``meta.cell`` (JSON with an ``id``, or the id itself)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    if isinstance(value, dict):
        cell = value.get("id")
        return str(cell) if cell is not None else None
    return str(value)


def _number(text: object) -> float | None:
    if not isinstance(text, str | int | float):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def journal_info(path: Path) -> RunInfo:
    """Summary of one journal in the data directory (read while it may be written)."""
    path = Path(path)
    return _summary(path, path.stem, archived=False, live=is_locked(path))


def archive_dir(data_dir: Path) -> Path:
    return Path(data_dir) / ARCHIVE_DIR


def archived_info(xz: Path) -> RunInfo:
    """Summary of an archived run: from its JSON sidecar, else by decompressing it."""
    xz = Path(xz)
    run_id = xz.name[: -len(ARCHIVE_SUFFIX)]
    sidecar = xz.with_name(f"{run_id}.json")
    size = xz.stat().st_size
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        doc = json.loads(sidecar.read_text(encoding="utf-8"))
        fields = {k: doc[k] for k in RunInfo.__dataclass_fields__ if k in doc}
        info = RunInfo(**fields)
        return replace(info, path=str(xz), archived=True, live=False, size=size)
    with open_run(xz) as reader:
        info = _summary(reader.path, run_id, archived=True, live=False)
    return replace(info, path=str(xz), size=size)


def list_runs(data_dir: Path) -> list[RunInfo]:
    """Every run in ``data_dir``, journals and archives, oldest first by run id.

    A run both archived and still present as a journal (archived without
    ``--delete-after-archive``) is listed once, as the journal.
    """
    data_dir = Path(data_dir)
    out: dict[str, RunInfo] = {}
    adir = archive_dir(data_dir)
    if adir.is_dir():
        for xz in sorted(adir.glob(f"*{ARCHIVE_SUFFIX}")):
            with contextlib.suppress(OSError, sqlite3.Error, lzma.LZMAError):
                info = archived_info(xz)
                out[info.run_id] = info
    for path in run_paths(data_dir):
        with contextlib.suppress(OSError, sqlite3.Error):
            info = journal_info(path)
            out[info.run_id] = info
    return [out[k] for k in sorted(out)]


def live_runs(data_dir: Path) -> list[RunInfo]:
    return [r for r in list_runs(data_dir) if r.live]


@contextlib.contextmanager
def open_run(path: Path | str, tmp_dir: Path | None = None) -> Iterator[JournalReader]:
    """A reader for a run, archived or not: an archive is decompressed to a temp file
    (removed afterwards), so reports and exports read archived runs like any other."""
    path = Path(path)
    if not path.name.endswith(ARCHIVE_SUFFIX):
        with JournalReader(path) as reader:
            yield reader
        return
    with tempfile.TemporaryDirectory(dir=tmp_dir, prefix="heatcycler-run-") as tmp:
        plain = Path(tmp) / path.name[: -len(".xz")]
        with lzma.open(path, "rb") as src, plain.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        with JournalReader(plain) as reader:
            yield reader
