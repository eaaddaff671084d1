"""Serve the software rig on real transports, and inject faults into a running one.

`sim serve` puts the Keithley 2450 emulator on a TCP port (SCPI, like a LAN instrument on
5025) and the heater board on a pseudo-terminal, prints the VISA resource string and the
serial device, and runs until Ctrl-C or SIGTERM. Point a rig file at them to rehearse a
protocol with the real drivers. `sim fault`, `sim clear` and `sim status` talk to a
running server through its control port.

Fault specs: KIND[=VALUE][@AT][+FOR], times in s or with ms/s/min/h (rig time), e.g.
tc_open@2h, smu_timeout@100+30s, loss=1.5@30min, cell_short=hard@3h.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_PORT = 5025


def state_file() -> Path:
    """Where a running `sim serve` leaves its addresses for `sim fault`/`status`."""
    return Path(tempfile.gettempdir()) / f"heatcycler-sim-{os.getuid()}.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sim_command", metavar="ACTION", required=True)

    serve = sub.add_parser(
        "serve",
        help="serve the rig: SMU on TCP, heater board on a pty",
        description="Serve the software rig until Ctrl-C/SIGTERM.",
    )
    serve.add_argument("--seed", type=int, default=0, help="physics and noise seed (default 0)")
    serve.add_argument(
        "--speed", type=float, default=1.0, help="virtual seconds per real second (default 1)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"SCPI port (default {DEFAULT_PORT}; 0 = any free port)",
    )
    serve.add_argument(
        "--link", type=Path, metavar="PATH", help="symlink to the board's pty, like a udev name"
    )
    serve.add_argument(
        "--protocol", type=Path, metavar="FILE", help="take the cell (type, area…) from FILE"
    )
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="inject a fault (repeatable), e.g. tc_open@2h",
    )
    serve.add_argument(
        "--language",
        choices=["SCPI", "TSP", "SCPI2400"],
        default="SCPI",
        help="the SMU's command set (drivers must refuse TSP and SCPI2400)",
    )
    serve.add_argument(
        "--working-electrode",
        choices=["HI", "LO"],
        default="HI",
        help="the SMU terminal the cell's working electrode is on (default HI: a positive "
        "SMU current strips it)",
    )
    serve.add_argument(
        "--control-port", type=int, default=0, help="fault-injection port (default: any free)"
    )
    serve.add_argument("--json", action="store_true", help="print the addresses as one JSON line")
    serve.add_argument(
        "--state",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"where to leave the addresses for `sim fault` (default {state_file()})",
    )

    for name, help_text in (
        ("fault", "inject faults into a running `sim serve`"),
        ("clear", "end faults in a running `sim serve` (KIND or all)"),
        ("status", "print the state of a running `sim serve` as JSON"),
    ):
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == "fault":
            p.add_argument("specs", nargs="+", metavar="SPEC")
        elif name == "clear":
            p.add_argument("specs", nargs="+", metavar="KIND")
        p.add_argument(
            "--control",
            metavar="HOST:PORT",
            help="the server's control address (default: read from the state file)",
        )
        p.add_argument(
            "--state", type=Path, default=None, metavar="FILE", help=f"default {state_file()}"
        )


def run(args: argparse.Namespace) -> int:
    if args.sim_command == "serve":
        return _serve(args)
    return _control(args)


# ------------------------------------------------------------------------ serve


def _cell_spec(path: Path | None) -> Any:
    from firmware_sim.physics import CellSpec

    if path is None:
        return CellSpec()
    from controller.problems import UserError
    from controller.validate import load_protocol

    loaded = load_protocol(path)
    if loaded.protocol is None or loaded.problems:
        first = loaded.problems[0]
        raise UserError(first.message, first.hint, loaded.problems)
    cell = loaded.protocol.cell
    return CellSpec(
        electrolyte=cell.electrolyte,
        type=cell.type.value,
        area_cm2=cell.area_cm2,
        thickness_cm=cell.thickness,
    )


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import signal
    import time

    from firmware_sim.faults import FaultSpec, FaultSpecError
    from firmware_sim.rig import SimRig
    from firmware_sim.serve import SimServer

    from controller.problems import UserError

    if not args.speed > 0:
        raise UserError(f"--speed must be positive, not {args.speed:g}", "e.g. --speed 60")
    try:
        faults = [FaultSpec.parse(spec) for spec in args.fault]
    except FaultSpecError as exc:
        raise UserError(f"--fault: {exc.message}", exc.hint) from None
    spec = _cell_spec(args.protocol)
    speed = float(args.speed)
    rig = SimRig(
        lambda: time.monotonic() * speed,
        seed=args.seed,
        cell_spec=spec,
        language=args.language,
        working_electrode=args.working_electrode,
        unix_start=time.time(),
        faults=faults,
    )
    server = SimServer(
        rig, host=args.host, port=args.port, link=args.link, control_port=args.control_port
    )

    async def main() -> None:
        try:
            await server.start()
        except FileExistsError as exc:
            await server.close()
            raise UserError(str(exc), "remove it or pick another --link path") from None
        except OSError as exc:
            await server.close()
            raise UserError(
                f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
                "pick another --port, or --port 0 for any free port",
            ) from None
        addresses = server.addresses() | {"pid": os.getpid()}
        state = args.state or state_file()
        state.write_text(json.dumps(addresses), encoding="utf-8")
        if args.json:
            print(json.dumps(addresses), flush=True)
        else:
            cell = type(rig.cell).__name__
            print(
                f"heatcycler sim: seed {args.seed}, speed {speed:g}x, "
                f"cell {spec.electrolyte} {spec.type} {spec.area_cm2:g} cm^2 ({cell})\n"
                f"SMU (Keithley 2450, {args.language}):  {addresses['smu']}\n"
                f"heater board:  {addresses['heater']}"
                + (f"  (link {addresses['link']})" if addresses["link"] else "")
                + f"\ncontrol:  {addresses['control']}  "
                "(heatcycler sim fault SPEC | clear KIND | status)\n"
                "Ctrl-C to stop.",
                flush=True,
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.close()
            try:
                if json.loads(state.read_text(encoding="utf-8")).get("pid") == os.getpid():
                    state.unlink()
            except (OSError, ValueError):
                pass

    asyncio.run(main())
    if not args.json:
        print("stopped", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------- control


def _address(text: str | None, state: Path | None) -> tuple[str, int]:
    from controller.problems import UserError

    if text is None:
        path = state or state_file()
        try:
            text = str(json.loads(path.read_text(encoding="utf-8"))["control"])
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(
                f"no running simulator found ({path} is missing or unreadable)",
                "start one with `heatcycler sim serve`, or pass --control HOST:PORT",
            ) from None
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--control {text!r} is not HOST:PORT", "e.g. --control 127.0.0.1:40123")
    return host, int(port)


def _control(args: argparse.Namespace) -> int:
    from controller.problems import UserError

    host, port = _address(args.control, args.state)
    if args.sim_command == "fault":
        requests = ["fault " + " ".join(args.specs)]
    elif args.sim_command == "clear":
        requests = [f"clear {kind}" for kind in args.specs]
    else:
        requests = ["status"]
    try:
        with socket.create_connection((host, port), timeout=5.0) as sock:
            stream = sock.makefile("rwb")
            for request in requests:
                stream.write(request.encode() + b"\n")
                stream.flush()
                reply = stream.readline().decode().rstrip("\n")
                if reply.startswith("ERR "):
                    message, _, hint = reply[4:].partition(" | ")
                    raise UserError(message, hint)
                body = reply[3:]
                if args.sim_command == "status":
                    print(json.dumps(json.loads(body), indent=2))
                else:
                    print(f"{request.split()[0]}: {body or 'ok'}")
    except OSError as exc:
        raise UserError(
            f"cannot reach the simulator's control port {host}:{port}: {exc}",
            "is `heatcycler sim serve` running? its control address is printed at start",
        ) from None
    return 0
