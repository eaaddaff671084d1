"""Cell physics against the seeds, run directly on the model (no instruments)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from firmware_sim.cell import Cell, CellError, make_cell
from firmware_sim.cell_params import LIBH4, LLZO, R_GAS, UnknownElectrolyte, electrolyte
from firmware_sim.physics import CellPhysics, CellSpec
from firmware_sim.rehearse import rehearse

from controller.validate import load_protocol

AREA = 0.785
J2 = 2e-3 * AREA  # A at 2 mA/cm²


def libh4(seed: int = 0) -> Cell:
    return Cell(CellSpec(), seed)


# ------------------------------------------------------------------ construction


def test_make_cell_returns_the_protocol_and_is_deterministic_per_seed() -> None:
    a: CellPhysics = make_cell(CellSpec(), 3)  # mypy checks the structural match
    b, c = make_cell(CellSpec(), 3), make_cell(CellSpec(), 4)
    members = [m for m in vars(CellPhysics) if not m.startswith("_")]
    assert set(members) >= {"advance", "voltage", "current_for", "inject_short", "hard_shorted"}
    assert all(callable(getattr(a, m)) for m in members if m != "hard_shorted")
    assert a.hard_shorted is False
    for cell in (a, b, c):
        cell.advance(3600, J2, 125.0)
    assert a.voltage(J2, 125.0) == b.voltage(J2, 125.0)
    assert a.voltage(J2, 125.0) != c.voltage(J2, 125.0)  # cell-to-cell spread


def test_unknown_electrolyte_names_the_known_ones() -> None:
    with pytest.raises(UnknownElectrolyte) as info:
        make_cell(CellSpec(electrolyte="PEO"), 0)
    message = str(info.value)
    assert "'PEO'" in message
    for name in ("LiBH4", "LLZO", "Li3PS4", "LPS"):
        assert name in message


def test_aliases_resolve() -> None:
    assert electrolyte("lps").name == "Li3PS4"
    assert electrolyte(" LLZNO ").name == "LLZO"
    assert electrolyte("libh4") is LIBH4


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        (CellSpec(type="pouch"), "unknown cell type 'pouch'"),
        (CellSpec(area_cm2=0.0), "area must be positive"),
        (CellSpec(thickness_cm=-1.0), "thickness must be positive"),
    ],
)
def test_bad_specs_are_clear_errors(spec: CellSpec, needle: str) -> None:
    with pytest.raises(CellError, match=needle):
        make_cell(spec, 0)


def test_advance_rejects_nonsense_and_zero_is_a_no_op() -> None:
    cell = libh4()
    with pytest.raises(CellError, match="forward"):
        cell.advance(-1.0, 0.0, 125.0)
    with pytest.raises(CellError, match="finite"):
        cell.advance(1.0, math.nan, 125.0)
    before = cell.reach
    cell.advance(0.0, J2, 125.0)
    assert cell.reach == before
    assert cell.time == 0.0


# ------------------------------------------------------- transport and overpotential


def test_conductivity_is_arrhenius_with_the_parameter_activation_energy() -> None:
    cell = Cell(CellSpec(electrolyte="LLZO"), 0)
    temps = np.array([25.0, 50.0, 75.0, 100.0])
    sigma = np.array([cell.conductivity(t) for t in temps])
    slope = np.polyfit(1 / (temps + 273.15), np.log(sigma), 1)[0]
    assert -slope * R_GAS / 1e3 == pytest.approx(LLZO.sigma.ea_kj, rel=1e-9)


def test_libh4_transition_raises_conductivity_steeply_to_about_1e_3() -> None:
    cell = libh4()
    grid = np.arange(90.0, 170.0, 0.1)
    sigma = np.array([cell.conductivity(t) for t in grid])
    assert np.all(np.diff(sigma) > 0)  # monotonic, no jump backwards
    assert cell.conductivity(105.0) < 1e-5  # orthorhombic
    assert 5e-4 < cell.conductivity(120.0) < 2e-3  # hexagonal: ~1e-3 S/cm (seeds/000)
    assert cell.conductivity(118.0) / cell.conductivity(110.0) > 50  # the transition
    assert cell.conductivity(100.0) / cell.conductivity(92.0) < 3  # below it: Arrhenius only
    # smooth: no step larger than a factor 1.5 in 0.1 K
    assert np.max(sigma[1:] / sigma[:-1]) < 1.5


def test_polarisation_falls_with_temperature_and_sign_follows_the_convention() -> None:
    cell = libh4()
    magnitudes = [abs(cell.voltage(J2, t)) for t in (120.0, 125.0, 140.0, 160.0)]
    assert magnitudes == sorted(magnitudes, reverse=True)
    # plating the working electrode drives it negative (seeds/001); symmetric cell is odd
    assert cell.voltage(J2, 125.0) < 0
    assert cell.voltage(-J2, 125.0) == pytest.approx(-cell.voltage(J2, 125.0))
    # a 2 mA/cm² cycle at 125 °C sits well inside the protocols' ±1 V window
    assert 0.1 < magnitudes[1] < 0.6


def test_overpotential_is_nonlinear_butler_volmer() -> None:
    cell = libh4()
    small = cell.voltage(1e-6, 125.0) / 1e-6
    large = cell.voltage(5e-3 * AREA, 125.0) / (5e-3 * AREA)
    assert abs(large) < abs(small)  # asinh: the chord resistance falls with current
    r = cell._rates(125.0)
    expected = (r.asr_bulk + 2 * r.asr_int + r.bv / r.j0) / AREA
    assert abs(small) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("kind", ["symmetric", "anode_free", "blocking"])
def test_current_for_inverts_voltage(kind: str) -> None:
    cell = Cell(CellSpec(electrolyte="LLZO", type=kind), 1)
    cell.advance(600, 1e-4 * AREA, 60.0)
    for v in (-0.3, -0.05, 0.0, 0.02, 0.4):
        current = cell.current_for(v, 60.0)
        assert cell.voltage(current, 60.0) == pytest.approx(v, abs=1e-9)


def test_open_circuit_voltage_by_cell_type() -> None:
    symmetric = libh4()
    assert symmetric.open_circuit_voltage(125.0) == pytest.approx(0.0, abs=1e-12)
    anode_free = Cell(CellSpec(electrolyte="LLZO", type="anode_free"), 0)
    assert 2.5 < anode_free.open_circuit_voltage(60.0) < 3.2  # bare Cu vs Li
    anode_free.advance(600, 1e-4 * AREA, 60.0)  # plate lithium on the copper
    assert abs(anode_free.open_circuit_voltage(60.0)) < 1e-3
    blocking = Cell(CellSpec(electrolyte="LLZO", type="blocking"), 0)
    assert blocking.open_circuit_voltage(25.0) == pytest.approx(0.0, abs=1e-12)


def test_anode_free_stripping_runs_out_of_lithium_and_oxidises_copper() -> None:
    cell = Cell(CellSpec(electrolyte="LLZO", type="anode_free"), 0)
    current = 0.2e-3 * AREA
    cell.advance(1800, current, 60.0)
    assert cell.voltage(current, 60.0) < 0  # plating on copper
    cell.advance(1500, -current, 60.0)  # most of it back
    assert 0 < cell.voltage(-current, 60.0) < 0.2
    cell.advance(600, -current, 60.0)  # more than was plated
    assert cell.lithium_on_copper == 0.0
    assert 3.3 < cell.voltage(-current, 60.0) < 3.8  # copper oxidation
    assert 2.5 < cell.open_circuit_voltage(60.0) < 3.2


# ---------------------------------------------------------------- filaments


def test_healing_at_rest_is_exact_for_any_step_and_steeply_activated() -> None:
    one, many = libh4(), libh4()
    start = one.reach
    one.advance(6 * 3600, 0.0, 160.0)
    for _ in range(360):
        many.advance(60.0, 0.0, 160.0)
    assert one.reach == pytest.approx(many.reach, rel=1e-9)
    k160 = one.params.healing(160.0)
    expected = one._nucleus + (start - one._nucleus) * math.exp(-k160 * 6 * 3600)
    assert one.reach == pytest.approx(expected, rel=1e-12)
    # self-healing rises steeply with temperature (seeds/000)
    assert LIBH4.healing(160.0) / LIBH4.healing(125.0) > 20
    assert LIBH4.healing(125.0) / LIBH4.healing(25.0) > 1e5


def test_threshold_rises_with_temperature() -> None:
    cell = libh4()
    thresholds = [cell.threshold(t) for t in range(100, 171, 5)]
    assert all(b > a for a, b in itertools.pairwise(thresholds))


def test_growth_needs_current_above_threshold_scale() -> None:
    low, high = libh4(), libh4()
    low.advance(1800, 0.5e-3 * AREA, 125.0)
    high.advance(1800, 2.4e-3 * AREA, 125.0)
    start = libh4().reach
    assert low.reach < start  # healing wins far below the threshold
    assert high.reach > 1.5 * start  # growth wins near it


def test_big_steps_and_small_steps_agree() -> None:
    coarse, fine = libh4(), libh4()
    for _ in range(10):
        for sign in (1, -1):
            coarse.advance(1800, sign * J2, 125.0)
            for _ in range(180):
                fine.advance(10, sign * J2, 125.0)
    assert coarse.reach == pytest.approx(fine.reach, rel=2e-3)


def test_hard_short_is_ohmic_near_zero_and_permanent() -> None:
    cell = libh4()
    cell.advance(3600, 3.5e-3 * AREA, 125.0)  # far above the CCD: fast growth
    assert cell.hard_shorted
    shorts = [e for e in cell.events if e.kind == "hard_short"]
    assert len(shorts) == 1
    assert 0 < shorts[0].time < 3600
    v1, v2 = cell.voltage(J2, 125.0), cell.voltage(2 * J2, 125.0)
    assert abs(v1) < 2e-3  # the detector's voltage floor
    assert v2 == pytest.approx(2 * v1, rel=1e-3)  # ohmic
    assert abs(v1 / J2) == pytest.approx(cell.hard_short_resistance, rel=0.01)
    cell.advance(6 * 3600, 0.0, 160.0)  # heat therapy does not undo a hard short
    assert cell.hard_shorted
    assert abs(cell.voltage(J2, 125.0)) < 2e-3


def test_injected_shorts() -> None:
    cell = libh4()
    v0 = cell.voltage(J2, 125.0)
    cell.advance(1.0, J2, 125.0)
    cell.inject_short("soft")
    assert cell.soft_short_active
    collapsed = cell.voltage(J2, 125.0)
    assert 0.2 < collapsed / v0 < 0.7  # a partial collapse, 30-80 %
    cell.advance(300.0, J2, 125.0)
    assert not cell.soft_short_active
    assert cell.voltage(J2, 125.0) == pytest.approx(v0, rel=1e-3)  # recovered
    cell.inject_short("hard")
    assert cell.hard_shorted
    with pytest.raises(CellError, match="soft, hard"):
        cell.inject_short("medium")


# ------------------------------------------------------------ contact loss

ONE_WAY_100C = """
name: one-way-100C
cell: {id: L9, electrolyte: LLZO, type: symmetric, area: 0.785 cm^2, thickness: 1.0 mm}
safety: {voltage: {min: -8 V, max: 8 V}, temperature_max: 120 degC}
steps:
  - temperature: {setpoint: 100 degC, ramp: 5 degC/min, soak: 1 h}
  - ccd_ramp: {label: ramp, mode: one_way, start: 0.1 mA/cm^2, step: 0.1 mA/cm^2,
               max: 1.1 mA/cm^2, per_level: 45 min}
  - hold_current: {label: hold, current_density: 1.1 mA/cm^2, direction: plate, for: 4 h}
