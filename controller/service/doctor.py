"""``heatcycler doctor``: is this rig fit to run unattended? One line per check, with a fix.

Checks, in order (each independent: one failing does not hide the others):

- **data directory**: exists, writable (a file is written, fsynced and removed), free
  space for the planned run (the protocol's longest duration × measured journal bytes
  per day, ``disk.py``), interrupted runs waiting for a decision;
- **clock**: synchronised (``adjtimex``, or ``timedatectl``: the line says which);
- **broker**: reachable with the configured credentials and TLS (a connect with its own
  client id, so a live controller's session is not taken over);
- **SMU**: answers with the identity ``smu.driver`` drives, in SCPI mode, error queue
  empty;
- **heater board**: model and firmware, not tripped, its limits equal to the rig's safety
  limits or settable (within the board's range, and not already exceeded);
- **thermocouple**: no fault bits, counter moving (fresh conversions), a plausible
  reading (within the rig's limits; near ambient while the heater is off).

Nothing is energised and nothing is changed: no duty, no limits, no reset. While a run
is live (its journal's lock is held) the instruments are its own and are not touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from controller.clock import Clock
from controller.problems import UserError
from controller.rig import RigConfig
from controller.service import disk
from controller.service.clocksync import ClockReader, read_clock
from controller.service.runs import RunInfo, list_runs
from drivers.base import (
    BoardStatus,
    HeaterBoard,
    InstrumentError,
    InstrumentTimeout,
    LinkLost,
    SourceMeter,
    ThermocoupleFault,
    ThermoReading,
    WrongInstrument,
)
from drivers.heater_board import LIMIT_CEILING, LIMIT_FLOOR
from drivers.transport import LineDevice

#: an idle block (heater off) reads room temperature; outside this it is worth a look
AMBIENT_BAND = (10.0, 40.0)
#: the board's own electronics (cold junction) in a lab
COLD_JUNCTION_BAND = (0.0, 70.0)
#: without --protocol, the disk check plans for this long a run
DEFAULT_RUN = 30 * 86400.0
#: board protocol major version this controller speaks (firmware-sim/PROTOCOL.md)
BOARD_PROTOCOL = 1


class Status(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "check": self.name,
            "status": str(self.status),
            "detail": self.detail,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class PlannedRun:
    """What the disk check needs of a protocol (from ``make_plan``)."""

    name: str
    duration: float  # s, the plan's upper bound
    every: float = 10.0  # record.every
    sample_period: float = 1.0  # record.sample_period


@dataclass
class Probes:
    """The doctor's windows on the host; tests replace them."""

    free_space: disk.FreeSpace = disk.free_space
    clock: ClockReader = read_clock
    smu_device: LineDevice | None = None  # the software rig's, for `sim` resources
    board_device: LineDevice | None = None
    broker_timeout: float = 5.0
    counter_wait: float = 0.35  # s between two thermocouple reads (conversions: 10 Hz)
    mqtt_url: str | None = None  # --mqtt override


@dataclass
class Report:
    rig: str
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(c.status is Status.FAIL for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rig": self.rig,
            "ok": not self.failed,
            "checks": [c.as_dict() for c in self.checks],
        }


def format_report(report: Report) -> str:
    width = max((len(c.name) for c in report.checks), default=0)
    lines = []
    for c in report.checks:
        lines.append(f"{c.status.value:<5} {c.name:<{width}}  {c.detail}")
        if c.fix and c.status in (Status.FAIL, Status.WARN):
            lines.append(f"{'':<5} {'':<{width}}  fix: {c.fix}")
    failed = sum(c.status is Status.FAIL for c in report.checks)
    warned = sum(c.status is Status.WARN for c in report.checks)
    if failed:
        lines.append(f"{failed} check{'s' * (failed != 1)} failed")
    else:
        lines.append(
            "all checks passed" + (f" ({warned} warning{'s' * (warned != 1)})" if warned else "")
        )
    return "\n".join(lines)


async def diagnose(
    rig: RigConfig, planned: PlannedRun | None = None, probes: Probes | None = None
) -> Report:
    probes = probes or Probes()
    report = Report(rig.rig)
    runs = _runs(Path(rig.data_dir))
    data_check = _sync(lambda: check_data_dir(rig, planned, probes, runs))
    report.checks.append(await _guarded("data directory", data_check))
    report.checks.append(await _guarded("clock", _sync(lambda: check_clock(probes.clock))))
    report.checks.append(await _guarded("broker", check_broker(rig, probes)))
    live = [r for r in runs if r.live]
    if live:
        why = f"run {live[0].run_id} is live: its controller owns the instruments"
        for name in ("SMU", "heater board", "thermocouple"):
            report.checks.append(Check(name, Status.SKIP, why))
        return report
    report.checks.append(await _guarded("SMU", check_smu(rig, probes)))
    board_check, board = await _open_board(rig, probes)
    try:
        report.checks.append(board_check)
        if board is None:
            report.checks.append(
                Check("thermocouple", Status.SKIP, "needs the heater board (see above)")
            )
        else:
            report.checks.append(
                await _guarded("thermocouple", check_thermocouple(rig, board, probes))
            )
    finally:
        if board is not None:
            with contextlib.suppress(Exception):
                await board.close()
    return report


async def _sync(fn: Callable[[], Check]) -> Check:
    return fn()


def _runs(data_dir: Path) -> list[RunInfo]:
    try:
        return list_runs(data_dir) if data_dir.is_dir() else []
    except OSError:
        return []


async def _guarded(name: str, work: Awaitable[Check]) -> Check:
    """A check that crashes is a failed check with its reason, never a traceback."""
    try:
        return await work
    except UserError as exc:
        return Check(name, Status.FAIL, exc.message, exc.hint)
    except InstrumentError as exc:
        return Check(name, Status.FAIL, exc.message, exc.hint)
    except Exception as exc:
        return Check(
            name, Status.FAIL, f"unexpected {type(exc).__name__}: {exc}", "report this as a bug"
        )


# ------------------------------------------------------------------ data directory


def check_data_dir(
    rig: RigConfig, planned: PlannedRun | None, probes: Probes, runs: list[RunInfo]
) -> Check:
    name = "data directory"
    data = Path(rig.data_dir)
    install = (
        f"sudo install -d -o heatcycler -g heatcycler -m 0750 {data} (deploy/install.sh does this)"
    )
    if not data.exists():
        parent = next((p for p in data.parents if p.exists()), None)
        if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            return Check(name, Status.FAIL, f"{data} does not exist", install)
        return _space(
            name, parent, planned, probes, [], f"{data} does not exist yet; the first run makes it"
        )
    if not data.is_dir():
        return Check(name, Status.FAIL, f"{data} is not a directory", f"set data_dir, or {install}")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".doctor-", dir=data)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(tmp)
    except OSError as exc:
        import errno

        if exc.errno == errno.EROFS:
            fix = (
                "the file system is read-only: an SD card that remounted itself read-only is "
                "failing — copy the data off and replace the card"
            )
        elif exc.errno == errno.ENOSPC:
            fix = f"the disk is full: `heatcycler archive --data-dir {data} --delete-after-archive`"
        else:
            fix = (
                f"the controller's user must own it: sudo chown -R heatcycler:heatcycler {data} "
                "(and run doctor as that user: sudo -u heatcycler heatcycler doctor …)"
            )
        return Check(name, Status.FAIL, f"cannot write to {data}: {exc.strerror or exc}", fix)

    return _space(name, data, planned, probes, runs, "")


def _space(
    name: str,
    data: Path,
    planned: PlannedRun | None,
    probes: Probes,
    runs: list[RunInfo],
    missing: str,
) -> Check:
    if planned is not None:
        what = f"{planned.name} (at most {_days(planned.duration)})"
        est = disk.estimate(planned.duration, planned.every, planned.sample_period)
    else:
        what = f"a {_days(DEFAULT_RUN)} run (no --protocol given)"
        est = disk.estimate(DEFAULT_RUN)
    free = probes.free_space(data)
    size = f"{disk.human_bytes(est.typical)} journal"
    interrupted = [r.run_id for r in runs if r.interrupted]
    note = f"; interrupted, not resumed: {', '.join(interrupted)}" if interrupted else ""
    head = f"{missing}; {data}:" if missing else f"{data}: writable,"
    if free < est.required:
        return Check(
            name,
            Status.FAIL,
            f"{head} {disk.human_bytes(free)} free, {what} needs "
            f"{disk.human_bytes(est.required)} ({size} ×{disk.HEADROOM:g} + "
            f"{disk.human_bytes(disk.RESERVE)} reserve)",
            f"free space: `heatcycler archive --data-dir {data} --delete-after-archive` "
            "compresses finished runs 3–5×, or move data_dir to a larger disk",
        )
    detail = (
        f"{head} {disk.human_bytes(free)} free; {what} needs {size}, "
        f"≤ {disk.human_bytes(est.worst)} if every measurement were stored{note}"
    )
    if interrupted:
        fix = f"`heatcycler resume RUN`, or archive them (`heatcycler archive --data-dir {data}`)"
        return Check(name, Status.WARN, detail, fix)
    if free < est.worst + disk.RESERVE:
        fix = (
            "enough for the usual recording, not if every measurement were kept "
            "(record.every = sample_period): archive old runs"
        )
        return Check(name, Status.WARN, detail, fix)
    if missing:
        fix = "the run creates it; for the service, deploy/install.sh makes it with its owner"
        return Check(name, Status.WARN, detail, fix)
    return Check(name, Status.PASS, detail)


def _days(seconds: float) -> str:
    from controller.plan import duration_text

    return duration_text(seconds)


# ------------------------------------------------------------------------- clock


def check_clock(reader: ClockReader) -> Check:
    state = reader()
    if state.synchronised is None:
        return Check(
            "clock",
            Status.FAIL,
            f"cannot tell whether the clock is synchronised ({state.detail})",
            "install an NTP client: sudo timedatectl set-ntp true (systemd-timesyncd)",
        )
    if not state.synchronised:
        return Check(
            "clock",
            Status.FAIL,
            f"not synchronised ({state.source}: {state.detail})",
            "a Pi has no battery clock: enable NTP (sudo timedatectl set-ntp true), check "
            "the network reaches an NTP server (timedatectl timesync-status), or add an "
            "RTC; until then journal times and outage lengths are wrong",
        )
    error = f", max error {state.max_error:.3g} s" if state.max_error is not None else ""
    return Check("clock", Status.PASS, f"synchronised ({state.source}{error})")


# ------------------------------------------------------------------------ broker


async def check_broker(rig: RigConfig, probes: Probes) -> Check:
    from controller.telemetry.settings import broker_from, mqtt_config

    cfg = mqtt_config(rig, probes.mqtt_url)
    if cfg is None:
        return Check(
            "broker",
            Status.SKIP,
            "no broker configured: telemetry is journal-only",
            "add an mqtt: section to the rig file to publish telemetry",
        )
    broker = broker_from(cfg)  # UserError: password file, TLS files
    import aiomqtt

    client_id = f"{cfg.client_id or f'heatcycler-{rig.rig}'}-doctor"[:128]
    try:
        async with asyncio.timeout(probes.broker_timeout + 1):
            async with aiomqtt.Client(
                broker.host,
                broker.port,
                username=broker.username,
                password=broker.password,
                identifier=client_id,
                clean_session=True,
                keepalive=max(5, broker.keepalive),
                timeout=probes.broker_timeout,
                tls_context=broker.tls_context,
            ):
                pass
    except TimeoutError:
        return Check(
            "broker",
            Status.FAIL,
            f"{broker.url}: no answer within {probes.broker_timeout:g} s",
            "check the broker's address and port, and that a firewall lets them through",
        )
    except aiomqtt.MqttError as exc:
        return _broker_failure(broker.url, broker.tls, exc)
    except (OSError, ssl.SSLError) as exc:
        return _broker_failure(broker.url, broker.tls, exc)
    auth = f" as {broker.username}" if broker.username else " anonymously"
    tls = " over TLS (certificate verified)" if broker.tls else " without TLS"
    return Check("broker", Status.PASS, f"{broker.url}: connected{auth}{tls}")


def _broker_failure(url: str, tls: bool, exc: BaseException) -> Check:
    text = str(exc)
    low = text.lower()
    chain = exc
    while chain.__cause__ is not None or chain.__context__ is not None:
        chain = chain.__cause__ or chain.__context__  # type: ignore[assignment]
        low += " " + str(chain).lower()
    if any(w in low for w in ("not authori", "bad user", "username or password")):
        return Check(
            "broker",
            Status.FAIL,
            f"{url} refused the credentials ({text})",
            "check mqtt.username and the password (mqtt.password_file / password_env); "
            "on the broker: deploy/mosquitto/add-user.sh rig <user>",
        )
    if "certificate" in low or "ssl" in low or "tls" in low:
        return Check(
            "broker",
            Status.FAIL,
            f"{url}: TLS failed ({text})",
            "mqtt.ca_file must be the CA that signed the broker's certificate, and the "
            "URL's host must be in that certificate (deploy/mosquitto/make-certs.sh)",
        )
    if "refused" in low or "unreachable" in low or "name or service" in low:
        return Check(
            "broker",
            Status.FAIL,
            f"{url}: cannot connect ({text})",
            "is the broker running (systemctl status mosquitto) and listening on that port"
            + (" with TLS?" if tls else "?"),
        )
    return Check("broker", Status.FAIL, f"{url}: {text}", "check mqtt.url and the broker's log")


# --------------------------------------------------------------------------- SMU


async def check_smu(rig: RigConfig, probes: Probes) -> Check:
    from drivers.factory import open_source_meter

    name = "SMU"
    try:
        smu: SourceMeter = await open_source_meter(
            rig.smu, device=probes.smu_device, identify=False
        )
    except InstrumentError as exc:
        return Check(name, Status.FAIL, exc.message, exc.hint or _smu_link_fix(rig))
    try:
        try:
            ident = await smu.identify()
        except WrongInstrument as exc:
            return Check(name, Status.FAIL, exc.message, exc.hint)
        except (InstrumentTimeout, LinkLost) as exc:
            return Check(name, Status.FAIL, exc.message, _smu_link_fix(rig))
        errors = await smu.drain_errors()
    finally:
        with contextlib.suppress(Exception):
            await smu.close()
    mode = ", SCPI mode" if str(rig.smu.driver) == "keithley2450" else ""
    detail = f"{ident.vendor} {ident.model} #{ident.serial}, firmware {ident.firmware}{mode}"
    if errors:
        listed = "; ".join(f"{code} {text}" for code, text in errors[:3])
        return Check(
            name,
            Status.WARN,
            f"{detail}; its error queue held {len(errors)} error(s): {listed}",
            "read and cleared now; if they come back, check the last commands sent to it",
        )
    return Check(name, Status.PASS, detail)


def _smu_link_fix(rig: RigConfig) -> str:
    resource = rig.smu.resource
    if resource.upper().startswith("TCPIP"):
        return (
            f"check the SMU is on, its LAN settings match {resource} (MENU > "
            "Communication > LAN on a 2450) and `ping` reaches it"
        )
    if resource.upper().startswith("USB"):
        return (
            "check the USB cable, that the SMU's USB mode is USBTMC, and that the "
            "service user may open it (deploy/99-heatcycler.rules, group usbtmc)"
        )
    return "check smu.resource in the rig file"


# ----------------------------------------------------------------- heater board


async def _open_board(rig: RigConfig, probes: Probes) -> tuple[Check, HeaterBoard | None]:
    from drivers.factory import open_heater_board

    name = "heater board"
    port = rig.heater.port
    board: HeaterBoard | None = None
    try:
        board = await open_heater_board(rig.heater, device=probes.board_device, identify=False)
        ident = await board.identify()
        status = await board.status()
    except WrongInstrument as exc:
        await _close(board)
        return Check(name, Status.FAIL, exc.message, exc.hint), None
    except LinkLost as exc:
        await _close(board)
        return (
            Check(
                name,
                Status.FAIL,
                exc.message,
                "is the board plugged in? `ls -l /dev/heatcycler-heater` — the udev rule "
                "(deploy/99-heatcycler.rules) names it by its USB vendor/product/serial",
            ),
            None,
        )
    except InstrumentTimeout as exc:
        await _close(board)
        return (
            Check(
                name,
                Status.FAIL,
                f"the board does not answer ({exc.message})",
                "power-cycle the board (unplug its USB); check heater.baudrate "
                f"({rig.heater.baudrate}) matches its firmware",
            ),
            None,
        )
    except InstrumentError as exc:
        await _close(board)
        fix = exc.hint or f"check heater.port ({port})"
        return Check(name, Status.FAIL, exc.message, fix), None
    except Exception as exc:
        await _close(board)
        detail = f"unexpected {type(exc).__name__}: {exc}"
        return Check(name, Status.FAIL, detail, "report this as a bug"), None
    return _board_verdict(rig, ident.model, ident.firmware, ident.serial, status), board


async def _close(board: HeaterBoard | None) -> None:
    if board is not None:
        with contextlib.suppress(Exception):
            await board.close()


