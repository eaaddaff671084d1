"""What ``heatcycler watch`` knows and shows: rigs, their status, samples and events.

``WatchState.apply`` takes every message (any rig under the prefix), de-duplicates
samples on (run, seq) and returns plain text lines; ``render`` draws the same state as a
rich layout for a terminal.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from controller.telemetry import topics


@dataclass
class RigView:
    rig: str
    status: dict[str, Any] | None = None
    samples: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=8))
    runs: dict[str, int] = field(default_factory=dict)  # run -> highest seq shown
    received: int = 0
    duplicates: int = 0


@dataclass
class EventLine:
    rig: str
    doc: dict[str, Any]


class WatchState:
    def __init__(self, prefix: str, rig: str | None = None) -> None:
        self.prefix = prefix
        self.only = rig
        self.rigs: dict[str, RigView] = {}
        self.events: deque[EventLine] = deque(maxlen=12)
        self.replies: deque[EventLine] = deque(maxlen=4)

    def view(self, rig: str) -> RigView:
        if rig not in self.rigs:
            self.rigs[rig] = RigView(rig)
        return self.rigs[rig]

    def apply(self, topic: str, payload: bytes) -> list[str]:
        """Update from one message; the plain lines that describe it."""
        where = topics.parse(self.prefix, topic)
        if where is None:
            return []
        rig, kind = where
        if self.only is not None and rig != self.only:
            return []
        try:
            doc = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return [f"{rig} {kind}: unreadable payload ({len(payload)} bytes)"]
        if not isinstance(doc, dict):
            return [f"{rig} {kind}: unexpected payload"]
        view = self.view(rig)
        if kind == "status":
            view.status = doc
            return [status_line(rig, doc)]
        if kind == "telemetry":
            return self._samples(view, doc)
        if kind == "events":
            self.events.append(EventLine(rig, doc))
            return [event_line(rig, doc)]
        if kind == "cmd/reply":
            self.replies.append(EventLine(rig, doc))
            return [reply_line(rig, doc)]
        return []

    def _samples(self, view: RigView, doc: dict[str, Any]) -> list[str]:
        run = str(doc.get("run"))
        shown = view.runs.get(run, 0)
        batch = [s for s in doc.get("samples", []) if isinstance(s, dict)]
        fresh = [s for s in batch if s.get("seq", 0) > shown]
        view.duplicates += len(batch) - len(fresh)
        if not fresh:
            return []
        view.received += len(fresh)
        view.runs[run] = max(s["seq"] for s in fresh)
        view.samples.extend({**s, "run": run} for s in fresh)
        last = fresh[-1]
        span = f"seq {fresh[0]['seq']}..{last['seq']}" if len(fresh) > 1 else f"seq {last['seq']}"
        return [f"{view.rig} telemetry run={run} {span} ({len(fresh)}) last: {sample_text(last)}"]


def _num(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, int | float) else "–"


def _clock(unix: Any) -> str:
    if not isinstance(unix, int | float):
        return "–"
    return dt.datetime.fromtimestamp(unix).strftime("%H:%M:%S")


def sample_text(s: dict[str, Any]) -> str:
    return (
        f"t={_num(s.get('t'), '.1f')}s V={_num(s.get('V'), '.4f')} "
        f"I={_num(s.get('I'), '.3e')} T={_num(s.get('T'), '.2f')} cycle={s.get('cycle', '–')}"
    )


def _step(status: dict[str, Any]) -> str:
    step = status.get("step")
    if isinstance(step, dict):
        label = step.get("label") or step.get("kind") or ""
        return f"{step.get('number', '?')} {label}".strip()
    return "–" if step is None else str(step)


def status_line(rig: str, s: dict[str, Any]) -> str:
    online = "online" if s.get("online") else "OFFLINE"
    return (
        f"{rig} status {online} state={s.get('state')} run={s.get('run')} step={_step(s)} "
        f"cycle={s.get('cycle', '–')} T={_num(s.get('temperature'), '.2f')} "
        f"V={_num(s.get('voltage'), '.4f')} I={_num(s.get('current'), '.3e')} "
        f"pending={s.get('pending', '–')}"
    )


def event_line(rig: str, e: dict[str, Any]) -> str:
    return (
        f"{rig} event #{e.get('seq')} {_clock(e.get('unix'))} [{e.get('severity')}] "
        f"{e.get('kind')}: {e.get('message')}"
    )


def reply_line(rig: str, r: dict[str, Any]) -> str:
    return f"{rig} reply id={r.get('id')} {r.get('command')} {r.get('outcome')}: {r.get('message')}"


_SEVERITY = {"fault": "bold red", "warning": "yellow", "info": "dim"}


def render(state: WatchState, connection: str) -> RenderableType:
    rigs = Table(title=f"heatcycler · {connection}", expand=True)
    for column in ("rig", "", "state", "run", "step", "cycle", "T °C", "set °C", "V", "I A"):
        rigs.add_column(column, no_wrap=True)
    rigs.add_column("last sample", no_wrap=True)
    rigs.add_column("pending", justify="right")
    for rig in sorted(state.rigs):
        s = state.rigs[rig].status or {}
        online = Text("●", style="green") if s.get("online") else Text("○ offline", style="red")
        last = s.get("last_sample") if isinstance(s.get("last_sample"), dict) else {}
        rigs.add_row(
            rig,
            online,
            str(s.get("state", "–")),
            str(s.get("run", "–")),
            _step(s),
            str(s.get("cycle", "–")),
            _num(s.get("temperature"), ".2f"),
            _num(s.get("setpoint"), ".1f"),
            _num(s.get("voltage"), ".4f"),
            _num(s.get("current"), ".3e"),
            _clock((last or {}).get("unix")),
            str(s.get("pending", "–")),
        )
    parts: list[RenderableType] = [rigs]

    samples = Table(title="latest samples", expand=True)
    for column in ("rig", "seq", "time", "t s", "V", "I A", "T °C", "step", "cycle"):
        samples.add_column(column, no_wrap=True)
    chosen = [state.rigs[state.only]] if state.only in state.rigs else list(state.rigs.values())
    rows = [(v.rig, s) for v in chosen for s in v.samples]
    rows.sort(key=lambda r: r[1].get("unix", 0.0))
    for rig, s in rows[-8:]:
        samples.add_row(
            rig,
            str(s.get("seq")),
            _clock(s.get("unix")),
            _num(s.get("t"), ".1f"),
            _num(s.get("V"), ".4f"),
            _num(s.get("I"), ".3e"),
            _num(s.get("T"), ".2f"),
            str(s.get("step", "–")),
            str(s.get("cycle", "–")),
        )
    parts.append(samples)

    events = Table(title="events", expand=True)
    for column in ("time", "rig", "#", "severity", "kind", "message"):
        events.add_column(column)
    for line in list(state.events)[-10:]:
        e = line.doc
        events.add_row(
            _clock(e.get("unix")),
            line.rig,
            str(e.get("seq")),
            Text(str(e.get("severity")), style=_SEVERITY.get(str(e.get("severity")), "")),
            str(e.get("kind")),
            str(e.get("message")),
        )
    parts.append(events)
    if state.replies:
        parts.append(Text("\n".join(reply_line(r.rig, r.doc) for r in state.replies), style="cyan"))
    return Group(*parts)
