"""``--sim`` runs in virtual time: hours pass in a second, MQTT still works in real time.

The control loop is a ``VirtualTimeLoop``; the publisher lives on its own real-time loop,
so keepalives and timeouts are not skipped by the virtual clock, a remote pause reaches
the virtual run, and the run drains to the broker before it ends.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from conftest import rig_config
from mqttbroker import Mosquitto
from mqtthelpers import Collector, SmallRun, collecting

from controller import clock
from controller.clock import Clock, VirtualTimeLoop
from controller.journal import Journal
from controller.samples import Sample
from controller.telemetry.service import Telemetry

pytestmark = pytest.mark.mqtt


async def test_virtual_time_run_is_commanded_and_drained(broker: Mosquitto, tmp_path: Path) -> None:
    data = tmp_path / "data"
    path = data / "run-v.sqlite"
    run = SmallRun("rv", "run-v")
    rig = rig_config("rv", data, broker.url, batch_samples=1000)
    result: dict[str, Any] = {}

    async def campaign() -> None:
        assert isinstance(asyncio.get_running_loop(), VirtualTimeLoop)
        now = Clock()
        journal = Journal.create(path, {"rig": {"rig": "rv"}}, threaded=False, durable=False)
        telemetry = Telemetry(rig, None, path, run, notice=lambda _: None)
        task = asyncio.create_task(telemetry.run())
        while run.state == "running" and journal.last_seq < 20_000:
            journal.add_sample(Sample(t=now.now(), voltage=0.02, current=1e-3, unix=now.unix()))
            await now.sleep(0.1)
        while run.state == "running":  # the operator's pause arrives from another thread
            await now.sleep(1.0)
        journal.add_event("state", "paused", t=now.now(), unix=now.unix(), step=1)
        await journal.flush()
        result["virtual_s"] = now.now()
        result["remaining"] = await telemetry.drain(20)
        await task
        result["n"] = journal.last_seq
        journal.close()

    collector = Collector(broker.port, ["heatcycler/rv/#"], "c-virtual", persistent=False)
    t0 = time.monotonic()
    async with collecting(collector), aiomqtt.Client("127.0.0.1", broker.port) as operator:
        campaign_done = asyncio.create_task(asyncio.to_thread(clock.run, campaign, virtual=True))
        await collector.wait_for(lambda: len(collector.samples) > 0, 20)
        pause = json.dumps({"id": "v1", "operator": "alice"})
        await operator.publish("heatcycler/rv/cmd/pause", pause, qos=1)
        await campaign_done
        real_s = time.monotonic() - t0
        await collector.wait_for(lambda: len(collector.seqs("run-v")) >= result["n"], 20)

    reply = collector.reply("v1")
    assert reply is not None
    assert reply["outcome"] == "ok"
    assert run.calls == [("pause", "mqtt:alice")]
    assert result["remaining"] == 0
    assert collector.seqs("run-v") == list(range(1, result["n"] + 1))
    assert [e["kind"] for e in collector.events.values()] == ["state"]
    assert result["n"] >= 100
    # Virtual time ran far ahead of the wall clock (MQTT did not slow it to real pace).
    assert result["virtual_s"] > 20 * real_s, (result, real_s)
