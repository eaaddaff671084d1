"""Remote commands: strict validation, one reply per request, nothing else.

An operator publishes JSON on ``<prefix>/<rig>/cmd/<name>``::

    cmd/pause   {"id": "a1", "operator": "alice"}
    cmd/resume  {"id": "a2", "operator": "alice"}
    cmd/abort   {"id": "a3", "operator": "alice", "reason": "cell leaking"}
    cmd/status  {"id": "a4"}

and reads the outcome on ``<prefix>/<rig>/cmd/reply``::

    {"v":1,"rig":"rig-01","id":"a1","command":"pause","outcome":"ok",
     "message":"paused at …","unix":…}

``outcome`` is ``ok``, ``refused`` (the run cannot do that now: the message says why) or
``error`` (unknown command, malformed or invalid payload, no answer from the run). A
malformed or unknown command changes nothing. The vocabulary is the
:class:`~controller.control.RunControl` contract — pause, resume, abort, status — so no
command can raise a setpoint or a current. Retained command messages are ignored (a
retained ``abort`` would otherwise fire on every reconnect), and a repeated request id
gets the first reply again without running the command twice (QoS 1 redelivers).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controller.control import CommandRefused
from controller.telemetry.topics import COMMAND_NAMES

log = logging.getLogger("heatcycler.telemetry")

MAX_PAYLOAD = 2048
_ID = r"^[A-Za-z0-9_.:@/-]+$"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: str = Field(min_length=1, max_length=64, pattern=_ID)
    operator: str | None = Field(None, min_length=1, max_length=64, pattern=_ID)


class PauseRequest(_Request):
    """``…/cmd/pause``: pause at a safe point: current off, temperature held."""


class ResumeRequest(_Request):
    """``…/cmd/resume``: resume a paused run."""


class StatusRequest(_Request):
    """``…/cmd/status``: reply with the run's status snapshot."""


class AbortRequest(_Request):
    reason: str = Field(min_length=1, max_length=500)


REQUESTS: dict[str, type[_Request]] = {
    "pause": PauseRequest,
    "resume": ResumeRequest,
    "abort": AbortRequest,
    "status": StatusRequest,
}
assert tuple(REQUESTS) == COMMAND_NAMES


class RemoteRun(Protocol):
    """The run as the command handler sees it (awaitable from the telemetry loop)."""

    async def status(self) -> dict[str, Any]: ...

    async def pause(self, *, source: str) -> str: ...

    async def resume(self, *, source: str) -> str: ...

    async def abort(self, *, source: str, reason: str) -> str: ...


class CommandHandler:
    """Validates a command, runs it through :class:`RemoteRun`, builds the reply."""

    def __init__(
        self,
        rig: str,
        run: RemoteRun | None,
        *,
        unix: Callable[[], float],
        timeout: float = 60.0,
        remember: int = 256,
    ) -> None:
        self.rig = rig
        self.run = run
        self._unix = unix
        self.timeout = timeout
        self._replies: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._remember = remember

    async def handle(self, command: str, payload: bytes) -> dict[str, Any]:
        """The reply document for one command message (never raises)."""
        request_id = _guess_id(payload)
        if len(payload) > MAX_PAYLOAD:
            return self._reply(request_id, command, "error", f"payload over {MAX_PAYLOAD} bytes")
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return self._reply(None, command, "error", f"malformed JSON: {exc}")
        if not isinstance(doc, dict):
            return self._reply(None, command, "error", "the payload must be a JSON object")
        model = REQUESTS.get(command)
        if model is None:
            known = ", ".join(COMMAND_NAMES)
            return self._reply(
                request_id, command, "error", f"unknown command {command!r}; known: {known}"
            )
        try:
            request = model.model_validate(doc)
        except ValidationError as exc:
            return self._reply(request_id, command, "error", _validation_text(exc))
        cached = self._replies.get(request.id)
        if cached is not None:
            return {**cached, "duplicate": True}
        reply = await self._execute(command, request)
        self._replies[request.id] = reply
        while len(self._replies) > self._remember:
            self._replies.popitem(last=False)
        return reply

    async def _execute(self, command: str, request: _Request) -> dict[str, Any]:
        if self.run is None:
            return self._reply(request.id, command, "refused", "no run in progress")
        source = f"mqtt:{request.operator}" if request.operator else "mqtt"
        try:
            async with asyncio.timeout(self.timeout):
                if isinstance(request, AbortRequest):
                    log.warning("abort requested by %s: %s", source, request.reason)
                    message = await self.run.abort(source=source, reason=request.reason)
                elif command == "pause":
                    message = await self.run.pause(source=source)
                elif command == "resume":
                    message = await self.run.resume(source=source)
                else:
                    status = await self.run.status()
                    return {**self._reply(request.id, command, "ok", "status"), "status": status}
        except CommandRefused as exc:
            return self._reply(request.id, command, "refused", str(exc))
        except TimeoutError:
            return self._reply(
                request.id,
                command,
                "error",
                f"no answer from the run within {self.timeout:g} s; ask for status",
            )
        except Exception as exc:
            log.exception("command %s failed", command)
            return self._reply(request.id, command, "error", f"{type(exc).__name__}: {exc}")
        return self._reply(request.id, command, "ok", str(message))

    def _reply(
        self, request_id: str | None, command: str, outcome: str, message: str
    ) -> dict[str, Any]:
        return {
            "v": 1,
            "rig": self.rig,
            "id": request_id,
            "command": command[:64],
            "outcome": outcome,
            "message": message,
            "unix": self._unix(),
        }


def _guess_id(payload: bytes) -> str | None:
    """The request id to echo in an error reply, if the payload has a sane one."""
    if len(payload) > MAX_PAYLOAD:
        return None
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    value = doc.get("id") if isinstance(doc, dict) else None
    if isinstance(value, str) and 0 < len(value) <= 64:
        return value
    return None


def _validation_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        if err["type"] == "extra_forbidden":
            parts.append(f"{where}: unknown field (allowed: id, operator, reason for abort)")
        else:
            parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
