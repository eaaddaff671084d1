"""pymeasure-style expected-protocol testing: a LineDevice that plays a script.

Each step is ``(request, reply)``: the driver must send exactly ``request`` next; ``reply``
is the instrument's answer (``None`` for a command, or for a query the instrument leaves
unanswered). Any other request, or a request after the end of the script, fails the test
at once; :meth:`Script.finished` fails it if steps are left over.
"""

from __future__ import annotations

from collections import deque


class UnexpectedRequest(AssertionError):
    pass


class Script:
    def __init__(self, steps: list[tuple[str, str | None]]) -> None:
        self.steps = deque(steps)
        self.sent: list[str] = []

    def handle(self, line: bytes) -> bytes | None:
        request = line.decode("ascii")
        self.sent.append(request)
        if not self.steps:
            raise UnexpectedRequest(f"unexpected {request!r}: the script has ended")
        expected, reply = self.steps.popleft()
        if request != expected:
            raise UnexpectedRequest(f"expected {expected!r}, the driver sent {request!r}")
        return None if reply is None else reply.encode("ascii")

    def finished(self) -> None:
        if self.steps:
            raise AssertionError(f"the driver never sent {[s for s, _ in self.steps]!r}")
