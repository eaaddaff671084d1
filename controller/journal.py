"""The run journal: one SQLite file per run, the single source of truth.

It holds the protocol text and rig config, every stored sample with a per-run sequence
number, events, step records with their results, and checkpoints for resume. The MQTT
publisher, reports, exports and ``resume`` all read it.

Durability policy (documented in ARCHITECTURE.md): the database is in WAL mode and writes
are committed in batches at least every ``commit_interval`` (1 s) with ``synchronous=FULL``,
so a power cut loses at most the last ~1 s of samples and never corrupts the file; a
killed process (kill -9) loses only what was not yet handed to SQLite (same bound). Sequence
numbers continue after the last committed sample on resume, so a crash leaves a gap in
*time*, never a duplicate or a hole in the sequence.

Journal writes never stall the control loop: in real time they go through a queue to a
writer thread; in virtual time (no threads, deterministic) they are applied inline and
committed in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.samples import Sample

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS samples(
    seq INTEGER PRIMARY KEY,      -- per-run sequence number: 1, 2, 3, … without holes
    t REAL NOT NULL,              -- test time, s
    unix REAL NOT NULL,           -- unix time, s
    voltage REAL NOT NULL,        -- V
    current REAL NOT NULL,        -- A, + plates the working electrode
    temperature REAL,             -- degC, block thermocouple
    setpoint REAL,                -- degC, thermal loop setpoint (NULL: heater off)
    duty REAL,                    -- heater duty 0..1
    level REAL,                   -- commanded source level (A or V)
    source TEXT NOT NULL,         -- current | voltage | off
    step INTEGER NOT NULL,        -- step count (1-based, executed steps)
    cycle INTEGER NOT NULL        -- cycle count
);
CREATE TABLE IF NOT EXISTS events(
    seq INTEGER PRIMARY KEY,      -- per-run event sequence number
    t REAL NOT NULL,
    unix REAL NOT NULL,
    sample_seq INTEGER NOT NULL,  -- last stored sample when the event happened
    step INTEGER NOT NULL,
    kind TEXT NOT NULL,           -- e.g. hard_short, soft_short, trip, state, gap, voltage_limit
    severity TEXT NOT NULL,       -- info | warning | fault
    message TEXT NOT NULL,
    data TEXT NOT NULL            -- JSON
);
CREATE TABLE IF NOT EXISTS steps(
    step INTEGER PRIMARY KEY,     -- step count (1-based, in execution order)
    path TEXT NOT NULL,           -- position in the protocol, e.g. '3' or '6.2' (in a repeat)
    kind TEXT NOT NULL,
    label TEXT,
    started_t REAL NOT NULL,
    started_unix REAL NOT NULL,
    ended_t REAL,
    ended_unix REAL,
    outcome TEXT,                 -- completed | short | voltage_limit | timeout | aborted | …
    result TEXT                   -- JSON
);
CREATE TABLE IF NOT EXISTS checkpoints(
    id INTEGER PRIMARY KEY,
    t REAL NOT NULL,
    unix REAL NOT NULL,
    sample_seq INTEGER NOT NULL,
    state TEXT NOT NULL           -- JSON: where the runner is and what it has done
);
CREATE TABLE IF NOT EXISTS cursors(
    name TEXT PRIMARY KEY,        -- e.g. mqtt.samples, mqtt.events
    position INTEGER NOT NULL,
    unix REAL NOT NULL
);
"""

_SAMPLE_SQL = "INSERT INTO samples VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
_EVENT_SQL = "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)"


# ------------------------------------------------------------------------ rows


@dataclass(frozen=True, slots=True)
class SampleRow:
    seq: int
    t: float
    unix: float
    voltage: float
    current: float
    temperature: float | None
    setpoint: float | None
    duty: float | None
    level: float | None
    source: str
    step: int
    cycle: int


@dataclass(frozen=True, slots=True)
class EventRow:
    seq: int
    t: float
    unix: float
    sample_seq: int
    step: int
    kind: str
    severity: str
    message: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StepRow:
    step: int
    path: str
    kind: str
    label: str | None
    started_t: float
    started_unix: float
    ended_t: float | None
    ended_unix: float | None
    outcome: str | None
    result: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    id: int
    t: float
    unix: float
    sample_seq: int
    state: dict[str, Any]


