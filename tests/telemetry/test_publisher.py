"""Store-and-forward publishing against a real Mosquitto: nothing lost, status truthful."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import pytest
from conftest import rig_config
from mqttbroker import Mosquitto, free_port
from mqtthelpers import Collector, SmallRun, collecting, until, write_samples

from controller.journal import Journal, JournalReader
from controller.telemetry.feed import EVENTS, SAMPLES
from controller.telemetry.service import Telemetry
from controller.telemetry.settings import JOURNAL_ONLY

pytestmark = pytest.mark.mqtt

RIGPROC = Path(__file__).resolve().parent / "rigproc.py"


def _journal(data_dir: Path, run: str, rig: str = "r1") -> Journal:
    return Journal.create(data_dir / f"{run}.sqlite", {"rig": {"rig": rig}, "state": "running"})


async def test_publishes_every_sample_event_and_status_then_drains(
    broker: Mosquitto, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    journal = _journal(data, "run-a")
    run = SmallRun("r1", "run-a")
    notices: list[str] = []
    rig = rig_config("r1", data, broker.url, batch_samples=100)
    collector = Collector(broker.port, ["heatcycler/r1/#"], "c-basic", persistent=False)
    async with collecting(collector):
        telemetry = Telemetry(rig, None, journal.path, run, notice=notices.append, poll=0.05)
        task = asyncio.create_task(telemetry.run())
        await write_samples(journal, 450, 300, event_every=100)
        await journal.flush()
        await collector.wait_for(lambda: any(s["online"] for s in collector.statuses), 10)
        remaining = await telemetry.drain(10)
        await task
        await collector.wait_for(lambda: not collector.statuses[-1]["online"], 5)

    assert remaining == 0
    assert collector.seqs("run-a") == list(range(1, 451))
    assert sorted(seq for (_, seq) in collector.events) == [1, 2, 3, 4]
    first = collector.samples[("run-a", 1)]
    assert first["V"] == pytest.approx(0.01001)
    assert first["I"] == pytest.approx(1.57e-3)
    assert (first["T"], first["sp"], first["src"], first["step"]) == (125.0, 125.0, "current", 1)
    event = collector.events[("run-a", 2)]
    assert (event["kind"], event["sample_seq"], event["rig"]) == ("state", 200, "r1")

    online = next(s for s in collector.statuses if s["online"])
    assert online["rig"] == "r1"
    assert online["run"] == "run-a"
    assert online["state"] == "running"  # from the run's own status()
    assert online["step"]["kind"] == "cycle"
    assert online["version"]
    final = collector.statuses[-1]
    assert (final["online"], final["pending"], final["published_seq"]) == (False, 0, 450)
    assert final["last_sample"]["seq"] == 450
    assert final["temperature"] == 125.0

    with JournalReader(journal.path) as reader:
        assert reader.cursor(SAMPLES) == 450
        assert reader.cursor(EVENTS) == 4
    journal.close()
    assert not any("unreachable" in n or "lost" in n for n in notices)


async def test_broker_outage_of_30_s_loses_nothing(broker: Mosquitto, tmp_path: Path) -> None:
    """Stop the broker process for 30 s while the run writes; every (run, seq) arrives."""
    data = tmp_path / "data"
    journal = _journal(data, "run-outage")
    notices: list[str] = []
    rig = rig_config("r1", data, broker.url, batch_samples=200)
    # An ingestor with a persistent session (as Telegraf is configured in deploy/).
    collector = Collector(broker.port, ["heatcycler/r1/#"], "ingest-outage", persistent=True)
    async with collecting(collector):
        telemetry = Telemetry(
            rig, None, journal.path, SmallRun("r1", "run-outage"), notice=notices.append
        )
        task = asyncio.create_task(telemetry.run())
        writer = asyncio.create_task(write_samples(journal, 10**9, 20, event_every=50))
        await collector.wait_for(lambda: len(collector.samples) >= 20, 10)

        broker.stop()
        outage_start = journal.last_seq
        await asyncio.sleep(30.0)
        written_during_outage = journal.last_seq - outage_start
        broker.start()

        # The rig re-subscribed to its commands on the new connection.
        await until(lambda: telemetry.connected, 15)
        async with aiomqtt.Client("127.0.0.1", broker.port) as operator:
            for attempt in range(50):
                request = json.dumps({"id": f"after-{attempt}"})
                await operator.publish("heatcycler/r1/cmd/status", request, qos=1)
                await asyncio.sleep(0.1)
                if collector.replies:
                    break
        await asyncio.sleep(1.0)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await journal.flush()
        last = journal.last_seq
        remaining = await telemetry.drain(20)
        await task
        await collector.wait_for(lambda: len(collector.seqs("run-outage")) >= last, 20)

    assert written_during_outage >= 550  # 30 s at 20 Hz kept in the journal
    assert remaining == 0
    assert collector.seqs("run-outage") == list(range(1, last + 1))  # each exactly once
    events = sorted(seq for (r, seq) in collector.events if r == "run-outage")
    assert events == list(range(1, last // 50 + 1))
    assert any("lost" in n for n in notices), notices
    assert any("reachable after" in n for n in notices), notices
    assert collector.replies
    assert collector.replies[0]["outcome"] == "ok"
    assert collector.replies[0]["status"]["state"] == "running"
    journal.close()


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(RIGPROC), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _wait_line(proc: subprocess.Popen[str], word: str, within: float = 20.0) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(within):
        line = await asyncio.to_thread(proc.stdout.readline)
    assert word in line, f"expected {word!r}, got {line!r}; stderr: {proc.stderr}"
    return line


async def test_killed_controller_is_marked_offline_by_its_last_will(
    broker: Mosquitto, tmp_path: Path
) -> None:
    journal = tmp_path / "data" / "run-kill.sqlite"
    watcher = Collector(broker.port, ["heatcycler/rk/status"], "c-kill", persistent=False)
    async with collecting(watcher):
        proc = _spawn("--journal", str(journal), "--url", broker.url, "--rig", "rk")
        try:
            await _wait_line(proc, "started")
            await watcher.wait_for(lambda: any(s["online"] for s in watcher.statuses), 15)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            await watcher.wait_for(lambda: not watcher.statuses[-1]["online"], 10)
        finally:
            proc.kill()
            proc.wait()
    will = watcher.statuses[-1]
    assert (will["online"], will["state"], will["rig"], will["run"]) == (
        False,
        "offline",
        "rk",
        "run-kill",
    )
    # A dashboard that connects later gets the same truth (retained).
    late = Collector(broker.port, ["heatcycler/rk/status"], "c-late", persistent=False)
    async with collecting(late):
        await late.wait_for(lambda: bool(late.statuses), 5)
    assert late.statuses[-1]["online"] is False
    assert late.statuses[-1]["state"] == "offline"


async def test_restart_mid_run_resumes_from_the_journal_cursor(
    broker: Mosquitto, tmp_path: Path
) -> None:
    journal = tmp_path / "data" / "run-restart.sqlite"
    collector = Collector(broker.port, ["heatcycler/rr/#"], "ingest-restart", persistent=True)
    async with collecting(collector):
        first = _spawn(
            "--journal", str(journal), "--url", broker.url, "--rig", "rr", "--rate", "200"
        )
        try:
            await _wait_line(first, "started")
            await collector.wait_for(lambda: len(collector.samples) >= 300, 20)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        with JournalReader(journal) as reader:
            acked, written = reader.cursor(SAMPLES), reader.last_seq()
        assert 0 < acked <= written

        second = _spawn(
            "--journal", str(journal), "--url", broker.url, "--rig", "rr",
            "--rate", "200", "--count", "300", "--resume",
        )  # fmt: skip
        try:
            await _wait_line(second, "started")
            line = await _wait_line(second, "remaining", 60)
            assert second.wait(10) == 0
        finally:
            second.kill()
            second.wait()
        assert line.split() == ["remaining", "0"]
        with JournalReader(journal) as reader:
            last = reader.last_seq()
            assert reader.cursor(SAMPLES) == last
        await collector.wait_for(lambda: len(collector.seqs("run-restart")) >= last, 10)

    assert last >= written + 305
    assert collector.seqs("run-restart") == list(range(1, last + 1))
    # Resumed from the cursor, not from the start: at most the batch in flight at the
    # kill went out twice.
    assert collector.sample_copies - len(collector.samples) <= 50


async def test_undrained_samples_are_counted_and_go_out_on_the_next_start(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"  # nothing listens yet: the broker is down
    rig = rig_config("r3", data, url)

    earlier = _journal(data, "run-1", rig="r3")
    notices: list[str] = []
    telemetry = Telemetry(rig, None, earlier.path, SmallRun("r3", "run-1"), notice=notices.append)
    task = asyncio.create_task(telemetry.run())
    await write_samples(earlier, 120, 1000)
    await earlier.flush()
    t0 = time.monotonic()
    remaining = await telemetry.drain(1.5)
    await task
    earlier.close()
    assert remaining == 120
    assert time.monotonic() - t0 < 1.5 + 6  # bounded
    assert any("120 samples remain unpublished" in n for n in notices), notices

    journal_only = Journal.create(data / "run-0-offline.sqlite", {"rig": {"rig": "r3"}})
    await write_samples(journal_only, 10, 1000)
    journal_only.close()  # recorded without MQTT: never dumped on a broker later

    b = Mosquitto(tmp_path / "broker", _open_config(tmp_path, port), port).start()
    try:
        collector = Collector(port, ["heatcycler/r3/telemetry"], "c-backlog", persistent=False)
        async with collecting(collector):
            current = _journal(data, "run-2", rig="r3")
            notices.clear()
            telemetry = Telemetry(
                rig, None, current.path, SmallRun("r3", "run-2"), notice=notices.append
            )
            task = asyncio.create_task(telemetry.run())
            await write_samples(current, 30, 1000)
            await current.flush()
            assert await telemetry.drain(10) == 0
            await task
            current.close()
            await collector.wait_for(lambda: len(collector.samples) >= 150, 10)
    finally:
        b.stop()
    assert collector.seqs("run-1") == list(range(1, 121))
    assert collector.seqs("run-2") == list(range(1, 31))
    assert collector.seqs("run-0-offline") == []
    assert any("120 samples of 1 earlier run" in n for n in notices), notices


def _open_config(tmp_path: Path, port: int) -> str:
    from mqttbroker import open_config

    (tmp_path / "pdata").mkdir(exist_ok=True)
    return open_config(port, tmp_path / "pdata")


async def test_journal_only_when_no_broker_is_configured(tmp_path: Path) -> None:
    data = tmp_path / "data"
    journal = _journal(data, "run-j")
    notices: list[str] = []
    telemetry = Telemetry(
        rig_config("r4", data, None), None, journal.path, None, notice=notices.append
    )
    await telemetry.run()  # returns at once
    await write_samples(journal, 5, 1000)
    await journal.flush()
    assert await telemetry.drain(1) == 0
    telemetry.start()
    assert notices == [JOURNAL_ONLY]
    assert not telemetry.enabled
    journal.close()

    # --mqtt off wins over a configured broker.
    rig = rig_config("r4", data, "mqtt://127.0.0.1:1")
    assert not Telemetry(rig, "off", None, None, notice=notices.append).enabled


async def test_home_assistant_discovery_follows_the_last_will(
    broker: Mosquitto, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    journal = _journal(data, "run-ha", rig="rig.7")
    rig = rig_config("rig.7", data, broker.url, homeassistant=True)
    collector = Collector(broker.port, ["homeassistant/#"], "c-ha", persistent=False)
    async with collecting(collector):
        telemetry = Telemetry(rig, None, journal.path, None, notice=lambda _: None)
        task = asyncio.create_task(telemetry.run())
        await collector.wait_for(lambda: bool(collector.other), 10)
        await telemetry.drain(5)
        await task
    journal.close()
    ((topic, raw),) = collector.other
    assert topic == "homeassistant/device/heatcycler_rig_7/config"
    config = json.loads(raw)
    assert config["dev"]["ids"] == ["heatcycler_rig_7"]
    assert config["o"]["name"] == "heatcycler"
    assert config["state_topic"] == "heatcycler/rig.7/status"
    (availability,) = config["availability"]
    assert availability["topic"] == "heatcycler/rig.7/status"
    assert "value_json.online" in availability["value_template"]
    platforms = {c["p"] for c in config["cmps"].values()}
    assert platforms == {"sensor"}
    templates = {c["value_template"] for c in config["cmps"].values()}
    for key in ("temperature", "voltage", "current", "state", "cycle"):
        assert f"{{{{ value_json.{key} }}}}" in templates
    units = {c["unique_id"]: c.get("unit_of_measurement") for c in config["cmps"].values()}
    assert units["heatcycler_rig_7_temperature"] == "°C"
    assert units["heatcycler_rig_7_voltage"] == "V"


async def test_the_cursor_waits_for_the_broker_acknowledgement(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """A frozen broker (SIGSTOP: connection up, no PUBACK) gets no sample marked published."""
    data = tmp_path / "data"
    journal = _journal(data, "run-ack")
    collector = Collector(broker.port, ["heatcycler/r5/telemetry"], "c-ack", persistent=False)
    async with collecting(collector):
        telemetry = Telemetry(
            rig_config("r5", data, broker.url), None, journal.path, None, poll=0.05
        )
        task = asyncio.create_task(telemetry.run())
        await write_samples(journal, 50, 1000)
        await journal.flush()
        await collector.wait_for(lambda: len(collector.samples) == 50, 10)
        with JournalReader(journal.path) as reader:
            await until(lambda: reader.cursor(SAMPLES) == 50)
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGSTOP)
        try:
            await write_samples(journal, 70, 1000)
            await journal.flush()
            await asyncio.sleep(1.5)  # the publisher has sent its batch and waits for PUBACK
            with JournalReader(journal.path) as reader:
                assert reader.cursor(SAMPLES) == 50
            assert telemetry.publisher.stats.samples == 50
        finally:
            broker.proc.send_signal(signal.SIGCONT)
        assert await telemetry.drain(10) == 0
        await task
        await collector.wait_for(lambda: len(collector.samples) == 120, 10)
    with JournalReader(journal.path) as reader:
        assert reader.cursor(SAMPLES) == 120
    journal.close()
