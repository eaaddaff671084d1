"""``heatcycler watch``: the view's state, its rich rendering, and the command on a broker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import rig_config
from mqttbroker import Mosquitto
from mqtthelpers import SmallRun, write_samples
from rich.console import Console

from controller.journal import Journal
from controller.telemetry.service import Telemetry
from controller.telemetry.view import WatchState, render


def _telemetry(run: str, seqs: range) -> bytes:
    samples = [{"seq": i, "t": i * 0.1, "unix": 1.0e9 + i, "V": 0.01, "I": 1e-3} for i in seqs]
    return json.dumps({"v": 1, "rig": "w1", "run": run, "samples": samples}).encode()


def test_state_dedupes_samples_and_describes_messages() -> None:
    state = WatchState("heatcycler")
    status = {"rig": "w1", "online": True, "state": "running", "run": "r", "temperature": 125.0}
    (line,) = state.apply("heatcycler/w1/status", json.dumps(status).encode())
    assert line.startswith("w1 status online state=running run=r")
    assert "T=125.00" in line

    assert state.apply("heatcycler/w1/telemetry", _telemetry("r", range(1, 4))) == [
        "w1 telemetry run=r seq 1..3 (3) last: t=0.3s V=0.0100 I=1.000e-03 T=– cycle=–"
    ]
    # a resend after a reconnect: only the new sample counts
    (again,) = state.apply("heatcycler/w1/telemetry", _telemetry("r", range(2, 5)))
    assert "seq 4 (1)" in again
    assert state.apply("heatcycler/w1/telemetry", _telemetry("r", range(1, 5))) == []
    view = state.rigs["w1"]
    assert (view.received, view.duplicates) == (4, 6)

    event = {"seq": 3, "unix": 1.0e9, "severity": "fault", "kind": "trip", "message": "hot"}
    (line,) = state.apply("heatcycler/w1/events", json.dumps(event).encode())
    assert "w1 event #3" in line
    assert "[fault] trip: hot" in line
    reply = {"id": "a1", "command": "pause", "outcome": "ok", "message": "paused"}
    assert state.apply("heatcycler/w1/cmd/reply", json.dumps(reply).encode()) == [
        "w1 reply id=a1 pause ok: paused"
    ]
    assert state.apply("heatcycler/w1/status", b"\xff") == [
        "w1 status: unreadable payload (1 bytes)"
    ]
    assert state.apply("other/w1/status", b"{}") == []

    only = WatchState("heatcycler", rig="w2")
    assert only.apply("heatcycler/w1/status", json.dumps(status).encode()) == []

    console = Console(record=True, width=160)
    console.print(render(state, "mqtt://test"))
    text = console.export_text()
    assert "w1" in text
    assert "running" in text
    assert "hot" in text
    assert "125.00" in text


def _watch(url: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "watch", "--mqtt", url, *extra, "--for", "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.mqtt
async def test_watch_prints_plain_lines_for_one_or_all_rigs(
    broker: Mosquitto, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    journals = {
        rig: Journal.create(data / f"run-{rig}.sqlite", {"rig": {"rig": rig}})
        for rig in ("w1", "w2")
    }
    watchers = {
        name: _watch(broker.url, *extra) for name, extra in (("all", []), ("one", ["--rig", "w1"]))
    }
    try:
        for proc in watchers.values():
            assert proc.stdout is not None
            async with asyncio.timeout(15):
                first = await asyncio.to_thread(proc.stdout.readline)
            assert first.startswith("watching mqtt://127.0.0.1")
        telemetries = []
        for rig, journal in journals.items():
            t = Telemetry(
                rig_config(rig, data, broker.url), None, journal.path, SmallRun(rig, f"run-{rig}")
            )
            telemetries.append((t, asyncio.create_task(t.run())))
        for journal in journals.values():
            await write_samples(journal, 20, 1000, event_every=10)
            await journal.flush()
        for t, task in telemetries:
            assert await t.drain(5) == 0
            await task
        outputs = {}
        for name, proc in watchers.items():
            out, err = await asyncio.to_thread(proc.communicate, timeout=20)
            assert proc.returncode == 0, err
            outputs[name] = out
    finally:
        for proc in watchers.values():
            proc.kill()
        for journal in journals.values():
            journal.close()

    every = outputs["all"]
    for rig in ("w1", "w2"):
        assert f"{rig} status online state=running run=run-{rig}" in every
        assert f"{rig} telemetry run=run-{rig}" in every
        assert f"{rig} event #2" in every
        assert f"{rig} status OFFLINE" in every  # the final status at the end of the run
    one = outputs["one"]
    assert "w1 telemetry run=run-w1" in one
    assert "w2 " not in one


def test_watch_takes_the_broker_from_a_rig_file_and_flags(tmp_path: Path) -> None:
    from controller.cli import build_parser
    from controller.commands.watch import _config
    from controller.problems import UserError

    rig_file = tmp_path / "rig.yaml"
    rig_file.write_text(
        "rig: r1\nsmu: {resource: sim}\nheater: {port: sim}\n"
        "mqtt: {url: 'mqtts://broker.lab', username: r1, password_env: X, prefix: lab}\n"
    )
    parser = build_parser()
    args = parser.parse_args(["watch", "--config", str(rig_file)])
    cfg = _config(args)
    assert (cfg.url, cfg.username, cfg.password_env, cfg.prefix) == (
        "mqtts://broker.lab",
        "r1",
        "X",
        "lab",
    )
    secret = tmp_path / "pw"
    args = parser.parse_args(
        ["watch", "--config", str(rig_file), "--mqtt", "mqtt://other:1884", "--username",
         "grafana", "--password-file", str(secret), "--rig", "r7"]
    )  # fmt: skip
    cfg = _config(args)
    assert (cfg.url, cfg.username, cfg.password_env, cfg.password_file) == (
        "mqtt://other:1884",
        "grafana",
        None,
        secret,
    )
    with pytest.raises(UserError, match="no broker to watch"):
        _config(parser.parse_args(["watch"]))
    with pytest.raises(UserError, match="not an MQTT URL"):
        _config(parser.parse_args(["watch", "--mqtt", "http://x"]))