"""


@pytest.mark.parametrize("kind", ["symmetric", "anode_free"])
def test_contact_loss_runs_to_minus_4_then_minus_7_volts_without_a_short(kind: str) -> None:
    loaded = load_protocol("one-way-100C.yaml", text=ONE_WAY_100C.replace("symmetric", kind))
    assert loaded.protocol is not None, loaded.problems
    run = rehearse(loaded.protocol, seed=0, trace_every=60)
    assert run.outcome == "completed"
    assert not run.cell.hard_shorted
    assert run.step("ramp").ccd is None  # no short through 1.1 mA/cm² (seeds/001)
    plating = [(s.time, s.voltage) for s in run.trace if s.current > 0]
    near4 = [t for t, v in plating if -4.3 < v < -3.7]
    near7 = [t for t, v in plating if -7.3 < v < -6.7]
    assert len(near4) >= 30
    assert len(near7) >= 30
    assert max(near4) < min(near7)  # -4 V first, then -7 V
    assert min(v for _, v in plating) > -7.3  # never beyond: a plateau, not a runaway
    # the early levels are ohmic-small (after the Cu of an anode-free cell is covered):
    # the polarisation comes from lost contact
    start = plating[0][0]
    assert max(abs(v) for t, v in plating if start + 600 < t < start + 2 * 2700) < 0.05
    assert run.cell.contact(1) < 0.01


def test_cycling_does_not_lose_contact() -> None:
    cell = libh4()
    for _ in range(5):
        for sign in (1, -1):
            cell.advance(1800, sign * J2, 125.0)
    assert cell.contact(0) == 1.0
    assert cell.contact(1) == 1.0


# --------------------------------------------------------- DC polarization


def test_dc_polarization_decays_to_the_electronic_current() -> None:
    spec = CellSpec(electrolyte="LLZO", type="blocking")
    cell = Cell(spec, 0)
    volts, temperature = 0.1, 25.0
    sigma_e = LLZO.sigma_electronic(temperature)
    electronic = sigma_e * volts * spec.area_cm2 / spec.thickness_cm
    first = abs(cell.current_for(volts, temperature))
    rates = cell._rates(temperature)
    assert first == pytest.approx(volts / rates.r_blocking + electronic, rel=1e-6)
    tau = rates.r_blocking * rates.c_blocking
    currents = []
    for _ in range(int(15 * tau / 10)):
        current = cell.current_for(volts, temperature)
        cell.advance(10.0, current, temperature)
        currents.append(abs(current))
    assert all(b <= a for a, b in itertools.pairwise(currents))  # decays
    assert currents[-1] == pytest.approx(electronic, rel=1e-3)
    assert first / currents[-1] > 1000  # ion-blocking: the ionic current dies away
