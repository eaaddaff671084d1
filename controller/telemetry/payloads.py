"""What goes on the wire: compact JSON, one schema version (``"v": 1``) on every message.

Telemetry (``…/telemetry``, QoS 1) — one message per batch of journal samples::

    {"v":1,"rig":"rig-01","run":"20260101T000000Z-rig-01-S07","first":101,"last":103,
     "samples":[{"seq":101,"t":1234.5,"unix":1767226834.5,"V":0.0123,"I":0.00157,
                 "T":125.02,"sp":125.0,"duty":0.31,"level":0.00157,"src":"current",
                 "step":3,"cycle":7}, …]}

Sample fields (journal column in brackets; a field whose value is null is left out):
``seq`` per-run sample sequence number [seq] — consumers de-duplicate on (run, seq);
``t`` test time, s [t]; ``unix`` unix time of the measurement, s [unix];
``V`` cell voltage, V [voltage]; ``I`` current, A, positive plates the working electrode
[current]; ``T`` block temperature, °C [temperature]; ``sp`` thermal setpoint, °C
[setpoint]; ``duty`` heater duty 0..1 [duty]; ``level`` commanded source level, A or V
[level]; ``src`` current | voltage | off [source]; ``step`` step count [step];
``cycle`` cycle count [cycle].

Events (``…/events``, QoS 1) — one message per journal event::

    {"v":1,"rig":"rig-01","run":"…","seq":4,"t":…,"unix":…,"sample_seq":1020,"step":3,
     "kind":"soft_short","severity":"warning","message":"…","data":{…}}

Status (``…/status``, QoS 1, retained) — see ``publisher.Publisher.status_document``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from controller.journal import EventRow, SampleRow

SCHEMA = 1

#: wire key -> journal column
SAMPLE_FIELDS: dict[str, str] = {
    "seq": "seq",
    "t": "t",
    "unix": "unix",
    "V": "voltage",
    "I": "current",
    "T": "temperature",
    "sp": "setpoint",
    "duty": "duty",
    "level": "level",
    "src": "source",
    "step": "step",
    "cycle": "cycle",
}


def dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=_default).encode()


def _default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def sample_dict(row: SampleRow) -> dict[str, Any]:
    out: dict[str, Any] = {"seq": row.seq, "t": row.t, "unix": row.unix}
    for key, value in (
        ("V", _finite(row.voltage)),
        ("I", _finite(row.current)),
        ("T", _finite(row.temperature)),
        ("sp", _finite(row.setpoint)),
        ("duty", _finite(row.duty)),
        ("level", _finite(row.level)),
    ):
        if value is not None:
            out[key] = value
    out["src"] = row.source
    out["step"] = row.step
    out["cycle"] = row.cycle
    return out


def telemetry_message(rig: str, run: str, rows: Sequence[SampleRow]) -> bytes:
    return dumps(
        {
            "v": SCHEMA,
            "rig": rig,
            "run": run,
            "first": rows[0].seq,
            "last": rows[-1].seq,
            "samples": [sample_dict(r) for r in rows],
        }
    )


def event_message(rig: str, run: str, ev: EventRow) -> bytes:
    return dumps(
        {
            "v": SCHEMA,
            "rig": rig,
            "run": run,
            "seq": ev.seq,
            "t": ev.t,
            "unix": ev.unix,
            "sample_seq": ev.sample_seq,
            "step": ev.step,
            "kind": ev.kind,
            "severity": ev.severity,
            "message": ev.message,
            "data": ev.data,
        }
    )


def loads(payload: bytes | bytearray | str) -> dict[str, Any]:
    """A message as a dict; ValueError if it is not a JSON object."""
    doc = json.loads(payload)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc
