"""Export a run's samples in the Battery Data Format (BDF), CSV or Parquet, with a sidecar.

Column labels follow the BDF's preferred labels ("Quantity / unit", fixed units): the
required ``Test Time / s``, ``Voltage / V``, ``Current / A``; the recommended ``Unix Time
/ s``, ``Cycle Count / 1``, ``Step Count / 1``; the optional ``Step Time / s``, ``Record
Index / 1`` (the journal's sample sequence number) and ``Temperature T1 / degC``
(auxiliary channel 1: the heater block's thermocouple, as the sidecar says). The rig's own
quantities are written in the same style (one unit per column) and declared in the
sidecar's ``battinfo_dataset.dataset.variable_measured``, as the BDF's custom-measurement
proposal does.

File names follow the BDF convention ``Institution__Cell__YYYYMMDD_NNN.bdf.csv`` (or
``.bdf.parquet``), the metadata beside it as ``….bdf.metadata.json``. The institution
defaults to the rig id; ``NNN`` counts exports of different runs of the same cell on the
same day (re-exporting a run overwrites its own files).

Rows are streamed from the journal in chunks (pyarrow record batches), so a week of 1 s
samples never sits in memory as Python objects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controller.journal import JournalReader
from controller.problems import UserError
from controller.ui.results import findings
from controller.ui.summary import RunView, iso, load_view, rig_id

FORMATS = ("csv", "parquet")
SIGN_CONVENTION = (
    "positive current plates lithium on the working electrode; "
    "voltage is the working electrode minus the counter electrode"
)
SOURCE_MODES = {"off": 0, "current": 1, "voltage": 2}
CHUNK = 50_000


@dataclass(frozen=True, slots=True)
class Column:
    label: str  # BDF preferred label, "Quantity / unit"
    name: str  # machine-readable name (BDF's where it has one)
    unit: str
    kind: str  # float | int
    bdf: bool  # a BDF quantity (else the rig's own, declared in the sidecar)
    description: str


COLUMNS: tuple[Column, ...] = (
    Column("Test Time / s", "test_time_second", "s", "float", True, "time since the run started"),
    Column("Voltage / V", "voltage_volt", "V", "float", True, "working minus counter electrode"),
    Column("Current / A", "current_ampere", "A", "float", True, "+ plates the working electrode"),
    Column("Unix Time / s", "unix_time_second", "s", "float", True, "seconds since 1970 UTC"),
    Column("Cycle Count / 1", "cycle_count", "1", "int", True, "cycle count of the run"),
    Column("Step Count / 1", "step_count", "1", "int", True, "executed step, 1-based"),
    Column("Step Time / s", "step_time_second", "s", "float", True, "time since the step began"),
    Column("Record Index / 1", "record_index", "1", "int", True, "journal sample sequence no."),
    Column(
        "Temperature T1 / degC",
        "temperature_t1_celsius",
        "degC",
        "float",
        True,
        "heater block thermocouple (the cell sits in the block)",
    ),
    Column(
        "Setpoint T1 / degC",
        "setpoint_t1_celsius",
        "degC",
        "float",
        False,
        "the thermal loop's (ramped) setpoint for T1; empty while the heater is off",
    ),
    Column("Heater Duty / 1", "heater_duty", "1", "float", False, "heater duty 0..1"),
    Column(
        "Current Density / A/cm^2",
        "current_density_ampere_per_square_centimetre",
        "A/cm^2",
        "float",
        False,
        "current over the cell's area (sidecar cell.area_cm2), same sign as the current",
    ),
    Column(
        "Source Current Level / A",
        "source_current_level_ampere",
        "A",
        "float",
        False,
        "current the source-measure unit was commanded to; empty unless sourcing current",
    ),
    Column(
        "Source Voltage Level / V",
        "source_voltage_level_volt",
        "V",
        "float",
        False,
        "voltage the source-measure unit was commanded to; empty unless sourcing voltage",
    ),
    Column(
        "Source Mode / 1",
        "source_mode",
        "1",
        "int",
        False,
        "0 output off (open circuit), 1 sourcing current, 2 sourcing voltage",
    ),
)
HEADER = [c.label for c in COLUMNS]


@dataclass(frozen=True)
class Exported:
    data: Path
    metadata: Path
    rows: int


def _safe(text: str) -> str:
    """A file-name part: no '__' (the BDF's separator), no path characters."""
    cleaned = re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-.")
    return re.sub(r"-{2,}", "-", cleaned) or "unknown"


def file_stem(view: RunView, institution: str | None, out: Path) -> str:
    """``Institution__Cell__YYYYMMDD_NNN``: NNN is the first number free for this run."""
    inst = _safe(institution or rig_id(view.meta) or "heatcycler")
    cell = _safe(str(view.cell.get("id") or "cell"))
    started = view.meta.get("started_unix")
    try:
        day = iso(float(started))[:10].replace("-", "")  # type: ignore[arg-type,index]
    except (TypeError, ValueError):
        day = view.run_id[:8] if view.run_id[:8].isdigit() else "00000000"
    for n in range(1, 1000):
        stem = f"{inst}__{cell}__{day}_{n:03d}"
        meta = out / f"{stem}.bdf.metadata.json"
        if not meta.exists():
            return stem
        try:
            if json.loads(meta.read_text(encoding="utf-8")).get("run", {}).get("run_id") == (
                view.run_id
            ):
                return stem
        except (OSError, ValueError, AttributeError):
            continue
    raise UserError(
        f"{out}: 999 exports of cell {cell} on {day} already",
        "export into another directory with --out DIR",
    )


def _batches(reader: JournalReader, view: RunView) -> Iterator[Any]:
    """The samples as pyarrow record batches of at most CHUNK rows."""
    import pyarrow as pa

    area = view.area_cm2
    top = max((s.step for s in view.steps), default=0)
    step_start = np.full(top + 2, np.nan)
    for s in view.steps:
        step_start[s.step] = s.started_t
    schema = schema_of()
    sql = (
        "SELECT seq, t, unix, voltage, current, cycle, step, temperature, setpoint, duty, "
        "level, source FROM samples WHERE seq > ? ORDER BY seq LIMIT ?"
    )
    after = 0
    conn = reader._conn
    while True:
        rows = conn.execute(sql, (after, CHUNK)).fetchall()
        if not rows:
            return
        after = rows[-1][0]
        seq, t, unix, v, i, cycle, step, temp, setp, duty, level, source = zip(*rows, strict=True)
        t_a = np.asarray(t, dtype=float)
        i_a = np.asarray(i, dtype=float)
        step_a = np.asarray(step, dtype=np.int64)
        known = (step_a >= 0) & (step_a < step_start.shape[0])
        starts = np.where(known, step_start[np.clip(step_a, 0, step_start.shape[0] - 1)], np.nan)
        mode = np.fromiter((SOURCE_MODES.get(s, 0) for s in source), np.int64, len(rows))
        level_a = np.asarray(level, dtype=float)
        arrays = [
            t_a,
            np.asarray(v, dtype=float),
            i_a,
            np.asarray(unix, dtype=float),
            np.asarray(cycle, dtype=np.int64),
            step_a,
            t_a - starts,
            np.asarray(seq, dtype=np.int64),
            np.asarray(temp, dtype=float),
            np.asarray(setp, dtype=float),
            np.asarray(duty, dtype=float),
            i_a / area if area else np.full(len(rows), np.nan),
            np.where(mode == 1, level_a, np.nan),
            np.where(mode == 2, level_a, np.nan),
            mode,
        ]
        yield pa.record_batch([pa.array(a, from_pandas=True) for a in arrays], schema=schema)


def schema_of() -> Any:
    import pyarrow as pa

    return pa.schema(
        [pa.field(c.label, pa.float64() if c.kind == "float" else pa.int64()) for c in COLUMNS]
    )


def metadata(view: RunView, data: Path, fmt: str, rows: int) -> dict[str, Any]:
    """The sidecar: what the numbers mean and where they came from."""
    from controller.ui.summary import _json_or

    meta = view.meta
    text = meta.get("protocol_text")
    import hashlib

    started = _json_or(meta.get("started_unix"), None)
    ended = _json_or(meta.get("ended_unix"), None)
    return {
        "rows": rows,
        "sign_convention": SIGN_CONVENTION,
        "run": {
            "run_id": view.run_id,
            "rig": rig_id(meta),
            "sim": meta.get("sim") == "true" if "sim" in meta else None,
            "seed": _json_or(meta.get("seed"), None),
            "state": meta.get("state"),
            "reason": meta.get("reason"),
            "started_unix": started,
            "started": iso(started) if isinstance(started, int | float) else None,
            "ended_unix": ended,
            "ended": iso(ended) if isinstance(ended, int | float) else None,
            "software_version": meta.get("software_version"),
            "journal": str(view.path),
        },
        "protocol": {
            "name": meta.get("protocol_name"),
            "path": meta.get("protocol_path"),
            "sha256": hashlib.sha256(text.encode()).hexdigest() if text else None,
        },
        "cell": view.cell,
        "columns": [
            {
                "label": c.label,
                "name": c.name,
                "unit": c.unit,
                "bdf": c.bdf,
                "description": c.description,
            }
            for c in COLUMNS
        ],
        "source_modes": {str(v): k for k, v in SOURCE_MODES.items()},
        "battinfo_dataset": {
            "dataset": {
                "variable_measured": [
                    {"name": c.label, "unit_text": c.unit, "description": c.description}
                    for c in COLUMNS
                    if not c.bdf
                ]
            }
        },
        "steps": [
            {
                "step": s.step,
                "path": s.path,
                "kind": s.kind,
                "label": s.label,
                "started_t": s.started_t,
                "ended_t": s.ended_t,
                "outcome": s.outcome,
                "result": s.result,
            }
            for s in view.steps
        ],
        "results": findings(view.steps).as_dict(),
    }


def export_run(
    reader: JournalReader,
    path: Path,
    fmt: str,
    out: Path,
    *,
    institution: str | None = None,
) -> Exported:
    """Write ``out/<stem>.bdf.<fmt>`` and its ``.bdf.metadata.json``."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}", "use --format csv or --format parquet")
    out.mkdir(parents=True, exist_ok=True)
    view = load_view(reader, path)
    stem = file_stem(view, institution, out)
    data = out / f"{stem}.bdf.{fmt}"
    tmp = data.with_name(data.name + ".part")
    rows = 0
    schema = schema_of()
    if fmt == "csv":
        import pyarrow.csv as pacsv

        with pacsv.CSVWriter(str(tmp), schema) as writer:
            for batch in _batches(reader, view):
                writer.write_batch(batch)
                rows += batch.num_rows
    else:
        import pyarrow.parquet as pq

        with pq.ParquetWriter(str(tmp), schema, compression="zstd") as pwriter:
            for batch in _batches(reader, view):
                pwriter.write_batch(batch)
                rows += batch.num_rows
    tmp.replace(data)
    side = out / f"{stem}.bdf.metadata.json"
    doc = metadata(view, data, fmt, rows)
    try:  # the same run exported in the other format too: the sidecar names both files
        files = json.loads(side.read_text(encoding="utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError):
        files = {}
    doc["files"] = {**(files if isinstance(files, dict) else {}), fmt: data.name}
    side.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return Exported(data, side, rows)
