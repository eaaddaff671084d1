"""Real processes for the runner tests: the served software rig, `heatcycler run` and
`resume` as subprocesses, and journal facts read while (or after) they write.

``served_rig`` starts ``heatcycler sim serve`` (SMU on TCP, heater board on a pty) in its
own process at speed 1 and writes a rig file pointing at it, so the controller under test
reaches it through its real drivers and transports. ``Facts`` reads a journal through
``JournalReader`` (WAL readers never block the writer).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.journal import JournalReader

ROOT = Path(__file__).resolve().parents[2]

#: how long a wait on a subprocess or a journal condition may take on a loaded machine
PATIENCE = 60.0


def heatcycler(*args: str) -> list[str]:
    return [sys.executable, "-m", "controller.cli", *args]


# ------------------------------------------------------------------ protocols


def soak_protocol(
    *, setpoint: float = 32.0, band: float = 1.0, soak: float = 20.0, every: float = 0.5
) -> str:
    """A temperature step with a soak, then a short rest (the run goes on past it)."""
    return f"""\
name: crash-soak
description: warm a little and soak, for the kill -9 tests
cell: {{id: K01, electrolyte: LLZO, type: symmetric, area: 0.785 cm^2, thickness: 1.0 mm}}
safety:
  voltage: {{min: -1 V, max: 1 V}}
  temperature_max: 60 degC
record: {{sample_period: 0.2 s, every: {every} s}}
steps:
  - temperature: {{label: warm, setpoint: {setpoint} degC, ramp: 20 degC/min, band: {band} degC,
                  soak: {soak} s}}
  - rest: {{label: after, for: 2 s}}
"""


def cycle_protocol(*, half: float = 5.0, count: int = 3, every: float = 0.5) -> str:
    """Plate/strip cycles at room temperature (LLZO conducts there: a few mV)."""
    return f"""\
name: crash-cycle
description: a few short cycles, for the kill -9 tests
cell: {{id: K02, electrolyte: LLZO, type: symmetric, area: 0.785 cm^2, thickness: 1.0 mm}}
safety:
  voltage: {{min: -1 V, max: 1 V}}
  temperature_max: 60 degC
record: {{sample_period: 0.2 s, every: {every} s}}
steps:
  - cycle: {{label: cyc, current_density: 0.02 mA/cm^2, half_cycle: {half} s, rest: 0 s,
            count: {count}, on_short: abort}}
"""


def signal_protocol() -> str:
    """Heat (duty on, SMU at 0 A), a short soak, two short cycles: ~20 s in real time."""
    return """\
name: signal-run
description: heater and current on, for the SIGTERM/SIGINT tests
cell: {id: K03, electrolyte: LLZO, type: symmetric, area: 0.785 cm^2, thickness: 1.0 mm}
safety:
  voltage: {min: -1 V, max: 1 V}
  temperature_max: 60 degC
record: {sample_period: 0.2 s, every: 0.5 s}
steps:
  - temperature: {label: warm, setpoint: 28 degC, ramp: 20 degC/min, band: 1 degC, soak: 4 s}
  - cycle: {label: cyc, current_density: 0.02 mA/cm^2, half_cycle: 2 s, rest: 0 s, count: 2}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ the served rig


@dataclass
class ServedRig:
    """A running ``heatcycler sim serve`` and a rig file pointing at it."""

    proc: subprocess.Popen[str]
    addresses: dict[str, Any]
    state: Path  # the server's state file (for `sim status --state`)
    rig: Path  # the rig YAML
    data: Path  # the rig's data_dir

    def status(self) -> dict[str, Any]:
        """The rig's snapshot through its control port (what `sim status` prints)."""
        host, _, port = str(self.addresses["control"]).rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10.0) as sock:
            stream = sock.makefile("rwb")
            stream.write(b"status\n")
            stream.flush()
            reply = stream.readline().decode()
        assert reply.startswith("OK "), reply
        snapshot: dict[str, Any] = json.loads(reply[3:])
        return snapshot

    def status_cli(self) -> dict[str, Any]:
        """The same snapshot through `heatcycler sim status --state FILE`."""
        done = subprocess.run(
            heatcycler("sim", "status", "--state", str(self.state)),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=PATIENCE,
        )
        assert done.returncode == 0, done.stderr
        snapshot: dict[str, Any] = json.loads(done.stdout)
        return snapshot

    def wait_status(
        self, predicate: Callable[[dict[str, Any]], bool], within: float = 20.0
    ) -> dict[str, Any]:
        end = time.monotonic() + within
        while True:
            snapshot = self.status()
            if predicate(snapshot) or time.monotonic() > end:
                return snapshot
            time.sleep(0.1)


