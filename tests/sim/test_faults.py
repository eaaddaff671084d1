"""Fault injection: specs, timetables, and what each fault does to the rig."""

from __future__ import annotations

import sys
import types

import pytest
from firmware_sim.board import frame, unframe
from firmware_sim.faults import DeviceUnplugged, FaultSpec, FaultSpecError, parse_duration
from firmware_sim.ohmic import OhmicCell
from firmware_sim.physics import CellSpec
from firmware_sim.rig import ManualClock, SimRig, default_cell


def make(**kw: object) -> tuple[SimRig, ManualClock]:
    clock = ManualClock()
    kw.setdefault("cell", OhmicCell(resistance=100.0))
    return SimRig(clock, **kw), clock  # type: ignore[arg-type]


def board(rig: SimRig, payload: str) -> list[str]:
    reply = rig.board.handle(frame(payload))
    assert reply is not None
    text = unframe(reply)
    assert text is not None
    return text.split()


def smu(rig: SimRig, line: str) -> str | None:
    reply = rig.smu.handle(line.encode())
    return None if reply is None else reply.decode("ascii", "replace")


def galvanostat(rig: SimRig, current: float = 1e-3) -> None:
    smu(rig, f":SOUR:FUNC CURR;:SOUR:CURR {current};:SOUR:CURR:VLIM 5")
    smu(rig, ':SENS:FUNC "VOLT";:SENS:VOLT:RSEN ON;:OUTP ON')


def volts(rig: SimRig) -> float:
    reply = smu(rig, ":READ?")
    assert reply is not None
    return float(reply)


# ---------------------------------------------------------------------- specs


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("tc_open", FaultSpec("tc_open")),
        ("tc_open@2h", FaultSpec("tc_open", at=7200.0)),
        ("smu_timeout@100+30s", FaultSpec("smu_timeout", at=100.0, duration=30.0)),
        ("loss=1.5@30min", FaultSpec("loss", 1.5, at=1800.0)),
        ("loss=1.5@10+250ms", FaultSpec("loss", 1.5, at=10.0, duration=0.25)),
        ("cell_short", FaultSpec("cell_short", "hard")),
        ("cell_short=soft@3h", FaultSpec("cell_short", "soft", at=10800.0)),
        ("smu_error=-350", FaultSpec("smu_error", -350)),
        ("smu_error", FaultSpec("smu_error", -200)),
        ("board_crc=3", FaultSpec("board_crc", 3)),
        ("ambient=30+10min", FaultSpec("ambient", 30.0, duration=600.0)),
    ],
)
def test_specs_parse(text: str, spec: FaultSpec) -> None:
    assert FaultSpec.parse(text) == spec
    assert FaultSpec.parse(str(spec)) == spec  # and print back


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("tc_opne", "unknown fault 'tc_opne'", "tc_open"),
        ("loss", "loss needs a value", "heat-loss factor"),
        ("loss=-1", "bad value '-1' for loss", "heat-loss"),
        ("cell_short=medium", "bad value 'medium'", "soft or hard"),
        ("tc_open=3", "tc_open takes no value", "write just tc_open"),
        ("tc_open@soon", "'soon' is not a time", "min or h"),
        ("cell_short@5+10", "one-off event", "drop the +10"),
        ("board_crc=0", "bad value '0'", "crc"),
    ],
)
def test_bad_specs_say_what_is_wrong_and_how_to_fix_it(text: str, message: str, hint: str) -> None:
    with pytest.raises(FaultSpecError) as err:
        FaultSpec.parse(text)
    assert message in err.value.message
    assert hint in err.value.hint or hint in err.value.message


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "1.5h", "30min", "250ms")] == [
        90.0,
        90.0,
        5400.0,
        1800.0,
        0.25,
    ]


# ----------------------------------------------------------------- timetables


def test_a_timed_fault_starts_at_its_time_even_if_nobody_asks() -> None:
    rig, clock = make(faults=["tc_open@100"])
    clock.set(99.95)
    assert board(rig, "T?")[3] == "00"
    clock.set(100.0)
    assert board(rig, "T?")[1:4:2] == ["nan", "01"]
    clock.set(500.0)  # the board tripped at the third faulty conversion, not at 500 s
    assert board(rig, "STATUS?")[1:3] == ["TRIPPED", "tcfault"]
    assert rig.board_firmware.trip_time == pytest.approx(100.2)


