"""The Keithley 2450 emulator in-process (the same bytes, no socket): noise, quantisation,
determinism, command languages and the less common commands."""

from __future__ import annotations

import statistics

import pytest
from firmware_sim.k2450 import NOISE, RESOLUTION
from firmware_sim.ohmic import OhmicCell
from firmware_sim.rig import ManualClock, SimRig


def smu_rig(seed: int = 0, language: str = "SCPI", **cell: float) -> tuple[SimRig, ManualClock]:
    clock = ManualClock()
    rig = SimRig(clock, seed=seed, cell=OhmicCell(**cell), language=language)
    return rig, clock


def q(rig: SimRig, line: str) -> str:
    reply = rig.smu.handle(line.encode())
    assert reply is not None, f"no reply to {line!r}"
    return reply.decode()


def w(rig: SimRig, line: str) -> None:
    assert rig.smu.handle(line.encode()) is None


def errors(rig: SimRig) -> list[int]:
    out = []
    while not (e := q(rig, ":SYST:ERR?")).startswith("0,"):
        out.append(int(e.split(",")[0]))
    return out


def galvanostat(rig: SimRig, current: float, nplc: float = 1.0) -> None:
    w(rig, f":SOUR:FUNC CURR;:SOUR:CURR:RANG 1e-3;:SOUR:CURR {current};:SOUR:CURR:VLIM 5")
    w(rig, f':SENS:FUNC "VOLT";:SENS:VOLT:RSEN ON;:SENS:VOLT:RANG 2;:SENS:VOLT:NPLC {nplc}')
    w(rig, ":OUTP ON")


def test_noise_scales_with_range_and_nplc_and_readings_are_quantised() -> None:
    rig, _ = smu_rig(resistance=500.0)
    galvanostat(rig, 1e-3)  # 0.5 V on the 2 V range
    fast = [float(q(rig, ":READ?")) for _ in range(400)]
    w(rig, ":SENS:VOLT:NPLC 10")
    slow = [float(q(rig, ":READ?")) for _ in range(400)]
    expected = NOISE["V"] * 2.0
    assert statistics.fmean(fast) == pytest.approx(0.5, abs=1e-6)
    assert statistics.stdev(fast) == pytest.approx(expected, rel=0.2)
    assert statistics.stdev(slow) == pytest.approx(expected / 10**0.5, rel=0.25)
    step = RESOLUTION["V"] * 2.0
    for value in fast + slow:
        assert abs(value / step - round(value / step)) < 1e-3


def test_the_same_seed_and_requests_give_the_same_replies() -> None:
    def transcript(seed: int) -> list[str]:
        rig, clock = smu_rig(seed=seed)
        galvanostat(rig, 1e-3)
        out = []
        for _ in range(20):
            clock.advance(1.0)
            out.append(q(rig, ':READ? "defbuffer1", READ, SOUR, REL'))
        return out

    assert transcript(3) == transcript(3)
    assert transcript(3) != transcript(4)


def test_measure_queries_select_the_sense_function() -> None:
    rig, _ = smu_rig()
    galvanostat(rig, 1e-3)
    assert float(q(rig, ":MEAS:CURR?")) == pytest.approx(1e-3, abs=1e-8)
    assert q(rig, ":SENS:FUNC?") == '"CURR:DC"'
    assert float(q(rig, ":MEAS:VOLT:DC?")) == pytest.approx(0.1, abs=2e-5)
    assert float(q(rig, ":MEAS:RES?")) == pytest.approx(100.2, rel=1e-4)  # 2-wire ohms
    w(rig, ":SENS:RES:RSEN ON")
    assert float(q(rig, ":MEAS:RES?")) == pytest.approx(100.0, rel=1e-4)  # 4-wire ohms
    assert q(rig, ":SENS:FUNC?") == '"RES"'


def test_overvoltage_protection_clamps_the_source() -> None:
    rig, _ = smu_rig(resistance=1000.0)
    w(rig, ":SOUR:VOLT:PROT PROT2;:SOUR:FUNC CURR;:SOUR:CURR 5e-3;:SOUR:CURR:VLIM 10")
    w(rig, ':SENS:FUNC "VOLT";:SENS:VOLT:RSEN ON;:OUTP ON')
    assert q(rig, ":SOUR:VOLT:PROT?") == "PROT2"
    assert float(q(rig, ":READ?")) == pytest.approx(2.0, abs=1e-4)
    assert q(rig, ":SOUR:VOLT:PROT:TRIP?") == "1"
    assert q(rig, ":SOUR:CURR:VLIM:TRIP?") == "1"


