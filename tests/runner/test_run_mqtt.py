"""`heatcycler run` with a real Mosquitto: every sample out once, the final state retained,
and remote pause/resume/abort into a real run. Without a broker: journal-only, said once.

The runs are `heatcycler run … --sim` subprocesses (virtual time, or --realtime for the
remote commands); the broker is the telemetry tests' (tests/telemetry/mqttbroker.py).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from procs import (
    Controller,
    Facts,
    assert_one_sequence,
    controlled,
    cycle_protocol,
    query,
    run_to_end,
    start,
    the_journal,
    write,
)

from controller.journal import JournalReader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "telemetry"))

from mqttbroker import Mosquitto
from mqtthelpers import Collector, collecting

RIG = "sim"  # the --sim rig's id: topics heatcycler/sim/…
BASE = f"heatcycler/{RIG}"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto.open(tmp_path / "broker").start()
    try:
        yield b
    finally:
        b.stop()


async def exited(c: Controller, within: float = 60.0) -> int:
    """Wait for the controller without blocking the loop (the collector runs on it)."""
    async with asyncio.timeout(within):
        while c.alive():  # noqa: ASYNC110 (a subprocess, not an asyncio event)
            await asyncio.sleep(0.1)
    code = c.proc.returncode
    assert code is not None
    return code


@pytest.mark.mqtt
async def test_a_virtual_run_publishes_every_sample_once_and_its_final_state(
    broker: Mosquitto, tmp_path: Path
) -> None:
    protocol = write(tmp_path / "p.yaml", cycle_protocol(half=5.0, count=40, every=0.5))
    data = tmp_path / "data"
    topics = [f"{BASE}/telemetry", f"{BASE}/events", f"{BASE}/status"]
    collector = Collector(broker.port, topics, "runner-test-all", persistent=False)
    async with collecting(collector):
        run = start(
            tmp_path,
            "run",
            "run", str(protocol), "--sim", "--mqtt", broker.url, "--data-dir", str(data),
            "--console", "quiet", "--json",
        )  # fmt: skip
        with controlled(run):
            assert await exited(run) == 0, run.output()
        journal = the_journal(data)
        facts = Facts.read(journal)
        run_id = journal.stem
        # the run drained the journal before it exited: everything is at the broker
        await collector.wait_for(lambda: len(collector.seqs(run_id)) >= facts.seq_count, 20)
    assert facts.meta["state"] == "finished"
    assert facts.meta["virtual"] == "true"
    assert_one_sequence(facts)
    assert facts.seq_count > 400  # 400 s of cycling stored every 0.5 s
    assert collector.seqs(run_id) == [r.seq for r in facts.samples]
    assert collector.sample_copies == facts.seq_count  # each exactly once
    for r in facts.samples[:: max(1, facts.seq_count // 50)]:
        published = collector.samples[(run_id, r.seq)]
        assert published["t"] == pytest.approx(r.t)
        assert published["cycle"] == r.cycle
    assert {seq for (run, seq) in collector.events if run == run_id} == {
        e.seq for e in facts.events
    }
    assert "journal-only" not in run.err.read_text()

    # a newcomer gets the retained status: the run's final state
    late = Collector(broker.port, [f"{BASE}/status"], "runner-test-late", persistent=False)
    async with collecting(late):
        await late.wait_for(lambda: bool(late.statuses), 10)
    status = late.statuses[-1]
    assert status["run"] == run_id
    assert status["state"] == "finished"


def test_without_a_broker_the_run_is_journal_only_and_says_so_once(tmp_path: Path) -> None:
    protocol = write(tmp_path / "p.yaml", cycle_protocol(half=5.0, count=3))
    data = tmp_path / "data"
    run = run_to_end(
        tmp_path, "run", "run", str(protocol), "--sim", "--data-dir", str(data), "--console",
        "quiet",
    )  # fmt: skip
    assert run.proc.returncode == 0, run.output()
    said = run.err.read_text() + run.out.read_text()
    assert said.count("journal-only") == 1, said
    facts = Facts.read(the_journal(data))
    assert facts.meta["state"] == "finished"
    assert facts.result(1)["cycles_completed"] == 3


@pytest.mark.mqtt
async def test_remote_pause_resume_abort_of_a_realtime_run(
    broker: Mosquitto, tmp_path: Path
) -> None:
    protocol = write(tmp_path / "p.yaml", cycle_protocol(half=2.0, count=200, every=0.5))
    data = tmp_path / "data"
    replies = Collector(broker.port, [f"{BASE}/cmd/reply"], "runner-test-replies", persistent=False)
    async with collecting(replies), aiomqtt.Client("127.0.0.1", broker.port) as operator:

        async def ask(name: str, payload: dict[str, str]) -> dict[str, object]:
            await operator.publish(f"{BASE}/cmd/{name}", json.dumps(payload), qos=1)
            await replies.wait_for(lambda: replies.reply(payload["id"]) is not None, 30)
            reply = replies.reply(payload["id"])
            assert reply is not None
            return reply

        def meta_state() -> str:
            with JournalReader(journal) as reader:
                return reader.meta()["state"]

        async def state_becomes(state: str) -> None:
            """The journal's meta (committed by the writer thread within ~1 s)."""
            async with asyncio.timeout(10):
                while meta_state() != state:  # noqa: ASYNC110 (another process's journal)
                    await asyncio.sleep(0.05)

        def stored() -> int:
            with JournalReader(journal) as reader:
                return int(query(reader, "SELECT count(*) FROM samples")[0][0])

        run = start(
            tmp_path,
            "run",
            "run", str(protocol), "--sim", "--realtime", "--mqtt", broker.url,
            "--data-dir", str(data), "--console", "quiet",
        )  # fmt: skip
        with controlled(run):
            journal = the_journal(data, run)
            async with asyncio.timeout(30):
                while stored() < 6:  # noqa: ASYNC110 (another process's journal)
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # the telemetry thread subscribes after connecting

            reply = await ask("pause", {"id": "p-1", "operator": "alice"})
            assert reply["id"] == "p-1"
            assert reply["outcome"] == "ok", reply
            assert "paused" in str(reply["message"])
            await state_becomes("paused")
            held = stored()
            await asyncio.sleep(1.5)
            assert stored() == held  # paused: no samples under current

            again = await ask("pause", {"id": "p-2", "operator": "alice"})
            assert again["outcome"] == "refused"

            reply = await ask("resume", {"id": "r-1", "operator": "alice"})
            assert (reply["id"], reply["outcome"]) == ("r-1", "ok")
            await state_becomes("running")
            async with asyncio.timeout(20):
                while stored() < held + 4:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)

            reply = await ask("abort", {"id": "a-1", "operator": "alice", "reason": "test"})
            assert (reply["id"], reply["outcome"]) == ("a-1", "ok")
            assert await exited(run) == 1, run.output()

    facts = Facts.read(journal)
    assert facts.meta["state"] == "aborted"
    assert "alice" in facts.meta["reason"]
    assert facts.steps[0].outcome == "aborted"
    assert len(facts.kinds("safe_state")) == 1
    assert [e.data["to"] for e in facts.kinds("state")] == [
        "running",
        "paused",
        "running",
        "aborted",
    ]
    # after the abort nothing was stored: the last sample precedes the safe state
    assert facts.samples[-1].seq <= facts.kinds("safe_state")[0].sample_seq
