"""The run console: the pure render, the plain log for journald, the choice, the snapshot."""

from __future__ import annotations

import dataclasses
import io
import re
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from rich.console import Console

from controller.clock import VIRTUAL_EPOCH
from controller.problems import UserError
from controller.runner.status import EventStatus, RunStatus, StepStatus
from controller.ui.console import (
    LiveConsole,
    PlainLog,
    QuietConsole,
    RunObserver,
    duration,
    heartbeat_text,
    hms,
    make_console,
    progress,
    remaining_text,
    render,
    result_text,
    snapshot,
)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs"))
from make_console_snapshot import example_status  # noqa: E402


def bare_status(**changes: Any) -> RunStatus:
    """A run that has just been created: nothing measured, no step, no heater."""
    base = RunStatus(
        rig="rig-0",
        run="r0",
        protocol="p",
        cell={},
        state="idle",
        t=0.0,
        unix=VIRTUAL_EPOCH,
        step=None,
        steps_done=0,
        steps_total=3,
        remaining=(0.0, None),
        cycle=0,
        temperature=None,
        setpoint=None,
        target=None,
        duty=None,
        in_band=None,
        voltage=None,
        current=None,
        current_density=None,
        source="off",
        last_sample=None,
        samples_seen=0,
    )
    return dataclasses.replace(base, **changes)


def text_of(renderable: Any, width: int = 80) -> str:
    out = io.StringIO()
    Console(file=out, width=width, force_terminal=False).print(renderable)
    return out.getvalue()


def assert_plain(text: str) -> None:
    assert "\x1b" not in text
    bad = [hex(ord(c)) for c in text if ord(c) < 0x20 and c != "\n"]
    assert not bad, bad


# -- formatting ------------------------------------------------------------------------


def test_durations() -> None:
    assert duration(45) == "45 s"
    assert duration(12 * 60 + 10) == "12 min"
    assert duration(2 * 3600 + 10 * 60) == "2 h 10 min"
    assert duration(3 * 3600 + 10) == "3 h"
    assert duration(4 * 86400 + 4 * 3600) == "4 d 4 h"
    assert hms(12 * 3600 + 34 * 60 + 56.9) == "12:34:56"
    assert hms(151 * 3600) == "151:00:00"


def test_eta_ranges() -> None:
    assert remaining_text((2 * 3600 + 600, 3 * 3600)) == "2 h 10 min – 3 h"
    assert remaining_text((3600, 3600)) == "1 h"
    assert remaining_text((3600, 3610)) == "1 h"  # the same when written: no range
    assert remaining_text((0, 3 * 3600)) == "≤ 3 h"
    assert remaining_text((2 * 3600, None)) == "≥ 2 h"
    assert remaining_text((0, None)) == "open-ended"
    assert remaining_text((600, 300)) == "10 min"  # a latest before the earliest is the earliest


def test_progress_fraction_never_runs_backwards_against_the_latest_end() -> None:
    assert progress(30, (30, 70)) == pytest.approx(0.3)
    assert progress(30, (30, None)) == pytest.approx(0.5)
    assert progress(30, (0, None)) is None
    assert progress(0, (0, 0)) == 1.0


def test_results_in_a_few_words() -> None:
    assert result_text({"label": "ramp", "ccd": 2.6e-3}) == "ramp: CCD 2.6 mA/cm²"
    assert result_text({"cycles_to_short": 38, "cycles_completed": 38}) == (
        "shorted after 38 cycles"
    )
    assert result_text({"path": "2", "cycles_to_short": None, "cycles_completed": 5}) == (
        "2: no short in 5 cycles"
    )
    assert result_text({"ccd": None, "max_density": 5e-3}) == "no short up to 5 mA/cm²"
    assert result_text({"label": "x", "summary": "soaked\t6 h"}) == "x: soaked 6 h"
    assert result_text({"steady_current": 1.5e-6, "kind": "dc"}) == "steady_current 1.5e-06"


# -- render ----------------------------------------------------------------------------


def test_render_shows_every_value_of_a_full_status() -> None:
    status = example_status()
    text = text_of(render(status, "reconnecting, 1234 samples pending"), width=100)
    assert_plain(text)
    for expected in (
        "heat-therapy-LiBH4",
        "bench-2",
        "S07 · LiBH4 · symmetric · 0.785 cm²",
        "RUNNING",
        "step 5/5 cycle «post-therapy»",
        "cycle 37 of ≤ 1000",
        "125.02 °C",
        "setpoint 125.0 °C",
        "in band",
        "duty 34 %",
        "+0.0123 V",
        "+1.571 mA",
        "+2.000 mA/cm²",
        "cycle 37",
        "35 min – 46 d 20 h left",
        "27 h 47 min elapsed",
        "soft short suspected: R fell 18 % in 40 s",
        "precycle: no short in 5 cycles",
        "reconnecting, 1234 samples pending",
        "t = 27:47:12",
    ):
        assert expected in text, expected


