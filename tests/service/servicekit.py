"""Helpers for the service tests: a notify socket standing in for systemd, journals."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.journal import Journal
from controller.samples import Sample


@dataclass
class NotifySocket:
    """The datagram socket systemd would listen on; records (monotonic time, message)."""

    address: str  # the value for $NOTIFY_SOCKET
    sock: socket.socket
    messages: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> NotifySocket:
        self.sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()
        return self

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self.sock.close()

    def texts(self) -> list[str]:
        return [m for _, m in self.messages]

    def pings(self) -> list[float]:
        return [t for t, m in self.messages if m == "WATCHDOG=1"]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for _, m in list(self.messages):
                if predicate(m):
                    return m
            time.sleep(0.02)
        raise AssertionError(f"no such notify message in {self.texts()!r}")


UNIX0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def make_journal(
    data_dir: Path,
    run_id: str,
    *,
    rig: str = "rig-01",
    state: str | None = "running",
    last_unix: float = UNIX0 + 3600,
    samples: int = 30,
) -> Path:
    """A journal with ``samples`` samples ending at ``last_unix``, closed (not live)."""
    path = data_dir / f"{run_id}.sqlite"
    meta: dict[str, Any] = {"rig": {"rig": rig}, "protocol_text": "name: test\n"}
    if state is not None:
        meta["state"] = state
    journal = Journal.create(path, meta, threaded=False)
    journal.start_step(1, "1", "cycle", None, t=0.0, unix=last_unix - samples * 10)
    for i in range(1, samples + 1):
        t = i * 10.0
        journal.add_sample(
            Sample(
                t=t,
                voltage=0.01,
                current=1e-3,
                temperature=125.0,
                source="current",
                step=1,
                cycle=i,
                unix=last_unix - (samples - i) * 10,
            )
        )
    journal.checkpoint({"position": [1]}, t=samples * 10.0, unix=last_unix)
    journal.close()
    return path