def test_a_fault_with_a_duration_ends_by_itself() -> None:
    rig, clock = make()
    rig.faults.apply("smu_timeout@10+5")
    clock.set(12.0)
    assert smu(rig, "*IDN?") is None  # hung: no reply...
    assert smu(rig, ":OUTP ON") is None
    clock.set(15.0)
    assert smu(rig, "*IDN?") is not None
    assert smu(rig, ":OUTP?") == "0"  # ...and nothing sent meanwhile was executed
    assert [(t, spec, on) for t, spec, on in rig.faults.log] == [
        (10.0, "smu_timeout@10+5", True),
        (15.0, "smu_timeout", False),
    ]


def test_clear_ends_a_fault_and_drops_its_schedule() -> None:
    rig, clock = make(faults=["heater_dead@50", "heater_dead@60+10"])
    assert [(e["at"], e["starts"]) for e in rig.snapshot()["scheduled"]] == [
        (50.0, True),
        (60.0, True),
        (70.0, False),
    ]
    rig.faults.clear("heater_dead")
    assert rig.snapshot()["scheduled"] == []
    clock.set(65.0)
    rig.sync()
    assert not rig.faults.is_active("heater_dead")
    with pytest.raises(FaultSpecError):
        rig.faults.clear("nonsense")


# ------------------------------------------------------------------- heaters


def test_a_dead_heater_does_not_heat() -> None:
    rig, clock = make(faults=["heater_dead"])
    board(rig, "DUTY 1000 10000")
    clock.advance(9.0)
    assert board(rig, "T?")[-1] == "1000"  # the board drives the SSR...
    assert rig.heater.block == pytest.approx(25.0)  # ...but nothing happens


def test_a_stuck_heater_heats_at_duty_zero() -> None:
    rig, clock = make()
    rig.faults.inject("heater_stuck_on")
    clock.advance(10.0)
    assert board(rig, "T?")[-1] == "0"
    assert rig.heater.block == pytest.approx(25.0 + 100.0 * 10.0 / 90.0, rel=0.01)


def test_a_shorted_thermocouple_reads_the_board_while_the_block_heats() -> None:
    rig, clock = make()
    rig.faults.inject("heater_stuck_on")
    rig.faults.inject("tc_shorted")
    clock.advance(60.0)
    _, temp, cj, faults, _, _ = board(rig, "T?")
    assert faults == "00"
    assert abs(float(temp) - float(cj)) < 0.5
    assert rig.heater.sensor > 80.0


def test_heat_loss_and_ambient_faults_change_the_physics_and_revert() -> None:
    rig, clock = make()
    rig.faults.apply("loss=1.5@100+3600")
    rig.faults.apply("ambient=15@200")
    clock.set(150.0)
    rig.sync()
    assert rig.heater.loss_factor == 1.5
    assert rig.heater.ambient == 25.0
    clock.set(250.0)
    rig.sync()
    assert rig.heater.ambient == 15.0
    clock.set(3800.0)
    rig.sync()
    assert rig.heater.loss_factor == 1.0
    assert rig.heater.ambient == 15.0


# ----------------------------------------------------------------------- links


def test_an_unplugged_serial_port_raises_on_the_in_process_link() -> None:
    rig, _ = make()
    rig.faults.inject("serial_unplug")
    with pytest.raises(DeviceUnplugged):
        rig.board.handle(frame("T?"))
    rig.faults.clear("serial_unplug")
    assert board(rig, "ID?")[0] == "ID"


def test_a_silent_board_and_corrupt_replies() -> None:
    rig, _ = make()
    rig.faults.inject("board_silent")
    assert rig.board.handle(frame("DUTY 500 1000")) is None
    assert rig.board_firmware.permille == 0  # a hung board executes nothing
    rig.faults.clear("board_silent")
    rig.faults.inject("board_crc", 2)
    bad = [rig.board.handle(frame("ID?")) for _ in range(3)]
    assert [b is not None and unframe(b) is None for b in bad] == [True, True, False]


