"""Remote commands through a real broker into a run: validated, replied, nothing else."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from conftest import rig_config
from mqttbroker import Mosquitto
from mqtthelpers import Collector, SmallRun, collecting, until

from controller.journal import Journal
from controller.telemetry.service import Telemetry

pytestmark = pytest.mark.mqtt


@dataclass
class Bench:
    run: SmallRun
    replies: Collector
    operator: aiomqtt.Client
    telemetry: Telemetry

    async def send(
        self, name: str, payload: dict[str, Any] | bytes, *, retain: bool = False
    ) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await self.operator.publish(f"heatcycler/rc/cmd/{name}", raw, qos=1, retain=retain)

    async def ask(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        await self.send(name, payload)
        request_id = payload["id"]
        await self.replies.wait_for(lambda: self.replies.reply(request_id) is not None, 10)
        reply = self.replies.reply(request_id)
        assert reply is not None
        return reply

    async def ask_raw(self, name: str, payload: bytes) -> dict[str, Any]:
        """Send something that may have no usable id; the next new reply is its answer."""
        before = len(self.replies.replies)
        await self.send(name, payload)
        await self.replies.wait_for(lambda: len(self.replies.replies) > before, 10)
        return self.replies.replies[before]


@pytest.fixture
async def bench(broker: Mosquitto, tmp_path: Path) -> AsyncIterator[Bench]:
    data = tmp_path / "data"
    journal = Journal.create(data / "run-c.sqlite", {"rig": {"rig": "rc"}})
    run = SmallRun("rc", "run-c")
    replies = Collector(broker.port, ["heatcycler/rc/cmd/reply"], "c-replies", persistent=False)
    telemetry = Telemetry(rig_config("rc", data, broker.url), None, journal.path, run)
    async with collecting(replies), aiomqtt.Client("127.0.0.1", broker.port) as operator:
        task = asyncio.create_task(telemetry.run())
        await until(lambda: telemetry.connected)
        await asyncio.sleep(0.2)  # subscribed after connect
        yield Bench(run, replies, operator, telemetry)
        await telemetry.drain(5)
        await task
    journal.close()


async def test_pause_resume_status_abort_with_replies(bench: Bench) -> None:
    reply = await bench.ask("pause", {"id": "p1", "operator": "alice"})
    assert (reply["outcome"], reply["command"], reply["rig"]) == ("ok", "pause", "rc")
    assert reply["message"] == "paused: current off, temperature held"
    assert bench.run.state == "paused"

    again = await bench.ask("pause", {"id": "p2", "operator": "alice"})
    assert again["outcome"] == "refused"
    assert again["message"] == "cannot pause: the run is paused"

    status = await bench.ask("status", {"id": "s1"})
    assert status["outcome"] == "ok"
    assert status["status"]["state"] == "paused"
    assert status["status"]["step"]["label"] == "precycle"

    assert (await bench.ask("resume", {"id": "r1", "operator": "alice"}))["outcome"] == "ok"
    abort = await bench.ask("abort", {"id": "a1", "operator": "bob", "reason": "cell leaks"})
    assert abort["outcome"] == "ok"
    assert bench.run.state == "aborted"
    assert bench.run.abort_reason == "cell leaks"
    assert bench.run.calls == [
        ("pause", "mqtt:alice"),
        ("pause", "mqtt:alice"),
        ("resume", "mqtt:alice"),
        ("abort", "mqtt:bob"),
    ]


async def test_a_repeated_request_id_is_answered_but_not_run_twice(bench: Bench) -> None:
    first = await bench.ask("pause", {"id": "dup-1"})
    before = len(bench.replies.replies)
    await bench.send("pause", {"id": "dup-1"})
    await bench.replies.wait_for(lambda: len(bench.replies.replies) > before, 10)
    second = bench.replies.replies[before]
    assert second["duplicate"] is True
    assert (second["id"], second["outcome"], second["message"]) == (
        "dup-1",
        "ok",
        first["message"],
    )
    assert bench.run.calls == [("pause", "mqtt")]


BAD = [
    # (command, payload, expected id in the reply, expected text in the message)
    ("pause", b'{"id": "x1"', None, "malformed JSON"),
    ("pause", b"[1, 2]", None, "must be a JSON object"),
    ("pause", b"{}", None, "id: Field required"),
    ("pause", json.dumps({"id": "x" * 65}).encode(), None, "at most 64 characters"),
    ("pause", b'{"id": 5}', None, "id: Input should be a valid string"),
    ("pause", b'{"id": "x 2"}', "x 2", "should match pattern"),
    ("pause", b'{"id": "x3", "setpoint": "200 degC"}', "x3", "setpoint: unknown field"),
    ("abort", b'{"id": "x4"}', "x4", "reason: Field required"),
    ("abort", json.dumps({"id": "x5", "reason": "r" * 501}).encode(), "x5", "at most 500"),
    ("setpoint", b'{"id": "x6", "value": 200}', "x6", "unknown command 'setpoint'"),
    ("current", b'{"id": "x7", "value": 0.1}', "x7", "unknown command 'current'"),
    ("pause", json.dumps({"id": "x8", "pad": "p" * 3000}).encode(), None, "over 2048 bytes"),
    ("pause", b"\xff\xfe", None, "malformed JSON"),
]


async def test_bad_commands_get_an_error_reply_and_change_nothing(bench: Bench) -> None:
    for command, payload, expected_id, text in BAD:
        reply = await bench.ask_raw(command, payload)
        assert reply["outcome"] == "error", (command, payload, reply)
        assert reply["id"] == expected_id, (payload, reply)
        assert text in reply["message"], (payload, reply["message"])
    assert bench.run.calls == []
    assert bench.run.state == "running"


async def test_retained_commands_are_ignored(broker: Mosquitto, tmp_path: Path) -> None:
    """A retained abort would fire on every reconnect: the rig ignores retained commands."""
    data = tmp_path / "data"
    journal = Journal.create(data / "run-r.sqlite", {"rig": {"rig": "rc"}})
    run = SmallRun("rc", "run-r")
    async with aiomqtt.Client("127.0.0.1", broker.port) as operator:
        stale = json.dumps({"id": "old", "reason": "yesterday"}).encode()
        await operator.publish("heatcycler/rc/cmd/abort", stale, qos=1, retain=True)
    replies = Collector(broker.port, ["heatcycler/rc/cmd/reply"], "c-ret", persistent=False)
    telemetry = Telemetry(rig_config("rc", data, broker.url), None, journal.path, run)
    async with collecting(replies), aiomqtt.Client("127.0.0.1", broker.port) as operator:
        task = asyncio.create_task(telemetry.run())
        await until(lambda: telemetry.connected)
        for attempt in range(50):  # until the subscription is in place
            await operator.publish("heatcycler/rc/cmd/status", json.dumps({"id": f"s{attempt}"}))
            await asyncio.sleep(0.1)
            if replies.replies:
                break
        await telemetry.drain(5)
        await task
    journal.close()
    assert replies.replies, "the live status command was answered"
    assert all(r["command"] == "status" for r in replies.replies)
    assert run.calls == []
    assert run.state == "running"