def test_render_shows_the_latest_six_events_oldest_first() -> None:
    events = [
        EventStatus(t=float(i), unix=VIRTUAL_EPOCH + i, kind="e", severity="info", message=f"m{i}")
        for i in range(8, 0, -1)  # latest first, as the runner keeps them
    ]
    text = text_of(render(bare_status(events=events), None))
    shown = re.findall(r"\bm(\d)\b", text)
    assert shown == ["3", "4", "5", "6", "7", "8"]


def test_render_with_nothing_known_shows_dashes() -> None:
    text = text_of(render(bare_status(), None))
    assert_plain(text)
    assert "– °C" in text
    assert "heater off" in text
    assert "– V" in text
    assert "– mA/cm²" in text
    assert "open-ended" in text
    assert "IDLE" in text
    # the mqtt row with no link function, and no events yet
    assert re.search(r"mqtt\s+–", text)
    assert re.search(r"events\s+–", text)


def test_render_of_a_heating_ramp_and_a_nested_step() -> None:
    step = StepStatus(
        count=12,
        path="5.2",
        kind="temperature",
        label=None,
        started_t=100.0,
        elapsed=60.0,
        remaining=(600.0, 1200.0),
        detail="ramping",
    )
    status = bare_status(
        state="paused",
        step=step,
        temperature=130.4,
        setpoint=131.0,
        target=160.0,
        duty=1.0,
        in_band=False,
        reason="paused by mqtt",
    )
    text = text_of(render(status, "journal-only"))
    assert "step 12/3 (5.2) temperature" in text
    assert "setpoint 131.0 → 160.0 °C" in text
    assert "out of band" in text
    assert "duty 100 %" in text
    assert "10 min – 20 min left" in text
    assert "paused by mqtt" in text
    assert "journal-only" in text


def test_render_keeps_markup_and_escapes_out_of_messages() -> None:
    event = EventStatus(t=5, unix=0, kind="k", severity="fault", message="[bold]x[/]\x1b[31m\n")
    text = text_of(render(bare_status(events=[event], state="faulted"), None))
    assert_plain(text)
    assert "[bold]x[/]" in text


# -- the plain log ---------------------------------------------------------------------


def campaign(n: int, dt: float) -> list[RunStatus]:
    """n snapshots of a running cycle step, test time dt apart."""
    first = example_status()
    step = first.step
    assert step is not None
    return [
        dataclasses.replace(
            first, t=first.t + i * dt, step=dataclasses.replace(step, elapsed=step.elapsed + i * dt)
        )
        for i in range(n)
    ]


def test_make_console_picks_plain_for_a_non_terminal_and_writes_no_control_characters() -> None:
    out = io.StringIO()
    console = make_console(out, link=lambda: "connected")
    assert isinstance(console, PlainLog)
    observer: RunObserver = console
    statuses = campaign(5, 700.0)
    observer.started(statuses[0])
    for status in statuses[1:]:
        observer.update(status)
    soft = next(e for e in statuses[0].events if e.kind == "soft_short")
    observer.event(soft, statuses[-1])
    final = dataclasses.replace(statuses[-1], state="finished", reason="shorted", step=None)
    observer.finished(final)
    observer.close()
    text = out.getvalue()
    assert_plain(text)
    lines = text.splitlines()
    assert lines[0].startswith("t=27:47:12 run 20260101T000000-S07-heat-therapy-LiBH4 running")
    assert "mqtt connected" in lines[0]
    assert any(re.match(r"t=27:47:12 step 5/5 cycle «post-therapy» started", x) for x in lines)
    # a heartbeat: the format the journal shows
    assert "t=27:58:52 step 5/5 cycle 37 T=125.02/125.0 °C duty=34% V=+0.0123 V I=+1.571 mA" in text
    assert "warning soft_short: soft short suspected" in text
    assert "state finished (shorted)" in text
    assert lines[-1].startswith("t=28:33:52 run 20260101T000000-S07-heat-therapy-LiBH4 finished")


