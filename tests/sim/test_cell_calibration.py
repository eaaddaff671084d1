"""The cell reproduces seeds/000 and seeds/001 through the bundled protocols, monotonically.

Every figure comes from rehearsing a protocol file (``firmware_sim.rehearse``) on a fresh
cell: the bundled files as they are, or variants that change only the therapy hold or the
ramp's temperature.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest
from firmware_sim import cell_calibration as cal
from firmware_sim.cell import Cell
from firmware_sim.cell_params import LIBH4, Arrhenius
from firmware_sim.rehearse import cell_spec, rehearse

from controller import protocol as proto
from controller.validate import load_protocol

SEEDS = range(5)


def bundled(protocols_dir: Path, name: str) -> proto.Protocol:
    loaded = load_protocol(protocols_dir / f"{name}.yaml")
    assert loaded.ok, loaded.problems
    assert loaded.protocol is not None
    return loaded.protocol


@pytest.mark.parametrize(
    ("name", "target"),
    [("ccd-ramp-125C", 2.6e-3), ("ccd-ramp-140C", 3.6e-3), ("ccd-ramp-160C", 4.0e-3)],
)
@pytest.mark.parametrize("seed", SEEDS)
def test_bundled_ccd_ramps_give_the_papers_ccd(
    protocols_dir: Path, name: str, target: float, seed: int
) -> None:
    run = rehearse(bundled(protocols_dir, name), seed=seed)
    result = run.step("ccd")
    assert result.outcome == "short"
    assert result.ccd is not None
    assert abs(result.ccd - target) <= 0.1 * target + 1e-12, result.ccd


def _cycles(protocol: proto.Protocol, seed: int, label: str) -> int:
    run = rehearse(protocol, seed=seed)
    assert run.step("precycle").outcome == "done"  # the five pre-cycles survive
    assert run.step("precycle").cycles == 5
    result = run.step(label)
    assert result.outcome == "short", result
    assert result.cycles is not None
    assert run.outcome == "ended"  # on_short: end
    return result.cycles


@pytest.mark.parametrize("seed", SEEDS)
def test_control_shorts_after_about_38_cycles(protocols_dir: Path, seed: int) -> None:
    cycles = _cycles(bundled(protocols_dir, "control-no-therapy-LiBH4"), seed, "no-therapy")
    assert 30 <= cycles <= 50


@pytest.mark.parametrize("seed", SEEDS)
def test_heat_therapy_lasts_more_than_130_cycles(protocols_dir: Path, seed: int) -> None:
    protocol = bundled(protocols_dir, "heat-therapy-LiBH4")
    cycles = _cycles(protocol, seed, "post-therapy")
    assert 130 < cycles <= 170  # modest: the campaign must run in seconds


def test_seed_zero_matches_the_paper_closely(protocols_dir: Path) -> None:
    control = _cycles(bundled(protocols_dir, "control-no-therapy-LiBH4"), 0, "no-therapy")
    therapy = _cycles(bundled(protocols_dir, "heat-therapy-LiBH4"), 0, "post-therapy")
    assert abs(control - 38) <= 3
    assert therapy / control > 3


@pytest.mark.parametrize(("electrolyte", "target"), [("LLZO", 50e-6), ("LPS", 120e-6)])
def test_one_way_plating_ccd_at_25c(protocols_dir: Path, electrolyte: str, target: float) -> None:
    base = bundled(protocols_dir, "one-way-plating-ramp")
    protocol = base.model_copy(
        update={"cell": base.cell.model_copy(update={"electrolyte": electrolyte})}
    )
    for seed in SEEDS:
        run = rehearse(protocol, seed=seed)
        ccd = run.step("one-way-ccd").ccd
        assert ccd is not None
        assert abs(ccd - target) <= 0.2 * target  # seeds/001, rough


def test_bundled_dc_polarization_measures_the_electronic_conductivity(
    protocols_dir: Path,
) -> None:
    protocol = bundled(protocols_dir, "dc-polarization")
    run = rehearse(protocol, seed=0)
    result = run.step("sigma-e")
    assert result.outcome == "steady"
    assert result.sigma_electronic is not None
    truth = run.cell.params.sigma_electronic(25.0)
    assert result.sigma_electronic == pytest.approx(truth, rel=0.03)
    assert result.end - result.start < 48 * 3600


# ------------------------------------------------------------------ monotonicity


def _wide(protocol: proto.Protocol) -> proto.Protocol:
    """Physics-level: below the LiBH4 transition the cell needs far more than ±1 V."""
    window = proto.VoltageWindow.model_validate({"min": "-1000 V", "max": "1000 V"})
    return protocol.model_copy(
        update={"safety": protocol.safety.model_copy(update={"voltage": window})}
    )


@pytest.mark.parametrize("seed", [0, 3])
def test_ccd_never_falls_with_temperature(seed: int) -> None:
    ccds = []
    for temperature in range(100, 171, 5):
        run = rehearse(_wide(cal.ccd_protocol(temperature)), seed=seed)
        result = run.step("ccd")
        assert result.outcome == "short", temperature
        assert result.ccd is not None
        ccds.append(result.ccd)
    assert all(b >= a for a, b in itertools.pairwise(ccds)), ccds
    assert ccds[-1] > 5 * ccds[0]  # a real rise, not a constant


def _lives(values: list[int | None]) -> list[int]:
    """Cycles to short of each variant; every one of them must have shorted."""
    assert all(v is not None for v in values), values
    return [v for v in values if v is not None]


@pytest.mark.parametrize("seed", [0, 7])
def test_longer_therapy_never_shortens_life(seed: int) -> None:
    lives = _lives([cal.cycles_to_short((hours, 160.0), seed) for hours in (0, 1, 3, 6, 12)])
    assert lives == sorted(lives), lives
    control = cal.cycles_to_short(None, seed)
    assert control is not None
    assert control <= min(lives)


@pytest.mark.parametrize("seed", [0, 7])
def test_hotter_therapy_never_shortens_life(seed: int) -> None:
    lives = _lives([cal.cycles_to_short((6.0, float(t)), seed) for t in range(125, 166, 5)])
    assert lives == sorted(lives), lives
    assert lives[-1] > 2 * lives[0]


def test_faster_healing_never_shortens_life() -> None:
    """The model, not the numbers: a cell that heals faster lives at least as long."""
    found: list[int | None] = []
    for scale in (0.5, 1.0, 1.5):
        healing = Arrhenius(LIBH4.healing.value * scale, 160.0, LIBH4.healing.ea_kj)
        params = dataclasses.replace(LIBH4, healing=healing)
        protocol = cal.therapy_protocol(6.0)
        run = rehearse(protocol, cell=Cell(cell_spec(protocol.cell), 0, params))
        found.append(run.step("post-therapy").cycles)
    lives = _lives(found)
    assert lives == sorted(lives), lives
    assert lives[-1] > lives[0]
