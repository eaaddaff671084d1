"""Bounded exponential backoff with jitter, for reconnecting to a broker.

aiomqtt 2.x does not reconnect by itself; every client here wraps ``async with Client``
in a loop that waits ``next()`` seconds between attempts. The jitter spreads a lab's
rigs apart when a shared broker comes back, instead of having them all reconnect in the
same instant.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = 30.0,
        factor: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0 or maximum < initial or factor < 1:
            raise ValueError("need 0 < initial <= maximum and factor >= 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.attempts = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """The upper bound of the next delay (grows until ``maximum``)."""
        return min(self.maximum, self.initial * self.factor**self.attempts)

    def next(self) -> float:
        """The next delay: uniform in [ceiling/2, ceiling] (never zero: no hot loop)."""
        top = self.ceiling()
        self.attempts += 1
        return self._rng.uniform(top / 2, top)

    def reset(self) -> None:
        self.attempts = 0
