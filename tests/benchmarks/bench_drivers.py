"""What the drivers cost: on the wire (TCP loopback, pty) and in process.

    uv run python tests/benchmarks/bench_drivers.py [--quick]

The software rig runs as its own process (``heatcycler sim serve``), as an instrument
would be another box: the driver process only pays for its own side.

1. SCPI query round trip over TCP loopback (``*OPC?``): raw pyvisa-py on the calling
   thread, and through ``VisaTransport`` (worker thread + lock + guard), p50/p99;
2. sustained V/I samples/s from one asyncio task (``Keithley2450.read()``, one
   ``:READ?`` each) while a concurrent 1 s periodic task (and a 100 ms one, for more
   samples) measures how late it wakes (jitter);
3. heater-board temperature reads/s over the pty (``HeaterBoardDriver.read()``);
4. in process (``InProcessTransport``): µs per ``Keithley2450.read()`` and per board
   ``read()`` + ``set_duty()``, against a canned reply (the driver's own cost) and against
   the software rig's firmware (what a virtual-time campaign pays), and what ~190 h at
   1 s sampling and a 1 s thermal loop adds up to.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from firmware_sim.ohmic import OhmicCell
from firmware_sim.rig import ManualClock, SimRig

from controller.clock import Clock, Periodic
from drivers.base import SourceFunction
from drivers.heater_board import HeaterBoardDriver, frame
from drivers.keithley2450 import Keithley2450
from drivers.serial_transport import SerialTransport
from drivers.transport import InProcessTransport
from drivers.visa_transport import VisaTransport

ROOT = Path(__file__).resolve().parents[2]
CAMPAIGN_HOURS = 190


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def served_rig() -> Iterator[dict[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controller.cli",
                "sim",
                "serve",
                "--port",
                "0",
                "--json",
                "--state",
                str(Path(tmp) / "state.json"),
                "--link",
                str(Path(tmp) / "heater"),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            addresses = json.loads(proc.stdout.readline())
            yield addresses
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def raw_pyvisa_round_trip(resource: str, n: int) -> list[float]:
    import pyvisa

    rm = pyvisa.ResourceManager("@py")
    inst = rm.open_resource(resource, read_termination="\n", write_termination="\n")
    try:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            inst.query("*OPC?")
            out.append(time.perf_counter() - t0)
        return out
    finally:
        inst.close()
        rm.close()


async def transport_round_trip(resource: str, n: int) -> list[float]:
    transport = await VisaTransport.open(resource, timeout=2.0)
    try:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            await transport.query("*OPC?")
            out.append(time.perf_counter() - t0)
        return out
    finally:
        await transport.close()


async def samples_under_load(resource: str, seconds: float) -> dict[str, float]:
    smu = Keithley2450(await VisaTransport.open(resource, timeout=2.0))
    await smu.identify()
    await smu.configure(SourceFunction.CURRENT, compliance=2.0, source_range=1e-3)
    await smu.set_level(0.0)
    await smu.output_on()
    clock = Clock()
    lateness: dict[float, list[float]] = {1.0: [], 0.1: []}
    stop = asyncio.Event()

    async def periodic(period: float) -> None:
        ticks = Periodic(clock, period)
        while not stop.is_set():
            scheduled = await ticks.tick()
            lateness[period].append(clock.now() - scheduled)
            await asyncio.sleep(0)  # a PID step's worth of work would go here

    async def sampler() -> int:
        count = 0
        while not stop.is_set():
            await smu.read()
            count += 1
        return count

    tasks = [asyncio.create_task(periodic(1.0)), asyncio.create_task(periodic(0.1))]
    sampling = asyncio.create_task(sampler())
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    stop.set()
    count = await sampling
    elapsed = time.perf_counter() - t0
    await asyncio.gather(*tasks)
    await smu.output_off()
    await smu.close()
    late_1s = lateness[1.0][1:]  # the first tick fires at once
    late_100ms = lateness[0.1][1:]
    return {
        "samples_per_s": count / elapsed,
        "pid_1s_ticks": len(late_1s),
        "pid_1s_p50_ms": pct(late_1s, 0.5) * 1e3,
        "pid_1s_p99_ms": pct(late_1s, 0.99) * 1e3,
        "pid_1s_max_ms": max(late_1s) * 1e3,
        "tick_100ms_p50_ms": pct(late_100ms, 0.5) * 1e3,
        "tick_100ms_p99_ms": pct(late_100ms, 0.99) * 1e3,
        "tick_100ms_max_ms": max(late_100ms) * 1e3,
    }


async def board_reads(port: str, seconds: float) -> float:
    board = HeaterBoardDriver(await SerialTransport.open(port, timeout=0.5))
    await board.identify()
    count = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        await board.read()
        count += 1
    elapsed = time.perf_counter() - t0
    await board.close()
    return count / elapsed


class Canned:
    """A LineDevice that answers every line at once with a fixed reply; as an SCPI
    instrument (``scpi``), an empty error queue to ``:SYST:ERR?`` and nothing to a
    command."""

    def __init__(self, reply: bytes, scpi: bool = False) -> None:
        self.reply = reply
        self.scpi = scpi

    def handle(self, line: bytes) -> bytes | None:
        if not self.scpi:
            return self.reply
        if line == b":SYST:ERR?":
            return b'0,"No error;0;0 0"'
        if b"?" not in line:
            return None
        return self.reply


def per_call(n: int, call: Callable[[], Awaitable[object]]) -> float:
    """Best of 3 runs of ``n`` awaited calls, in µs per call."""

    async def run() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            await call()
        return time.perf_counter() - t0

    best = min(asyncio.run(run()) for _ in range(3))
    return best / n * 1e6


def in_process(n: int) -> dict[str, float]:
    results: dict[str, float] = {}
    # the driver alone: a canned reply in the 2450's format
    canned = Keithley2450(
        InProcessTransport(Canned(b"1.000000E-01,1.000000E-03,1.250000E+01", scpi=True))
    )
    asyncio.run(canned.configure(SourceFunction.CURRENT, compliance=2.0, source_range=1e-3))
    results["smu_read_driver_us"] = per_call(n, canned.read)
    board_canned = HeaterBoardDriver(
        InProcessTransport(Canned(frame("T 125.25 26.5000 00 80 500").encode()))
    )
    results["board_read_driver_us"] = per_call(n, board_canned.read)
    duty_board = HeaterBoardDriver(InProcessTransport(Canned(frame("OK DUTY 500 3000").encode())))
    results["board_duty_driver_us"] = per_call(n, lambda: duty_board.set_duty(0.5, 3.0))

    # against the software rig's firmware (ohmic cell), time moving 1 s per call
    clock = ManualClock()
    rig = SimRig(clock, cell=OhmicCell(resistance=100.0))
    smu = Keithley2450(InProcessTransport(rig.smu))
    board = HeaterBoardDriver(InProcessTransport(rig.board))

    async def setup() -> None:
        await smu.configure(SourceFunction.CURRENT, compliance=2.0, source_range=1e-3)
        await smu.set_level(1e-3)
        await smu.output_on()

    asyncio.run(setup())

    async def smu_read() -> None:
        clock.advance(1.0)
        await smu.read()

    async def raw_read() -> None:
        clock.advance(1.0)
        rig.smu.handle(b':READ? "defbuffer1", READ, SOUR, REL')

    async def board_cycle() -> None:
        clock.advance(1.0)
        await board.read()
        await board.set_duty(0.1, 3.0)  # settles near 125 degC

    t_frame, d_frame = frame("T?").encode(), frame("DUTY 100 3000").encode()

    async def raw_board() -> None:
        clock.advance(1.0)
        rig.board.handle(t_frame)
        rig.board.handle(d_frame)

    results["smu_read_rig_us"] = per_call(n, smu_read)
    results["smu_read_firmware_only_us"] = per_call(n, raw_read)
    results["board_cycle_rig_us"] = per_call(n, board_cycle)
    results["board_cycle_firmware_only_us"] = per_call(n, raw_board)
    seconds = CAMPAIGN_HOURS * 3600
    driver_share = (
        results["smu_read_driver_us"]
        + results["board_read_driver_us"]
        + results["board_duty_driver_us"]
    )
    results["campaign_driver_share_s"] = seconds * driver_share * 1e-6
    results["campaign_total_s"] = (
        seconds * (results["smu_read_rig_us"] + results["board_cycle_rig_us"]) * 1e-6
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    args = parser.parse_args()
    n_rt = 500 if args.quick else 3000
    load_s = 6.0 if args.quick else 30.0
    n_inproc = 5000 if args.quick else 30000
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )

    with served_rig() as addresses:
        resource, port = addresses["smu"], addresses["heater"]
        raw = raw_pyvisa_round_trip(resource, n_rt)
        guarded = asyncio.run(transport_round_trip(resource, n_rt))
        print(f"\n1. SCPI *OPC? round trip over TCP loopback ({n_rt} queries)")
        for name, values in (("raw pyvisa-py", raw), ("VisaTransport (worker)", guarded)):
            print(
                f"   {name:<24} p50 {pct(values, 0.5) * 1e3:.3f} ms  "
                f"p99 {pct(values, 0.99) * 1e3:.3f} ms  max {max(values) * 1e3:.3f} ms"
            )
        load = asyncio.run(samples_under_load(resource, load_s))
        print(f"\n2. V/I samples from one asyncio task for {load_s:g} s")
        print(f"   {load['samples_per_s']:.0f} samples/s (Keithley2450.read, one :READ? each)")
        print(
            f"   1 s periodic task, {load['pid_1s_ticks']:.0f} ticks: lateness "
            f"p50 {load['pid_1s_p50_ms']:.2f} ms, p99 {load['pid_1s_p99_ms']:.2f} ms, "
            f"max {load['pid_1s_max_ms']:.2f} ms"
        )
        print(
            f"   100 ms periodic task: lateness p50 {load['tick_100ms_p50_ms']:.2f} ms, "
            f"p99 {load['tick_100ms_p99_ms']:.2f} ms, max {load['tick_100ms_max_ms']:.2f} ms"
        )
        reads = asyncio.run(board_reads(port, 3.0 if args.quick else 10.0))
        print(f"\n3. heater board over the pty: {reads:.0f} temperature reads/s (T?)")

    results = in_process(n_inproc)
    print(f"\n4. in process ({n_inproc} calls, best of 3)")
    print(
        f"   Keithley2450.read(): driver alone {results['smu_read_driver_us']:.1f} µs; "
        f"with the rig {results['smu_read_rig_us']:.1f} µs "
        f"(the firmware alone {results['smu_read_firmware_only_us']:.1f} µs)"
    )
    print(
        f"   board read()+set_duty(): driver alone "
        f"{results['board_read_driver_us'] + results['board_duty_driver_us']:.1f} µs; "
        f"with the rig {results['board_cycle_rig_us']:.1f} µs "
        f"(the firmware alone {results['board_cycle_firmware_only_us']:.1f} µs)"
    )
    print(
        f"   {CAMPAIGN_HOURS} h at 1 s sampling + 1 s thermal loop: the drivers' share "
        f"{results['campaign_driver_share_s']:.1f} s; drivers + ohmic rig "
        f"{results['campaign_total_s']:.1f} s"
    )


if __name__ == "__main__":
    main()