def test_smu_garbage_error_and_unplug() -> None:
    rig, _ = make()
    rig.faults.inject("smu_garbage")
    reply = rig.smu.handle(b"*IDN?")
    assert reply is not None
    assert b"KEITHLEY" not in reply
    assert b"\n" not in reply
    with pytest.raises(UnicodeDecodeError):
        reply.decode("ascii")
    rig.faults.clear("smu_garbage")
    rig.faults.inject("smu_error", -363)
    assert (smu(rig, ":SYST:ERR?") or "").startswith('-363,"Error;1;')
    rig.faults.inject("smu_unplug")
    with pytest.raises(DeviceUnplugged):
        rig.smu.handle(b"*IDN?")


def test_open_leads_drive_the_source_into_its_limit() -> None:
    rig, clock = make()
    galvanostat(rig)
    assert volts(rig) == pytest.approx(0.1, abs=1e-4)
    rig.faults.apply("smu_compliance@5+5")
    clock.set(6.0)
    assert volts(rig) == pytest.approx(5.0, abs=1e-4)
    assert smu(rig, ":SOUR:CURR:VLIM:TRIP?") == "1"
    clock.set(11.0)
    assert volts(rig) == pytest.approx(0.1, abs=1e-4)


# ------------------------------------------------------------------ the cell


class RecordingCell(OhmicCell):
    """An ohmic cell that notes how much time had passed when a short was injected."""

    def __init__(self) -> None:
        super().__init__(resistance=100.0)
        self.elapsed = 0.0
        self.shorts: list[tuple[float, str]] = []

    def advance(self, dt: float, current: float, temperature: float) -> None:
        self.elapsed += dt
        super().advance(dt, current, temperature)

    def inject_short(self, kind: str) -> None:
        self.shorts.append((self.elapsed, kind))
        super().inject_short(kind)


def test_a_short_at_a_given_time_reaches_the_cell_at_that_time() -> None:
    cell = RecordingCell()
    rig, clock = make(cell=cell, faults=["cell_short=soft@30", "cell_short@50"])
    galvanostat(rig)
    clock.set(40.0)
    assert volts(rig) == pytest.approx(0.03, abs=1e-4)  # soft: R·0.3 for 20 s
    clock.set(80.0)
    assert volts(rig) == pytest.approx(0.05e-3, abs=2e-5)  # hard: 50 mΩ
    assert cell.shorts == [(pytest.approx(30.0), "soft"), (pytest.approx(50.0), "hard")]
    assert cell.hard_shorted
    assert rig.snapshot()["cell_hard_shorted"]


# ---------------------------------------------------------------- composition


def test_the_default_cell_is_the_cell_model_when_there_is_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[CellSpec, int]] = []

    def make_cell(spec: CellSpec, seed: int) -> OhmicCell:
        seen.append((spec, seed))
        return OhmicCell(resistance=42.0)

    fake = types.ModuleType("firmware_sim.cell")
    fake.make_cell = make_cell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "firmware_sim.cell", fake)
    spec = CellSpec(electrolyte="LLZO", area_cm2=1.0)
    rig = SimRig(ManualClock(), seed=9, cell_spec=spec)
    assert isinstance(rig.cell, OhmicCell)
    assert rig.cell.resistance == 42.0
    assert seen == [(spec, 9)]
    monkeypatch.setitem(sys.modules, "firmware_sim.cell", None)  # not importable
    fallback = default_cell(spec, 9)
    assert isinstance(fallback, OhmicCell)
    assert fallback.resistance == 100.0


def test_a_scripted_run_replays_identically_for_a_seed() -> None:
    def run(seed: int) -> list[str]:
        rig, clock = make(seed=seed, faults=["tc_open@20+1", "loss=2@30", "cell_short=soft@40"])
        galvanostat(rig)
        out = []
        for i in range(60):
            clock.advance(1.0)
            board(rig, f"DUTY {(i * 37) % 1000} 3000")
            out.append(" ".join(board(rig, "T?")) + " | " + (smu(rig, ":READ?") or ""))
        return out

    assert run(1) == run(1)
    assert run(1) != run(2)
