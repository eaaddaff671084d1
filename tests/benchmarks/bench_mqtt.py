"""MQTT telemetry benchmarks against a local Mosquitto started here.

    uv run python tests/benchmarks/bench_mqtt.py                 # everything, fleet 5 min
    uv run python tests/benchmarks/bench_mqtt.py --duration 30   # quick fleet run
    uv run python tests/benchmarks/bench_mqtt.py --only throughput

1. throughput: one controller, batched (500 samples/message). (a) draining a 100 000-sample
   backlog as fast as it goes; (b) sustained: the journal written at 5 000 samples/s for
   20 s while publishing — the publisher must keep up (lag at the end).
2. outage: a rig writing at 100 Hz, the broker stopped for 60 s and restarted; time until
   the publisher reconnects, and until a subscriber has every sample.
3. fleet: 20 rigs, one process each (as one controller per rig), each writing its own
   journal at 10 Hz and publishing it, for --duration seconds; one subscriber checks that
   every (run, seq) arrived and measures end-to-end latency (sample unix time → received).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "telemetry"))

from mqttbroker import Mosquitto  # noqa: E402
from mqtthelpers import Collector, collecting, sample  # noqa: E402

from controller.journal import Journal, JournalReader  # noqa: E402
from controller.rig import RigConfig  # noqa: E402
from controller.telemetry.feed import SAMPLES  # noqa: E402
from controller.telemetry.service import Telemetry  # noqa: E402


def rig(name: str, data: Path, url: str, **mqtt: Any) -> RigConfig:
    return RigConfig.model_validate(
        {
            "rig": name,
            "smu": {"resource": "sim"},
            "heater": {"port": "sim"},
            "data_dir": str(data),
            "mqtt": {"url": url, **mqtt},
        }
    )


async def write_at(journal: Journal, rate: float, seconds: float, chunk: int = 1) -> int:
    """Write samples at ``rate`` per second (in chunks) for ``seconds``; unix = now."""
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < seconds:
        for _ in range(chunk):
            journal.add_sample(sample(journal.last_seq + 1, time.time()))
            n += 1
            if n % 100 == 0:
                journal.add_event("mark", f"sample {n}", t=n / rate, unix=time.time(), step=1)
        delay = t0 + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    return n


async def tick_lateness(work: Any) -> dict[str, float]:
    """Run ``work`` while a 100 Hz tick on this loop measures how late it wakes (ms)."""
    from controller.clock import Clock, Periodic

    late: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        clock = Clock()
        tick = Periodic(clock, 0.01)
        while not done.is_set():
            scheduled = await tick.tick()
            late.append(1000 * (clock.now() - scheduled))

    task = asyncio.create_task(ticker())
    await work
    done.set()
    await task
    return {"p50": statistics.median(late), "p99": percentile(late, 0.99), "max": max(late)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ------------------------------------------------------------------------- throughput


async def throughput(broker: Mosquitto, work: Path) -> dict[str, Any]:
    data = work / "tp"
    out: dict[str, Any] = {}

    # (a) a backlog, as fast as it goes
    backlog = Journal.create(data / "run-backlog.sqlite", {"rig": {"rig": "tp"}}, threaded=False)
    n = 100_000
    for i in range(1, n + 1):
        backlog.add_sample(sample(i, time.time()))
    backlog.close()
    collector = Collector(broker.port, ["heatcycler/tp/telemetry"], "bench-tp", persistent=False)
    async with collecting(collector):
        telemetry = Telemetry(rig("tp", data, broker.url), None, backlog.path, None, notice=print)
        t0 = time.perf_counter()
        task = asyncio.create_task(telemetry.run())
        remaining = await telemetry.drain(120)
        acked_s = time.perf_counter() - t0
        await task
        await collector.wait_for(lambda: len(collector.samples) >= n, 60)
        received_s = time.perf_counter() - t0
    out["backlog_samples"] = n
    out["backlog_remaining"] = remaining
    out["backlog_acked_per_s"] = n / acked_s
    out["backlog_received_per_s"] = n / received_s
    out["messages"] = collector.sample_messages

    # (c) the control loop while the publisher catches up a backlog (its own thread):
    # lateness of a 100 Hz tick on this loop, against the same tick with nothing else
    out["tick_idle_ms"] = await tick_lateness(asyncio.sleep(2.0))
    again = Journal.create(data / "run-tick.sqlite", {"rig": {"rig": "tp3"}}, threaded=False)
    for i in range(1, n + 1):
        again.add_sample(sample(i, time.time()))
    again.close()
    telemetry = Telemetry(rig("tp3", data, broker.url), None, again.path, None, notice=print)
    task = asyncio.create_task(telemetry.run())
    out["tick_catching_up_ms"] = await tick_lateness(telemetry.drain(120))
    await task

    # (b) sustained: written and published at the same time
    rate, seconds = 5000.0, 20.0
    live = Journal.create(data / "run-live.sqlite", {"rig": {"rig": "tp2"}})
    collector = Collector(broker.port, ["heatcycler/tp2/telemetry"], "bench-tp2", persistent=False)
    async with collecting(collector):
        telemetry = Telemetry(rig("tp2", data, broker.url), None, live.path, None, notice=print)
        task = asyncio.create_task(telemetry.run())
        lags: list[int] = []

        async def watch_lag() -> None:
            with JournalReader(live.path) as reader:  # committed but not yet acknowledged
                while True:
                    lags.append(reader.last_seq() - reader.cursor(SAMPLES))
                    await asyncio.sleep(0.25)

        monitor = asyncio.create_task(watch_lag())
        t0 = time.perf_counter()
        written = await write_at(live, rate, seconds, chunk=50)
        elapsed = time.perf_counter() - t0
        monitor.cancel()
        await asyncio.gather(monitor, return_exceptions=True)
        await live.flush()
        remaining = await telemetry.drain(60)
        await task
        await collector.wait_for(lambda: len(collector.samples) >= written, 60)
    live.close()
    out["sustained_written_per_s"] = written / elapsed
    out["sustained_lag_max"] = max(lags)
    out["sustained_lag_median"] = statistics.median(lags)
    out["sustained_remaining"] = remaining
    out["sustained_lost"] = written - len(collector.samples)
    return out


# ------------------------------------------------------------------------------ outage


async def outage(broker: Mosquitto, work: Path, seconds: float) -> dict[str, Any]:
    data = work / "outage"
    journal = Journal.create(data / "run-outage.sqlite", {"rig": {"rig": "ou"}})
    collector = Collector(broker.port, ["heatcycler/ou/telemetry"], "bench-ou", persistent=True)
    async with collecting(collector):
        telemetry = Telemetry(rig("ou", data, broker.url), None, journal.path, None, notice=print)
        task = asyncio.create_task(telemetry.run())
        writer = asyncio.create_task(write_at(journal, 100.0, 10**9))
        await collector.wait_for(lambda: len(collector.samples) >= 100, 20)
        broker.stop()
        await asyncio.sleep(seconds)
        backlog = journal.last_seq - len(collector.samples)
        target = journal.last_seq
        broker.start()
        t0 = time.perf_counter()
        while not telemetry.connected:  # noqa: ASYNC110 (a flag of another thread)
            await asyncio.sleep(0.01)
        reconnect_s = time.perf_counter() - t0
        await collector.wait_for(lambda: len(collector.samples) >= target, 120)
        caught_up_s = time.perf_counter() - t0
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await journal.flush()
        last = journal.last_seq
        remaining = await telemetry.drain(60)
        await task
        await collector.wait_for(lambda: len(collector.samples) >= last, 60)
    journal.close()
    seqs = collector.seqs("run-outage")
    return {
        "outage_s": seconds,
        "backlog_samples": backlog,
        "reconnect_s": reconnect_s,
        "caught_up_after_restart_s": caught_up_s,
        "catch_up_after_reconnect_s": caught_up_s - reconnect_s,
        "complete": seqs == list(range(1, last + 1)),
        "remaining": remaining,
    }


# ------------------------------------------------------------------------------- fleet


async def worker(args: argparse.Namespace) -> None:
    """One rig: its own process, journal and publisher (``--worker``)."""
    path = Path(args.journal)
    journal = Journal.create(path, {"rig": {"rig": args.rig}})
    config = rig(args.rig, path.parent, args.url, reconnect_max="5 s")
    telemetry = Telemetry(config, None, path, None, notice=lambda m: print(m, file=sys.stderr))
    task = asyncio.create_task(telemetry.run())
    written = await write_at(journal, args.rate, args.seconds)
    await journal.flush()
    remaining = await telemetry.drain(60)
    await task
    journal.close()
    result = {"rig": args.rig, "run": path.stem, "written": written, "remaining": remaining}
    print(json.dumps(result))


def _spawn_rig(i: int, url: str, data: Path, seconds: float) -> subprocess.Popen[str]:
    args = ["--worker", "--rig", f"rig-{i:02d}", "--url", url, "--rate", "10"]
    args += ["--journal", str(data / f"run-{i:02d}.sqlite"), "--seconds", str(seconds)]
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)


async def fleet(broker: Mosquitto, work: Path, rigs: int, seconds: float) -> dict[str, Any]:
    data = work / "fleet"
    data.mkdir(parents=True, exist_ok=True)
    collector = Collector(broker.port, ["heatcycler/+/telemetry"], "bench-fleet", persistent=True)
    async with collecting(collector):
        procs = [_spawn_rig(i, broker.url, data, seconds) for i in range(rigs)]
        results = []
        for proc in procs:
            out, _ = await asyncio.to_thread(proc.communicate)
            results.append(json.loads(out.strip().splitlines()[-1]))
        expected = {r["run"]: r["written"] for r in results}
        total = sum(expected.values())
        await collector.wait_for(lambda: len(collector.samples) >= total, 60)
    missing = {
        run: n - len(collector.seqs(run))
        for run, n in expected.items()
        if collector.seqs(run) != list(range(1, n + 1))
    }
    lat = collector.latencies
    return {
        "rigs": rigs,
        "seconds": seconds,
        "samples": total,
        "lost": sum(missing.values()),
        "incomplete_runs": missing,
        "remaining": sum(r["remaining"] for r in results),
        "duplicates": collector.sample_copies - len(collector.samples),
        "latency_p50_ms": 1000 * statistics.median(lat),
        "latency_p99_ms": 1000 * percentile(lat, 0.99),
        "latency_max_ms": 1000 * max(lat),
    }


# -------------------------------------------------------------------------------- main


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        work = Path(tmp)
        broker = Mosquitto.open(work / "broker").start()
        try:
            report: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
            if args.only in (None, "throughput"):
                report["throughput"] = await throughput(broker, work)
                print(json.dumps(report["throughput"], indent=2), flush=True)
            if args.only in (None, "outage"):
                report["outage"] = await outage(broker, work, args.outage)
                print(json.dumps(report["outage"], indent=2), flush=True)
            if args.only in (None, "fleet"):
                report["fleet"] = await fleet(broker, work, args.rigs, args.duration)
                print(json.dumps(report["fleet"], indent=2), flush=True)
        finally:
            broker.stop()
    print(json.dumps(report))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["throughput", "outage", "fleet"])
    parser.add_argument("--duration", type=float, default=300.0, help="fleet run, seconds")
    parser.add_argument("--outage", type=float, default=60.0, help="broker outage, seconds")
    parser.add_argument("--rigs", type=int, default=20)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rig", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--journal", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    cli = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(worker(cli) if cli.worker else main(cli))
