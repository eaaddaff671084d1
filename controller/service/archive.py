"""Archiving finished runs: xz-compressed journals, so an SD card lasts a campaign season.

Only **finished** runs are archived (``runs.FINISHED_STATES``): never a live run (its lock
is held) nor an interrupted one (it may still be resumed). While a run is archived its
lock is taken, so no controller can pick it up half-way. The journal's WAL is first
checkpointed into the main file, which is then streamed through ``lzma`` (preset 6:
≈ 100 MB of memory, fine on a Pi) into ``archive/<run_id>.sqlite.xz.part``, fsynced,
renamed, then decompressed again and compared by SHA-256 before anything is deleted.
``--delete-after-archive`` removes the journal (and its WAL, shm and lock files) only
after that check.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import lzma
import os
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path

from controller.journal import run_paths
from controller.service.runs import (
    ARCHIVE_SUFFIX,
    RunInfo,
    archive_dir,
    journal_info,
)

CHUNK = 1 << 20
PRESET = 6


@dataclass(frozen=True)
class Outcome:
    run_id: str
    action: str  # archived | skipped | would archive
    reason: str
    original_size: int = 0
    archived_size: int = 0
    deleted: bool = False


class ArchiveError(Exception):
    """An archive that did not verify; the journal is left as it was."""


class RunLock:
    """The run's lock file, taken without waiting: False if a controller holds it."""

    def __init__(self, journal: Path) -> None:
        self.path = journal.with_suffix(".lock")
        self.fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _sha256(path: Path, *, xz: bool = False) -> str:
    digest = hashlib.sha256()
    with lzma.open(path, "rb") if xz else path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _checkpoint(journal: Path) -> None:
    """Fold the WAL into the main file so the file alone is the whole run."""
    conn = sqlite3.connect(journal, timeout=5)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise ArchiveError(f"{journal.name}: a reader kept the WAL busy; try again later")
    finally:
        conn.close()


def compress(journal: Path, target: Path) -> tuple[str, int]:
    """Stream ``journal`` into ``target`` (xz); returns (sha256, bytes read)."""
    digest = hashlib.sha256()
    size = 0
    part = target.with_name(target.name + ".part")
    with journal.open("rb") as src, lzma.open(part, "wb", preset=PRESET) as dst:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            dst.write(chunk)
    with part.open("rb+") as f:
        os.fsync(f.fileno())
    part.replace(target)
    _fsync_dir(target.parent)
    return digest.hexdigest(), size


def archive_run(
    journal: Path,
    *,
    delete: bool = False,
    older_than: float = 0.0,
    now: float,
    include_faulted: bool = False,
) -> Outcome:
    """Archive one journal if it is finished and its last activity is ``older_than``
    seconds before ``now`` (unix). An archive already made of the same content is not
    made again (with ``delete``, it is checked once more and the journal removed)."""
    journal = Path(journal)
    run_id = journal.stem
    lock = RunLock(journal)
    if not lock.acquire():
        return Outcome(run_id, "skipped", "live: a controller holds its lock")
    try:
        info = journal_info(journal)
        if not (info.finished or (include_faulted and info.faulted)):
            return Outcome(run_id, "skipped", _not_finished(info))
        age = now - (info.last_unix or info.started_unix or now)
        if age < older_than:
            return Outcome(run_id, "skipped", f"too recent (ended {_days(age)} ago)")
        adir = archive_dir(journal.parent)
        adir.mkdir(exist_ok=True)
        target = adir / f"{run_id}{ARCHIVE_SUFFIX}"
        sidecar = adir / f"{run_id}.json"
        _checkpoint(journal)
        previous = _sidecar_sha(sidecar) if target.exists() else None
        if previous is not None and previous == _sha256(journal):
            if not delete:
                return Outcome(run_id, "skipped", "already archived")
            digest, size = previous, journal.stat().st_size
        else:
            digest, size = compress(journal, target)
            summary = replace(
                info,
                path=str(target),
                archived=True,
                live=False,
                size=target.stat().st_size,
                original_size=size,
                sha256=digest,
            )
            tmp = sidecar.with_name(sidecar.name + ".part")
            tmp.write_text(json.dumps(summary.as_dict(), indent=1) + "\n", encoding="utf-8")
            tmp.replace(sidecar)
            _fsync_dir(adir)
        if _sha256(target, xz=True) != digest:
            raise ArchiveError(
                f"{run_id}: {target} does not decompress to the journal; the journal is kept"
            )
        if delete:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{journal}{suffix}").unlink(missing_ok=True)
            lock.path.unlink(missing_ok=True)
            _fsync_dir(journal.parent)
        return Outcome(run_id, "archived", "finished", size, target.stat().st_size, delete)
    finally:
        lock.release()


def archive_runs(
    data_dir: Path,
    *,
    older_than: float,
    delete: bool,
    now: float,
    dry_run: bool = False,
    include_faulted: bool = False,
) -> list[Outcome]:
    """Archive every finished run in ``data_dir`` older than ``older_than`` seconds."""
    out = []
    for journal in run_paths(data_dir):
        if dry_run:
            out.append(_would(journal, older_than, now, include_faulted))
            continue
        try:
            out.append(
                archive_run(
                    journal,
                    delete=delete,
                    older_than=older_than,
                    now=now,
                    include_faulted=include_faulted,
                )
            )
        except (ArchiveError, OSError, sqlite3.Error, lzma.LZMAError) as exc:
            out.append(Outcome(journal.stem, "failed", str(exc)))
    return out


def _not_finished(info: RunInfo) -> str:
    state = info.state or "no end state"
    if info.faulted:
        return "faulted: resume it (--force) or archive it with --include-faulted"
    return f"not finished ({state}): it may be resumed"


def _would(journal: Path, older_than: float, now: float, include_faulted: bool) -> Outcome:
    info = journal_info(journal)
    if info.live:
        return Outcome(info.run_id, "skipped", "live: a controller holds its lock")
    if not (info.finished or (include_faulted and info.faulted)):
        return Outcome(info.run_id, "skipped", _not_finished(info))
    age = now - (info.last_unix or info.started_unix or now)
    if age < older_than:
        return Outcome(info.run_id, "skipped", f"too recent (ended {_days(age)} ago)")
    return Outcome(info.run_id, "would archive", "finished", info.size)


def _sidecar_sha(sidecar: Path) -> str | None:
    try:
        doc = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    sha = doc.get("sha256") if isinstance(doc, dict) else None
    return sha if isinstance(sha, str) else None


def _days(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    return f"{seconds / 3600:.1f} h"
