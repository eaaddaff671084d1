"""The console's MQTT link text from a real ``Telemetry`` and a real Mosquitto."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "telemetry"))

from mqttbroker import Mosquitto

from controller.rig import RigConfig
from controller.telemetry.service import Telemetry
from controller.ui.console import telemetry_link


def rig(tmp_path: Path, url: str | None) -> RigConfig:
    doc: dict[str, object] = {
        "rig": "rig-ui",
        "smu": {"resource": "sim"},
        "heater": {"port": "sim"},
        "data_dir": str(tmp_path / "runs"),
    }
    if url is not None:
        doc["mqtt"] = {"url": url, "reconnect_max": "1 s", "status_interval": "1 s"}
    return RigConfig.model_validate(doc)


def test_journal_only_link(tmp_path: Path) -> None:
    telemetry = Telemetry(rig(tmp_path, None), None, None, None, notice=lambda _: None)
    assert telemetry_link(telemetry)() == "journal-only"


async def until(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.mqtt
async def test_link_follows_the_broker(tmp_path: Path) -> None:
    broker = Mosquitto.open(tmp_path / "broker").start()
    notices: list[str] = []
    telemetry = Telemetry(rig(tmp_path, broker.url), None, None, None, notice=notices.append)
    link = telemetry_link(telemetry)
    assert link().startswith("not connected")  # before the thread has connected
    task = asyncio.create_task(telemetry.run())
    try:
        assert await until(lambda: link() == "connected", 10.0), notices
        broker.stop()
        assert await until(lambda: link().startswith("not connected"), 10.0), notices
    finally:
        broker.stop()
        await telemetry.stop()
        await task
