"""Fixtures for the MQTT tests: real Mosquitto brokers started by the tests.

``broker``: anonymous, localhost, persistent (the publisher and command-handler tests).
``secure_broker``: the shipped ``deploy/mosquitto`` configuration — TLS listener, password
file and ACL — with certificates made by ``make-certs.sh`` and users added by
``add-user.sh`` in a temp dir, so the tests exercise the files a lab would install.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mqttbroker import DEPLOY, Mosquitto, free_port, user_line, wait_port

from controller.rig import RigConfig

PASSWORDS = {
    "rig-01": "rig-01-secret",
    "rig-02": "rig-02-secret",
    "alice": "alice-secret",
    "grafana": "grafana-secret",
}


def rig_config(rig: str, data_dir: Path, url: str | None, **mqtt: Any) -> RigConfig:
    doc: dict[str, Any] = {
        "rig": rig,
        "smu": {"resource": "sim"},
        "heater": {"port": "sim"},
        "data_dir": str(data_dir),
    }
    if url is not None:
        doc["mqtt"] = {"url": url, "reconnect_max": "1 s", "status_interval": "1 s", **mqtt}
    return RigConfig.model_validate(doc)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto.open(tmp_path / "broker").start()
    try:
        yield b
    finally:
        b.stop()


@dataclass
class SecureBroker:
    broker: Mosquitto
    tls_port: int
    plain_port: int
    etc: Path

    @property
    def certs(self) -> Path:
        return self.etc / "certs"

    def password_file(self, user: str) -> Path:
        path = self.etc / f"{user}.password"
        path.write_text(PASSWORDS[user] + "\n")
        return path


def _shipped_config(etc: Path, data: Path, tls_port: int, plain_port: int) -> str:
    text = (DEPLOY / "mosquitto.conf").read_text()
    swaps = {
        "/etc/mosquitto/": f"{etc}/",
        "/var/lib/mosquitto/": f"{data}/",
        "\nlistener 8883\n": f"\nlistener {tls_port}\n",
        "\nlistener 1883 127.0.0.1\n": f"\nlistener {plain_port} 127.0.0.1\n",
        "log_dest syslog": "log_dest stdout",
    }
    for old, new in swaps.items():
        assert old in text, f"deploy/mosquitto/mosquitto.conf no longer has {old!r}"
        text = text.replace(old, new)
    return user_line() + text


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[SecureBroker]:
    etc = tmp_path / "etc"
    data = tmp_path / "data"
    etc.mkdir()
    data.mkdir()
    acl = etc / "heatcycler.acl"
    acl.write_text((DEPLOY / "heatcycler.acl").read_text())
    env = {
        **os.environ,
        "SAN": "DNS:localhost,IP:127.0.0.1",
        "PASSWD_FILE": str(etc / "heatcycler.passwd"),
        "ACL_FILE": str(acl),
    }
    subprocess.run(
        ["sh", str(DEPLOY / "make-certs.sh"), str(etc / "certs"), "localhost", "rig-01"],
        check=True,
        capture_output=True,
        env=env,
    )
    roles = {"rig-01": "rig", "rig-02": "rig", "alice": "operator", "grafana": "dashboard"}
    for user, role in roles.items():
        subprocess.run(
            ["sh", str(DEPLOY / "add-user.sh"), role, user],
            check=True,
            capture_output=True,
            env={**env, "MQTT_PASSWORD": PASSWORDS[user]},
        )
    tls_port, plain_port = free_port(), free_port()
    b = Mosquitto(tmp_path / "broker", _shipped_config(etc, data, tls_port, plain_port), plain_port)
    b.start()
    wait_port(tls_port)
    try:
        yield SecureBroker(b, tls_port, plain_port, etc)
    finally:
        b.stop()