def test_limits_accept_min_max_def_and_report_them() -> None:
    rig, _ = smu_rig()
    assert q(rig, ":SOUR:CURR:VLIM? MAX") == "2.100000E+02"
    assert q(rig, ":SOUR:VOLT:ILIM? MIN") == "1.000000E-09"
    w(rig, ":SOUR:CURR:VLIM MAX;:SOUR:VOLT:ILIM DEF")
    assert q(rig, ":SOUR:CURR:VLIM?;:SOUR:VOLT:ILIM?") == "2.100000E+02;1.050000E-04"
    w(rig, ":SOUR:CURR:VLIM 0.001")  # below 20 mV
    w(rig, ":SOUR:VOLT:ILIM 2")
    assert errors(rig) == [-222, -222]


def test_ascii_precision_changes_the_number_format() -> None:
    rig, _ = smu_rig()
    w(rig, ":SOUR:CURR:VLIM 2.5;:FORM:ASC:PREC 10")
    assert q(rig, ":SOUR:CURR:VLIM?") == "2.500000000E+00"
    assert q(rig, ":FORM:ASC:PREC?") == "10"


def test_tsp_mode_answers_only_what_both_languages_share() -> None:
    rig, _ = smu_rig(language="TSP")
    assert q(rig, "*LANG?") == "TSP"
    assert q(rig, "*IDN?").startswith("KEITHLEY INSTRUMENTS,MODEL 2450,")
    assert rig.smu.handle(b":SOUR:FUNC CURR") is None
    assert rig.smu.handle(b":SYST:ERR?") is None  # a Lua syntax error, no SCPI reply
    assert rig.smu_firmware.source_function == "VOLTage"
    assert rig.smu_firmware.errors[0][0] == -285


def test_scpi2400_mode_identifies_as_a_2400_and_lacks_the_2450_commands() -> None:
    rig, _ = smu_rig(language="SCPI2400")
    assert q(rig, "*LANG?") == "SCPI2400"
    assert "MODEL 2400" in q(rig, "*IDN?")
    w(rig, ":SOUR:CURR:VLIM 2")
    assert errors(rig) == [-113]


def test_a_language_change_takes_effect_at_the_next_power_cycle() -> None:
    rig, _ = smu_rig()
    w(rig, "*LANG TSP")
    assert q(rig, "*LANG?") == "SCPI"
    rig.smu_firmware.power_cycle()
    assert q(rig, "*LANG?") == "TSP"
    assert rig.smu.handle(b"*LANG SCPI") is None
    rig.smu_firmware.power_cycle()
    assert q(rig, "*LANG?") == "SCPI"


def test_the_error_queue_overflows_into_minus_350() -> None:
    rig, _ = smu_rig()
    for _ in range(1005):
        w(rig, ":BOGUS")
    codes = errors(rig)
    assert len(codes) == 1000
    assert codes[-1] == -350
    assert set(codes[:-1]) == {-113}


def test_non_ascii_input_is_an_invalid_character() -> None:
    rig, _ = smu_rig()
    assert rig.smu.handle(b"\xff\xfe*IDN?") is None
    assert errors(rig) == [-101]


def test_leads_on_the_rear_terminals_see_no_cell() -> None:
    rig, _ = smu_rig()
    galvanostat(rig, 1e-3)
    w(rig, ":ROUT:TERM REAR")
    assert q(rig, ":ROUT:TERM?;:OUTP?") == "REAR;0"  # switching terminals turns it off
    w(rig, ":SENS:VOLT:RANG:AUTO ON;:OUTP ON")
    assert float(q(rig, ":READ?")) == pytest.approx(5.0, abs=1e-4)  # open: runs to VLIM
    assert q(rig, ":SOUR:CURR:VLIM:TRIP?") == "1"


def test_remote_sense_is_a_setting_of_each_measure_function() -> None:
    rig, _ = smu_rig()
    w(rig, ':SOUR:FUNC VOLT;:SOUR:VOLT 0.1;:SOUR:VOLT:ILIM 0.01;:SENS:FUNC "CURR";:OUTP ON')
    w(rig, ":SENS:VOLT:RSEN ON")  # the voltage function's setting: not in use here
    assert float(q(rig, ":READ?")) == pytest.approx(0.1 / 100.2, abs=1e-8)  # 2-wire
    w(rig, ":SENS:CURR:RSEN ON")
    assert q(rig, ":SENS:CURR:RSEN?;:SENS:RES:RSEN?") == "1;0"
    assert float(q(rig, ":READ?")) == pytest.approx(0.1 / 100.0, abs=1e-8)  # 4-wire


