"""Every safety check, with its fault injected into the software rig.

Each test asserts that the safe state is *reached on the rig* within a stated bound after
the fault — the board's SSR command at 0 and the SMU's output relay open in high impedance
— and that the trip (check, value, limit, setting) and the safe-state action are in the
run journal. Bounds (period 1 s, defaults of DESIGN.md):

| check | bound after the fault |
|---|---|
| thermocouple fault bits (3 reads at 4 Hz) | ≤ 2 s |
| hard maximum / minimum | ≤ 1 period after the reading crosses |
| stale (frozen counter, dead loop) | ≤ stale_after + 1 period |
| board silent / unplugged (2 missed reads) | ≤ 2 periods + board timeout + 1 s |
| SMU silent (2 missed reads, runner-fed) | ≤ 2 × (sample period + SMU timeout) |
| heating too slowly | ≤ heating_within + 30 s |
| heating while off | ≤ heating_while_off_after + 3 K at the rate + 2 s |
| runaway while holding | ≤ 60 s (loss ×10 at 160 °C) |
| overshoot | ≤ 20 s (stuck SSR at 160 °C) |
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from thermal_bench import Bench, run_bench

from controller.thermal.supervisor import Trip


async def _hold_at(bench: Bench, target: float) -> None:
    """Heat to ``target`` at the rig's maximum ramp and settle for 2 min."""
    await bench.hold(target, 0.5, 120.0, within=3600.0)


def _journaled(bench: Bench, check: str) -> None:
    events = bench.events()
    trips = [e for e in events if e.kind == "trip"]
    assert len(trips) == 1, [e.message for e in events]
    assert trips[0].data["check"] == check
    assert trips[0].severity == "fault"
    assert trips[0].data["setting"].startswith("safety.")
    assert "rig setting" in trips[0].message
    safe = [e for e in events if e.kind == "safe_state"]
    assert safe, "no safe-state event"
    assert safe[0].data["source"] == f"safety:{check}"


async def _safe_within(bench: Bench, since: float, bound: float) -> Trip:
    """The trip and the rig's safe state (heater command 0, SMU off in HIMP) by the bound."""
    trip = await asyncio.wait_for(bench.supervisor.wait(), bound + 5.0)
    assert trip.t - since <= bound, f"{trip.check} after {trip.t - since:.2f} s > {bound} s"
    await bench.until(lambda: bench.heater_commanded() == 0.0 and bench.smu_safe(), 1.0)
    assert bench.now - since <= bound + 1.0
    return trip


@pytest.mark.parametrize("kind", ["tc_open", "tc_short_gnd", "tc_short_vcc"])
def test_thermocouple_fault_bits_trip_within_2_s(tmp_path: Path, kind: str) -> None:
    async def test(bench: Bench) -> None:
        await bench.smu_on()
        await _hold_at(bench, 125.0)
        await asyncio.sleep(0.37)  # between two ticks
        t0 = bench.now
        bench.rig.faults.inject(kind)
        trip = await _safe_within(bench, t0, 2.0)
        assert trip.check == "thermocouple"
        assert trip.limit == 3
        assert "safety.thermocouple_fault_reads" in trip.message
        _journaled(bench, "thermocouple")

    run_bench(test, tmp_path)


def test_hard_maximum(tmp_path: Path) -> None:
    # a welded SSR at 160 degC with the overshoot and heating-while-off checks relaxed:
    # only the hard maximum is left to catch it
    limits = {
        "overshoot_instant": "40 degC",
        "overshoot_sustained": "40 degC",
        "heating_while_off_rise": "60 degC",
    }

    async def test(bench: Bench) -> None:
        await bench.smu_on()
        await _hold_at(bench, 160.0)
        bench.rig.faults.inject("heater_stuck_on")
        await bench.until(lambda: (bench.loop.temperature or 0) > 185.0, 120.0, step=0.1)
        trip = await _safe_within(bench, bench.now, 1.0)
        assert trip.check == "temperature_max"
        assert trip.value is not None
        assert 185.0 < trip.value < 187.0
        assert trip.limit == 185.0
        assert "safety.temperature_max" in trip.message
        _journaled(bench, "temperature_max")

    run_bench(test, tmp_path, limits=limits)


