"""The Keithley 2450 driver against the software rig's firmware, in process (same bytes).

The cell is an ohmic fixture, so every expected value is exact up to the instrument's
noise. Time is virtual: a timeout costs nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from firmware_sim.ohmic import OhmicCell
from firmware_sim.rig import SimRig

from controller.clock import VirtualTimeLoop
from drivers.base import (
    GarbledReply,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
    LinkLost,
    OutOfRange,
    SourceFunction,
    WrongInstrument,
)
from drivers.keithley2450 import Keithley2450, parse_error, range_for
from drivers.transport import InProcessTransport

CURRENT = SourceFunction.CURRENT
VOLTAGE = SourceFunction.VOLTAGE


def run(test: Callable[[SimRig, Keithley2450], Awaitable[None]], **rig_args: object) -> None:
    """Run ``test(rig, smu)`` on a virtual-time loop, with a 100 Ω cell unless told."""

    async def main() -> None:
        args: dict[str, object] = {"cell": OhmicCell(resistance=100.0), "seed": 3}
        args.update(rig_args)
        rig = SimRig(asyncio.get_running_loop().time, **args)  # type: ignore[arg-type]
        smu = Keithley2450(
            InProcessTransport(rig.smu, name="smu", timeout=2.0),
            current_max=0.1,
            voltage_max=20.0,
        )
        await test(rig, smu)

    loop = VirtualTimeLoop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


# ------------------------------------------------------------------ identity


def test_identify_checks_the_model_and_the_language() -> None:
    async def test(rig: SimRig, smu: Keithley2450) -> None:
        ident = await smu.identify()
        assert (ident.vendor, ident.model, ident.serial) == (
            "KEITHLEY INSTRUMENTS",
            "MODEL 2450",
            "04412345",
        )

    run(test)


def test_tsp_mode_is_refused_with_how_to_switch() -> None:
    async def test(rig: SimRig, smu: Keithley2450) -> None:
        with pytest.raises(WrongInstrument, match="speaks TSP") as refused:
            await smu.identify()
        assert "*LANG SCPI" in refused.value.hint
        assert "power" in refused.value.hint

    run(test, language="TSP")


def test_2400_emulation_mode_is_refused() -> None:
    async def test(rig: SimRig, smu: Keithley2450) -> None:
        with pytest.raises(WrongInstrument, match="2400-emulation") as refused:
            await smu.identify()
        assert "*LANG SCPI" in refused.value.hint

    run(test, language="SCPI2400")


# ------------------------------------------------------------------ configure


def test_configure_sets_everything_without_a_reset_and_high_impedance_for_both() -> None:
    async def test(rig: SimRig, smu: Keithley2450) -> None:
        fw = rig.smu_firmware
        fw.precision = 5  # a setting *RST would undo: configure must not reset
        await smu.configure(CURRENT, compliance=2.5, source_range=2e-3, nplc=2.0)
        assert fw.precision == 5
        assert fw.source_function == "CURRent"
        assert fw.sources["CURRent"].range == 10e-3  # the smallest range that holds 2 mA
        assert not fw.sources["CURRent"].autorange
        assert fw.sources["CURRent"].limit == 2.5
        assert fw.sense_function == "VOLTage"
        assert fw.senses["VOLTage"].rsense
        assert fw.senses["CURRent"].rsense
        assert fw.senses["VOLTage"].nplc == 2.0
        assert fw.sources["CURRent"].offmode == "HIMPedance"
        assert fw.sources["VOLTage"].offmode == "HIMPedance"
        assert not fw.output
        assert smu.range == 10e-3

    run(test)


def test_out_of_range_requests_raise_before_anything_is_sent() -> None:
    async def test(rig: SimRig, smu: Keithley2450) -> None:
        sent = rig.smu.requests
        with pytest.raises(OutOfRange, match="compliance") as high:
            await smu.configure(CURRENT, compliance=25.0, source_range=1e-3)
        assert "smu.voltage_max" in high.value.hint
        with pytest.raises(OutOfRange):
            await smu.configure(VOLTAGE, compliance=0.5, source_range=1.0)  # rig: 0.1 A
        with pytest.raises(OutOfRange):
            await smu.configure(CURRENT, compliance=1.0, source_range=2.0)  # no 2 A range
        with pytest.raises(OutOfRange):
            await smu.configure(CURRENT, compliance=0.01, source_range=1e-3)  # VLIM ≥ 20 mV
        with pytest.raises(OutOfRange, match="NPLC"):
            await smu.configure(CURRENT, compliance=1.0, source_range=1e-3, nplc=20)
        assert rig.smu.requests == sent
        with pytest.raises(InstrumentError, match="not configured"):
            await smu.set_level(1e-3)
        await smu.configure(CURRENT, compliance=1.0, source_range=1e-3)
        sent = rig.smu.requests
        for level in (1.06e-3, -2e-3, float("nan"), float("inf")):
            with pytest.raises(OutOfRange):
                await smu.set_level(level)  # beyond 105 % of the 1 mA range: not clipped
        assert rig.smu.requests == sent
        await smu.set_level(-1.05e-3)
        assert rig.smu_firmware.sources["CURRent"].level == pytest.approx(-1.05e-3)

    run(test)


def test_the_rig_limit_caps_the_level_below_the_range() -> None:
    async def test(rig: SimRig, smu: Keithley2450) -> None:
        await smu.configure(CURRENT, compliance=1.0, source_range=1.0)  # the 1 A range
        with pytest.raises(OutOfRange, match="current_max"):
            await smu.set_level(0.2)  # the rig allows 0.1 A

    run(test)


def test_an_error_in_the_queue_after_setup_is_raised_with_code_and_text() -> None:
    async def test(rig: SimRig, smu: Keithley2450) -> None:
        rig.faults.inject("smu_error", -221)
        with pytest.raises(InstrumentReportedError) as reported:
            await smu.configure(CURRENT, compliance=1.0, source_range=1e-3)
        assert reported.value.code == -221
        assert reported.value.text == "Settings conflict"
        assert smu.function is None  # not trusted until a clean setup
        await smu.configure(CURRENT, compliance=1.0, source_range=1e-3)  # queue is empty now
        assert smu.function is CURRENT

    run(test)


def test_drain_errors_reads_the_queue_dry() -> None:
    async def test(rig: SimRig, smu: Keithley2450) -> None:
        assert await smu.drain_errors() == []
        await smu.transport.write(":BOGUS")
        rig.faults.inject("smu_error", -200)
        assert await smu.drain_errors() == [(-113, "Undefined header"), (-200, "Execution error")]
        assert await smu.drain_errors() == []

    run(test)


def test_parse_error_and_range_for() -> None:
    assert parse_error('-113,"Undefined header;1;2026/01/01 00:00:12.250"') == (
        -113,
        "Undefined header",
    )
    assert parse_error('+0,"No error"') == (0, "No error")
    with pytest.raises(GarbledReply):
        parse_error("x,y")
    with pytest.raises(GarbledReply):
        parse_error("12")
    assert range_for(2e-3, (1e-3, 10e-3)) == 10e-3
    assert range_for(1e-3, (1e-3, 10e-3)) == 1e-3
    with pytest.raises(OutOfRange):
        range_for(0.1, (1e-3, 10e-3))


# ------------------------------------------------------------- source/measure


def test_galvanostat_reads_voltage_current_and_time_in_one_query() -> None:
    async def test(rig: SimRig, smu: Keithley2450) -> None:
        await smu.configure(CURRENT, compliance=2.0, source_range=1e-3)
        await smu.set_level(1e-3)
        await smu.output_on()
        sent = rig.smu.requests
        first = await smu.read()
        assert rig.smu.requests == sent + 1
        assert first.voltage == pytest.approx(0.1, abs=2e-5)  # 4-wire: the leads do not add
        assert first.current == pytest.approx(1e-3, abs=5e-9)
        await asyncio.sleep(5.0)
        later = await smu.read()
        assert later.time - first.time == pytest.approx(5.0)
        assert not await smu.compliance_tripped()
        await smu.set_level(-0.5e-3)
        assert (await smu.read()).voltage == pytest.approx(-0.05, abs=2e-5)

    run(test)


def test_two_wire_sense_adds_the_leads() -> None:
    async def test(rig: SimRig, smu: Keithley2450) -> None:
        await smu.configure(CURRENT, compliance=2.0, source_range=1e-3, remote_sense=False)
        await smu.set_level(1e-3)
        await smu.output_on()
        assert (await smu.read()).voltage == pytest.approx(0.1002, abs=2e-5)

    run(test)


def test_potentiostat_maps_the_reading_the_other_way_round() -> None:
    async def test(rig: SimRig, smu: Keithley2450) -> None:
        await smu.configure(VOLTAGE, compliance=10e-3, source_range=0.5)
        assert smu.range == 2.0
        await smu.set_level(0.5)
        await smu.output_on()
        reading = await smu.read()
        assert reading.voltage == pytest.approx(0.5, abs=1e-5)
        assert reading.current == pytest.approx(5e-3, abs=1e-7)

    run(test)


def test_compliance_trip_in_both_modes() -> None:
    async def test(rig: SimRig, smu: Keithley2450) -> None:
        await smu.configure(CURRENT, compliance=2.0, source_range=0.1)
        await smu.set_level(50e-3)  # 5 V across 100 Ω > 2 V
        await smu.output_on()
        reading = await smu.read()
        assert reading.voltage == pytest.approx(2.0, abs=1e-4)
        assert reading.current == pytest.approx(20e-3, abs=1e-6)
        assert await smu.compliance_tripped()
        await smu.configure(VOLTAGE, compliance=1e-3, source_range=2.0)
        await smu.set_level(1.0)
        await smu.output_on()
        assert await smu.compliance_tripped()
        assert (await smu.read()).current == pytest.approx(1e-3, abs=1e-8)

    run(test)


def test_open_leads_run_the_source_into_compliance() -> None:
    async def test(rig: SimRig, smu: Keithley2450) -> None:
        await smu.configure(CURRENT, compliance=3.0, source_range=1e-3)
        await smu.set_level(1e-3)
        await smu.output_on()
        assert not await smu.compliance_tripped()
        rig.faults.inject("smu_compliance")
        assert await smu.compliance_tripped()
        assert (await smu.read()).voltage == pytest.approx(3.0, abs=1e-4)

    run(test)


def test_output_off_is_high_impedance_even_after_a_power_cycle() -> None:
    async def test(rig: SimRig, smu: Keithley2450) -> None:
        cell = rig.cell
        assert isinstance(cell, OhmicCell)
        await smu.configure(CURRENT, compliance=2.0, source_range=1e-3)
        await smu.set_level(0.0)
        await smu.output_on()
        await smu.output_off()
        await asyncio.sleep(600.0)
        rig.sync()
        assert cell.charge == 0.0  # the relay is open: nothing flows out of the cell
        rig.smu_firmware.power_cycle()  # someone switched it off and on: NORMal again
        assert rig.smu_firmware.sources["CURRent"].offmode == "NORMal"
        await smu.output_off()
        assert rig.smu_firmware.sources["CURRent"].offmode == "HIMPedance"
        assert rig.smu_firmware.sources["VOLTage"].offmode == "HIMPedance"

    run(test, cell=OhmicCell(resistance=100.0, ocv=0.5, capacitance=10.0))


# ------------------------------------------------------------------ link faults


def test_a_timeout_then_the_link_resynchronises_before_the_next_request() -> None:
    async def test(rig: SimRig, smu: Keithley2450) -> None:
        await smu.configure(CURRENT, compliance=2.0, source_range=1e-3)
        await smu.set_level(1e-3)
        await smu.output_on()
        rig.faults.inject("smu_timeout")
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(InstrumentTimeout):
            await smu.read()
        assert loop.time() - start == pytest.approx(2.0)  # the call's timeout, no more
        assert smu.transport.desynced
        rig.faults.clear("smu_timeout")
        sent = rig.smu.requests
        assert (await smu.read()).voltage == pytest.approx(0.1, abs=2e-5)
        assert rig.smu.requests == sent + 2  # the marker query, then the reading
        assert not smu.transport.desynced

    run(test)


def test_garbage_replies_are_garbled_not_numbers() -> None:
    async def test(rig: SimRig, smu: Keithley2450) -> None:
        await smu.configure(CURRENT, compliance=2.0, source_range=1e-3)
        await smu.output_on()
        rig.faults.inject("smu_garbage")
        with pytest.raises(GarbledReply):
            await smu.read()
        with pytest.raises(GarbledReply):  # the resync marker is garbage too
            await smu.compliance_tripped()
        rig.faults.clear("smu_garbage")
        assert not await smu.compliance_tripped()
        assert (await smu.read()).current == pytest.approx(0.0, abs=1e-8)

    run(test)


def test_an_unplugged_smu_is_a_link_loss() -> None:
    async def test(rig: SimRig, smu: Keithley2450) -> None:
        await smu.identify()
        rig.faults.inject("smu_unplug")
        with pytest.raises(LinkLost):
            await smu.identify()

    run(test)


def test_found_sourcing_asks_the_instrument_not_the_driver() -> None:
    """After a crash a new driver has configured nothing: it must still learn that the
    SMU was left sourcing (an SMU has no lease)."""

    async def test(rig: SimRig, smu: Keithley2450) -> None:
        assert await smu.found_sourcing() is None  # output off after power-up
        await smu.configure(CURRENT, compliance=2.0, source_range=1e-3)
        await smu.set_level(-0.75e-3)
        await smu.output_on()
        fresh = Keithley2450(smu.transport, current_max=0.1, voltage_max=20.0)
        assert await fresh.found_sourcing() == (CURRENT, pytest.approx(-0.75e-3))
        await smu.output_off()
        assert await fresh.found_sourcing() is None

    run(test)
