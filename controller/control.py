"""What remote commands may ask of a run: the contract between the runner and MQTT.

The runner implements :class:`RunControl`; the MQTT command handler (and the console)
only call these methods. None of them can raise a setpoint or a current: commands pause,
resume, abort and report, nothing else, so no command can exceed a limit.
"""

from __future__ import annotations

from typing import Any, Protocol


class CommandRefused(Exception):
    """The run cannot do this now (e.g. resume while running); the text says why."""


class RunControl(Protocol):
    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot: rig, run, state, step (number, path, kind, label),
        cycle, temperature, setpoint, duty, voltage, current, last sample time (t, unix),
        progress/ETA bounds where known, latest event."""

    async def pause(self, *, source: str) -> str:
        """Pause at a safe point (current off, temperature held); returns what happened."""

    async def resume(self, *, source: str) -> str:
        """Resume a paused run."""

    async def abort(self, *, source: str, reason: str) -> str:
        """Abort: safe state, run ends as aborted."""
