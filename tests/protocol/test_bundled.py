"""The bundled protocol library: every file validates and plans; the campaign of seeds/000."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller import protocol as proto
from controller.plan import Plan, bounds_text, charge_text, make_plan
from controller.rig import simulated_rig
from controller.schema import protocols_dir, schema_text
from controller.validate import load_protocol

PROTOCOLS = Path(__file__).resolve().parents[2] / "protocols"
FILES = sorted(PROTOCOLS.glob("*.yaml"))
SIM = simulated_rig()
H = 3600.0


def planned(name: str, *, rig: bool = True) -> Plan:
    loaded = load_protocol(PROTOCOLS / name, SIM if rig else None)
    assert loaded.ok, [p.format() for p in loaded.problems]
    assert loaded.protocol is not None
    return make_plan(loaded.protocol, SIM if rig else None)


def test_the_library_is_there() -> None:
    names = {f.name for f in FILES}
    assert {
        "heat-therapy-LiBH4.yaml",
        "control-no-therapy-LiBH4.yaml",
        "precycle-LiBH4.yaml",
        "ccd-ramp-125C.yaml",
        "one-way-plating-ramp.yaml",
        "dc-polarization.yaml",
    } <= names
    assert protocols_dir() == PROTOCOLS


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_every_bundled_protocol_validates_and_plans(path: Path) -> None:
    for rig in (None, SIM):
        loaded = load_protocol(path, rig)
        assert loaded.ok, [p.format() for p in loaded.problems]
        assert loaded.protocol is not None
        plan = make_plan(loaded.protocol, rig)
        assert plan.steps
        assert plan.duration.max > 0
        assert plan.duration.min <= plan.duration.max
        assert all(c.status == "ok" for c in plan.limits), plan.limits


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_every_bundled_protocol_speaks_to_its_reader(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=schema.json\n")
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert len(comments) >= 4, "each bundled file explains itself to the technician"


def test_heat_therapy_holds_160_degc_for_6_h() -> None:
    plan = planned("heat-therapy-LiBH4.yaml")
    at = {s.setpoint: s for s in plan.setpoints}
    assert at[160].soak == 6 * H
    assert at[160].time.min >= 6 * H
    assert plan.thermal_time.min >= 9 * H
    assert plan.peak_temperature == 160
    labels = [s.label for s in plan.steps]
    assert labels == ["warm-up", "precycle", "heat-therapy", "settle", "post-therapy"]
    therapy = plan.steps[2]
    assert therapy.temperature == 160
    assert therapy.duration.min >= 6 * H
    precycle = plan.steps[1]
    assert precycle.charge_per_cm2.min == pytest.approx(10 * 3.6)  # 5 cycles × 2 mAh/cm^2
    post = plan.steps[4]
    assert post.may_end_run
    assert post.duration.min == 0
    assert post.duration.max == pytest.approx(1000 * 70 * 60)


def test_control_campaign_has_no_therapy() -> None:
    control = planned("control-no-therapy-LiBH4.yaml")
    therapy = planned("heat-therapy-LiBH4.yaml")
    assert {s.setpoint for s in control.setpoints} == {125}
    assert control.peak_temperature == 125
    assert [s.kind for s in control.steps] == ["temperature", "cycle", "cycle"]
    # the same pre-cycling, the same post cycling: only the therapy differs
    assert control.steps[1].duration == therapy.steps[1].duration
    assert control.steps[2].duration == therapy.steps[4].duration


def test_ccd_ramps_differ_only_in_temperature() -> None:
    plans = {t: planned(f"ccd-ramp-{t}C.yaml") for t in (125, 140, 160)}
    for t, plan in plans.items():
        assert plan.peak_temperature == t
        ramp = plan.steps[1]
        assert ramp.kind == "ccd_ramp"
        assert ramp.duration.min == 0
        assert ramp.duration.max == pytest.approx(30 * 2 * 16 * 60)  # 30 levels
    assert plans[125].steps[1].duration == plans[160].steps[1].duration


def test_dc_polarization_until_steady() -> None:
    loaded = load_protocol(PROTOCOLS / "dc-polarization.yaml")
    assert loaded.protocol is not None
    assert loaded.protocol.cell.type is proto.CellType.BLOCKING
    step = planned("dc-polarization.yaml").steps[1]
    assert step.kind == "dc_polarization"
    assert (step.duration.min, step.duration.max) == (H, 48 * H)


def test_one_way_ramp_plates_only() -> None:
    loaded = load_protocol(PROTOCOLS / "one-way-plating-ramp.yaml")
    assert loaded.protocol is not None
    ramp = proto.params(loaded.protocol.steps[1])
    assert isinstance(ramp, proto.CcdRampParams)
    assert ramp.mode is proto.RampMode.ONE_WAY
    assert ramp.direction is proto.Direction.PLATE
    assert planned("one-way-plating-ramp.yaml").steps[1].duration.max == pytest.approx(5 * H)


def test_schema_json_is_up_to_date() -> None:
    """protocols/schema.json is generated from the models: regenerate with `heatcycler schema`."""
    assert (PROTOCOLS / "schema.json").read_text(encoding="utf-8") == schema_text()


def test_the_readme_worked_example(tmp_path: Path) -> None:
    """The example technicians copy from README.md is valid and plans as the README says."""
    readme = (PROTOCOLS.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### A worked example", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "precycle-then-ccd-140C.yaml"
    path.write_text(example, encoding="utf-8")
    loaded = load_protocol(path, SIM)
    assert loaded.ok, [p.format() for p in loaded.problems]
    assert loaded.protocol is not None
    plan = make_plan(loaded.protocol, SIM)
    assert [s.kind for s in plan.steps] == [
        "temperature",
        "cycle",
        "temperature",
        "ccd_ramp",
        "rest",
    ]
    assert f"total duration   {bounds_text(plan.duration)}\n" in readme
    assert f"charge per cm^2  {bounds_text(plan.charge_per_cm2, charge_text)}\n" in readme
