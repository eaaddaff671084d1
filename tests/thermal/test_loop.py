"""The thermal loop on the software rig: normal operation trips nothing, leases, soaks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from thermal_bench import Bench, run_bench

from controller.thermal.loop import SetpointRefused


def test_heat_up_therapy_hold_and_cool_down_trip_nothing(tmp_path: Path) -> None:
    """The heat-therapy profile: 25 → 125 °C (5 degC/min), 125 → 160 °C (rig maximum),
    the 6 h hold at 160 °C, a 50 % heat-loss step while holding, 160 → 125 °C (2 degC/min)
    — with the supervisor at DESIGN.md's defaults and a live cell channel."""

    async def test(bench: Bench) -> None:
        await bench.smu_on()
        lease = bench.config.heater.lease
        worst: dict[str, float] = {"lease": lease, "error": 0.0}

        async def watch() -> None:  # what the board sees, between the loop's ticks
            while True:
                await asyncio.sleep(0.5)
                bench.rig.sync()
                left = bench.rig.board_firmware.lease_left()
                if bench.loop.setpoint is not None:
                    worst["lease"] = min(worst["lease"], left)
                assert left <= lease

        watcher = asyncio.ensure_future(watch())
        bench.loop.set_target(125.0, 5 / 60)
        soak = bench.loop.soak(0.5, 600.0)
        await asyncio.wait_for(soak.wait(), 3 * 3600)
        assert soak.entered is not None
        assert soak.entered > 100 / (5 / 60) - 60  # the ramp took its time
        await bench.hold(160.0, 0.5, 3 * 3600.0, within=4 * 3600.0)
        bench.rig.faults.inject("loss", 1.5, duration=1800.0)
        await bench.hold(160.0, 0.5, 3 * 3600.0, within=4 * 3600.0)
        bench.loop.set_target(125.0, 2 / 60)
        lowest = 200.0
        for _ in range(3600):
            await asyncio.sleep(1.0)
            assert bench.loop.temperature is not None
            lowest = min(lowest, bench.loop.temperature)
        watcher.cancel()
        assert bench.supervisor.trip is None
        assert lowest >= 125.0 - 1.0
        assert bench.loop.in_band(0.5)
        # every period the lease was refreshed: it never ran below 3 s minus a period
        assert worst["lease"] >= lease - bench.config.heater.period - 0.5
        assert not [e for e in bench.events() if e.kind in ("trip", "safe_state")]
        assert bench.rig.smu_firmware.output  # nothing switched the cell off

    run_bench(test, tmp_path)


def test_full_power_approach_on_a_fast_rig_trips_nothing(tmp_path: Path) -> None:
    """A rig that allows any heating rate: full power, then PID near 160 °C."""

    async def test(bench: Bench) -> None:
        modes: set[str] = set()
        highest = 0.0
        bench.loop.set_target(160.0)
        for _ in range(900):
            await asyncio.sleep(1.0)
            modes.add(bench.loop.mode)
            highest = max(highest, bench.loop.temperature or 0.0)
        assert {"full", "pid"} <= modes
        assert bench.supervisor.trip is None
        assert highest - 160.0 <= 1.0
        assert bench.loop.in_band(0.5)

    run_bench(test, tmp_path, heater={"max_ramp_up": "600 degC/min"})


def test_the_duty_is_a_lease_refreshed_every_period(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        bench.loop.set_target(100.0)
        await asyncio.sleep(30.0)
        requests = bench.rig.board.requests
        ticks = bench.loop.ticks
        await asyncio.sleep(60.0)
        assert bench.loop.ticks - ticks == 60
        assert bench.rig.board.requests - requests == 2 * 60  # T? and DUTY each period
        bench.rig.sync()
        assert 0 < bench.rig.board_firmware.lease_left() <= bench.config.heater.lease
        assert bench.heater_commanded() > 0.0

    run_bench(test, tmp_path)


def test_cancelling_the_loop_turns_the_heater_off_at_once(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        bench.loop.set_target(160.0)
        await asyncio.sleep(60.0)
        assert bench.heater_commanded() > 0.25  # ramping at 20 degC/min
        await bench.loop.stop()
        assert bench.heater_commanded() == 0.0  # not after the lease: now
        assert bench.loop.setpoint is None

    run_bench(test, tmp_path)


def test_soak_time_counts_only_inside_the_band(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        await bench.hold(125.0, 0.5, 60.0, within=3600.0)
        soak = bench.loop.soak(0.5, 900.0)
        await asyncio.sleep(300.0)
        assert soak.elapsed == pytest.approx(300.0, abs=1.0)
        bench.rig.faults.inject("heater_dead", duration=25.0)  # out of the band for a while
        start = bench.now
        await asyncio.wait_for(soak.wait(), 3600.0)
        took = bench.now - start
        assert soak.elapsed == pytest.approx(900.0, abs=1.0)
        assert took > 600.0 + 20.0  # the time outside did not count
        assert bench.supervisor.trip is None

    run_bench(test, tmp_path)


def test_a_resumed_soak_carries_its_time_over(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        await bench.hold(80.0, 0.5, 10.0, within=3600.0)
        soak = bench.loop.soak(0.5, 600.0, elapsed=540.0)
        start = bench.now
        await asyncio.wait_for(soak.wait(), 600.0)
        assert bench.now - start == pytest.approx(60.0, abs=1.5)
        assert bench.loop.soak(0.5, 60.0, elapsed=60.0).done

    run_bench(test, tmp_path)


def test_setpoints_beyond_the_rig_limits_are_refused(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        with pytest.raises(SetpointRefused, match=r"safety\.setpoint_max"):
            bench.loop.set_target(175.0)
        with pytest.raises(SetpointRefused, match=r"safety\.temperature_min"):
            bench.loop.set_target(0.0)
        bench.loop.set_target(170.0)  # the cap itself is allowed
        assert bench.loop.target == 170.0

    run_bench(test, tmp_path)


def test_one_garbled_read_is_tolerated(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        await bench.hold(100.0, 0.5, 60.0, within=3600.0)
        bench.rig.faults.inject("board_crc", 3)  # one read fails after its retries
        await asyncio.sleep(10.0)
        assert bench.loop.read_errors == 1
        assert bench.supervisor.trip is None
        assert bench.loop.in_band(0.5)

    run_bench(test, tmp_path)


def test_the_safe_state_turns_the_loop_off(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        await bench.smu_on()
        bench.loop.set_target(100.0)
        await asyncio.sleep(30.0)
        report = await bench.safe.engage("operator abort", source="runner")
        assert report.complete
        assert bench.loop.setpoint is None
        await asyncio.sleep(5.0)  # the loop keeps ticking, at duty 0
        assert bench.heater_commanded() == 0.0
        assert bench.smu_safe()
        assert bench.loop.temperature is not None

    run_bench(test, tmp_path)


def test_prepare_sets_the_boards_limits_and_refuses_a_tripped_board(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        fw = bench.rig.board_firmware
        assert (fw.limit_max, fw.limit_min) == (185.0, 5.0)  # from safety.temperature_max/min
        bench.rig.faults.inject("tc_open")
        await asyncio.wait_for(bench.supervisor.wait(), 5.0)
        bench.rig.faults.clear("tc_open")
        from drivers.base import BoardTripped

        with pytest.raises(BoardTripped, match="tcfault"):
            await bench.loop.prepare()

    run_bench(test, tmp_path)
