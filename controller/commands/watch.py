"""Watch rigs live over MQTT: status, latest samples and events, for one rig or all.

On a terminal it draws a live table (rich); piped or with --plain it prints one line per
message. The broker comes from --mqtt URL and/or a rig file's mqtt: section (--config:
credentials, TLS files, prefix); --username/--password-file/--password-env/--ca-file
override those. It only reads: a dashboard user with read-only ACL is enough.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from controller.telemetry.cli import add_mqtt_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rig", metavar="ID", help="watch one rig (default: every rig)")
    add_mqtt_argument(parser, help="broker: mqtt://host:1883, mqtts://host:8883")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="RIG_FILE",
        help="take the broker, credentials, TLS files and prefix from this rig file",
    )
    parser.add_argument("--prefix", help="topic prefix (default: heatcycler)")
    parser.add_argument("--username")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--password-file", type=Path, metavar="FILE")
    secret.add_argument("--password-env", metavar="VAR")
    parser.add_argument("--ca-file", type=Path, metavar="FILE", help="CA of the broker's cert")
    parser.add_argument("--plain", action="store_true", help="one line per message")
    parser.add_argument(
        "--for", dest="duration", type=float, metavar="SECONDS", help="stop after this long"
    )


def _config(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from controller.problems import UserError
    from controller.rig import MqttConfig
    from controller.validate import load_rig

    base: dict[str, Any] = {}
    if args.config is not None:
        rig = load_rig(args.config)
        if rig.mqtt is None:
            raise UserError(
                f"{args.config} has no mqtt: section", "add one, or pass --mqtt URL instead"
            )
        base = rig.mqtt.model_dump(exclude_unset=True)
    overrides = {
        "url": args.mqtt,
        "prefix": args.prefix,
        "username": args.username,
        "password_file": args.password_file,
        "password_env": args.password_env,
        "ca_file": args.ca_file,
    }
    if args.password_file is not None or args.password_env is not None:
        base.pop("password_file", None)
        base.pop("password_env", None)
    base.update({k: v for k, v in overrides.items() if v is not None})
    if "url" not in base:
        raise UserError(
            "no broker to watch",
            "pass --mqtt mqtt://host:1883 or --config RIG_FILE (its mqtt: section)",
        )
    try:
        return MqttConfig.model_validate(base)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        hint = str((first.get("ctx") or {}).get("hint", "see deploy/rig.example.yaml"))
        raise UserError(f"{where}: {first['msg']}", hint) from None


def run(args: argparse.Namespace) -> int:
    import sys

    from controller import clock
    from controller.telemetry.settings import broker_from

    config = _config(args)
    broker = broker_from(config)
    plain = args.plain or not sys.stdout.isatty()
    return clock.run(_watch(broker, config.prefix, args.rig, plain, args.duration), virtual=False)


async def _watch(
    broker: Any, prefix: str, rig: str | None, plain: bool, duration: float | None
) -> int:
    import asyncio
    import contextlib
    import os
    import sys

    import aiomqtt
    from rich.console import Console
    from rich.live import Live

    from controller.telemetry import topics
    from controller.telemetry.backoff import Backoff
    from controller.telemetry.view import WatchState, render

    state = WatchState(prefix, rig)
    filters = topics.watch_filters(prefix, rig)
    backoff = Backoff(0.5, 15.0)
    console = Console()
    connection = f"{broker.url} · {prefix}/{rig or '+'}/…"
    live: Live | None = None
    if not plain:
        live = Live(render(state, connection), console=console, refresh_per_second=4)
        live.start()

    def say(line: str) -> None:
        if plain:
            print(line, flush=True)
        elif live is not None:
            live.console.log(line)

    async def follow() -> None:
        lost = False
        while True:
            try:
                async with aiomqtt.Client(
                    broker.host,
                    broker.port,
                    username=broker.username,
                    password=broker.password,
                    identifier=f"heatcycler-watch-{os.getpid()}",
                    clean_session=True,
                    keepalive=broker.keepalive,
                    tls_context=broker.tls_context,
                ) as client:
                    for flt in filters:
                        await client.subscribe(flt, qos=1)
                    say(f"watching {connection}" + (" (reconnected)" if lost else ""))
                    backoff.reset()
                    lost = False
                    async for message in client.messages:
                        payload = message.payload
                        raw = payload if isinstance(payload, bytes | bytearray) else b""
                        lines = state.apply(str(message.topic), bytes(raw))
                        if plain:
                            for line in lines:
                                print(line, flush=True)
                        elif live is not None:
                            live.update(render(state, connection))
            except aiomqtt.MqttError as exc:
                if not lost:
                    say(f"broker {broker.url}: {exc}; retrying")
                lost = True
                await asyncio.sleep(backoff.next())

    task = asyncio.create_task(follow())
    try:
        if duration is None:
            await task
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(duration):
                    await asyncio.shield(task)
    finally:
        from controller.telemetry.publisher import cancel_all

        await cancel_all([task])
        if live is not None:
            live.stop()
        sys.stdout.flush()
    return 0
