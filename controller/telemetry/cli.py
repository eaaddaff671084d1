"""``--mqtt URL`` for the commands that run or watch a rig (standard library only, so
that ``heatcycler --help`` stays fast)."""

from __future__ import annotations

import argparse

MQTT_HELP = (
    "MQTT broker for this run (mqtt://host:1883, mqtts://host:8883); overrides the rig "
    "file's mqtt.url and keeps its credentials and TLS files; 'off' for journal-only"
)


def add_mqtt_argument(parser: argparse.ArgumentParser, help: str = MQTT_HELP) -> None:
    """``--mqtt URL`` (``args.mqtt``; None: the rig file's broker, if any)."""
    parser.add_argument("--mqtt", metavar="URL", default=None, help=help)
