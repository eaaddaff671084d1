"""Broker settings: URLs, --mqtt override, secrets, TLS files; mistakes are UserErrors."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import rig_config

from controller.problems import UserError
from controller.rig import MqttConfig
from controller.telemetry.backoff import Backoff
from controller.telemetry.settings import broker_from, mqtt_config, parse_url
from controller.validate import load_rig


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://broker.lab", (False, "broker.lab", 1883, None)),
        ("mqtts://broker.lab", (True, "broker.lab", 8883, None)),
        ("mqtt://10.0.0.5:1884", (False, "10.0.0.5", 1884, None)),
        ("mqtts://rig-01@broker.lab:8884", (True, "broker.lab", 8884, "rig-01")),
        ("mqtt://[::1]:1883", (False, "::1", 1883, None)),
    ],
)
def test_parse_url(url: str, expected: tuple[bool, str, int, str | None]) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("http://broker.lab", "bad MQTT URL"),
        ("broker.lab:1883", "bad MQTT URL"),
        ("mqtt://", "bad MQTT URL"),
        ("mqtt://u:secret@broker.lab", "must not carry a password"),
        ("mqtt://broker.lab:99999", "bad MQTT URL"),
        ("mqtt://broker.lab/topic", "no path"),
    ],
)
def test_bad_urls_are_user_errors(url: str, text: str) -> None:
    with pytest.raises(UserError) as err:
        parse_url(url)
    assert text in err.value.message
    assert err.value.hint
    assert "secret" not in err.value.format()


def test_override_keeps_credentials_and_tls_of_the_rig_file(tmp_path: Path) -> None:
    rig = rig_config("r", tmp_path, "mqtts://a.lab", username="r", ca_file="/etc/ca.crt")
    cfg = mqtt_config(rig, "mqtts://b.lab:9999")
    assert cfg is not None
    assert (cfg.url, cfg.username, cfg.ca_file) == ("mqtts://b.lab:9999", "r", Path("/etc/ca.crt"))
    assert cfg.reconnect_max == 1.0  # durations survive the round trip
    assert mqtt_config(rig, None) == rig.mqtt
    assert mqtt_config(rig, "off") is None
    assert mqtt_config(rig_config("r", tmp_path, None), None) is None
    bare = mqtt_config(rig_config("r", tmp_path, None), "mqtt://c.lab")
    assert bare is not None
    assert bare.url == "mqtt://c.lab"
    with pytest.raises(UserError, match="bad MQTT URL"):
        mqtt_config(rig, "tcp://b.lab")


def test_password_from_file_or_environment_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    broker = broker_from(MqttConfig(url="mqtt://b.lab", username="r", password_file=secret))
    assert broker.password == "hunter2"
    assert "hunter2" not in repr(broker)
    assert "hunter2" not in broker.url
    assert broker.url == "mqtt://r@b.lab:1883"

    monkeypatch.setenv("HC_PW", "s3cret")
    cfg = MqttConfig(url="mqtt://b.lab", username="r", password_env="HC_PW")
    assert broker_from(cfg).password == "s3cret"
    monkeypatch.delenv("HC_PW")
    with pytest.raises(UserError, match="HC_PW"):
        broker_from(cfg)
    with pytest.raises(UserError, match="cannot read the MQTT password file"):
        broker_from(
            MqttConfig(url="mqtt://b.lab", username="r", password_file=tmp_path / "missing")
        )
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(UserError, match="is empty"):
        broker_from(MqttConfig(url="mqtt://b.lab", username="r", password_file=tmp_path / "empty"))


def test_tls_mistakes_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="TLS file not found"):
        broker_from(MqttConfig(url="mqtts://b.lab", ca_file=tmp_path / "nope.crt"))
    junk = tmp_path / "junk.crt"
    junk.write_text("not a certificate")
    with pytest.raises(UserError, match="cannot load the MQTT TLS files"):
        broker_from(MqttConfig(url="mqtts://b.lab", ca_file=junk))
    with pytest.raises(UserError, match=r"URL .* is plain"):
        broker_from(MqttConfig(url="mqtt://b.lab", ca_file=junk))
    assert broker_from(MqttConfig(url="mqtts://b.lab")).tls_context is not None


def test_rig_file_mistakes_are_located(tmp_path: Path) -> None:
    path = tmp_path / "rig.yaml"
    path.write_text(
        "rig: r1\n"
        "smu: {resource: sim}\n"
        "heater: {port: sim}\n"
        "mqtt:\n"
        "  url: http://broker.lab\n"
        "  prefix: lab/#\n"
    )
    with pytest.raises(UserError) as err:
        load_rig(path)
    text = err.value.format()
    assert "rig.yaml:5" in text
    assert "is not an MQTT URL" in text
    assert "rig.yaml:6" in text
    assert "mqtt.prefix" in text


def test_backoff_is_bounded_and_jittered() -> None:
    import random

    backoff = Backoff(0.5, 8.0, rng=random.Random(1))
    delays = [backoff.next() for _ in range(10)]
    assert 0.25 <= delays[0] <= 0.5
    assert all(0 < d <= 8.0 for d in delays)
    assert max(delays[5:]) > 4.0  # grew to the cap
    assert len({round(d, 6) for d in delays[5:]}) == 5  # jittered, not in lock-step
    backoff.reset()
    assert backoff.next() <= 0.5
    with pytest.raises(ValueError, match="initial"):
        Backoff(0, 1)
