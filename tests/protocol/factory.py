"""Small protocol files for tests: a valid frame around the steps under test."""

from __future__ import annotations

from controller.protocol import Protocol
from controller.rig import RigConfig
from controller.validate import Loaded, load_protocol

FRAME = """\
name: test
cell: {{id: T1, electrolyte: LiBH4, {geometry}, thickness: 1.0 mm}}
safety:
  voltage: {{min: {vmin}, max: {vmax}}}
  temperature_max: {tmax}{extra_safety}
{record}steps:
{steps}"""


def text(
    steps: str,
    *,
    geometry: str = "area: 1 cm^2",
    vmin: str = "-1 V",
    vmax: str = "1 V",
    tmax: str = "175 degC",
    density_max: str | None = None,
    record: str = "",
) -> str:
    """A protocol file whose `steps:` block is ``steps`` (indented by the caller)."""
    return FRAME.format(
        geometry=geometry,
        vmin=vmin,
        vmax=vmax,
        tmax=tmax,
        extra_safety=f"\n  current_density_max: {density_max}" if density_max else "",
        record=f"record: {record}\n" if record else "",
        steps=steps,
    )


def load(steps: str, rig: RigConfig | None = None, **frame: str) -> Loaded:
    return load_protocol("test.yaml", rig, text=text(steps, **frame))


def valid(steps: str, rig: RigConfig | None = None, **frame: str) -> Protocol:
    loaded = load(steps, rig, **frame)
    assert loaded.ok, "\n".join(p.format() for p in loaded.problems)
    assert loaded.protocol is not None
    return loaded.protocol


def problems(steps: str, rig: RigConfig | None = None, **frame: str) -> list[tuple[str, str]]:
    """(key path, message) of every problem; asserts that there is at least one."""
    loaded = load(steps, rig, **frame)
    assert not loaded.ok, "expected problems, the file is valid"
    for p in loaded.problems:
        assert p.line >= 1, p
        assert p.hint, p
    return [(p.path, p.message) for p in loaded.problems]
