"""Test parts around the thing under test: a small run (RunControl), a journal writer,
and a subscriber that de-duplicates on (run, seq) the way a real consumer must."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from controller.control import CommandRefused
from controller.journal import Journal
from controller.samples import Sample
from controller.telemetry.publisher import cancel_all


class SmallRun:
    """A real, minimal RunControl: running -> paused -> running -> aborted.

    It stands in for the runner (built elsewhere), which is not under test here.
    """

    def __init__(self, rig: str, run: str) -> None:
        self.rig = rig
        self.run = run
        self.state = "running"
        self.calls: list[tuple[str, str]] = []
        self.abort_reason: str | None = None

    def status(self) -> dict[str, Any]:
        return {
            "rig": self.rig,
            "run": self.run,
            "state": self.state,
            "step": {"number": 2, "path": "2", "kind": "cycle", "label": "precycle"},
        }

    async def pause(self, *, source: str) -> str:
        self.calls.append(("pause", source))
        if self.state != "running":
            raise CommandRefused(f"cannot pause: the run is {self.state}")
        await asyncio.sleep(0)
        self.state = "paused"
        return "paused: current off, temperature held"

    async def resume(self, *, source: str) -> str:
        self.calls.append(("resume", source))
        if self.state != "paused":
            raise CommandRefused(f"cannot resume: the run is {self.state}")
        self.state = "running"
        return "resumed"

    async def abort(self, *, source: str, reason: str) -> str:
        self.calls.append(("abort", source))
        if self.state == "aborted":
            raise CommandRefused("the run is already aborted")
        self.state = "aborted"
        self.abort_reason = reason
        return "aborted: safe state"


def sample(i: int, unix: float | None = None) -> Sample:
    return Sample(
        t=0.1 * i,
        voltage=0.01 + 1e-5 * i,
        current=1.57e-3,
        temperature=125.0,
        level=1.57e-3,
        source="current",
        step=1,
        cycle=i // 100,
        unix=time.time() if unix is None else unix,
        setpoint=125.0,
        duty=0.3,
    )


async def write_samples(
    journal: Journal,
    count: int,
    rate: float,
    *,
    event_every: int = 0,
    stop: asyncio.Event | None = None,
) -> int:
    """Write ``count`` samples at ``rate`` Hz (real time), an event every N samples."""
    written = 0
    t0 = time.monotonic()
    for k in range(count):
        if stop is not None and stop.is_set():
            break
        i = journal.last_seq + 1
        journal.add_sample(sample(i))
        written += 1
        if event_every and i % event_every == 0:
            journal.add_event(
                "state", f"marker {i}", t=0.1 * i, unix=time.time(), step=1, data={"i": i}
            )
        delay = t0 + (k + 1) / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    return written


@dataclass
class Collector:
    """A subscriber with a persistent session that reconnects on its own."""

    port: int
    topics: list[str]
    client_id: str
    host: str = "127.0.0.1"
    username: str | None = None
    password: str | None = None
    tls_context: ssl.SSLContext | None = None
    persistent: bool = True
    samples: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    sample_messages: int = 0
    sample_copies: int = 0
    latencies: list[float] = field(default_factory=list)
    events: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list)
    other: list[tuple[str, bytes]] = field(default_factory=list)
    connects: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    def client(self) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=self.client_id,
            clean_session=not self.persistent,
            tls_context=self.tls_context,
            keepalive=10,
        )

    async def run(self) -> None:
        while True:
            try:
                async with self.client() as client:
                    self.connects += 1
                    for topic in self.topics:
                        await client.subscribe(topic, qos=1)
                    self._subscribed.set()
                    async for message in client.messages:
                        self._take(str(message.topic), message.payload)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    def _take(self, topic: str, payload: Any) -> None:
        now = time.time()
        raw = bytes(payload) if isinstance(payload, bytes | bytearray) else str(payload).encode()
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError:
            self.other.append((topic, raw))
            self._changed.set()
            return
        if topic.endswith("/cmd/reply"):
            self.replies.append(doc)
        elif "/cmd/" in topic:
            self.other.append((topic, raw))
        elif topic.endswith("/telemetry"):
            self.sample_messages += 1
            for s in doc["samples"]:
                self.sample_copies += 1
                key = (doc["run"], s["seq"])
                if key not in self.samples:
                    self.samples[key] = s
                    self.latencies.append(now - s["unix"])
        elif topic.endswith("/events"):
            self.events[(doc["run"], doc["seq"])] = doc
        elif topic.endswith("/status"):
            self.statuses.append(doc)
        else:
            self.other.append((topic, raw))
        self._changed.set()

    async def subscribed(self, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            await self._subscribed.wait()

    async def wait_for(self, predicate: Callable[[], bool], within: float = 20.0) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await self._changed.wait()

    def seqs(self, run: str) -> list[int]:
        return sorted(seq for (r, seq) in self.samples if r == run)

    def reply(self, request_id: str) -> dict[str, Any] | None:
        for r in self.replies:
            if r.get("id") == request_id:
                return r
        return None


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Poll a condition another thread changes (the telemetry thread's flags)."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 (a cross-thread flag, not an asyncio.Event)
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def collecting(collector: Collector) -> Any:
    task = asyncio.create_task(collector.run())
    try:
        await collector.subscribed()
        yield collector
    finally:
        await cancel_all([task])
