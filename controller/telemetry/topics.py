"""The topic tree: everything a rig publishes or reads lives under ``<prefix>/<rig>/``.

=========================  ======  =======  ==========================================
topic                      QoS     retain   what
=========================  ======  =======  ==========================================
``…/status``               1       yes      status document; the last will says offline
``…/telemetry``            1       no       a batch of samples with their per-run seq
``…/events``               1       no       one event with its per-run event seq
``…/cmd/<name>``           1       no       pause | resume | abort | status (operators)
``…/cmd/reply``            1       no       the outcome of a command, with its request id
=========================  ======  =======  ==========================================
"""

from __future__ import annotations

from dataclasses import dataclass

COMMAND_NAMES = ("pause", "resume", "abort", "status")
REPLY = "reply"


@dataclass(frozen=True)
class Topics:
    prefix: str
    rig: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.rig}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def telemetry(self) -> str:
        return f"{self.base}/telemetry"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def commands(self) -> str:
        """The subscription filter for commands (it also matches our own replies)."""
        return f"{self.base}/cmd/+"

    @property
    def reply(self) -> str:
        return f"{self.base}/cmd/{REPLY}"

    def command(self, name: str) -> str:
        return f"{self.base}/cmd/{name}"

    def command_name(self, topic: str) -> str | None:
        """``…/cmd/pause`` -> ``pause``; None for topics outside this rig's cmd/."""
        head = f"{self.base}/cmd/"
        if not topic.startswith(head):
            return None
        name = topic[len(head) :]
        return name if name and "/" not in name else None


def parse(prefix: str, topic: str) -> tuple[str, str] | None:
    """``<prefix>/<rig>/<kind…>`` -> (rig, kind), e.g. ('rig-01', 'cmd/reply')."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    rig, sep, kind = topic[len(head) :].partition("/")
    return (rig, kind) if sep and rig and kind else None


def watch_filters(prefix: str, rig: str | None) -> list[str]:
    """Subscriptions of a dashboard: one rig, or all (``+``)."""
    who = rig or "+"
    return [f"{prefix}/{who}/{kind}" for kind in ("status", "telemetry", "events", "cmd/reply")]
