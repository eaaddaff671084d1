"""Home Assistant MQTT discovery (device-based, HA ≥ 2024.11), behind ``mqtt.homeassistant``.

One retained message on ``<discovery>/device/heatcycler_<rig>/config`` declares the rig as
a device with sensors read from the retained status document. Availability is the status
document's ``online`` flag, which the broker's last will sets to false when the
controller dies, so HA greys the rig out exactly when it is gone.
"""

from __future__ import annotations

import re
from typing import Any

from controller.telemetry.payloads import dumps
from controller.telemetry.topics import Topics

#: (component id, name, device class, unit, status key, extra)
_SENSORS: tuple[tuple[str, str, str | None, str | None, str, dict[str, Any]], ...] = (
    ("temperature", "Temperature", "temperature", "°C", "temperature", {}),
    ("setpoint", "Setpoint", "temperature", "°C", "setpoint", {}),
    ("voltage", "Cell voltage", "voltage", "V", "voltage", {}),
    ("current", "Cell current", "current", "A", "current", {}),
    ("state", "Run state", None, None, "state", {"icon": "mdi:state-machine"}),
    ("cycle", "Cycle", None, None, "cycle", {"icon": "mdi:counter"}),
    ("pending", "Unpublished samples", None, None, "pending", {"entity_category": "diagnostic"}),
)


def object_id(rig: str) -> str:
    """HA allows [a-zA-Z0-9_-] in discovery ids."""
    return "heatcycler_" + re.sub(r"[^A-Za-z0-9_-]", "_", rig)


def discovery_topic(discovery_prefix: str, rig: str) -> str:
    return f"{discovery_prefix}/device/{object_id(rig)}/config"


def discovery_config(topics: Topics, version: str) -> dict[str, Any]:
    oid = object_id(topics.rig)
    components: dict[str, dict[str, Any]] = {}
    for cid, name, device_class, unit, key, extra in _SENSORS:
        comp: dict[str, Any] = {
            "p": "sensor",
            "name": name,
            "unique_id": f"{oid}_{cid}",
            "value_template": f"{{{{ value_json.{key} }}}}",
            **extra,
        }
        if device_class is not None:
            comp["device_class"] = device_class
        if unit is not None:
            comp["unit_of_measurement"] = unit
            comp["state_class"] = "measurement"
        components[f"{oid}_{cid}"] = comp
    return {
        "dev": {
            "ids": [oid],
            "name": f"heatcycler {topics.rig}",
            "mf": "heatcycler",
            "mdl": "solid-state cell heat-therapy rig",
            "sw": version,
        },
        "o": {"name": "heatcycler", "sw": version},
        "cmps": components,
        "state_topic": topics.status,
        "availability": [
            {
                "topic": topics.status,
                "value_template": "{{ 'online' if value_json.online else 'offline' }}",
            }
        ],
        "qos": 1,
    }


def discovery_message(discovery_prefix: str, topics: Topics, version: str) -> tuple[str, bytes]:
    return discovery_topic(discovery_prefix, topics.rig), dumps(discovery_config(topics, version))
