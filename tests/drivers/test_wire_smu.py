"""The SMU drivers over pyvisa-py and TCP to the software rig's Keithley 2450 emulator.

Real sockets, real pyvisa-py, the driver's own worker thread: what runs on the bench.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from wire import Bench, bench

from drivers.base import (
    GarbledReply,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
    LinkLost,
    SourceFunction,
    WrongInstrument,
)
from drivers.keithley2450 import Keithley2450
from drivers.keysight_b2900 import KeysightB2900
from drivers.reconnect import Backoff, reconnect
from drivers.visa_transport import VisaTransport, resource_kwargs

pytestmark = pytest.mark.wire
CURRENT = SourceFunction.CURRENT
VOLTAGE = SourceFunction.VOLTAGE


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Bench]:
    with bench(tmp_path, resistance=100.0) as b:
        yield b


@pytest.fixture
async def smu(rig: Bench) -> AsyncIterator[Keithley2450]:
    transport = await VisaTransport.open(rig.resource, timeout=0.3)
    driver = Keithley2450(transport, current_max=0.1, voltage_max=20.0)
    yield driver
    await driver.close()


async def galvanostat(smu: Keithley2450, level: float = 1e-3, compliance: float = 2.0) -> None:
    await smu.configure(CURRENT, compliance=compliance, source_range=0.1)
    await smu.set_level(level)
    await smu.output_on()
    await smu.compliance_tripped()  # a query: the writes before it have been executed


# ------------------------------------------------------------------ the link


async def test_the_resource_is_opened_with_newline_framing_and_the_timeout(
    smu: Keithley2450,
) -> None:
    transport = smu.transport
    assert isinstance(transport, VisaTransport)
    inst = transport._inst
    assert inst.read_termination == "\n"
    assert inst.write_termination == "\n"
    assert inst.timeout == 300
    assert transport._sock is not None
    assert transport._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_usb_resources_get_usbtmc_attributes() -> None:
    kwargs = resource_kwargs("USB0::0x05E6::0x2450::04412345::INSTR", 2.0)
    assert kwargs == {
        "read_termination": "\n",
        "write_termination": "\n",
        "timeout": 2000,
        "encoding": "ascii",
        "send_end": True,
    }
    with pytest.raises(InstrumentError, match="neither"):
        resource_kwargs("COM3", 1.0)


async def test_a_usb_resource_without_pyusb_says_what_to_install() -> None:
    pytest.importorskip("pyvisa_py")
    try:
        import usb  # noqa: F401
    except ImportError:
        with pytest.raises(InstrumentError, match="cannot open") as refused:
            await VisaTransport.open("USB0::0x05E6::0x2450::04412345::INSTR", timeout=0.5)
        assert "pyusb" in refused.value.hint
        assert "@ivi" in refused.value.hint
    else:  # with pyusb and no such device: the resource is not found
        with pytest.raises(InstrumentError):
            await VisaTransport.open("USB0::0x05E6::0x2450::04412345::INSTR", timeout=0.5)


async def test_a_refused_connection_is_a_link_loss() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(LinkLost, match="connection failed"):
        await VisaTransport.open(f"TCPIP::127.0.0.1::{port}::SOCKET", timeout=0.5)


async def test_an_unknown_backend_is_named() -> None:
    with pytest.raises(InstrumentError, match="backend") as refused:
        await VisaTransport.open("TCPIP::127.0.0.1::5025::SOCKET", backend="@nope")
    assert "visa_backend" in refused.value.hint


# ------------------------------------------------------------------ identity


async def test_identify_over_tcp(smu: Keithley2450) -> None:
    ident = await smu.identify()
    assert (ident.model, ident.serial, ident.firmware) == ("MODEL 2450", "04412345", "1.7.12b")


async def test_tsp_mode_is_refused(tmp_path: Path) -> None:
    with bench(tmp_path, language="TSP") as b:
        smu = Keithley2450(await VisaTransport.open(b.resource, timeout=0.3))
        try:
            with pytest.raises(WrongInstrument, match="TSP") as refused:
                await smu.identify()
            assert "*LANG SCPI" in refused.value.hint
        finally:
            await smu.close()


async def test_a_wrong_instrument_is_refused(tmp_path: Path) -> None:
    with bench(tmp_path, language="SCPI2400") as b:  # identifies as a MODEL 2400
        smu = Keithley2450(await VisaTransport.open(b.resource, timeout=0.3))
        try:
            with pytest.raises(WrongInstrument, match="2400-emulation"):
                await smu.identify()
        finally:
            await smu.close()
    with bench(tmp_path) as b:  # a 2450 is not a B2900
        b2900 = KeysightB2900(await VisaTransport.open(b.resource, timeout=0.3))
        try:
            with pytest.raises(WrongInstrument, match="not a Keysight B2900"):
                await b2900.identify()
        finally:
            await b2900.close()


# ------------------------------------------------------------- source/measure


async def test_galvanostat_and_potentiostat_over_tcp(rig: Bench, smu: Keithley2450) -> None:
    await galvanostat(smu, 1e-3)
    first = await smu.read()
    assert first.voltage == pytest.approx(0.1, abs=2e-5)
    assert first.current == pytest.approx(1e-3, abs=2e-6)  # readback on the 100 mA range
    rig.clock.advance(2.5)
    assert (await smu.read()).time == pytest.approx(first.time + 2.5)
    await smu.configure(VOLTAGE, compliance=10e-3, source_range=1.0)
    await smu.set_level(0.25)
    await smu.output_on()
    reading = await smu.read()
    assert reading.voltage == pytest.approx(0.25, abs=1e-5)
    assert reading.current == pytest.approx(2.5e-3, abs=1e-7)
    await smu.output_off()
    fw = rig.rig.smu_firmware
    assert not fw.output
    assert fw.sources["CURRent"].offmode == fw.sources["VOLTage"].offmode == "HIMPedance"


async def test_compliance_trip_over_tcp(smu: Keithley2450) -> None:
    await galvanostat(smu, 50e-3, compliance=2.0)  # 5 V wanted, 2 V allowed
    assert await smu.compliance_tripped()
    assert (await smu.read()).voltage == pytest.approx(2.0, abs=1e-4)
    await smu.set_level(1e-3)
    assert not await smu.compliance_tripped()


async def test_an_instrument_error_is_raised_with_its_code_and_text(
    rig: Bench, smu: Keithley2450
) -> None:
    rig.rig.faults.inject("smu_error", -222)
    with pytest.raises(InstrumentReportedError) as reported:
        await smu.configure(CURRENT, compliance=2.0, source_range=1e-3)
    assert (reported.value.code, reported.value.text) == (-222, "Parameter data out of range")
    await smu.transport.write(":SOUR:CURR:BOGUS 1")
    assert await smu.drain_errors() == [(-113, "Undefined header")]


# ------------------------------------------------------------------ link faults


async def test_a_timeout_is_bounded_and_the_link_recovers(rig: Bench, smu: Keithley2450) -> None:
    await galvanostat(smu)
    rig.rig.faults.inject("smu_timeout")
    start = time.monotonic()
    with pytest.raises(InstrumentTimeout, match="no reply"):
        await smu.read()
    assert 0.25 < time.monotonic() - start < 1.0
    rig.rig.faults.clear("smu_timeout")
    assert (await smu.read()).voltage == pytest.approx(0.1, abs=2e-5)


async def test_a_late_reply_is_dropped_not_taken_for_the_next_answer(
    rig: Bench, smu: Keithley2450
) -> None:
    await galvanostat(smu, 1e-3)
    rig.smu_link.arm(b":READ?", 0.4)  # answered, but after the host's 0.3 s
    with pytest.raises(InstrumentTimeout):
        await smu.read()
    assert smu.transport.desynced
    await smu.set_level(2e-3)  # resyncs first: the late 0.1 V reply is dropped
    reading = await smu.read()
    assert reading.voltage == pytest.approx(0.2, abs=2e-5)
    assert isinstance(smu.transport, VisaTransport)
    assert smu.transport.discarded == 1
    assert not smu.transport.desynced


async def test_cancelling_a_blocked_call_keeps_the_lock_until_the_worker_returns(
    rig: Bench, smu: Keithley2450
) -> None:
    transport = smu.transport
    assert isinstance(transport, VisaTransport)
    await galvanostat(smu, 1e-3)
    rig.smu_link.arm(b":READ?", 0.2)
    task = asyncio.create_task(smu.read())
    await asyncio.sleep(0.05)  # the worker is blocked in pyvisa's read
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert transport._lock.locked()  # still the worker's: nobody may talk over it
    start = time.monotonic()
    await smu.set_level(2e-3)  # waits for the worker, which reads the reply and drops it
    assert time.monotonic() - start > 0.1
    assert transport.discarded >= 1
    assert (await smu.read()).voltage == pytest.approx(0.2, abs=2e-5)


async def test_a_blocked_instrument_does_not_block_the_event_loop(
    rig: Bench, smu: Keithley2450
) -> None:
    await galvanostat(smu)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    rig.rig.faults.inject("smu_timeout")
    with pytest.raises(InstrumentTimeout):
        await smu.read()
    task.cancel()
    assert ticks >= 15  # the loop ran on while the worker waited 0.3 s


async def test_garbage_replies_are_garbled(rig: Bench, smu: Keithley2450) -> None:
    await galvanostat(smu)
    rig.rig.faults.inject("smu_garbage")
    with pytest.raises(GarbledReply):
        await smu.read()
    rig.rig.faults.clear("smu_garbage")
    assert (await smu.read()).voltage == pytest.approx(0.1, abs=2e-5)


async def test_an_unplugged_smu_is_a_link_loss_and_reconnect_is_explicit(rig: Bench) -> None:
    transport = await VisaTransport.open(rig.resource, timeout=0.3)
    smu = Keithley2450(transport)
    await galvanostat(smu)
    rig.rig.faults.inject("smu_unplug")
    start = time.monotonic()
    with pytest.raises(LinkLost):
        await smu.read()
    assert time.monotonic() - start < 1.5  # no hang
    with pytest.raises(LinkLost):  # the driver does not reconnect behind our back
        await smu.read()
    await smu.close()

    tries: list[int] = []

    async def connect() -> Keithley2450:
        if len(tries) == 2:
            rig.rig.faults.clear("smu_unplug")  # the cable is back on the third try
        fresh = Keithley2450(await VisaTransport.open(rig.resource, timeout=0.3))
        try:
            await fresh.identify()
        except BaseException:
            await fresh.close()
            raise
        return fresh

    again = await reconnect(
        connect,
        policy=Backoff(attempts=4, initial=0.01),
        on_retry=lambda n, delay, exc: tries.append(n),
    )
    try:
        assert tries == [1, 2]
        await galvanostat(again)  # configure again after a reconnect
        assert (await again.read()).voltage == pytest.approx(0.1, abs=2e-5)
    finally:
        await again.close()