class RecordingCell(OhmicCell):
    def __init__(self, **kw: float) -> None:
        super().__init__(**kw)
        self.currents: list[float] = []

    def advance(self, dt: float, current: float, temperature: float) -> None:
        self.currents.append(current)
        super().advance(dt, current, temperature)


@pytest.mark.parametrize(("wiring", "sign"), [("HI", -1.0), ("LO", 1.0)])
def test_the_working_electrode_terminal_sets_the_polarity(wiring: str, sign: float) -> None:
    cell = RecordingCell(resistance=100.0, ocv=0.5)
    clock = ManualClock()
    rig = SimRig(clock, cell=cell, working_electrode=wiring)
    w(rig, ':SOUR:FUNC CURR;:SOUR:CURR:RANG 1e-3;:SOUR:CURR 0;:SENS:FUNC "VOLT"')
    w(rig, ":SENS:VOLT:RSEN ON;:OUTP ON")
    # at rest the SMU reads V(HI) - V(LO): +OCV with the working electrode on HI
    assert float(q(rig, ":READ?")) == pytest.approx(-sign * 0.5, abs=1e-4)
    w(rig, ":SOUR:CURR 1e-3")
    clock.advance(10.0)
    v = float(q(rig, ":READ?"))
    assert v == pytest.approx(-sign * 0.5 + 0.1, abs=1e-4)  # passive: +I·R either way
    assert cell.currents[-1] == pytest.approx(sign * 1e-3)  # + plates the working electrode
    assert rig.charge == pytest.approx(sign * 1e-2)


@pytest.mark.parametrize(("wiring", "sign"), [("HI", -1.0), ("LO", 1.0)])
def test_the_cell_model_looks_passive_from_the_smu(wiring: str, sign: float) -> None:
    clock = ManualClock()
    rig = SimRig(clock, seed=0, working_electrode=wiring)  # the default cell model
    rig.heater.block = rig.heater.sensor = 125.0
    w(rig, ":SOUR:FUNC CURR;:SOUR:CURR:RANG 1e-2;:SOUR:CURR 1.57e-3;:SOUR:CURR:VLIM 5")
    w(rig, ':SENS:FUNC "VOLT";:SENS:VOLT:RSEN ON;:OUTP ON')
    clock.advance(60.0)
    v = float(q(rig, ":READ?"))
    assert 0.05 < v < 1.0  # 2 mA/cm² at 125 °C: a few hundred mV, same sign as the current
    assert rig.charge == pytest.approx(sign * 1.57e-3 * 60.0, rel=1e-6)


def test_a_setting_written_directly_changes_the_next_reading() -> None:
    """measure keeps what it derives from the settings until one changes: writes that
    bypass SCPI (tests, benchmarks) count as changes too."""
    rig, _ = smu_rig(resistance=500.0)
    galvanostat(rig, 1e-3)  # 0.5 V on the fixed 2 V range
    fw = rig.smu_firmware
    q(rig, ':READ? "defbuffer1", READ, SOUR')
    fw.senses["VOLTage"].range = 200e-3  # 0.5 V is over this range
    assert float(q(rig, ':READ? "defbuffer1", READ, SOUR').split(",")[0]) == 9.9e37
    fw.senses["VOLTage"].autorange = True
    assert float(q(rig, ':READ? "defbuffer1", READ, SOUR').split(",")[0]) == pytest.approx(
        0.5, abs=1e-4
    )
    fw.sources["CURRent"].readback = False
    fw.sources["CURRent"].level = 0.7e-3  # the programmed level, as it is
    assert q(rig, ':READ? "defbuffer1", READ, SOUR').split(",")[1] == "7.000000E-04"
    assert fw.operating_point().current == 0.7e-3
    fw.lead_resistance = 1e3  # 2-wire: the leads add 0.7 V
    fw.senses["VOLTage"].rsense = False
    assert fw.operating_point().voltage == pytest.approx(0.35 + 0.7)
    fw.output = False
    fw.sources["CURRent"].offmode = "HIMPedance"
    assert q(rig, ':READ? "defbuffer1", READ, SOUR').split(",")[1] == "0.000000E+00"
    fw.precision = 3
    assert q(rig, ':READ? "defbuffer1", READ, SOUR').split(",")[1] == "0.00E+00"