def test_minimum_broken_wire(tmp_path: Path) -> None:
    # thermocouple wires touching near the board read the board's own temperature; in a
    # cold room that is below the minimum
    async def test(bench: Bench) -> None:
        await bench.smu_on()
        bench.loop.set_target(60.0)
        await asyncio.sleep(30.0)
        bench.rig.faults.inject("ambient", 0.0)
        t0 = bench.now
        bench.rig.faults.inject("tc_shorted")
        trip = await _safe_within(bench, t0, 1.5)
        assert trip.check == "temperature_min"
        assert trip.value is not None
        assert trip.value < 5.0
        assert "safety.temperature_min" in trip.message
        _journaled(bench, "temperature_min")

    run_bench(test, tmp_path)


def test_frozen_readings_are_stale(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        await bench.smu_on()
        await _hold_at(bench, 125.0)
        t0 = bench.now
        bench.rig.faults.inject("frozen")
        limit = bench.config.safety.stale_after
        trip = await _safe_within(bench, t0, limit + bench.config.heater.period)
        assert trip.check == "stale"
        assert "frozen" in trip.message
        assert "safety.stale_after" in trip.message
        _journaled(bench, "stale")

    run_bench(test, tmp_path)


def test_a_dead_loop_is_caught_by_the_watchdog(tmp_path: Path) -> None:
    """The loop task dies (a bug, a hang): the supervisor's own task trips on staleness."""

    async def test(bench: Bench) -> None:
        await bench.smu_on()
        await _hold_at(bench, 125.0)
        task = bench.loop._task
        assert task is not None
        t0 = bench.now
        task.cancel()  # the loop is gone; the watchdog is not
        trip = await _safe_within(bench, t0, bench.config.safety.stale_after + 1.0)
        assert trip.check == "stale"
        assert "no temperature reading" in trip.message
        _journaled(bench, "stale")

    run_bench(test, tmp_path)


@pytest.mark.parametrize("kind", ["board_silent", "serial_unplug"])
def test_silent_or_unplugged_board(tmp_path: Path, kind: str) -> None:
    async def test(bench: Bench) -> None:
        await bench.smu_on()
        await _hold_at(bench, 125.0)
        t0 = bench.now
        bench.rig.faults.inject(kind)
        period, timeout = bench.config.heater.period, 0.5
        missed = bench.config.safety.missed_reads
        trip = await asyncio.wait_for(bench.supervisor.wait(), 10.0)
        assert trip.check == "board_silent"
        assert trip.t - t0 <= missed * period + timeout + 1.0
        assert "safety.missed_reads" in trip.message
        # the host cannot reach the board: its lease runs out on its own; the SMU is off
        lease = bench.config.heater.lease
        await bench.until(lambda: bench.heater_commanded() == 0.0, lease + 1.0)
        assert bench.now - t0 <= lease + 1.0
        assert bench.smu_safe()
        report = bench.safe.last
        assert report is not None
        assert report.heater_error is not None
        assert report.smu_error is None
        _journaled(bench, "board_silent")

    run_bench(test, tmp_path)


def test_silent_smu(tmp_path: Path) -> None:
    """The runner samples the SMU every second and reports each read to the supervisor."""

    async def test(bench: Bench) -> None:
        await bench.smu_on()
        await _hold_at(bench, 125.0)

        async def sampling() -> None:
            while True:
                try:
                    await bench.smu.read()
                except Exception as exc:
                    bench.supervisor.smu_read_failed(exc)
                else:
                    bench.supervisor.smu_read_ok()
                await asyncio.sleep(1.0)

        sampler = asyncio.ensure_future(sampling())
        await asyncio.sleep(5.0)
        assert bench.supervisor.trip is None
        t0 = bench.now
        bench.rig.faults.inject("smu_timeout")
        trip = await asyncio.wait_for(bench.supervisor.wait(), 20.0)
        sampler.cancel()
        assert trip.check == "smu_silent"
        assert trip.t - t0 <= 2 * (1.0 + 2.0)
        assert "safety.missed_reads" in trip.message
        # heater half done on the rig; the silent SMU could not confirm and says so
        await bench.until(lambda: bench.heater_commanded() == 0.0, 1.0)
        report = bench.safe.last
        assert report is not None
        assert report.heater_error is None
        assert report.smu_error is not None
        assert bench.rig.smu_firmware.output  # a hung SMU executes nothing: reported, not hidden
        _journaled(bench, "smu_silent")
        [safe] = [e for e in bench.events() if e.kind == "safe_state"]
        assert safe.severity == "fault"
        assert "SMU NOT CONFIRMED OFF" in safe.message

    run_bench(test, tmp_path)


def test_dead_heater_during_the_heat_up_is_heating_too_slowly(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        await bench.smu_on()
        bench.loop.set_target(160.0)
        await asyncio.sleep(60.0)
        assert bench.loop.temperature is not None
        assert bench.loop.temperature > 35.0
        t0 = bench.now
        bench.rig.faults.inject("heater_dead")
        within = bench.config.safety.heating_within
        trip = await _safe_within(bench, t0, within + 30.0)
        assert trip.check == "heating_too_slow"
        assert trip.t - t0 >= within  # not before the time it is given
        assert "safety.heating_rise" in trip.message
        assert "safety.heating_within" in trip.message
        _journaled(bench, "heating_too_slow")

    run_bench(test, tmp_path)


def test_stuck_ssr_with_the_heater_off_is_heating_while_off(tmp_path: Path) -> None:
    """Nothing asks for heat, yet the block warms (welded SSR, or a self-heating cell)."""

    async def test(bench: Bench) -> None:
        await bench.smu_on()
        await asyncio.sleep(30.0)
        assert bench.loop.setpoint is None
        assert bench.loop.duty == 0.0
        t0 = bench.now
        bench.rig.faults.inject("heater_stuck_on")
        limits = bench.config.safety
        bound = limits.heating_while_off_after + limits.heating_while_off_rise / 0.9 + 2.0
        trip = await _safe_within(bench, t0, bound)
        assert trip.check == "heating_while_off"
        assert trip.value is not None
        assert trip.value >= limits.heating_while_off_rise
        assert "safety.heating_while_off_rise" in trip.message
        assert "stuck SSR" in trip.message
        _journaled(bench, "heating_while_off")

    run_bench(test, tmp_path)


def test_stuck_ssr_while_holding_is_caught_as_heating_while_off(tmp_path: Path) -> None:
    """With the overshoot limit relaxed, the loop's duty 0 and a rising block trip."""

    async def test(bench: Bench) -> None:
        await bench.smu_on()
        await _hold_at(bench, 125.0)
        t0 = bench.now
        bench.rig.faults.inject("heater_stuck_on")
        trip = await _safe_within(bench, t0, 20.0)
        assert trip.check == "heating_while_off"
        _journaled(bench, "heating_while_off")

    relaxed = {"overshoot_instant": "30 degC", "overshoot_sustained": "30 degC"}
    run_bench(test, tmp_path, limits=relaxed)


def test_stuck_ssr_while_holding_overshoots(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        await bench.smu_on()
        await _hold_at(bench, 160.0)
        t0 = bench.now
        bench.rig.faults.inject("heater_stuck_on")
        trip = await _safe_within(bench, t0, 20.0)
        assert trip.check == "overshoot"
        assert trip.limit == 10.0
        assert trip.value is not None
        assert trip.value > 10.0
        assert "safety.overshoot_instant" in trip.message
        _journaled(bench, "overshoot")
        # the safe state holds the SSR command at 0; a welded SSR needs the rig's thermal
        # fuse — the board's own overtemp trip latches at its limit too
        assert bench.rig.board_firmware.output_duty() == 0.0

    run_bench(test, tmp_path)


def test_overshoot_is_watched_again_once_a_cool_down_has_arrived(tmp_path: Path) -> None:
    """Overshoot is not checked while the block coasts down to a lower target — but once
    it holds there, a stuck SSR is an overshoot again."""

    async def test(bench: Bench) -> None:
        await bench.smu_on()
        await _hold_at(bench, 100.0)
        bench.loop.set_target(90.0, 2 / 60)  # slower than it cools: the PID tracks the ramp
        await asyncio.sleep(5 * 60 + 120.0)
        assert bench.loop.mode == "pid"
        assert bench.loop.setpoint == 90.0
        t0 = bench.now
        bench.rig.faults.inject("heater_stuck_on")
        trip = await _safe_within(bench, t0, 20.0)
        assert trip.check == "overshoot"
        _journaled(bench, "overshoot")

    run_bench(test, tmp_path)


def test_sustained_overshoot(tmp_path: Path) -> None:
    """A hot room (or a neighbour's heat) holds the block 5–10 K above the setpoint."""

    async def test(bench: Bench) -> None:
        await bench.smu_on()
        await _hold_at(bench, 60.0)
        bench.rig.faults.inject("ambient", 67.5)
        await bench.until(lambda: (bench.loop.temperature or 0) > 65.0, 7200.0, step=1.0)
        t0 = bench.now  # first reading beyond setpoint + 5 K
        limits = bench.config.safety
        trip = await _safe_within(bench, t0, limits.overshoot_for + 2.0)
        assert trip.check == "overshoot_sustained"
        assert trip.t - t0 >= limits.overshoot_for - 1.0
        assert trip.value is not None
        assert 4.5 < trip.value < 10.0
        assert "safety.overshoot_for" in trip.message
        _journaled(bench, "overshoot_sustained")

    run_bench(test, tmp_path)


def test_runaway_while_holding(tmp_path: Path) -> None:
    """The block loses more heat than the heater gives (insulation gone, a draught)."""

    async def test(bench: Bench) -> None:
        await bench.smu_on()
        await _hold_at(bench, 160.0)
        t0 = bench.now
        bench.rig.faults.inject("loss", 10.0)
        trip = await _safe_within(bench, t0, 60.0)
        assert trip.check == "runaway"
        assert trip.value is not None
        assert trip.value > 300.0
        assert "safety.runaway_integral" in trip.message
        assert bench.loop.temperature is not None
        assert bench.loop.temperature < 157.0
        _journaled(bench, "runaway")

    run_bench(test, tmp_path)


def test_a_board_that_latched_its_own_trip(tmp_path: Path) -> None:
    """A brief thermocouple glitch trips the board (3 conversions) but not the host's
    check (one faulty read): the next lease is refused, and that is a trip too."""

    async def test(bench: Bench) -> None:
        await bench.smu_on()
        await _hold_at(bench, 125.0)
        await asyncio.sleep(0.5)
        t0 = bench.now
        bench.rig.faults.inject("tc_open", duration=0.4)
        trip = await _safe_within(bench, t0, 2.0)
        assert trip.check in ("board_trip", "thermocouple")
        assert bench.rig.board_firmware.trip == "tcfault"
        events = bench.events()
        assert [e for e in events if e.kind == "trip"]

    run_bench(test, tmp_path)


def test_trips_latch_and_refuse_new_setpoints(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        await _hold_at(bench, 125.0)
        bench.rig.faults.inject("tc_open")
        first = await asyncio.wait_for(bench.supervisor.wait(), 5.0)
        bench.rig.faults.inject("heater_stuck_on")  # another check would fire now…
        await asyncio.sleep(30.0)
        assert bench.supervisor.trip is first  # …but the first trip is the trip
        from controller.thermal.loop import SetpointRefused

        with pytest.raises(SetpointRefused, match="tripped"):
            bench.loop.set_target(125.0)
        assert bench.loop.setpoint is None
        assert bench.loop.duty == 0.0
        assert len([e for e in bench.events() if e.kind == "trip"]) == 1

    run_bench(test, tmp_path)


def test_limits_from_the_rig_file_are_used(tmp_path: Path) -> None:
    """A rig that tightens a limit trips at its own value, and says which setting."""

    async def test(bench: Bench) -> None:
        await bench.smu_on()
        await _hold_at(bench, 125.0)
        bench.rig.faults.inject("heater_stuck_on")
        trip = await asyncio.wait_for(bench.supervisor.wait(), 60.0)
        assert trip.check == "overshoot"
        assert trip.limit == 3.0
        assert trip.value is not None
        assert 3.0 < trip.value < 4.5
        assert "limit +3 K" in trip.message

    run_bench(test, tmp_path, limits={"overshoot_instant": "3 degC"})


def test_no_reading_is_nan_safe(tmp_path: Path) -> None:
    """Fault bits give NaN readings; the loop sends duty 0 for them, never NaN."""

    async def test(bench: Bench) -> None:
        await _hold_at(bench, 125.0)
        bench.rig.faults.inject("tc_open")
        await asyncio.wait_for(bench.supervisor.wait(), 5.0)
        assert bench.loop.reading is not None
        assert math.isnan(bench.loop.reading.temperature)
        assert bench.loop.duty == 0.0
        assert bench.loop.temperature is not None
        assert not math.isnan(bench.loop.temperature)

    run_bench(test, tmp_path)
