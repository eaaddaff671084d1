"""The bundled protocols, whole, on the software rig in virtual time (issue 5's must-show).

Heat therapy vs its control: the journal shows > 130 vs ≈ 38 cycles to short (seeds/000);
the CCD ramps report CCDs near the calibration (2.6 / 3.6 / 4.0 mA/cm² at 125 / 140 /
160 °C, ±10 %); the DC polarization ends steady with an electronic conductivity. The same
journals feed the report and compare tests (issue 9: plots from real journals).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.journal import JournalReader
from controller.rig import simulated_rig
from controller.runner.session import RunOptions, start_run
from controller.runner.state import RunState

PROTOCOLS = Path(__file__).resolve().parents[2] / "protocols"


def run_bundled(name: str, data: Path) -> Path:
    rig = simulated_rig(data, seed=0)
    outcome = start_run(
        PROTOCOLS / name, rig, data_dir=data, options=RunOptions(virtual=True, mqtt="off")
    )
    assert outcome.state is RunState.FINISHED, outcome.reason
    return outcome.journal


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    data = tmp_path_factory.mktemp("campaigns")
    return {
        "therapy": run_bundled("heat-therapy-LiBH4.yaml", data),
        "control": run_bundled("control-no-therapy-LiBH4.yaml", data),
    }


def last_cycle_result(path: Path) -> dict[str, object]:
    with JournalReader(path) as reader:
        cycling = [s for s in reader.steps() if s.kind == "cycle"][-1]
    assert cycling.outcome == "short"
    assert cycling.result is not None
    return cycling.result


def test_heat_therapy_outlives_its_control(campaigns: dict[str, Path]) -> None:
    therapy = last_cycle_result(campaigns["therapy"])
    control = last_cycle_result(campaigns["control"])
    assert 30 <= int(control["cycles_to_short"]) <= 50  # type: ignore[call-overload]
    assert int(therapy["cycles_to_short"]) > 130  # type: ignore[call-overload]
    with JournalReader(campaigns["therapy"]) as reader:
        therapy_step = next(s for s in reader.steps() if s.label == "heat-therapy")
        meta = reader.meta()
        seqs = reader.sample_columns("t")["t"]
    assert therapy_step.result is not None
    assert therapy_step.result["time_in_band_s"] == pytest.approx(6 * 3600, abs=2)
    assert therapy_step.result["rms_error_K"] < 0.3
    assert meta["state"] == "finished"
    assert len(seqs) > 10_000


@pytest.mark.parametrize(
    ("name", "ccd"),
    [("ccd-ramp-125C.yaml", 2.6), ("ccd-ramp-140C.yaml", 3.6), ("ccd-ramp-160C.yaml", 4.0)],
)
def test_ccd_ramps_report_the_calibrated_ccd(tmp_path: Path, name: str, ccd: float) -> None:
    path = run_bundled(name, tmp_path)
    with JournalReader(path) as reader:
        ramp = next(s for s in reader.steps() if s.kind == "ccd_ramp")
    assert ramp.outcome == "short"
    assert ramp.result is not None
    assert ramp.result["ccd_mA_per_cm2"] == pytest.approx(ccd, rel=0.10)


def test_dc_polarization_finds_the_electronic_conductivity(tmp_path: Path) -> None:
    path = run_bundled("dc-polarization.yaml", tmp_path)
    with JournalReader(path) as reader:
        step = next(s for s in reader.steps() if s.kind == "dc_polarization")
    assert step.outcome == "completed"
    assert step.result is not None
    assert step.result["steady"] is True
    assert 1e-12 < step.result["conductivity_S_per_cm"] < 1e-6


def test_reports_and_comparison_render_from_the_campaign_journals(
    campaigns: dict[str, Path], tmp_path: Path
) -> None:
    from controller.ui.compare import load_compared, write_compare
    from controller.ui.report import write_report

    compared = []
    for name, path in campaigns.items():
        with JournalReader(path) as reader:
            report = write_report(reader, path, tmp_path / name)
            compared.append(load_compared(reader, path))
        names = {p.name for p in report.plots}
        assert {"overview.png", "cycles.png"} <= names
        assert all(p.stat().st_size > 10_000 for p in report.plots)
        assert report.summary
    files = write_compare(compared, tmp_path / "compare")
    assert any(f.suffix == ".png" and f.stat().st_size > 10_000 for f in files)
    by_protocol = {c.protocol: c for c in compared}
    assert by_protocol["heat-therapy-LiBH4"].cycles_to_short > 130  # type: ignore[operator]
    assert by_protocol["heat-therapy-LiBH4"].therapy_s >= 6 * 3600
    assert by_protocol["control-no-therapy-LiBH4"].therapy_s == 0
