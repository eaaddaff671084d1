"""How drivers reach instruments: one line out, one line back.

Real transports (pyvisa, pyserial) run their blocking calls on one worker thread per
instrument under one lock, with a timeout on every call. The in-process transport hands
the same bytes to a :class:`LineDevice` (the software rig's firmware emulators) for fast
virtual-time tests; it uses no thread.
"""

from __future__ import annotations

from typing import Protocol


class LineDevice(Protocol):
    """An instrument firmware that takes one request line and returns its reply.

    ``handle`` gets the request without its line terminator and returns the reply line
    without terminator, or ``None`` when the request has no reply (an SCPI command
    without a query) or when the firmware stays silent (an injected timeout).
    """

    def handle(self, line: bytes) -> bytes | None: ...