def _board_verdict(
    rig: RigConfig, model: str, firmware: str, serial: str, status: BoardStatus
) -> Check:
    name = "heater board"
    who = f"{model} #{serial}, firmware {firmware}"
    want_max, want_min = rig.safety.temperature_max, rig.safety.temperature_min
    if status.tripped:
        return Check(
            name,
            Status.FAIL,
            f"{who}: TRIPPED ({status.trip_reason}); the heater stays off",
            "find the cause (trip reasons: firmware-sim/PROTOCOL.md), then reset it: the "
            "run's start resets a board whose cause is gone, or power-cycle the board",
        )
    major = firmware.split(".", 1)[0]
    if not major.isdigit() or int(major) != BOARD_PROTOCOL:
        return Check(
            name,
            Status.FAIL,
            f"{who}: firmware {firmware} does not speak line protocol v{BOARD_PROTOCOL}",
            "flash a v1.x firmware built to firmware-sim/PROTOCOL.md",
        )
    limits = f"limits {status.limit_max:g}/{status.limit_min:g} °C"
    if not (LIMIT_FLOOR <= want_min < want_max <= LIMIT_CEILING):
        return Check(
            name,
            Status.FAIL,
            f"{who}: the rig's safety limits {want_max:g}/{want_min:g} °C are outside what "
            f"the board accepts ({LIMIT_FLOOR:g}…{LIMIT_CEILING:g} °C): setting them would trip it",
            "fix safety.temperature_max / temperature_min in the rig file",
        )
    if (status.limit_max, status.limit_min) == (want_max, want_min):
        return Check(name, Status.PASS, f"{who}, {limits} = the rig's safety limits")
    return Check(
        name,
        Status.PASS,
        f"{who}, {limits}; the rig's {want_max:g}/{want_min:g} °C are within its range "
        "and are set when a run starts",
    )


# ------------------------------------------------------------------ thermocouple


_FAULT_FIX = {
    ThermocoupleFault.OPEN: (
        "open circuit",
        "the thermocouple is unplugged or broken: check its plug at the board and the "
        "wire at the block",
    ),
    ThermocoupleFault.SHORT_GND: (
        "shorted to GND",
        "a thermocouple wire touches ground (the block?): check the insulation",
    ),
    ThermocoupleFault.SHORT_VCC: (
        "shorted to VCC",
        "a thermocouple wire touches a supply: check the wiring at the board",
    ),
}


async def check_thermocouple(rig: RigConfig, board: HeaterBoard, probes: Probes) -> Check:
    name = "thermocouple"
    first = await board.read()
    if first.faults:
        return _tc_fault(first)
    await Clock().sleep(probes.counter_wait)
    second = await board.read()
    if second.faults:
        return _tc_fault(second)
    if second.counter == first.counter:
        return Check(
            name,
            Status.FAIL,
            f"readings frozen: conversion counter stuck at {second.counter} over "
            f"{probes.counter_wait:g} s",
            "the amplifier (MAX31855) stopped converting: power-cycle the board; if it "
            "persists, check the SPI wiring between the amplifier and the microcontroller",
        )
    t, cj = second.temperature, second.cold_junction
    reading = f"{t:.2f} °C (cold junction {cj:.2f} °C), counter moving"
    low, high = rig.safety.temperature_min, rig.safety.temperature_max
    if not (low <= t <= high):
        return Check(
            name,
            Status.FAIL,
            f"{reading}: outside the rig's limits {low:g}…{high:g} °C",
            "a reading this far off is a wrong thermocouple type (type K expected), "
            "reversed polarity or a loose wire; a run would trip at once",
        )
    if not (COLD_JUNCTION_BAND[0] <= cj <= COLD_JUNCTION_BAND[1]):
        return Check(
            name,
            Status.WARN,
            f"{reading}: the board itself is at {cj:.1f} °C",
            "keep the board away from the heater block; it needs room temperature",
        )
    if second.duty == 0 and not (AMBIENT_BAND[0] <= t <= AMBIENT_BAND[1]):
        return Check(
            name,
            Status.WARN,
            f"{reading}: the heater is off but the block is not at room temperature",
            "still cooling after a run? check again later; otherwise the thermocouple may "
            "not be in the block",
        )
    return Check(name, Status.PASS, reading)


def _tc_fault(reading: ThermoReading) -> Check:
    words = []
    fix = ""
    for bit, (word, hint) in _FAULT_FIX.items():
        if reading.faults & bit:
            words.append(word)
            fix = fix or hint
    return Check(
        "thermocouple",
        Status.FAIL,
        f"fault bits {int(reading.faults):02X}: {', '.join(words)}",
        fix,
    )


def report_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False)
