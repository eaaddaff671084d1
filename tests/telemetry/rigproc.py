"""A controller process for the kill/restart tests: writes a journal, publishes it.

    python tests/telemetry/rigproc.py --journal J --url mqtt://… --rig R --rate 100
        [--count N] [--resume] [--drain SECONDS]

It stands in for ``heatcycler run`` (built later): a real Journal written at ``rate`` Hz,
a real Telemetry publishing it, a small RunControl. Prints ``started`` once the first
samples are committed. With ``--count`` it stops writing after N samples, flushes,
drains, prints ``remaining <n>`` and exits 0; without it, it runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mqtthelpers import SmallRun, write_samples

from controller.journal import Journal
from controller.rig import RigConfig
from controller.telemetry.service import Telemetry


async def main(args: argparse.Namespace) -> int:
    path = Path(args.journal)
    if args.resume:
        journal = Journal.open(path)
    else:
        journal = Journal.create(path, {"rig": {"rig": args.rig}, "state": "running"})
    rig = RigConfig.model_validate(
        {
            "rig": args.rig,
            "smu": {"resource": "sim"},
            "heater": {"port": "sim"},
            "data_dir": str(path.parent),
            "mqtt": {
                "url": args.url,
                "reconnect_max": "1 s",
                "status_interval": "1 s",
                "batch_samples": args.batch,
            },
        }
    )
    telemetry = Telemetry(rig, None, path, SmallRun(args.rig, path.stem), poll=0.05)
    task = asyncio.create_task(telemetry.run())
    await write_samples(journal, 5, args.rate)
    await journal.flush()
    print("started", flush=True)
    await write_samples(journal, args.count or 10**9, args.rate, event_every=args.event_every)
    await journal.flush()
    remaining = await telemetry.drain(args.drain)
    await task
    journal.close()
    print(f"remaining {remaining}", flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--journal", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--rig", required=True)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--event-every", type=int, default=0)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--drain", type=float, default=20.0)
    sys.exit(asyncio.run(main(parser.parse_args())))
