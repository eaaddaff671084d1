"""The `detection:` block of a protocol: units, defaults, and located problems."""

from __future__ import annotations

import pytest

from controller.commands.schema import run as schema_run
from controller.detect import ShortDetector
from controller.protocol import ShortDetection
from controller.validate import load_protocol

BASE = """\
name: p
cell: {id: S1, electrolyte: LiBH4, area: 0.785 cm^2, thickness: 1 mm}
safety: {voltage: {min: -1 V, max: 1 V}, temperature_max: 170 degC}
detection:
%s
steps:
  - rest: {for: 1 min}
"""


def load(detection: str):  # type: ignore[no-untyped-def]
    return load_protocol("p.yaml", text=BASE % detection)


def test_defaults_are_documented_values() -> None:
    d = ShortDetection()
    assert (d.resistance_fraction, d.voltage_floor, d.confirm_samples) == (0.2, 0.001, 2)
    assert (d.confirm_time, d.settle, d.current_min) == (0.25, 10.0, 1e-6)
    assert (d.soft_drop_fraction, d.noise_factor, d.soft_window) == (0.3, 8.0, 9)
    for name, field in ShortDetection.model_fields.items():
        assert field.description, f"{name} has no description"


def test_thresholds_are_read_with_their_units() -> None:
    loaded = load(
        "  resistance_fraction: 10 %\n  voltage_floor: 0.5 mV\n  confirm_time: 1 s\n"
        "  settle: 0.5 min\n  current_min: 100 nA\n  temperature_tolerance: 1 degC\n"
    )
    assert loaded.ok, loaded.problems
    det = ShortDetector.for_protocol(loaded.protocol)
    assert det.th.fraction == pytest.approx(0.1)
    assert det.th.floor == pytest.approx(5e-4)
    assert det.th.confirm_time == 1.0
    assert det.th.settle == 30.0
    assert det.th.current_min == pytest.approx(1e-7)
    assert det.th.temp_tol == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("detection", "line", "expected"),
    [
        ("  resistance_fraction: 120 %", 5, "between 0 and 100 %"),
        ("  voltage_floor: 1", 5, "has no unit"),
        ("  soft_window: 8", 5, "must be odd"),
        ("  resistance_fraction: 50 %\n  soft_drop_fraction: 60 %", 4, "shallower"),
        ("  confirm_samples: 0", 5, "greater than or equal to 1"),
        ("  settle: -1 s", 5, "must not be negative"),
        ("  sensitivity: high", 5, "sensitivity"),
    ],
)
def test_bad_thresholds_are_located(detection: str, line: int, expected: str) -> None:
    loaded = load(detection)
    assert not loaded.ok
    text = "\n".join(p.format() for p in loaded.problems)
    assert expected in text, text
    assert any(p.line == line for p in loaded.problems), text
    assert all("detection" in p.path for p in loaded.problems), text


def test_schema_json_describes_the_detection_block() -> None:
    import argparse
    import json

    from controller.schema import protocols_dir

    assert schema_run(argparse.Namespace(out=None, check=True)) == 0
    schema = json.loads((protocols_dir() / "schema.json").read_text(encoding="utf-8"))
    props = schema["$defs"]["ShortDetection"]["properties"]
    assert {"resistance_fraction", "voltage_floor", "settle", "soft_window"} <= set(props)
