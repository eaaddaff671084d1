"""The systemd service's entry point (deploy/heatcycler.service): at start, resume the
rig's interrupted run if its resume policy allows (resume.on_boot: auto, the outage no
longer than resume.max_gap, the clock synchronised), otherwise say why and wait idle.

It speaks systemd's notify protocol: READY once the instruments are verified (or once it
idles), STATUS lines for `systemctl status`, and watchdog pings only while its control
loop (or idle loop) is beating. Logs go to stderr with journald priority prefixes.
Exit codes: as `heatcycler resume` when a resumed run stops without finishing; 2 for a
bad rig file (the unit does not restart on 2: RestartPreventExitStatus=2).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rig",
        type=Path,
        required=True,
        metavar="RIG",
        help="the rig file (the installed service uses /etc/heatcycler/rig.yaml)",
    )
    from controller.telemetry.cli import add_mqtt_argument

    add_mqtt_argument(parser)
    parser.add_argument(
        "--sync-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="wait this long for NTP before judging an outage's length (default 120)",
    )
    parser.add_argument(
        "--trust-clock",
        action="store_true",
        help="judge the outage by the clock even if it is not synchronised (an RTC without NTP)",
    )


def run(args: argparse.Namespace) -> int:
    import faulthandler
    import logging
    import sys

    from controller.service.boot import BootOptions, JournaldFormatter, run_service
    from controller.service.clocksync import read_clock
    from controller.validate import load_rig

    # A watchdog kill is SIGABRT: print every thread's stack, so the journal shows where
    # the control loop was stuck.
    faulthandler.enable(file=sys.stderr, all_threads=True)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournaldFormatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    rig = load_rig(args.rig)
    options = BootOptions(args.mqtt, args.sync_timeout, args.trust_clock)
    return run_service(rig, options=options, clock_reader=read_clock)
