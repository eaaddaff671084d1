"""`heatcycler detect FILE.csv`: what a lab gets from a recorded trace, and what it is told
when the file cannot be read (exit 2, no traceback)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from detect_corpus import CORPUS

from controller.cli import main

HEADER = "Test Time / s,Voltage / V,Current / A"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["detect", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_is_one_object_with_events_in_time_order(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(CORPUS / "soft_then_hard_1s.csv"), "--json")
    assert code == 0
    report = json.loads(out)  # exactly one JSON document on stdout
    events = report["events"]
    assert [e["kind"] for e in events] == ["soft_short"] * 6 + ["hard_short"]
    times = [e["time_s"] for e in events]
    assert times == sorted(times)
    assert all(isinstance(e["time_s"], float) for e in events)
    assert report["samples"] == 8160
    assert err == ""


def test_area_gives_current_densities_and_the_ccd(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(CORPUS / "ccd_symmetric_125C_1s.csv")
    code, out, _ = run(capsys, path, "--area", "0.785cm^2", "--json")
    assert code == 0
    (hard,) = json.loads(out)["events"]
    assert hard["current_density_A_per_cm2"] == pytest.approx(2.6e-3, rel=0.01)
    code, out, _ = run(capsys, path, "--area", "0.785 cm^2")
    assert code == 0
    assert "1 hard short" in out
    assert "first hard short at 2.6 mA/cm² (the CCD" in out
    assert "cycle 13" in out


def test_protocol_supplies_area_window_and_thresholds(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(CORPUS / "contact_loss_compliance_1s.csv")
    code, out, _ = run(capsys, path, "--json")
    assert json.loads(out)["events"] == []  # no window known: no voltage limit
    protocol = Path(__file__).resolve().parents[2] / "protocols" / "heat-therapy-LiBH4.yaml"
    code, out, _ = run(capsys, path, "--protocol", str(protocol), "--json")
    report = json.loads(out)
    assert code == 0
    assert [e["kind"] for e in report["events"]] == ["voltage_limit"]
    assert report["area_cm2"] == pytest.approx(0.785)
    code, out, _ = run(capsys, path, "--voltage-window", "-2 V,2 V", "--json")
    assert json.loads(out)["events"] == []


def test_no_events_in_a_healthy_trace(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(CORPUS / "glitches_1s.csv"))
    assert code == 0
    assert "no shorts and no voltage limits found" in out


def test_extra_columns_other_delimiters_and_gzip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [f"{k},{-0.2 if k < 60 else -0.0015},0.00157,x{k}" for k in range(1, 90)]
    text = "\n".join([HEADER + ",Comment / 1", *rows]) + "\n"
    plain = tmp_path / "a.csv"
    plain.write_text(text)
    semi = tmp_path / "b.csv"
    semi.write_text(text.replace(",", ";"))
    packed = tmp_path / "c.csv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    for path in (plain, semi, packed):
        code, out, err = run(capsys, str(path), "--json")
        assert code == 0, err
        assert [e["onset_s"] for e in json.loads(out)["events"]] == [60.0]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, ["no such file"]),
        ("", ["empty", "Test Time / s"]),
        (HEADER + "\n", ["no data rows"]),
        (
            "Time (s),Voltage / V,I/mA\n1,0.1,1\n",
            ["'Test Time / s'", "'Current / A'", "'I/mA' → 'Current / A' (convert mA to A)"],
        ),
        (
            "test time / s,Voltage / V,Current / A\n1,0.1,1\n",
            ["rename 'test time / s' → 'Test Time / s'"],
        ),
        (
            HEADER + "\n1,0.1,0.001\n2,abc,0.001\n",
            [":3:", "'Voltage / V'", "'abc' is not a number"],
        ),
        (HEADER + "\n1,0.1,0.001\n2,,0.001\n", [":3:", "'Voltage / V' is empty"]),
        (HEADER + "\n1,0.1,0.001\n3,0.1,0.001\n2,0.1,0.001\n", [":4:", "goes backwards"]),
        (HEADER + "\n1,0.1,0.001\n2,nan,0.001\n", [":3:", "not a finite number"]),
    ],
)
def test_unreadable_files_are_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, expected: list[str]
) -> None:
    path = tmp_path / "trace.csv"
    if content is not None:
        path.write_text(content)
    code, out, err = run(capsys, str(path), "--json")
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    for text in expected:
        assert text in err, err
    assert "hint:" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--area", "3"], "has no unit"),
        (["--area", "3 mA"], "is not an area"),
        (["--area", "-1 cm^2"], "must be positive"),
        (["--voltage-window", "1 V"], "two edges"),
        (["--voltage-window", "1 V,-1 V"], "lower edge must come first"),
    ],
)
def test_bad_options_are_user_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    code, _, err = run(capsys, str(CORPUS / "glitches_1s.csv"), *argv)
    assert code == 2
    assert expected in err


def test_an_invalid_protocol_is_reported_with_its_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    protocol = tmp_path / "p.yaml"
    protocol.write_text("name: p\ncell: {id: S1}\n")
    code, _, err = run(capsys, str(CORPUS / "glitches_1s.csv"), "--protocol", str(protocol))
    assert code == 2
    assert "p.yaml:" in err


def test_the_console_script_exits_2_without_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "controller.cli", "detect", str(missing), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr
