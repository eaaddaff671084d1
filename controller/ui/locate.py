"""RUN arguments → journals: a path (``.sqlite`` or an archived ``.sqlite.xz``) or a run id.

Every way a RUN can be wrong (no such file, not a journal, no such run in the data
directory, an ambiguous prefix, no samples) is a ``UserError`` with a hint, never a
traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import lzma
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from controller.journal import JournalReader
from controller.problems import UserError

DEFAULT_DATA_DIR = Path("/var/lib/heatcycler")
_SUFFIXES = (".sqlite.xz", ".sqlite")


def add_data_dir_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data-dir DIR`` or ``--rig RIG`` (its data_dir) or ``--sim`` (./data)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help=f"the runs' directory (default: the rig file's data_dir, else {DEFAULT_DATA_DIR})",
    )
    where.add_argument("--rig", type=Path, metavar="RIG", help="take data_dir from a rig file")
    where.add_argument("--sim", action="store_true", help="the simulated rig's data_dir (./data)")


def data_dir_from_args(args: argparse.Namespace) -> Path:
    if getattr(args, "data_dir", None) is not None:
        return Path(args.data_dir)
    if getattr(args, "rig", None) is not None or getattr(args, "sim", False):
        from controller.commands import rig_from_args

        rig = rig_from_args(args)
        return Path(rig.data_dir)  # type: ignore[attr-defined]
    return DEFAULT_DATA_DIR


def resolve(run: str, data_dir: Path) -> Path:
    """The journal (or archive) a RUN argument names."""
    path = Path(run)
    if path.is_dir():
        raise UserError(
            f"{run}: is a directory, not a run",
            "give a journal (<run>.sqlite), an archive (<run>.sqlite.xz) or a run id; "
            "`heatcycler runs --data-dir DIR` lists them",
        )
    if path.is_file():
        return path
    if any(run.endswith(s) for s in _SUFFIXES) or "/" in run:
        raise UserError(
            f"{run}: no such file",
            "check the path, or give a run id from `heatcycler runs --data-dir DIR`",
        )
    candidates = [
        data_dir / f"{run}.sqlite",
        data_dir / "archive" / f"{run}.sqlite.xz",
    ]
    for c in candidates:
        if c.is_file():
            return c
    if not data_dir.is_dir():
        raise UserError(
            f"{run}: not a file, and the data directory {data_dir} does not exist",
            "give the journal's path, or the runs' directory with --data-dir DIR",
        )
    from controller.service.runs import list_runs

    ids = [r for r in list_runs(data_dir) if r.run_id.startswith(run)]
    if len(ids) == 1:
        return Path(ids[0].path)
    if len(ids) > 1:
        raise UserError(
            f"{run}: matches {len(ids)} runs in {data_dir}",
            "give more of the run id: " + ", ".join(r.run_id for r in ids[:5]),
        )
    raise UserError(
        f"{run}: no such run in {data_dir}",
        f"`heatcycler runs --data-dir {data_dir}` lists the runs there",
    )


@contextlib.contextmanager
def open_journal(
    run: str | Path, data_dir: Path, *, need_samples: bool = True
) -> Iterator[JournalReader]:
    """A reader of the run's journal (archives decompressed to a temp file meanwhile)."""
    from controller.service.runs import open_run

    path = resolve(str(run), data_dir)
    with contextlib.ExitStack() as stack:
        try:
            reader = stack.enter_context(open_run(path))
        except FileNotFoundError:
            raise UserError(f"{path}: no such file", "check the path") from None
        except (EOFError, OSError) as exc:
            raise UserError(
                f"{path}: cannot be read ({exc})",
                "the archive is damaged or was not written by `heatcycler archive`",
            ) from None
        except lzma.LZMAError as exc:
            raise UserError(
                f"{path}: cannot be decompressed ({exc})",
                "the archive is damaged or was not written by `heatcycler archive`",
            ) from None
        check(reader, path, need_samples=need_samples)
        yield reader


def check(reader: JournalReader, path: Path, *, need_samples: bool) -> None:
    """A UserError unless ``reader`` is a run journal (with samples, if asked)."""
    hint = "give a run journal written by heatcycler (<data_dir>/<run>.sqlite)"
    try:
        tables = {
            r[0] for r in reader._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{path}: not a run journal ({exc})", hint) from None
    missing = {"meta", "samples", "events", "steps"} - tables
    if missing:
        raise UserError(f"{path}: not a run journal (no {', '.join(sorted(missing))} table)", hint)
    if need_samples and reader.last_seq() == 0:
        raise UserError(
            f"{path}: the journal has no samples",
            "the run recorded nothing yet (did it start?); `heatcycler runs` shows its state",
        )
