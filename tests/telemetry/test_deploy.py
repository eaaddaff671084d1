"""The shipped ingestion config reads the fields the publisher writes; add-user.sh's ACL."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from mqttbroker import DEPLOY, MOSQUITTO_PASSWD

from controller.journal import SampleRow
from controller.telemetry.payloads import SAMPLE_FIELDS, loads, telemetry_message
from controller.telemetry.topics import Topics

TELEGRAF = DEPLOY.parent / "telegraf" / "telegraf.conf"


def _consumers() -> dict[str, dict[str, Any]]:
    conf = tomllib.loads(TELEGRAF.read_text())
    return {c["topics"][0].rsplit("/", 1)[-1]: c for c in conf["inputs"]["mqtt_consumer"]}


def test_telegraf_reads_what_the_publisher_writes() -> None:
    consumers = _consumers()
    assert set(consumers) == {"telemetry", "events", "status"}
    topics = Topics("heatcycler", "rig-01")
    for kind, consumer in consumers.items():
        assert consumer["topics"] == [getattr(topics, kind).replace("rig-01", "+")]
        assert consumer["qos"] == 1

    row = SampleRow(7, 0.7, 1.7e9, 0.01, 1e-3, 125.0, 125.0, 0.3, 1e-3, "current", 2, 3)
    message = loads(telemetry_message("rig-01", "run-1", [row]))
    sample = message["samples"][0]
    xpath = consumers["telemetry"]["xpath"][0]
    assert xpath["metric_selection"] == "/samples/*"
    assert {k: v.lstrip("/") for k, v in xpath["tags"].items()} == {"rig": "rig", "run": "run"}
    assert all(message[v.lstrip("/")] for v in xpath["tags"].values())
    assert xpath["timestamp"] in sample
    assert set(xpath["fields_int"].values()) <= set(sample)
    assert set(sample) <= set(SAMPLE_FIELDS)
    assert consumers["telemetry"]["persistent_session"] is True

    event_paths = [t["path"] for t in consumers["events"]["json_v2"][0]["tag"]]
    event_paths += [f["path"] for f in consumers["events"]["json_v2"][0]["field"]]
    event_keys = {"rig", "run", "seq", "t", "unix", "sample_seq", "step", "kind", "severity"}
    assert set(event_paths) <= event_keys | {"message"}


@pytest.mark.mqtt  # needs mosquitto_passwd
def test_add_user_writes_role_blocks(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text("")
    env = {
        **os.environ,
        "PASSWD_FILE": str(tmp_path / "passwd"),
        "ACL_FILE": str(acl),
        "MQTT_PASSWORD": "pw",
    }
    script = str(DEPLOY / "add-user.sh")
    for role, name in (("rig", "rig.9"), ("operator", "bob"), ("dashboard", "grafana")):
        subprocess.run(["sh", script, role, name], check=True, capture_output=True, env=env)
    text = acl.read_text()
    assert "user rig.9\ntopic write heatcycler/rig.9/#\ntopic read heatcycler/rig.9/cmd/#\n" in text
    assert "topic write homeassistant/device/heatcycler_rig_9/config" in text
    assert "user bob\ntopic read heatcycler/#\ntopic write heatcycler/+/cmd/pause\n" in text
    assert "topic write heatcycler/+/cmd/setpoint" not in text
    assert "user grafana\ntopic read heatcycler/#\n" in text
    passwd = (tmp_path / "passwd").read_text()
    assert passwd.count("\n") == 3
    assert "pw" not in passwd.replace("$", " ").split()  # hashed, not stored
    bad = subprocess.run(["sh", script, "rig", "x/y"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2
    assert "NAME may use" in bad.stderr
    assert Path(MOSQUITTO_PASSWD).exists()
