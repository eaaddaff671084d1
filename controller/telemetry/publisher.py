"""The MQTT publisher: journal -> broker, store-and-forward, reconnecting forever.

One aiomqtt client per connection attempt, inside a reconnect loop with bounded
exponential backoff and jitter (aiomqtt 2.x leaves reconnection to us). Each connection
(a *session*) first publishes the retained status (online) and the Home Assistant
discovery, subscribes to the rig's commands (again after every reconnect: the session is
clean, so commands sent while the rig was away are not replayed later), then runs:

- the pump: events first, then a bounded batch of samples, each published with QoS 1;
  the journal cursor advances only after the awaited publish returned (PUBACK);
- the status loop: the retained status every ``status_interval`` and after events;
- the listener and the command worker (``commands.CommandHandler``).

The message iterator raises as soon as the connection drops, which ends the session;
nothing was acknowledged that the broker did not have, so the next session resumes from
the cursors. The broker's last will (retained) marks the rig offline if the controller
dies; a normal stop publishes a final status with ``online: false`` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from controller.clock import Clock
from controller.rig import MqttConfig
from controller.telemetry import homeassistant
from controller.telemetry.backoff import Backoff
from controller.telemetry.commands import CommandHandler, RemoteRun
from controller.telemetry.feed import JournalFeed, backlog
from controller.telemetry.payloads import SCHEMA, dumps, event_message, telemetry_message
from controller.telemetry.settings import Broker
from controller.telemetry.topics import REPLY, Topics

log = logging.getLogger("heatcycler.telemetry")

#: keys of the status document that the run's own status() may not overwrite
_OURS = frozenset({"v", "rig", "online", "version", "unix", "published_seq", "pending"})


@dataclass
class PublisherStats:
    samples: int = 0  # samples acknowledged by the broker
    batches: int = 0
    events: int = 0
    connects: int = 0
    commands: int = 0


class Publisher:
    """Publishes one current journal (and earlier undrained ones) until stopped or drained.

    Create and run it on one event loop; :class:`controller.telemetry.service.Telemetry`
    gives it a loop of its own so that the control loop never waits for it.
    """

    def __init__(
        self,
        broker: Broker,
        config: MqttConfig,
        rig: str,
        *,
        journal: Path | None,
        data_dir: Path | None = None,
        run: RemoteRun | None = None,
        notice: Callable[[str], None] = print,
        version: str = "0",
        poll: float = 0.2,
        reconnect_min: float = 0.5,
        publish_timeout: float = 15.0,
    ) -> None:
        self.broker = broker
        self.config = config
        self.rig = rig
        self.topics = Topics(config.prefix, rig)
        self.client_id = config.client_id or f"heatcycler-{rig}"
        self.version = version
        self.run = run
        self.poll = poll
        self.publish_timeout = publish_timeout
        self.stats = PublisherStats()
        self._notice = notice
        self._journal_path = journal
        self._data_dir = data_dir
        self.final_remaining = 0
        self.feeds: list[JournalFeed] = []
        self.current: JournalFeed | None = None
        self._clock = Clock()
        self._backoff = Backoff(reconnect_min, max(reconnect_min, config.reconnect_max))
        self.handler = CommandHandler(rig, run, unix=self._clock.unix)
        self.connected = asyncio.Event()
        self._stop = asyncio.Event()
        self._drain = asyncio.Event()
        self._drained = asyncio.Event()
        self._changed = asyncio.Event()  # stop, drain or drained: re-check _finished()
        self._deadline: float | None = None
        self._wake = asyncio.Event()
        self._status_due = asyncio.Event()
        self._outage_since: float | None = None
        self._ever_connected = False

    # -- control from the owner -------------------------------------------------------

    def request_stop(self) -> None:
        """Stop now: final status (offline), clean disconnect; the rest stays in the journal."""
        self._stop.set()
        self._changed.set()

    def request_drain(self, timeout: float) -> None:
        """Publish everything that is in the journals, then stop; give up after ``timeout``."""
        self._deadline = self._clock.now() + max(0.0, timeout)
        self._drain.set()
        self._wake.set()
        self._changed.set()

    def wake(self) -> None:
        """New data in the journal: look now instead of at the next poll."""
        self._wake.set()

    def remaining(self) -> int:
        """Samples in the journals that the broker has not acknowledged."""
        return sum(feed.pending_samples() for feed in self.feeds)

    # -- the reconnect loop ----------------------------------------------------------

    async def run_forever(self) -> None:
        """Publish until stopped or drained (never raises for broker trouble)."""
        self._open_feeds()
        try:
            while not self._finished():
                try:
                    await self._connect_and_publish()
                    return
                except aiomqtt.MqttError as exc:
                    self._lost(exc)
                except Exception as exc:  # a bug or a journal error: keep the run going
                    if self._outage_since is None:
                        log.exception("telemetry session failed")
                    self._lost(exc)
                finally:
                    self.connected.clear()
                await self._sleep(self._backoff.next())
        finally:
            try:
                self.final_remaining = self.remaining()
            except Exception as exc:
                log.warning("cannot count unpublished samples: %s", exc)
            for feed in self.feeds:
                feed.close()

    def _open_feeds(self) -> None:
        if self._journal_path is not None:
            self.current = JournalFeed(self._journal_path)
            self.feeds.append(self.current)
        earlier = backlog(self._data_dir, self.rig, self._journal_path) if self._data_dir else []
        for path in earlier:
            try:
                self.feeds.append(JournalFeed(path))
            except Exception as exc:
                log.warning("cannot open %s for the MQTT backlog: %s", path, exc)
        behind = sum(f.pending_samples() for f in self.feeds if f is not self.current)
        if behind:
            self._notice(
                f"telemetry: {behind} samples of {len(self.feeds) - (self.current is not None)} "
                "earlier run(s) were not published yet; sending them too"
            )

    def _finished(self) -> bool:
        if self._stop.is_set():
            return True
        return self._drain.is_set() and (
            self._drained.is_set() or (self._deadline is not None and self._past_deadline())
        )

    def _past_deadline(self) -> bool:
        return self._deadline is not None and self._clock.now() >= self._deadline

    async def _sleep(self, seconds: float) -> None:
        """Wait between attempts; a stop or a drain request cuts it short."""
        if self._deadline is not None:
            seconds = min(seconds, max(0.0, self._deadline - self._clock.now()))
        self._changed.clear()
        await wait_event(self._changed, seconds)

    def _lost(self, exc: BaseException) -> None:
        if self._outage_since is None:
            self._outage_since = self._clock.now()
            what = "lost" if self._ever_connected else "unreachable"
            hint = ""
            if isinstance(exc, aiomqtt.MqttCodeError) and any(
                word in str(exc).lower() for word in ("authori", "username or password")
            ):
                what = "refused the connection"
                hint = " — check mqtt.username, the password and the broker's ACL"
            self._notice(
                f"telemetry: MQTT broker {self.broker.url} {what} ({exc}){hint}; "
                "samples stay in the journal and go out when it is back"
            )
        else:
            log.debug("still no broker: %s", exc)

    def _client(self) -> aiomqtt.Client:
        will = aiomqtt.Will(self.topics.status, dumps(self._offline_document()), qos=1, retain=True)
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.broker.username,
            password=self.broker.password,
            identifier=self.client_id,
            will=will,
            clean_session=True,
            keepalive=self.broker.keepalive,
            timeout=10,
            tls_context=self.broker.tls_context,
            logger=logging.getLogger("heatcycler.telemetry.mqtt"),
        )

    async def _connect_and_publish(self) -> None:
        connected_at: float | None = None
        try:
            async with self._client() as client:
                connected_at = self._clock.now()
                self.stats.connects += 1
                self._on_connected()
                await self._session(client)
        finally:
            # A connection that held for a while resets the backoff; one that flaps
            # (session takeover, ACL kick) keeps backing off.
            if connected_at is not None and self._clock.now() - connected_at > 10:
                self._backoff.reset()

    def _on_connected(self) -> None:
        self.connected.set()
        pending = self.remaining()
        if self._outage_since is not None:
            gone = self._clock.now() - self._outage_since
            self._notice(
                f"telemetry: MQTT broker {self.broker.url} reachable after {gone:.0f} s; "
                f"catching up {pending} samples"
            )
        elif not self._ever_connected:
            log.info("publishing to %s under %s/", self.broker.url, self.topics.base)
        self._outage_since = None
        self._ever_connected = True

    # -- one connection -------------------------------------------------------------

    async def _session(self, client: aiomqtt.Client) -> None:
        await self._publish_status(client, online=True)
        if self.config.homeassistant:
            topic, payload = homeassistant.discovery_message(
                self.config.homeassistant_prefix, self.topics, self.version
            )
            await client.publish(topic, payload, qos=1, retain=True, timeout=self.publish_timeout)
        commands: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=64)
        if self.config.commands:
            await client.subscribe(self.topics.commands, qos=1, timeout=self.publish_timeout)
        jobs: list[Coroutine[Any, Any, None]] = [
            self._pump(client),
            self._listen(client, commands),
            self._status_loop(client),
            self._command_worker(client, commands),
        ]
        tasks = [asyncio.create_task(job) for job in jobs]
        finish = asyncio.create_task(self._until_finished())
        try:
            done, _ = await asyncio.wait([*tasks, finish], return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_all([*tasks, finish])
        for task in done:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error
        # Stopped or drained: say so before the clean disconnect (which drops the will).
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            await self._publish_status(client, online=False, limit=5.0)

    async def _until_finished(self) -> None:
        while not self._finished():
            timeout = None
            if self._deadline is not None:
                timeout = max(0.0, self._deadline - self._clock.now()) + 0.01
            self._changed.clear()
            await wait_event(self._changed, timeout)

    async def _pump(self, client: aiomqtt.Client) -> None:
        while True:
            if await self._publish_some(client):
                continue
            if self._drain.is_set():
                self._drained.set()
                self._changed.set()
                return
            self._wake.clear()
            await wait_event(self._wake, self.poll)

    async def _publish_some(self, client: aiomqtt.Client) -> bool:
        """Publish one unit of work (events or one sample batch); False when all caught up."""
        for feed in list(self.feeds):
            events = feed.next_events(100)
            if events:
                for ev in events:
                    await client.publish(
                        self.topics.events,
                        event_message(self.rig, feed.run, ev),
                        qos=1,
                        timeout=self.publish_timeout,
                    )
                    feed.ack_events(ev.seq)
                    self.stats.events += 1
                self._status_due.set()
                return True
            rows = feed.next_samples(self.config.batch_samples)
            if rows:
                await client.publish(
                    self.topics.telemetry,
                    telemetry_message(self.rig, feed.run, rows),
                    qos=1,
                    timeout=self.publish_timeout,
                )
                feed.ack_samples(rows[-1].seq)
                self.stats.samples += len(rows)
                self.stats.batches += 1
                return True
            if feed is not self.current:  # an earlier run, now fully published
                log.info("backlog of %s published", feed.run)
                self.feeds.remove(feed)
                feed.close()
        return False

    async def _status_loop(self, client: aiomqtt.Client) -> None:
        while True:
            self._status_due.clear()
            await wait_event(self._status_due, self.config.status_interval)
            await self._publish_status(client, online=True)

    async def _listen(
        self, client: aiomqtt.Client, commands: asyncio.Queue[tuple[str, bytes]]
    ) -> None:
        # Iterating also watches the connection: it raises MqttError when it drops.
        async for message in client.messages:
            name = self.topics.command_name(str(message.topic))
            if name is None or name == REPLY:
                continue
            if message.retain:
                log.warning("ignoring a retained command on %s", message.topic)
                continue
            try:
                commands.put_nowait((name, _payload_bytes(message.payload)))
            except asyncio.QueueFull:
                log.warning("command queue full; dropping %s", name)

    async def _command_worker(
        self, client: aiomqtt.Client, commands: asyncio.Queue[tuple[str, bytes]]
    ) -> None:
        while True:
            name, payload = await commands.get()
            reply = await self.handler.handle(name, payload)
            self.stats.commands += 1
            log.info(
                "command %s id=%s -> %s: %s", name, reply["id"], reply["outcome"], reply["message"]
            )
            await client.publish(
                self.topics.reply, dumps(reply), qos=1, timeout=self.publish_timeout
            )
            if reply["outcome"] == "ok" and name != "status":
                self._status_due.set()

    # -- status ----------------------------------------------------------------------

    async def _publish_status(
        self, client: aiomqtt.Client, *, online: bool, limit: float | None = None
    ) -> None:
        doc = await self.status_document(online=online)
        await client.publish(
            self.topics.status,
            dumps(doc),
            qos=1,
            retain=True,
            timeout=limit or self.publish_timeout,
        )

    def _offline_document(self) -> dict[str, Any]:
        """The last will: what the broker says when this controller vanishes."""
        return {
            "v": SCHEMA,
            "rig": self.rig,
            "online": False,
            "state": "offline",
            "run": self.current.run if self.current else None,
            "version": self.version,
            "reason": "controller connection lost",
        }

    async def status_document(self, *, online: bool) -> dict[str, Any]:
        """The retained status: rig, online, state, run, step, cycle, temperature,
        setpoint, voltage, current, last sample (seq, t, unix), published seq, pending,
        software version; the run's own ``status()`` fills in and wins where it knows more.
        """
        doc: dict[str, Any] = {
            "v": SCHEMA,
            "rig": self.rig,
            "online": online,
            "state": "idle",
            "run": None,
            "version": self.version,
        }
        feed = self.current
        if feed is not None:
            doc["run"] = feed.run
            doc["state"] = feed.reader.meta().get("state", "running")
            last = feed.last_sample()
            if last is not None:
                doc.update(
                    step=last.step,
                    cycle=last.cycle,
                    temperature=last.temperature,
                    setpoint=last.setpoint,
                    duty=last.duty,
                    voltage=last.voltage,
                    current=last.current,
                    last_sample={"seq": last.seq, "t": last.t, "unix": last.unix},
                )
            doc["published_seq"] = feed.samples_acked
        doc["pending"] = self.remaining()
        if self.run is not None:
            try:
                async with asyncio.timeout(5.0):
                    status = await self.run.status()
            except Exception as exc:
                log.warning("run status unavailable: %s", exc)
            else:
                doc.update({k: v for k, v in status.items() if k not in _OURS})
        doc["online"] = online
        doc["unix"] = self._clock.unix()
        return doc


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel tasks and wait until they are gone.

    Cancelling again every 0.1 s: on Python 3.11 ``asyncio.wait_for`` (which aiomqtt uses
    for every acknowledgement) swallows a cancellation that races with its result, and a
    loop that lost its one cancellation would otherwise run forever.
    """
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" noise


async def wait_event(event: asyncio.Event, seconds: float | None) -> bool:
    """Wait for ``event`` at most ``seconds``; True if it was set.

    ``asyncio.timeout`` rather than ``asyncio.wait_for``: on Python 3.11, ``wait_for``
    swallows a cancellation that races with the event being set, and a task stuck in such
    a loop can never be cancelled.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


def _payload_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return str(payload).encode() if payload is not None else b""
