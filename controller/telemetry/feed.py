"""Store-and-forward positions: what of a journal the broker has acknowledged.

The cursors live in the journal itself (``cursors`` table): ``mqtt.samples`` and
``mqtt.events`` hold the last sequence numbers the broker acknowledged (PUBACK), and are
advanced only after the awaited QoS 1 publish returned. A broker outage or a controller
restart therefore resumes exactly there; at worst the batch in flight is sent twice, and
consumers de-duplicate on (run, seq). ``mqtt`` = 1 marks a journal as published over
MQTT, so that a later start sends what an earlier run could not drain (the backlog) —
runs recorded journal-only are never dumped on a broker configured later.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from controller.journal import EventRow, JournalReader, SampleRow, is_locked, run_paths

log = logging.getLogger("heatcycler.telemetry")

SAMPLES = "mqtt.samples"
EVENTS = "mqtt.events"
MARK = "mqtt"


class JournalFeed:
    """One journal being published: its reader and acknowledged positions."""

    def __init__(self, path: Path, *, mark: bool = True) -> None:
        self.path = Path(path)
        self.run = self.path.stem
        self.reader = JournalReader(self.path)
        self.samples_acked = self.reader.cursor(SAMPLES)
        self.events_acked = self.reader.cursor(EVENTS)
        if mark and self.reader.cursor(MARK) < 1:
            self.reader.set_cursor(MARK, 1)

    def close(self) -> None:
        self.reader.close()

    def next_samples(self, limit: int) -> list[SampleRow]:
        return self.reader.samples(after=self.samples_acked, limit=limit)

    def next_events(self, limit: int) -> list[EventRow]:
        return self.reader.events(after=self.events_acked, limit=limit)

    def ack_samples(self, seq: int) -> None:
        self.reader.set_cursor(SAMPLES, seq)
        self.samples_acked = max(self.samples_acked, seq)

    def ack_events(self, seq: int) -> None:
        self.reader.set_cursor(EVENTS, seq)
        self.events_acked = max(self.events_acked, seq)

    def last_sample(self) -> SampleRow | None:
        last = self.reader.last_seq()
        rows = self.reader.samples(after=last - 1, limit=1) if last else []
        return rows[0] if rows else None

    def pending_samples(self) -> int:
        return max(0, self.reader.last_seq() - self.samples_acked)

    def pending_events(self) -> int:
        return max(0, self.reader.last_event_seq() - self.events_acked)


def pending(path: Path) -> tuple[int, int]:
    """(samples, events) of a journal not yet acknowledged by a broker."""
    with JournalReader(path) as reader:
        return (
            max(0, reader.last_seq() - reader.cursor(SAMPLES)),
            max(0, reader.last_event_seq() - reader.cursor(EVENTS)),
        )


def backlog(data_dir: Path, rig: str, exclude: Path | None = None) -> list[Path]:
    """Earlier runs of this rig that were published over MQTT but not drained, oldest first.

    Journals a live controller holds (lock file) are left to it.
    """
    out = []
    skip = Path(exclude).resolve() if exclude is not None else None
    for path in run_paths(data_dir):
        if skip is not None and path.resolve() == skip:
            continue
        try:
            if is_locked(path):
                continue
            with JournalReader(path) as reader:
                if reader.cursor(MARK) < 1 or _rig_of(reader) not in (None, rig):
                    continue
                behind = reader.last_seq() > reader.cursor(SAMPLES) or (
                    reader.last_event_seq() > reader.cursor(EVENTS)
                )
        except Exception as exc:  # a broken file in data_dir must not stop a run
            log.warning("skipping %s for the MQTT backlog: %s", path, exc)
            continue
        if behind:
            out.append(path)
    return out


def _rig_of(reader: JournalReader) -> str | None:
    raw = reader.meta().get("rig")
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