# ---------------------------------------------------------------------- writer


def _connect(path: Path, *, durable: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class _Batch:
    """Pending writes, applied in one transaction."""

    def __init__(self) -> None:
        self.samples: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.other: list[tuple[str, tuple[Any, ...]]] = []

    def __bool__(self) -> bool:
        return bool(self.samples or self.events or self.other)

    def apply(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN")
        try:
            if self.samples:
                conn.executemany(_SAMPLE_SQL, self.samples)
            if self.events:
                conn.executemany(_EVENT_SQL, self.events)
            for sql, params in self.other:
                conn.execute(sql, params)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.samples, self.events, self.other = [], [], []


class Journal:
    """Writes one run's journal. Create with :meth:`create` or reopen with :meth:`open`."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        *,
        threaded: bool,
        commit_interval: float = 1.0,
        batch_rows: int = 5000,
    ) -> None:
        self.path = path
        self._conn = conn
        self._batch = _Batch()
        self._commit_interval = commit_interval
        self._batch_rows = batch_rows
        self._last_commit_t: float | None = None
        self.last_seq = int(conn.execute("SELECT coalesce(max(seq), 0) FROM samples").fetchone()[0])
        self.last_event_seq = int(
            conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        )
        self._closed = False
        self._error: BaseException | None = None
        self._queue: queue.SimpleQueue[Any] | None = None
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        if threaded:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(
                target=self._writer, name=f"journal-{path.stem}", daemon=True
            )
            self._thread.start()

    # -- lifecycle ---------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: Path,
        meta: dict[str, Any],
        *,
        durable: bool = True,
        threaded: bool = True,
        commit_interval: float = 1.0,
    ) -> Journal:
        """A new journal; ``meta`` (protocol text, rig config, …) is written at once."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            raise FileExistsError(f"journal {path} already exists")
        conn = _connect(path, durable=durable)
        conn.executescript(_SCHEMA)
        rows = {"schema_version": SCHEMA_VERSION, **meta}
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [(k, _text(v)) for k, v in rows.items()])
        conn.execute("COMMIT")
        return cls(path, conn, threaded=threaded, commit_interval=commit_interval)

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        durable: bool = True,
        threaded: bool = True,
        commit_interval: float = 1.0,
    ) -> Journal:
        """Reopen a journal to continue a run (``resume``); sequence numbers continue."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(path)
        conn = _connect(path, durable=durable)
        conn.executescript(_SCHEMA)
        return cls(path, conn, threaded=threaded, commit_interval=commit_interval)

    def lock(self) -> bool:
        """Take the run's lock file (held while a controller runs it). False if taken."""
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        return True

    def close(self) -> None:
        """Commit everything and close (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._queue is not None and self._thread is not None:
            self._queue.put(("stop", None))
            self._thread.join()
        else:
            self._commit()
        self._conn.close()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None
        self._raise_if_failed()

    # -- writes --------------------------------------------------------------------

    def add_sample(self, s: Sample) -> int:
        """Store a sample; returns its sequence number."""
        self.last_seq += 1
        row = (
            self.last_seq,
            s.t,
            s.unix,
            s.voltage,
            s.current,
            s.temperature,
            s.setpoint,
            s.duty,
            s.level,
            s.source,
            s.step,
            s.cycle,
        )
        self._put("sample", row, s.t)
        return self.last_seq

    def add_event(
        self,
        kind: str,
        message: str,
        *,
        t: float,
        unix: float,
        step: int,
        severity: str = "info",
        data: dict[str, Any] | None = None,
    ) -> int:
        """Store an event; returns its sequence number. Events are committed promptly."""
        self.last_event_seq += 1
        row = (
            self.last_event_seq,
            t,
            unix,
            self.last_seq,
            step,
            kind,
            severity,
            message,
            json.dumps(data or {}, default=_json_default),
        )
        self._put("event", row, t)
        return self.last_event_seq

    def start_step(
        self, step: int, path: str, kind: str, label: str | None, *, t: float, unix: float
    ) -> None:
        self._put(
            "sql",
            (
                "INSERT OR REPLACE INTO steps (step, path, kind, label, started_t, started_unix)"
                " VALUES (?,?,?,?,?,?)",
                (step, path, kind, label, t, unix),
            ),
            t,
        )

    def end_step(
        self, step: int, outcome: str, result: dict[str, Any], *, t: float, unix: float
    ) -> None:
        self._put(
            "sql",
            (
                "UPDATE steps SET ended_t=?, ended_unix=?, outcome=?, result=? WHERE step=?",
                (t, unix, outcome, json.dumps(result, default=_json_default), step),
            ),
            t,
        )

    def checkpoint(self, state: dict[str, Any], *, t: float, unix: float) -> None:
        """Where the runner is, for resume; committed with the samples before it."""
        self._put(
            "sql",
            (
                "INSERT INTO checkpoints (t, unix, sample_seq, state) VALUES (?,?,?,?)",
                (t, unix, self.last_seq, json.dumps(state, default=_json_default)),
            ),
            t,
        )

    def set_meta(self, key: str, value: Any, *, t: float | None = None) -> None:
        self._put("sql", ("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, _text(value))), t)

    async def flush(self) -> None:
        """Wait until everything handed over so far is committed."""
        self._raise_if_failed()
        if self._queue is None:
            self._commit()
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def resolve() -> None:
            if not done.done():
                done.set_result(None)

        def finished() -> None:
            loop.call_soon_threadsafe(resolve)

        self._queue.put(("flush", finished))
        await done
        self._raise_if_failed()

    def flush_blocking(self) -> None:
        """Like :meth:`flush`, from synchronous code (signal handlers, atexit)."""
        if self._queue is None:
            self._commit()
            return
        event = threading.Event()
        self._queue.put(("flush", event.set))
        event.wait(10)
        self._raise_if_failed()

    # -- internals -------------------------------------------------------------------

    def _put(self, kind: str, item: Any, t: float | None) -> None:
        if self._closed:
            raise RuntimeError(f"journal {self.path} is closed")
        if self._queue is not None:
            self._queue.put((kind, item))
            return
        self._add(kind, item)
        now = t if t is not None else (self._last_commit_t or 0.0)
        if self._last_commit_t is None:
            self._last_commit_t = now
        pending = len(self._batch.samples) + len(self._batch.events) + len(self._batch.other)
        if now - self._last_commit_t >= self._commit_interval or pending >= self._batch_rows:
            self._commit()
            self._last_commit_t = now

    def _add(self, kind: str, item: Any) -> None:
        if kind == "sample":
            self._batch.samples.append(item)
        elif kind == "event":
            self._batch.events.append(item)
        else:
            self._batch.other.append(item)

    def _commit(self) -> None:
        if self._batch:
            self._batch.apply(self._conn)

    def _writer(self) -> None:
        assert self._queue is not None
        last_commit = time.monotonic()
        while True:
            try:
                kind, item = self._queue.get(timeout=self._commit_interval)
            except queue.Empty:
                kind, item = "tick", None
            try:
                if kind in ("sample", "event", "sql"):
                    self._add(kind, item)
                    pending = len(self._batch.samples) + len(self._batch.other)
                    if (
                        time.monotonic() - last_commit >= self._commit_interval
                        or pending >= self._batch_rows
                    ):
                        self._commit()
                        last_commit = time.monotonic()
                else:
                    self._commit()
                    last_commit = time.monotonic()
                    if kind == "flush":
                        item()
                    elif kind == "stop":
                        return
            except BaseException as exc:  # surfaced to the loop on the next flush/close
                self._error = exc
                if kind == "flush":
                    item()
                if kind == "stop":
                    return

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"journal {self.path} failed: {self._error}") from self._error


# ---------------------------------------------------------------------- reader


class JournalReader:
    """Read a journal (also while its run is being written: WAL readers do not block)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(self.path)
        self._conn = sqlite3.connect(self.path, timeout=5, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout=5000")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def last_seq(self) -> int:
        return int(self._conn.execute("SELECT coalesce(max(seq), 0) FROM samples").fetchone()[0])

    def last_event_seq(self) -> int:
        return int(self._conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])

    def samples(self, after: int = 0, limit: int | None = None) -> list[SampleRow]:
        sql = "SELECT * FROM samples WHERE seq > ? ORDER BY seq"
        rows = self._conn.execute(
            sql + (" LIMIT ?" if limit else ""), (after, limit) if limit else (after,)
        )
        return [SampleRow(*r) for r in rows]

    def iter_samples(self, after: int = 0, chunk: int = 10_000) -> Iterator[SampleRow]:
        while True:
            rows = self.samples(after, chunk)
            if not rows:
                return
            yield from rows
            after = rows[-1].seq

    def sample_columns(self, *columns: str, chunk: int = 50_000) -> dict[str, Any]:
        """Whole columns as numpy arrays (reports, exports); NULL reads as NaN.

        Read in chunks into preallocated arrays, so a week of 1 s samples (≈ 600 k rows)
        never exists as Python tuples all at once.
        """
        import numpy as np

        allowed = set(SampleRow.__slots__)
        bad = [c for c in columns if c not in allowed]
        if bad:
            raise ValueError(f"unknown sample columns {bad}")
        n = int(self._conn.execute("SELECT count(*) FROM samples").fetchone()[0])
        out: dict[str, Any] = {
            name: np.empty(n, dtype=object if name == "source" else float) for name in columns
        }
        sql = f"SELECT seq, {', '.join(columns)} FROM samples WHERE seq > ? ORDER BY seq LIMIT ?"
        at, after = 0, 0
        while at < n:
            rows = self._conn.execute(sql, (after, chunk)).fetchall()
            if not rows:
                break
            rows = rows[: n - at]  # rows added since the count are left out
            for i, name in enumerate(columns, start=1):
                values = [r[i] for r in rows]
                out[name][at : at + len(rows)] = (
                    values if name == "source" else np.array(values, dtype=float)
                )
            at += len(rows)
            after = rows[-1][0]
        return {name: arr[:at] for name, arr in out.items()}

    def events(self, after: int = 0, limit: int | None = None) -> list[EventRow]:
        sql = "SELECT * FROM events WHERE seq > ? ORDER BY seq"
        rows = self._conn.execute(
            sql + (" LIMIT ?" if limit else ""), (after, limit) if limit else (after,)
        )
        return [
            EventRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8])) for r in rows
        ]

    def steps(self) -> list[StepRow]:
        rows = self._conn.execute("SELECT * FROM steps ORDER BY step")
        return [
            StepRow(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                r[7],
                r[8],
                json.loads(r[9]) if r[9] is not None else None,
            )
            for r in rows
        ]

    def last_checkpoint(self) -> Checkpoint | None:
        row = self._conn.execute(
            "SELECT id, t, unix, sample_seq, state FROM checkpoints ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return Checkpoint(row[0], row[1], row[2], row[3], json.loads(row[4])) if row else None

    def cursor(self, name: str) -> int:
        row = self._conn.execute("SELECT position FROM cursors WHERE name=?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def set_cursor(self, name: str, position: int) -> None:
        """Consumers (the MQTT publisher) keep their acknowledged position here."""
        self._conn.execute(
            "INSERT INTO cursors VALUES (?,?,?) ON CONFLICT(name) DO UPDATE SET "
            "position=excluded.position, unix=excluded.unix WHERE excluded.position > position",
            (name, position, time.time()),
        )
        self._conn.commit()


def is_locked(path: Path) -> bool:
    """Whether a live controller holds this run (its lock file is flocked)."""
    lock = Path(path).with_suffix(".lock")
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def new_run_id(rig: str, cell_id: str, unix: float) -> str:
    """e.g. 20260101T000000Z-sim-S07: sorts by start time, names rig and cell."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(unix))
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in cell_id)
    return f"{stamp}-{rig}-{safe}"


def run_paths(data_dir: Path) -> list[Path]:
    """The journals in a data directory, oldest first."""
    return sorted(Path(data_dir).glob("*.sqlite"))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=_json_default)


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in the journal")
