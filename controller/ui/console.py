"""The run's console: a live rich view on a terminal, plain log lines elsewhere (systemd).

The runner drives a ``RunObserver`` (``started``/``update``/``event``/``finished``/
``close``) with ``RunStatus`` snapshots; nothing here runs on its own thread or timer, so
a virtual-time run is never slowed by a refresh loop. ``render`` is the pure part (status
→ rich renderable), shared by ``LiveConsole``, the final panel and ``snapshot`` (the
README's picture). An observer never raises into the runner: a broken terminal or pipe
costs the console, not the run.

Regenerate the README snapshot with ``uv run python docs/make_console_snapshot.py``.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from controller.problems import UserError
from controller.runner.status import EventStatus, RunStatus, StepStatus

log = logging.getLogger("heatcycler.console")

ConsoleMode = Literal["auto", "live", "plain", "quiet"]
MODES: tuple[str, ...] = ("auto", "live", "plain", "quiet")

#: shown where a value is not known (no sample yet, heater off, …)
NONE = "–"
#: how many of the latest events the live console shows
EVENTS_SHOWN = 6
BAR_MIN, BAR_MAX = 10, 40

STATE_STYLE = {
    "running": "bold green",
    "paused": "bold yellow",
    "faulted": "bold red",
    "aborted": "bold red",
    "finished": "bold cyan",
    "idle": "dim",
}
SEVERITY_STYLE = {"info": "", "warning": "yellow", "fault": "bold red"}


class RunObserver(Protocol):
    """What the runner calls; implementations never raise into it.

    ``update`` is throttled by the runner (≤ ~4/s wall time, and at every step or state
    change); ``event`` comes with every journaled event (shorts, trips, steps starting and
    ending, state changes) and the status right after it.
    """

    def started(self, status: RunStatus) -> None: ...
    def update(self, status: RunStatus) -> None: ...
    def event(self, event: EventStatus, status: RunStatus) -> None: ...
    def finished(self, status: RunStatus) -> None: ...
    def close(self) -> None: ...


LinkText = Callable[[], str]


# -- formatting ------------------------------------------------------------------------


def hms(t: float) -> str:
    """Test time as h:mm:ss (hours run past 24: a campaign lasts days)."""
    total = max(0, int(t))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def duration(seconds: float) -> str:
    """A human duration: '45 s', '12 min', '2 h 10 min', '3 d 4 h'."""
    s = max(0.0, seconds)
    if s < 59.5:
        return f"{s:.0f} s"
    minutes = round(s / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, mins = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    hours = round(s / 3600)
    days, hrs = divmod(hours, 24)
    return f"{days} d {hrs} h" if hrs else f"{days} d"


def remaining_text(remaining: tuple[float, float | None]) -> str:
    """Time left from ``(earliest, latest)``: '2 h', '2 h 10 min – 3 h', '≤ 3 h', '≥ 2 h'."""
    low, high = remaining
    low = max(0.0, low)
    if high is None:
        return f"≥ {duration(low)}" if low >= 0.5 else "open-ended"
    high = max(low, high)
    if duration(low) == duration(high):
        return duration(high)
    if low < 0.5:
        return f"≤ {duration(high)}"
    return f"{duration(low)} – {duration(high)}"


def progress(elapsed: float, remaining: tuple[float, float | None]) -> float | None:
    """Fraction done against the latest end (so the bar never runs backwards), or
    against the earliest when there is no latest; ``None`` when nothing is known."""
    low, high = remaining
    left = max(0.0, high if high is not None else low)
    if high is None and left <= 0:
        return None
    if elapsed + left <= 0:
        return 1.0
    return min(1.0, max(0.0, elapsed / (elapsed + left)))


def ends_at(unix: float, remaining: tuple[float, float | None]) -> str:
    """When the run ends, local wall clock: 'Tue 14:30', a range, or 'after Tue 14:30'."""
    low, high = remaining
    far = max(low, high or 0.0) > 6 * 86400  # past next week: a weekday is ambiguous

    def clock(seconds: float) -> str:
        when = dt.datetime.fromtimestamp(unix + seconds)
        return when.strftime("%d %b %H:%M" if far else "%a %H:%M")

    if high is None:
        return f"after {clock(low)}" if low > 0 else ""
    if clock(low) == clock(high):
        return clock(high)
    return f"{clock(low)} – {clock(high)}"


def clean(text: str) -> str:
    """Control characters (a message's tab or newline, an ESC) out of a line."""
    return "".join(c if c >= " " and c != "\x7f" else " " for c in text)


def _num(value: float | None, fmt: str, scale: float = 1.0) -> str:
    return NONE if value is None else format(value * scale, fmt)


def result_text(result: dict[str, Any]) -> str:
    """A finished step's result in a few words: 'CCD 2.6 mA/cm²', 'shorted after 38 cycles'.

    Understands the fields of ``CcdResult`` and ``CyclesToShort`` (``ccd`` in A/cm²,
    ``cycles_to_short``), then a ``summary``/``text`` string, then the first few values.
    """
    where = result.get("label") or result.get("path") or result.get("step")
    head = f"{where}: " if where is not None else ""
    if "ccd" in result:
        ccd = result["ccd"]
        if ccd is not None:
            return f"{head}CCD {ccd * 1e3:.3g} mA/cm²"
        top = result.get("max_density")
        return head + (f"no short up to {top * 1e3:.3g} mA/cm²" if top else "no short")
    if "cycles_to_short" in result:
        n = result["cycles_to_short"]
        if n is not None:
            return f"{head}shorted after {n} cycles"
        done = result.get("cycles_completed")
        return head + (f"no short in {done} cycles" if done is not None else "no short")
    for key in ("summary", "text", "describe"):
        if isinstance(result.get(key), str):
            return head + clean(result[key])
    skip = {"label", "path", "step", "kind", "event"}
    parts = [
        f"{k} {_short(v)}"
        for k, v in result.items()
        if k not in skip and isinstance(v, str | int | float | bool)
    ]
    return head + (", ".join(parts[:3]) if parts else "done")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else clean(str(value))


def step_title(step: StepStatus, total: int) -> str:
    """'step 5/5 cycle «post-therapy»'; a nested step adds its place: 'step 12/40 (5.2) …'."""
    where = f" ({step.path})" if step.path != str(step.count) else ""
    label = f" «{clean(step.label)}»" if step.label else ""
    return f"step {step.count}/{total}{where} {step.kind}{label}"


def _cell_text(cell: dict[str, Any]) -> str:
    parts = [str(cell[k]) for k in ("id", "electrolyte", "type") if cell.get(k)]
    area = cell.get("area_cm2")
    if isinstance(area, int | float):
        parts.append(f"{area:.4g} cm²")
    return " · ".join(parts) if parts else NONE


# -- the pure render -------------------------------------------------------------------


class ProgressLine:
    """A bar and its figures on one line: the bar takes what width the figures leave
    (``BAR_MIN``…``BAR_MAX`` cells), heavy for done and light for to go, so a plain-text
    console shows the progress too."""

    def __init__(self, elapsed: float, remaining: tuple[float, float | None]) -> None:
        self.fraction = progress(elapsed, remaining)
        info = Text()
        pct = NONE if self.fraction is None else f"{100 * self.fraction:.0f} %"
        info.append(f" {pct:>5}", style="bold")
        info.append(f"  {duration(elapsed)} elapsed  ")
        left = remaining_text(remaining)
        info.append(left, style="bold")
        info.append("" if left == "open-ended" else " left")
        self.info = info
        self.reserve = info.cell_len  # the lines drawn together reserve their widest figures

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(BAR_MIN, min(BAR_MAX, options.max_width - self.reserve))
        done = round(width * (self.fraction or 0.0))
        line = Text()
        line.append("━" * done, style="bold green" if done == width else "green")
        line.append("─" * (width - done), style="grey50")
        line.append_text(self.info)
        yield line


def render(status: RunStatus, link_text: str | None) -> RenderableType:
    """The console's picture of one status snapshot (no I/O, no clock)."""
    state_style = STATE_STYLE.get(status.state, "bold")
    head = Text()
    head.append(f"{status.protocol}", style="bold")
    head.append(f"  cell {_cell_text(status.cell)}")

    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("protocol", head)

    step = status.step
    lines: list[ProgressLine] = []
    if step is not None:
        line = Text(step_title(step, status.steps_total), style="bold")
        if step.detail:
            line.append(f"  {clean(step.detail)}", style="")
        grid.add_row("step", line)
        lines.append(ProgressLine(step.elapsed, step.remaining))
        grid.add_row("", lines[-1])
    else:
        grid.add_row("step", Text(f"{NONE} ({status.steps_done}/{status.steps_total} done)"))
    lines.append(ProgressLine(status.t, status.remaining))
    grid.add_row("run", lines[-1])
    for bar in lines:
        bar.reserve = max(x.info.cell_len for x in lines)
    ends = ends_at(status.unix, status.remaining) if status.state in ("running", "paused") else ""
    if ends:
        grid.add_row("", Text(f"ends {ends}", style="dim"))

    temp = Text()
    temp.append(_num(status.temperature, ".2f") + " °C", style="bold")
    if status.setpoint is None:
        temp.append("  heater off", style="dim")
    else:
        temp.append(f"  setpoint {status.setpoint:.1f}")
        if status.target is not None and abs(status.target - status.setpoint) >= 0.05:
            temp.append(f" → {status.target:.1f}")
        temp.append(" °C")
    if status.in_band is True:
        temp.append("  ✓ in band", style="green")
    elif status.in_band is False:
        temp.append("  ✗ out of band", style="yellow")
    temp.append("  duty " + _num(status.duty, ".0f", 100.0) + " %")
    grid.add_row("heater", temp)

    cell = Text()
    cell.append(_num(status.voltage, "+.4f") + " V", style="bold")
    cell.append("  " + _num(status.current, "+.3f", 1e3) + " mA", style="bold")
    cell.append("  " + _num(status.current_density, "+.3f", 1e3) + " mA/cm²")
    cell.append(f"  source {status.source}", style="dim")
    grid.add_row("cell", cell)

    counts = Text()
    counts.append(f"cycle {status.cycle}", style="bold")
    counts.append(f"  steps {status.steps_done}/{status.steps_total} done")
    counts.append(f"  {status.samples_seen} samples measured", style="dim")
    if status.last_sample is not None and status.last_sample.get("seq") is not None:
        counts.append(f", #{status.last_sample['seq']} stored", style="dim")
    grid.add_row("progress", counts)

    link = Text(clean(link_text) if link_text else NONE)
    if link_text and link_text.startswith("connected"):
        link.stylize("green")
    elif link_text and link_text.startswith(("reconnecting", "connecting", "not connected")):
        link.stylize("yellow")
    grid.add_row("mqtt", link)

    if status.results:
        grid.add_row("results", Text("  ·  ".join(result_text(r) for r in status.results)))
    if status.reason:
        grid.add_row("reason", Text(clean(status.reason), style=state_style))

    events = Text()
    shown = list(reversed(status.events[:EVENTS_SHOWN]))  # oldest at the top
    for ev in shown:
        if events:
            events.append("\n")
        events.append(hms(ev.t), style="dim")
        events.append(f" {ev.severity} {ev.kind}", style=SEVERITY_STYLE.get(ev.severity, ""))
        events.append(f"  {clean(ev.message)}")
    grid.add_row("events", events if shown else Text(NONE, style="dim"))

    title = Text()
    title.append(" heatcycler ", style="bold")
    title.append(f"· rig {status.rig} · run {status.run} ")
    subtitle = Text(f" {status.state.upper()} ", style=state_style)
    subtitle.append(f" t = {hms(status.t)} ", style="")
    return Panel(
        grid,
        title=title,
        title_align="left",
        subtitle=subtitle,
        subtitle_align="right",
        border_style=state_style.replace("bold ", "") if status.state != "idle" else "dim",
    )


# -- observers ---------------------------------------------------------------------------


def _link(link: LinkText | None) -> str | None:
    if link is None:
        return None
    try:
        return link()
    except Exception:  # the link's state is decoration: never fail the console for it
        log.debug("link state unavailable", exc_info=True)
        return "unknown"


class _Guarded:
    """Observer plumbing: swallow (and log once) what goes wrong in the output."""

    broken = False

    def _fail(self, what: str) -> None:
        if not self.broken:
            log.warning("console: %s failed; the run continues without it", what, exc_info=True)
        self.broken = True


class LiveConsole(_Guarded):
    """The terminal view: a rich ``Live`` redrawn at ``update``/``event`` calls only.

    ``min_interval`` (wall seconds) skips redraws between the runner's throttled updates
    unless the step or state changed; ``finished`` leaves the final panel on screen.
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        link: LinkText | None = None,
        min_interval: float = 0.1,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console if console is not None else Console()
        self.link = link
        self.min_interval = min_interval
        self.wall = wall
        self._live: Live | None = None
        self._last_draw = float("-inf")
        self._shown: tuple[int | None, str] | None = None
        self.draws = 0

    def _draw(self, status: RunStatus, *, force: bool = False) -> None:
        if self.broken:
            return
        try:
            key = (status.step.count if status.step else None, status.state)
            now = self.wall()
            if not force and key == self._shown and now - self._last_draw < self.min_interval:
                return
            picture = render(status, _link(self.link))
            if self._live is None:
                self._live = Live(
                    picture,
                    console=self.console,
                    auto_refresh=False,
                    transient=False,
                    redirect_stdout=True,
                    redirect_stderr=True,
                    vertical_overflow="visible",
                )
                self._live.start(refresh=True)
            else:
                self._live.update(picture, refresh=True)
            self._shown, self._last_draw = key, now
            self.draws += 1
        except Exception:
            self._fail("drawing")
            self._stop()

    def started(self, status: RunStatus) -> None:
        self._draw(status, force=True)

    def update(self, status: RunStatus) -> None:
        self._draw(status)

    def event(self, event: EventStatus, status: RunStatus) -> None:
        self._draw(status, force=True)

    def finished(self, status: RunStatus) -> None:
        self._draw(status, force=True)
        self._stop()

    def close(self) -> None:
        self._stop()

    def _stop(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            try:
                live.stop()
            except Exception:
                log.debug("stopping the live console", exc_info=True)

    def __enter__(self) -> LiveConsole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PlainLog(_Guarded):
    """Plain lines for a journal or a pipe: no colours, no cursor moves, flushed each.

    One line per event, per step start, state change and step result, and a heartbeat
    every ``heartbeat`` seconds of test time — at most one per ``min_wall`` wall second,
    so a virtual-time campaign does not flood the log.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        link: LinkText | None = None,
        heartbeat: float = 600.0,
        min_wall: float = 1.0,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.link = link
        self.heartbeat = heartbeat
        self.min_wall = min_wall
        self.wall = wall
        self.lines = 0
        self._step: int | None = None
        self._state: str | None = None
        self._results = 0
        self._beat_t = float("-inf")
        self._beat_wall = float("-inf")
        self._closed = False

    # the runner's calls

    def started(self, status: RunStatus) -> None:
        cell = _cell_text(status.cell)
        link = _link(self.link)
        self._write(
            status.t,
            f"run {status.run} {status.state}: protocol {status.protocol}, rig {status.rig}, "
            f"cell {cell}, {status.steps_total} steps, {remaining_text(status.remaining)} left"
            + (f", mqtt {link}" if link else ""),
        )
        self._state = status.state
        self._beat_t = status.t
        self._changes(status)

    def update(self, status: RunStatus) -> None:
        self._changes(status)
        if status.t - self._beat_t >= self.heartbeat:
            now = self.wall()
            if now - self._beat_wall >= self.min_wall:
                self._write(status.t, heartbeat_text(status, _link(self.link)))
                self._beat_t, self._beat_wall = status.t, now

    def event(self, event: EventStatus, status: RunStatus) -> None:
        self._write(event.t, f"{event.severity} {event.kind}: {event.message}")
        # a step start or state change the event reports is not repeated as its own line
        if "step" in event.kind and status.step is not None:
            self._step = status.step.count
        said = f"{event.kind} {event.message}".lower()
        if "state" in event.kind or status.state in said:
            self._state = status.state
        self._changes(status)

    def finished(self, status: RunStatus) -> None:
        self._changes(status)
        results = "; ".join(result_text(r) for r in status.results)
        self._write(
            status.t,
            f"run {status.run} {status.state}"
            + (f" ({status.reason})" if status.reason else "")
            + f": {status.steps_done}/{status.steps_total} steps, cycle {status.cycle}"
            + (f"; results: {results}" if results else ""),
        )

    def close(self) -> None:
        self._closed = True

    # lines

    def _changes(self, status: RunStatus) -> None:
        if status.state != self._state:
            reason = f" ({status.reason})" if status.reason else ""
            self._write(status.t, f"state {status.state}{reason}")
            self._state = status.state
        for result in status.results[self._results :]:
            self._write(status.t, f"result {result_text(result)}")
        self._results = max(self._results, len(status.results))
        step = status.step
        if step is not None and step.count != self._step:
            self._step = step.count
            detail = f": {step.detail}" if step.detail else ""
            self._write(
                status.t,
                f"{step_title(step, status.steps_total)} started{detail}; "
                f"{remaining_text(step.remaining)} left in the step, "
                f"{remaining_text(status.remaining)} in the run",
            )

    def _write(self, t: float, text: str) -> None:
        if self._closed or self.broken:
            return
        line = clean(f"t={hms(t)} {text}") + "\n"
        try:
            try:
                self.stream.write(line)
            except UnicodeEncodeError:  # an ASCII-only journal: °C, µ and – as '?'
                encoding = getattr(self.stream, "encoding", None) or "ascii"
                self.stream.write(line.encode(encoding, "replace").decode(encoding))
            self.stream.flush()
            self.lines += 1
        except Exception:
            self._fail("writing")


def heartbeat_text(status: RunStatus, link_text: str | None) -> str:
    """'step 5/5 cycle 37 T=125.02/125.0 °C V=+0.0123 V I=+1.571 mA …' (no test time)."""
    step = f"step {status.step.count}/{status.steps_total}" if status.step else "no step"
    temp = _num(status.temperature, ".2f") + "/" + _num(status.setpoint, ".1f") + " °C"
    parts = [
        step,
        f"cycle {status.cycle}",
        f"T={temp}",
        f"duty={_num(status.duty, '.0f', 100.0)}%",
        f"V={_num(status.voltage, '+.4f')} V",
        f"I={_num(status.current, '+.3f', 1e3)} mA",
        f"left {remaining_text(status.remaining)}",
    ]
    if link_text:
        parts.append(f"mqtt {link_text}")
    return " ".join(parts)


class QuietConsole:
    """``--console quiet``: nothing on the terminal (the journal and MQTT have it all)."""

    def started(self, status: RunStatus) -> None:
        pass

    def update(self, status: RunStatus) -> None:
        pass

    def event(self, event: EventStatus, status: RunStatus) -> None:
        pass

    def finished(self, status: RunStatus) -> None:
        pass

    def close(self) -> None:
        pass


def is_terminal(stream: TextIO) -> bool:
    """A terminal that can take cursor moves (not a pipe, a file, journald or TERM=dumb)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False
    return bool(tty) and os.environ.get("TERM", "") != "dumb"


def make_console(
    stream: TextIO | None = None,
    *,
    mode: str = "auto",
    link: LinkText | None = None,
) -> LiveConsole | PlainLog | QuietConsole:
    """The observer for ``--console MODE``: auto = live on a terminal, plain otherwise."""
    out = stream if stream is not None else sys.stdout
    if mode not in MODES:
        raise UserError(f"unknown console mode {mode!r}", hint=f"use one of {', '.join(MODES)}")
    if mode == "quiet":
        return QuietConsole()
    if mode == "plain" or (mode == "auto" and not is_terminal(out)):
        return PlainLog(out, link=link)
    return LiveConsole(Console(file=out, force_terminal=mode == "live" or None), link=link)


def telemetry_link(telemetry: Any) -> LinkText:
    """The link-state text of a ``controller.telemetry.service.Telemetry`` (its
    ``enabled``/``connected`` only: cheap, thread-safe reads)."""

    def text() -> str:
        if not telemetry.enabled:
            return "journal-only"
        return "connected" if telemetry.connected else "not connected (the journal keeps all)"

    return text


def snapshot(status: RunStatus, link_text: str | None, path: Path, width: int = 100) -> Path:
    """Record ``render(status)`` as SVG at ``path`` and as plain text beside it (.txt)."""
    console = Console(
        record=True,
        width=width,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        legacy_windows=False,
    )
    console.print(render(status, link_text))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(console.export_svg(title="heatcycler run", clear=False), encoding="utf-8")
    text_path = path.with_suffix(".txt")
    text_path.write_text(console.export_text(clear=True), encoding="utf-8")
    return text_path
