"""The one safe-state action: idempotent, bounded, never raising, half done when half dead."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from thermal_bench import Bench, run_bench

from controller.safe_state import SafeState


def test_heater_off_and_smu_off_in_high_impedance(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        await bench.smu_on()
        bench.loop.set_target(120.0)
        await asyncio.sleep(20.0)
        assert bench.heater_commanded() > 0.0
        report = await bench.safe.engage("normal end", source="runner")
        assert report.complete
        assert report.reason == "normal end"
        assert bench.heater_commanded() == 0.0
        assert bench.smu_safe()
        [event] = [e for e in bench.events() if e.kind == "safe_state"]
        assert event.severity == "info"
        assert "runner: normal end" in event.message
        assert event.data["heater_error"] is None
        assert event.data["smu_error"] is None

    run_bench(test, tmp_path)


def test_idempotent_and_serialised(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        await bench.smu_on()
        first, second = await asyncio.gather(
            bench.safe.engage("abort", source="mqtt"), bench.safe.engage("signal", source="signal")
        )
        third = await bench.safe.engage("normal end")
        assert first.complete and second.complete and third.complete  # noqa: PT018
        assert bench.heater_commanded() == 0.0
        assert bench.smu_safe()
        sources = [e.data["source"] for e in bench.events() if e.kind == "safe_state"]
        assert sources == ["mqtt", "signal", "runner"]
        assert len(bench.safe.reports) == 3

    run_bench(test, tmp_path)


def test_a_tripped_board_accepts_duty_zero(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        bench.loop.set_target(100.0)
        await asyncio.sleep(10.0)
        await bench.loop.stop()
        bench.rig.faults.inject("tc_open")
        await asyncio.sleep(1.0)
        bench.rig.sync()  # the rig is lazy: bring it to now
        assert bench.rig.board_firmware.trip == "tcfault"
        report = await bench.safe.engage("thermocouple")
        assert report.heater_error is None
        assert report.complete

    run_bench(test, tmp_path)


def test_an_unplugged_board_is_reported_and_the_smu_still_goes_off(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        await bench.smu_on()
        await bench.loop.stop()
        bench.rig.faults.inject("serial_unplug")
        report = await bench.safe.engage("exception in the runner")
        assert report.heater_error is not None
        assert "LinkLost" in report.heater_error
        assert report.smu_error is None
        assert bench.smu_safe()
        [event] = [e for e in bench.events() if e.kind == "safe_state"]
        assert event.severity == "fault"
        assert "HEATER NOT CONFIRMED OFF" in event.message

    run_bench(test, tmp_path)


def test_silent_instruments_cost_at_most_their_timeouts(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        await bench.smu_on()
        await bench.loop.stop()
        bench.rig.faults.inject("board_silent")
        bench.rig.faults.inject("smu_timeout")
        start = bench.now
        report = await bench.safe.engage("signal")
        took = bench.now - start
        assert report.heater_error is not None
        assert report.smu_error is not None
        assert took <= 2 * bench.safe.timeout + 0.01
        assert report.duration == pytest.approx(took)
        # the board that cannot hear drops the heater anyway when its lease runs out
        await bench.until(lambda: bench.heater_commanded() == 0.0, bench.config.heater.lease)

    run_bench(test, tmp_path)


def test_hooks_run_first_and_a_failing_sink_does_not_stop_it(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        await bench.smu_on()
        order: list[str] = []

        def hook() -> None:
            order.append("hook")
            raise RuntimeError("a broken hook")

        def sink(kind: str, message: str, *, severity: str, data: dict[str, Any]) -> None:
            order.append("event")
            raise OSError("disk full")

        safe = SafeState(bench.board, bench.smu, bench.clock, events=sink)
        safe.add_hook(hook)
        report = await safe.engage("trip")
        assert report.complete
        assert order == ["hook", "event"]
        assert bench.smu_safe()

    run_bench(test, tmp_path)


def test_a_cancelled_caller_does_not_stop_the_action(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        await bench.smu_on()
        await bench.loop.stop()
        bench.rig.faults.inject("board_silent")  # the heater half takes its timeout
        caller = asyncio.ensure_future(bench.safe.engage("signal", source="signal"))
        await asyncio.sleep(0.1)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        await asyncio.sleep(bench.safe.timeout + 1.0)
        assert bench.safe.last is not None
        assert bench.smu_safe()  # the SMU half still ran after the caller was gone

    run_bench(test, tmp_path)


def test_without_an_smu(tmp_path: Path) -> None:
    async def test(bench: Bench) -> None:
        safe = SafeState(bench.board, None, bench.clock)
        report = await safe.engage("autotune finished", source="autotune")
        assert report.complete
        assert report.smu_error is None
        assert bench.heater_commanded() == 0.0

    run_bench(test, tmp_path)
