"""Soak accounting: time counts only while the reading is inside the band.

A protocol's ``soak: 6 h`` means six hours *at* the setpoint, not six hours after asking
for it: a slow ramp, a drift out of the band or a pause do not count. The thermal loop
advances every active :class:`Soak` once per period with the interval just ended.
"""

from __future__ import annotations

import asyncio


class Soak:
    """Time inside ``±band`` of the loop's target, towards ``duration`` (s).

    ``elapsed`` may start above 0 (a resumed run carries its soak over). ``entered`` is
    the loop time the reading first came inside the band (None until then) — the runner's
    timeout for reaching the setpoint ends there.
    """

    def __init__(self, band: float, duration: float, *, elapsed: float = 0.0) -> None:
        if not band > 0:
            raise ValueError(f"soak band must be positive, not {band!r}")
        if duration < 0:
            raise ValueError(f"soak duration must not be negative, not {duration!r}")
        self.band = band
        self.duration = duration
        self.elapsed = elapsed
        self.entered: float | None = None
        self.inside = False
        self._reached = asyncio.Event()
        self._done = asyncio.Event()
        if elapsed >= duration:
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def remaining(self) -> float:
        return max(0.0, self.duration - self.elapsed)

    def advance(self, now: float, dt: float, inside: bool) -> bool:
        """One period of ``dt`` s ended at ``now`` with the reading inside the band or not.
        Returns whether the soak is complete."""
        self.inside = inside
        if inside:
            if self.entered is None:
                self.entered = now
                self._reached.set()
            self.elapsed += dt
            if self.elapsed >= self.duration:
                self._done.set()
        return self._done.is_set()

    async def wait_reached(self) -> None:
        """Until the reading first comes inside the band."""
        await self._reached.wait()

    async def wait(self) -> None:
        """Until ``duration`` has been spent inside the band."""
        await self._done.wait()