def rig_yaml(name: str, smu: str, heater: str, data: Path, lease: str = "3 s") -> str:
    return f"""\
rig: {name}
smu:
  resource: {smu}
  timeout: 5 s
heater:
  port: {heater}
  lease: {lease}
data_dir: {data}
"""


@contextlib.contextmanager
def served_rig(
    tmp: Path,
    protocol: Path,
    *,
    name: str = "wire-rig",
    lease: str = "3 s",
    faults: tuple[str, ...] = (),
) -> Iterator[ServedRig]:
    """``heatcycler sim serve`` at speed 1 with the protocol's cell; a rig file for it.
    ``faults``: ``--fault`` specs for the server (e.g. ``loss=10``)."""
    tmp.mkdir(parents=True, exist_ok=True)
    state = tmp / "sim.json"
    err = (tmp / "serve.err").open("w")
    proc = subprocess.Popen(
        heatcycler(
            "sim",
            "serve",
            "--port",
            "0",
            "--json",
            "--link",
            str(tmp / "heater"),
            "--protocol",
            str(protocol),
            "--state",
            str(state),
            *(a for f in faults for a in ("--fault", f)),
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
    )
    err.close()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait(10)
            raise AssertionError(f"sim serve did not start: {(tmp / 'serve.err').read_text()}")
        addresses = json.loads(line)
        data = tmp / "data"
        rig = write(
            tmp / "rig.yaml",
            rig_yaml(name, str(addresses["smu"]), str(tmp / "heater"), data, lease),
        )
        yield ServedRig(proc, addresses, state, rig, data)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


# ------------------------------------------------------------------ controllers


@dataclass
class Controller:
    """A ``heatcycler run``/``resume`` subprocess; its output goes to files."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, within: float = PATIENCE) -> int:
        try:
            return self.proc.wait(within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(
                f"the controller did not exit within {within:.0f} s\n{self.output()}"
            ) from None

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def output(self) -> str:
        return f"stdout:\n{self.out.read_text()}\nstderr:\n{self.err.read_text()}"

    def stop(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)


def start(tmp: Path, name: str, *args: str, env: dict[str, str] | None = None) -> Controller:
    """Start ``heatcycler ARGS`` with stdout/stderr in ``tmp/name.out|err``."""
    out, err = tmp / f"{name}.out", tmp / f"{name}.err"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            heatcycler(*args), cwd=ROOT, stdout=o, stderr=e, env=env or dict(os.environ)
        )
    return Controller(proc, out, err)


def run_to_end(tmp: Path, name: str, *args: str, within: float = PATIENCE) -> Controller:
    c = start(tmp, name, *args)
    c.wait(within)
    return c


@contextlib.contextmanager
def controlled(c: Controller) -> Iterator[Controller]:
    """Never leave a controller process behind, whatever the test does."""
    try:
        yield c
    finally:
        c.stop()


def the_journal(data: Path, c: Controller | None = None, within: float = PATIENCE) -> Path:
    """The one ``*.sqlite`` in ``data`` (waits until the run created it and its meta)."""
    end = time.monotonic() + within
    while True:
        found = sorted(data.glob("*.sqlite")) if data.exists() else []
        if found:
            assert len(found) == 1, found
            try:
                with JournalReader(found[0]) as reader:
                    if "state" in reader.meta():  # created and its schema written
                        return found[0]
            except sqlite3.OperationalError:
                pass
        if c is not None and not c.alive():
            raise AssertionError(f"the controller exited without a journal\n{c.output()}")
        if time.monotonic() > end:
            raise AssertionError(f"no journal in {data} within {within:.0f} s")
        time.sleep(0.1)


def wait_journal(
    path: Path,
    predicate: Callable[[JournalReader], bool],
    *,
    controller: Controller | None = None,
    within: float = PATIENCE,
    what: str = "the journal condition",
) -> None:
    """Poll ``predicate(reader)`` on a live journal until it holds."""
    end = time.monotonic() + within
    while True:
        with JournalReader(path) as reader:
            try:
                if predicate(reader):
                    return
            except sqlite3.OperationalError:  # created, the schema not written yet
                pass
        if controller is not None and not controller.alive():
            raise AssertionError(f"the controller exited before {what}\n{controller.output()}")
        if time.monotonic() > end:
            raise AssertionError(f"{what} did not happen within {within:.0f} s")
        time.sleep(0.1)


def query(reader: JournalReader, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return list(reader._conn.execute(sql, params).fetchall())


# ------------------------------------------------------------------ journal facts


@dataclass(frozen=True)
class Row:
    seq: int
    t: float
    unix: float
    temperature: float | None
    level: float | None
    source: str
    step: int
    cycle: int


@dataclass
class Facts:
    """Everything the assertions need from a (closed) journal."""

    meta: dict[str, str]
    samples: list[Row]
    events: list[Any]  # EventRow
    steps: list[Any]  # StepRow
    seq_count: int
    seq_max: int

    @classmethod
    def read(cls, path: Path) -> Facts:
        with JournalReader(path) as reader:
            rows = [
                Row(*r)
                for r in query(
                    reader,
                    "SELECT seq, t, unix, temperature, level, source, step, cycle "
                    "FROM samples ORDER BY seq",
                )
            ]
            count, top = query(reader, "SELECT count(*), coalesce(max(seq), 0) FROM samples")[0]
            return cls(reader.meta(), rows, reader.events(), reader.steps(), count, top)

    def kinds(self, kind: str) -> list[Any]:
        return [e for e in self.events if e.kind == kind]

    def result(self, step: int) -> dict[str, Any]:
        row = next(s for s in self.steps if s.step == step)
        assert row.result is not None
        result: dict[str, Any] = row.result
        return result


def assert_one_sequence(facts: Facts) -> None:
    """1..N without a hole or a duplicate, and test time strictly increasing with seq
    (a sample stored twice after a resume would repeat or go back in time)."""
    seqs = [r.seq for r in facts.samples]
    assert seqs == list(range(1, len(seqs) + 1))
    assert facts.seq_max == facts.seq_count == len(seqs)
    ts = [r.t for r in facts.samples]
    assert all(b > a for a, b in itertools.pairwise(ts)), "test time went back"


def assert_steps_once(facts: Facts, outcomes: dict[int, str]) -> None:
    """Each executed step has one record with one outcome (no reopened duplicate)."""
    got = {s.step: s.outcome for s in facts.steps}
    assert got == outcomes
    assert all(s.ended_t is not None for s in facts.steps)


def split_at_gap(facts: Facts) -> tuple[list[Row], list[Row], Any]:
    """(samples before the crash, samples after the resume, the gap event)."""
    gaps = facts.kinds("gap")
    assert len(gaps) == 1, [e.message for e in gaps]
    gap = gaps[0]
    before = [r for r in facts.samples if r.seq <= gap.sample_seq]
    after = [r for r in facts.samples if r.seq > gap.sample_seq]
    assert before
    assert after
    return before, after, gap


def assert_documented_gap(
    facts: Facts, killed_unix: float, *, every: float, lost_at_most: float = 2.5
) -> tuple[list[Row], list[Row], Any]:
    """The crash left exactly one hole in time: the last uncommitted batch before the
    kill (≤ ~1 s by the durability policy; ``lost_at_most`` allows a loaded machine),
    then the gap until the resume, which the ``gap`` event names; test time continues
    across it at the pace of the wall clock."""
    before, after, gap = split_at_gap(facts)
    last, first = before[-1], after[0]
    assert killed_unix - last.unix <= lost_at_most, (
        f"{killed_unix - last.unix:.2f} s of samples lost before the kill"
    )
    data = gap.data
    assert last.t <= data["from_t"] <= last.t + lost_at_most
    assert (
        data["to_t"] - data["from_t"] == data["gap_s"]
        or abs(data["to_t"] - data["from_t"] - data["gap_s"]) < 1e-6
    )
    assert first.t >= data["to_t"]
    # the resumed run's test time advanced with the wall clock across the gap
    assert abs((first.t - last.t) - (first.unix - last.unix)) < 1.0
    # no other hole: stored samples are at most `every` (+ a period and load) apart
    for rows in (before, after):
        steps = [b.t - a.t for a, b in itertools.pairwise(rows)]
        assert max(steps) <= every + 1.0, max(steps)
    return before, after, gap


def kill9(c: Controller) -> float:
    """SIGKILL the controller; the wall time of the kill."""
    killed = time.time()
    c.signal(signal.SIGKILL)
    c.proc.wait(10)
    return killed