def test_plain_log_heartbeat_is_throttled_by_test_time() -> None:
    out = io.StringIO()
    log = PlainLog(out, heartbeat=600.0, min_wall=0.0)
    statuses = campaign(10_000, 1.0)  # 10 000 s of test time
    log.started(statuses[0])
    for status in statuses[1:]:
        log.update(status)
    beats = [x for x in out.getvalue().splitlines() if " T=" in x]
    assert len(beats) == 9999 // 600  # 16: one every 10 min of test time


def test_plain_log_heartbeat_is_capped_by_wall_time() -> None:
    """A virtual-time campaign passes 10 min of test time in a few milliseconds."""
    wall = [0.0]
    out = io.StringIO()
    log = PlainLog(out, heartbeat=600.0, min_wall=1.0, wall=lambda: wall[0])
    statuses = campaign(10_000, 600.0)  # every update is a heartbeat's worth of test time
    log.started(statuses[0])
    for status in statuses[1:]:
        wall[0] += 0.001  # 10 000 updates in 10 wall seconds
        log.update(status)
    beats = [x for x in out.getvalue().splitlines() if " T=" in x]
    assert 9 <= len(beats) <= 11


def test_plain_log_says_each_step_state_and_result_once() -> None:
    out = io.StringIO()
    log = PlainLog(out)
    first = example_status()
    assert first.step is not None
    log.started(first)
    log.update(first)
    nxt = dataclasses.replace(first.step, count=6, path="6", kind="rest", label=None, detail="")
    paused = dataclasses.replace(
        first,
        step=nxt,
        state="paused",
        reason="pause from mqtt",
        results=[*first.results, {"label": "post-therapy", "cycles_to_short": 131}],
    )
    log.update(paused)
    log.update(paused)
    lines = out.getvalue().splitlines()
    assert sum("step 5/5" in x and "started" in x for x in lines) == 1
    assert sum("step 6/5 rest started" in x for x in lines) == 1
    assert sum("state paused (pause from mqtt)" in x for x in lines) == 1
    assert sum("result post-therapy: shorted after 131 cycles" in x for x in lines) == 1
    assert sum("result precycle: no short in 5 cycles" in x for x in lines) == 1


def test_plain_log_does_not_repeat_what_an_event_said() -> None:
    out = io.StringIO()
    log = PlainLog(out)
    first = example_status()
    log.started(first)
    resumed = dataclasses.replace(first, state="paused")
    event = EventStatus(t=first.t, unix=first.unix, kind="state", severity="info", message="paused")
    log.event(event, resumed)
    log.update(resumed)
    lines = out.getvalue().splitlines()
    assert lines[-1] == "t=27:47:12 info state: paused"
    assert not any(x.endswith("state paused") for x in lines)


class AsciiJournal(io.StringIO):
    """A stream that only takes ASCII, like stdout under LANG=C without UTF-8 mode."""

    encoding = "ascii"

    def write(self, s: str) -> int:
        s.encode("ascii")
        return super().write(s)


def test_plain_log_survives_an_ascii_only_stream() -> None:
    out = AsciiJournal()
    log = PlainLog(out)
    log.started(example_status())
    assert "cell S07 ? LiBH4 ? symmetric ? 0.785 cm?" in out.getvalue()


def test_plain_log_stops_quietly_on_a_closed_stream() -> None:
    out = io.StringIO()
    log = PlainLog(out)
    out.close()
    log.started(example_status())  # no exception into the runner
    assert log.broken


# -- choosing --------------------------------------------------------------------------


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_make_console_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    assert isinstance(make_console(FakeTty()), LiveConsole)
    assert isinstance(make_console(io.StringIO()), PlainLog)
    assert isinstance(make_console(FakeTty(), mode="plain"), PlainLog)
    assert isinstance(make_console(io.StringIO(), mode="live"), LiveConsole)
    assert isinstance(make_console(FakeTty(), mode="quiet"), QuietConsole)
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(make_console(FakeTty()), PlainLog)
    with pytest.raises(UserError, match="unknown console mode"):
        make_console(io.StringIO(), mode="fancy")


