"""Reconnecting after a lost link: bounded retries with exponential backoff and jitter.

A helper the runner calls *explicitly* (after a :class:`LinkLost`, having put the rig in
its safe state): no driver call ever reconnects behind its caller's back, because a call
the caller thinks is atomic (``set_level``, ``read``) must not silently become "open a new
connection, skip the setup, and go on". After a reconnect the caller identifies and
configures the instrument again.

Sleeping goes through the ``sleep`` it is given (``controller.clock.Clock.sleep``), so the
backoff runs in virtual time too; the jitter comes from a seeded ``random.Random`` so a
virtual run stays deterministic.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from drivers.base import InstrumentError, InstrumentTimeout, LinkLost

T = TypeVar("T")

#: failures worth another try: the link, not the instrument's answer or our request
RETRIABLE: tuple[type[InstrumentError], ...] = (LinkLost, InstrumentTimeout)


@dataclass(frozen=True, slots=True)
class Backoff:
    """``attempts`` tries; before try n+1 wait ``initial·factor^(n-1)`` (at most
    ``maximum``) times a random factor in ``1 ± jitter``."""

    attempts: int = 5
    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.initial < 0 or self.factor < 1 or self.maximum < 0:
            raise ValueError("Backoff needs attempts ≥ 1, initial ≥ 0, factor ≥ 1, maximum ≥ 0")
        if not 0 <= self.jitter < 1:
            raise ValueError("Backoff jitter is a fraction in [0, 1)")

    def delays(self, rng: random.Random) -> Iterator[float]:
        """The waits between the tries (``attempts − 1`` of them)."""
        delay = self.initial
        for _ in range(self.attempts - 1):
            base = min(delay, self.maximum)
            yield base * (1 + self.jitter * (2 * rng.random() - 1))
            delay *= self.factor


async def reconnect(
    connect: Callable[[], Awaitable[T]],
    *,
    policy: Backoff | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
    retry_on: tuple[type[BaseException], ...] = RETRIABLE,
    on_retry: Callable[[int, float, BaseException], None] | None = None,
) -> T:
    """Await ``connect()`` until it succeeds or the policy's tries are spent.

    A failure in ``retry_on`` is retried after the next backoff delay (``on_retry(try,
    delay, error)`` is told first, for the journal); anything else — a wrong instrument,
    an instrument error, cancellation — is raised at once. When the tries are spent the
    last failure is raised, with a note saying how many tries were made.
    """
    policy = policy or Backoff()
    delays = policy.delays(rng or random.Random(0))
    attempt = 0
    while True:
        attempt += 1
        try:
            return await connect()
        except retry_on as exc:
            delay = next(delays, None)
            if delay is None:
                exc.add_note(f"gave up after {attempt} tries")
                raise
            if on_retry is not None:
                on_retry(attempt, delay, exc)
            await sleep(delay)
