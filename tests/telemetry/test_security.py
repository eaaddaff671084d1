"""The shipped broker configuration: TLS, passwords and the ACL, against real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import subprocess
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from conftest import PASSWORDS, SecureBroker, rig_config
from mqttbroker import DEPLOY
from mqtthelpers import Collector, SmallRun, collecting, until, write_samples

from controller.journal import Journal
from controller.rig import RigConfig
from controller.telemetry.service import Telemetry

pytestmark = pytest.mark.mqtt


def _client_tls(sb: SecureBroker) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(sb.certs / "ca.crt"))


def _rig(sb: SecureBroker, data: Path, user: str = "rig-01", **extra: Any) -> RigConfig:
    return rig_config(
        user,
        data,
        f"mqtts://localhost:{sb.tls_port}",
        username=user,
        password_file=str(sb.password_file(user)),
        ca_file=str(sb.certs / "ca.crt"),
        **extra,
    )


async def _connected(telemetry: Telemetry) -> None:
    await until(lambda: telemetry.connected)
    await asyncio.sleep(0.2)  # the command subscription follows the connect


async def test_rig_over_tls_with_client_cert_and_operator_commands(
    secure_broker: SecureBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sb = secure_broker
    data = tmp_path / "data"
    journal = Journal.create(data / "run-tls.sqlite", {"rig": {"rig": "rig-01"}})
    run = SmallRun("rig-01", "run-tls")
    rig = _rig(
        sb,
        data,
        cert_file=str(sb.certs / "rig-01.crt"),
        key_file=str(sb.certs / "rig-01.key"),
    )
    notices: list[str] = []
    # The operator reads everything and may send commands, over TLS too.
    alice = Collector(
        sb.tls_port,
        ["heatcycler/#"],
        "alice-console",
        host="localhost",
        username="alice",
        password=PASSWORDS["alice"],
        tls_context=_client_tls(sb),
        persistent=False,
    )
    async with collecting(alice):
        telemetry = Telemetry(rig, None, journal.path, run, notice=notices.append)
        task = asyncio.create_task(telemetry.run())
        await _connected(telemetry)
        await write_samples(journal, 40, 1000)
        await journal.flush()
        async with aiomqtt.Client(
            "localhost",
            sb.tls_port,
            username="alice",
            password=PASSWORDS["alice"],
            tls_context=_client_tls(sb),
        ) as operator:
            await operator.publish(
                "heatcycler/rig-01/cmd/pause", json.dumps({"id": "t1", "operator": "alice"}), qos=1
            )
            await alice.wait_for(lambda: alice.reply("t1") is not None, 10)
        assert await telemetry.drain(10) == 0
        await task
        await alice.wait_for(lambda: len(alice.samples) == 40, 10)
    journal.close()
    reply = alice.reply("t1")
    assert reply is not None
    assert reply["outcome"] == "ok"
    assert run.calls == [("pause", "mqtt:alice")]
    assert alice.seqs("run-tls") == list(range(1, 41))
    assert notices == []
    # Secrets never reach a log line or a notice.
    text = caplog.text + "\n".join(notices) + repr(telemetry.broker)
    assert PASSWORDS["rig-01"] not in text


async def test_acl_keeps_dashboards_and_other_rigs_out(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    sb = secure_broker
    data = tmp_path / "data"
    journal = Journal.create(data / "run-acl.sqlite", {"rig": {"rig": "rig-01"}})
    run = SmallRun("rig-01", "run-acl")
    tls = _client_tls(sb)
    watcher = Collector(
        sb.tls_port,
        ["heatcycler/rig-01/#"],
        "grafana-view",
        host="localhost",
        username="grafana",
        password=PASSWORDS["grafana"],
        tls_context=tls,
        persistent=False,
    )
    async with collecting(watcher):
        telemetry = Telemetry(_rig(sb, data), None, journal.path, run)
        task = asyncio.create_task(telemetry.run())
        await _connected(telemetry)
        await watcher.wait_for(lambda: bool(watcher.statuses), 10)
        statuses_before = len(watcher.statuses)

        abort = json.dumps({"id": "evil", "reason": "not allowed"})
        for user in ("grafana", "rig-02"):  # a dashboard, another rig
            async with aiomqtt.Client(
                "localhost",
                sb.tls_port,
                username=user,
                password=PASSWORDS[user],
                tls_context=tls,
            ) as intruder:
                await intruder.publish("heatcycler/rig-01/cmd/abort", abort, qos=1)
                fake = json.dumps({"rig": "rig-01", "online": False, "state": "fake"})
                await intruder.publish("heatcycler/rig-01/status", fake, qos=1, retain=True)
        # The operator's command, sent after the denied ones, is answered: the pipe was
        # live, and the denied ones never reached the handler.
        async with aiomqtt.Client(
            "localhost", sb.tls_port, username="alice", password=PASSWORDS["alice"], tls_context=tls
        ) as operator:
            await operator.publish("heatcycler/rig-01/cmd/status", json.dumps({"id": "ok1"}), qos=1)
        await watcher.wait_for(lambda: watcher.reply("ok1") is not None, 10)
        await asyncio.sleep(0.5)
        await telemetry.drain(5)
        await task
    journal.close()
    assert [r["id"] for r in watcher.replies] == ["ok1"]
    assert run.calls == []
    assert run.state == "running"
    assert all(s.get("state") != "fake" for s in watcher.statuses[statuses_before:])


async def test_the_broker_refuses_strangers(secure_broker: SecureBroker, tmp_path: Path) -> None:
    sb = secure_broker
    with pytest.raises(aiomqtt.MqttError):  # anonymous, even on the loopback listener
        async with aiomqtt.Client("127.0.0.1", sb.plain_port, timeout=5):
            pass
    with pytest.raises(aiomqtt.MqttError):  # a wrong password
        async with aiomqtt.Client(
            "127.0.0.1", sb.plain_port, username="alice", password="guess", timeout=5
        ):
            pass

    # A rig whose CA does not match the broker's certificate never connects; its
    # samples stay in the journal, counted, and nothing secret is printed.
    other_ca = tmp_path / "other-ca"
    await asyncio.to_thread(
        subprocess.run,
        ["sh", str(DEPLOY / "make-certs.sh"), str(other_ca), "localhost"],
        check=True,
        capture_output=True,
    )
    data = tmp_path / "data"
    journal = Journal.create(data / "run-badca.sqlite", {"rig": {"rig": "rig-01"}})
    rig = rig_config(
        "rig-01",
        data,
        f"mqtts://localhost:{sb.tls_port}",
        username="rig-01",
        password_file=str(sb.password_file("rig-01")),
        ca_file=str(other_ca / "ca.crt"),
    )
    notices: list[str] = []
    telemetry = Telemetry(rig, None, journal.path, None, notice=notices.append)
    task = asyncio.create_task(telemetry.run())
    await write_samples(journal, 10, 1000)
    await journal.flush()
    assert await telemetry.drain(1.5) == 10
    await task
    journal.close()
    assert any("unreachable" in n and "CERTIFICATE_VERIFY_FAILED" in n for n in notices), notices
    assert not any(PASSWORDS["rig-01"] in n for n in notices)


async def test_wrong_password_is_reported_with_a_hint(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    sb = secure_broker
    data = tmp_path / "data"
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    rig = rig_config(
        "rig-01",
        data,
        f"mqtt://127.0.0.1:{sb.plain_port}",
        username="rig-01",
        password_file=str(wrong),
    )
    journal = Journal.create(data / "run-pw.sqlite", {"rig": {"rig": "rig-01"}})
    notices: list[str] = []
    telemetry = Telemetry(rig, None, journal.path, None, notice=notices.append)
    task = asyncio.create_task(telemetry.run())
    assert await telemetry.drain(1.0) == 0
    await task
    journal.close()
    assert any("check mqtt.username" in n for n in notices), notices
    assert not any("not-the-password" in n for n in notices)