def test_live_console_draws_on_updates_and_leaves_the_final_panel() -> None:
    out = FakeTty()
    wall = [0.0]
    console = LiveConsole(
        Console(file=out, width=100, force_terminal=True),
        link=lambda: "connected",
        wall=lambda: wall[0],
    )
    statuses = campaign(20, 1.0)
    console.started(statuses[0])
    for status in statuses[1:]:
        wall[0] += 0.01  # faster than the runner promises: most redraws are skipped
        console.update(status)
    assert console.draws == 2  # the start and one 0.1 s later
    console.event(statuses[0].events[0], statuses[-1])  # an event always draws
    assert console.draws == 3
    final = dataclasses.replace(statuses[-1], state="finished", reason="shorted after 131 cycles")
    console.finished(final)
    console.close()
    text = out.getvalue()
    assert "\x1b[" in text  # a terminal: colours and cursor moves
    assert "FINISHED" in text
    assert "shorted after 131 cycles" in text
    assert not console.broken


def test_live_console_never_raises_into_the_runner() -> None:
    out = FakeTty()

    def broken_link() -> str:
        raise RuntimeError("telemetry gone")

    console = LiveConsole(Console(file=out, width=80, force_terminal=True), link=broken_link)
    console.started(example_status())
    assert "unknown" in out.getvalue()
    out.close()
    console.event(example_status().events[0], example_status())
    console.finished(example_status())
    assert console.broken


def test_heartbeat_text_with_nothing_measured() -> None:
    assert heartbeat_text(bare_status(), None) == (
        "no step cycle 0 T=–/– °C duty=–% V=– V I=– mA left open-ended"
    )


# -- snapshot --------------------------------------------------------------------------


def test_snapshot_writes_svg_and_its_text_twin(tmp_path: Path) -> None:
    svg = tmp_path / "console.svg"
    text_path = snapshot(example_status(), "connected", svg, width=100)
    body = svg.read_text(encoding="utf-8")
    assert body.startswith("<svg")
    assert body.rstrip().endswith("</svg>")
    root = ElementTree.fromstring(body)  # well-formed XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "heatcycler&#160;run" in body  # the window title
    assert "125.02&#160;°C" in body
    text = text_path.read_text(encoding="utf-8")
    assert text_path == tmp_path / "console.txt"
    assert_plain(text)
    assert "125.02 °C" in text
    assert "connected" in text
    assert max(len(line) for line in text.splitlines()) == 100


def test_readme_snapshot_is_the_scripts_output(tmp_path: Path) -> None:
    """docs/console.txt is what docs/make_console_snapshot.py writes (regenerated)."""
    snapshot(example_status(), "connected", tmp_path / "console.svg", width=100)
    fresh = (tmp_path / "console.txt").read_text(encoding="utf-8").splitlines()
    kept = (ROOT / "docs" / "console.txt").read_text(encoding="utf-8").splitlines()
    # the run bar's wall-clock end depends on the time zone: compare the rest
    strip = [x for x in fresh if "ends " not in x]
    assert strip == [x for x in kept if "ends " not in x]
    assert (ROOT / "docs" / "console.svg").read_text(encoding="utf-8").startswith("<svg")


def test_quiet_console_says_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    quiet = make_console(io.StringIO(), mode="quiet")
    quiet.started(example_status())
    quiet.finished(example_status())
    assert capsys.readouterr().out == ""


def test_plain_log_still_says_a_step_change_an_unrelated_event_brings() -> None:
    out = io.StringIO()
    log = PlainLog(out)
    first = example_status()
    assert first.step is not None
    log.started(first)
    nxt = dataclasses.replace(first.step, count=6, path="6", kind="rest", label=None, detail="")
    event = EventStatus(
        t=first.t, unix=first.unix, kind="soft_short", severity="warning", message="x"
    )
    log.event(event, dataclasses.replace(first, step=nxt))
    lines = out.getvalue().splitlines()
    assert lines[-2] == "t=27:47:12 warning soft_short: x"
    assert lines[-1].startswith("t=27:47:12 step 6/5 rest started")


PTY_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from make_console_snapshot import example_status
from controller.ui.console import make_console
console = make_console()
print(type(console).__name__, flush=True)
status = example_status()
console.started(status)
console.update(status)
console.finished(status)
console.close()
"""


def test_make_console_goes_live_on_a_real_terminal(tmp_path: Path) -> None:
    """A child process whose stdout is a pseudo-terminal gets the live console."""
    import os
    import subprocess

    main, child = os.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "40"}
    proc = subprocess.Popen(
        [sys.executable, "-c", PTY_CHILD, str(ROOT / "docs")],
        stdout=child,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    os.close(main)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert text.startswith("LiveConsole")
    assert "\x1b[" in text  # colour and cursor control: the live view
    assert "\x1b[?25l" in text  # rich Live hides the cursor while it redraws
    assert "125.02 °C" in text
