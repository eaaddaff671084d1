"""`heatcycler validate | plan | schema`: exit codes (0 ok, 2 user mistake) and output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli import main

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = ROOT / "protocols"
THERAPY = PROTOCOLS / "heat-therapy-LiBH4.yaml"
BAD = ROOT / "tests" / "bad_protocols"

Capture = pytest.CaptureFixture[str]


def run(capsys: Capture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_good_files(capsys: Capture) -> None:
    files = [str(p) for p in sorted(PROTOCOLS.glob("*.yaml"))]
    code, out, err = run(capsys, "validate", *files, "--sim")
    assert code == 0
    assert out.splitlines() == [f"{f}: ok" for f in files]
    assert err == ""


def test_validate_reports_every_file(capsys: Capture) -> None:
    code, out, err = run(
        capsys,
        "validate",
        str(THERAPY),
        str(BAD / "negative-soak.yaml"),
        str(BAD / "zero-ramp.yaml"),
    )
    assert code == 2
    assert out == f"{THERAPY}: ok\n"
    assert f"{BAD / 'negative-soak.yaml'}:8:45: steps[0].temperature.soak:" in err
    assert f"{BAD / 'zero-ramp.yaml'}:8:45: steps[0].temperature.ramp:" in err
    assert err.endswith("2 problems found\n")


def test_validate_json(capsys: Capture) -> None:
    code, out, err = run(
        capsys, "validate", str(THERAPY), str(BAD / "unknown-key-in-step.yaml"), "--json"
    )
    assert code == 2
    assert err == ""
    report = json.loads(out)
    assert report["valid"] is False
    good, bad = report["files"]
    assert (good["valid"], good["problems"]) == (True, [])
    assert bad["problems"] == [
        {
            "file": str(BAD / "unknown-key-in-step.yaml"),
            "line": 8,
            "col": 39,
            "path": "steps[0].temperature.soke",
            "message": "unknown key 'soke'",
            "hint": "did you mean 'soak'?",
        }
    ]


def test_validate_missing_file_and_directory(capsys: Capture, tmp_path: Path) -> None:
    code, out, err = run(capsys, "validate", str(tmp_path / "nope.yaml"))
    assert out == ""
    assert code == 2
    assert err.startswith(f"{tmp_path / 'nope.yaml'}:1:1: no such file\n")
    assert "hint: check the path" in err
    code, _, err = run(capsys, "validate", str(tmp_path))
    assert code == 2
    assert "is a directory" in err


def test_validate_with_a_rig_file(capsys: Capture, tmp_path: Path) -> None:
    rig = tmp_path / "rig.yaml"
    rig.write_text(
        "rig: bench-1\n"
        "smu: {resource: sim, current_max: 1 mA}\n"
        "heater: {port: sim}\n"
        "safety: {setpoint_max: 150 degC}\n",
        encoding="utf-8",
    )
    code, _, err = run(capsys, "validate", str(THERAPY), "--rig", str(rig))
    assert code == 2
    assert "setpoint 160 degC is above the setpoint cap of rig 'bench-1' (150 degC)" in err
    assert "1.57 mA is more than rig 'bench-1' may source (1 mA)" in err


def test_a_bad_rig_file_is_a_located_user_error(capsys: Capture, tmp_path: Path) -> None:
    rig = tmp_path / "rig.yaml"
    rig.write_text("rig: bench-1\nsmu: {resource: sim}\nheater: {port: sim, lease: 3}\n")
    code, out, err = run(capsys, "plan", str(THERAPY), "--rig", str(rig))
    assert code == 2
    assert out == ""
    assert err.startswith(f"{rig}:3:28: heater.lease: 3 has no unit; a duration needs one\n")
    assert "Traceback" not in err


def test_plan_heat_therapy(capsys: Capture) -> None:
    code, out, err = run(capsys, "plan", str(THERAPY), "--sim")
    assert code == 0
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == f"plan: heat-therapy-LiBH4 ({THERAPY}) on rig 'sim'"
    therapy = next(i for i, line in enumerate(lines) if "'heat-therapy'" in line)
    assert lines[therapy].split()[:2] == ["3", "temperature"]
    assert "125 → 160 degC" in lines[therapy + 1]
    assert "soak 6 h" in lines[therapy + 1]
    assert "  160 degC                    6 h  (soak 6 h)" in lines
    thermal = next(line for line in lines if line.startswith("thermal steps"))
    assert thermal.startswith("thermal steps    11 h")
    assert "peak temperature 160 degC" in lines
    assert any(line.startswith("total duration   16 h 50 min – ") for line in lines)
    assert any(
        line.startswith("  ok    setpoint          asks peak 160 degC; limit 170 degC, the rig's")
        for line in lines
    )


def test_plan_without_a_rig_says_so(capsys: Capture) -> None:
    code, out, _ = run(capsys, "plan", str(THERAPY))
    assert code == 0
    assert "on no rig (simulated rig's rates)" in out.splitlines()[0]
    assert "no rig given: ramp rates are the simulated rig's defaults" in out


def test_plan_json(capsys: Capture) -> None:
    code, out, _ = run(capsys, "plan", str(THERAPY), "--sim", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["valid"] is True
    assert report["name"] == "heat-therapy-LiBH4"
    assert [s["label"] for s in report["steps"]] == [
        "warm-up",
        "precycle",
        "heat-therapy",
        "settle",
        "post-therapy",
    ]
    hold = next(s for s in report["setpoints"] if s["setpoint"] == 160)
    assert hold["soak"] == 6 * 3600
    assert report["thermal_time"]["min"] >= 9 * 3600
    assert {c["name"] for c in report["limits"]} >= {"setpoint", "current", "voltage window"}


def test_plan_of_an_invalid_file_prints_the_validate_problems(capsys: Capture) -> None:
    bad = str(BAD / "several-problems.yaml")
    code_v, _, err_v = run(capsys, "validate", bad)
    code_p, out_p, err_p = run(capsys, "plan", bad)
    assert (code_v, code_p) == (2, 2)
    assert out_p == ""
    assert err_p == err_v
    code, out, _ = run(capsys, "plan", bad, "--json")
    assert code == 2
    report = json.loads(out)
    assert report["valid"] is False
    assert [p["line"] for p in report["problems"]] == [8, 9, 10]


def test_rig_and_sim_exclude_each_other(capsys: Capture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["plan", str(THERAPY), "--sim", "--rig", "x.yaml"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_schema_check(capsys: Capture, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "schema", "--check")
    assert code == 0
    assert "is up to date" in out
    stale = tmp_path / "schema.json"
    stale.write_text("{}\n", encoding="utf-8")
    code, _, err = run(capsys, "schema", "--check", "--out", str(stale))
    assert code == 1
    assert "is stale" in err
    code, _, _ = run(capsys, "schema", "--out", str(stale))
    assert code == 0
    assert json.loads(stale.read_text(encoding="utf-8"))["title"] == "heatcycler protocol"


def test_the_console_script() -> None:
    """The installed entry point, as a technician runs it."""
    exe = Path(sys.executable).parent / "heatcycler"
    good = subprocess.run(
        [exe, "validate", str(THERAPY)], capture_output=True, text=True, check=False
    )
    assert (good.returncode, good.stdout) == (0, f"{THERAPY}: ok\n")
    bad = subprocess.run(
        [exe, "validate", str(BAD / "kelvin-for-celsius.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "K` means kelvin: 160 K is -113.15 degC" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_non_utf8_is_located_by_character(capsys: Capture, tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: x\ndescription: 25 °C then ".encode() + b"\xb0C\n")
    code, _, err = run(capsys, "validate", str(latin1))
    assert code == 2
    assert err.startswith(
        f"{latin1}:2:25: not UTF-8 text: byte 0xb0 cannot be read (another encoding, e.g. "
        "Latin-1?)\n"
    )


def test_a_missing_rig_file(capsys: Capture, tmp_path: Path) -> None:
    code, out, err = run(capsys, "plan", str(THERAPY), "--rig", str(tmp_path / "rig.yaml"))
    assert (code, out) == (2, "")
    assert err == f"{tmp_path / 'rig.yaml'}:1:1: no such file\n    hint: check the path\n"


@pytest.mark.parametrize(
    ("lease", "message"),
    [
        ("30 s", "heater.lease: 30 s is outside what the board accepts (0.1…10 s)"),
        ("1 s", "heater.lease: 1 s is not longer than heater.period (1 s)"),
    ],
)
def test_a_lease_the_board_refuses_is_a_rig_file_error(
    capsys: Capture, tmp_path: Path, lease: str, message: str
) -> None:
    rig = tmp_path / "rig.yaml"
    rig.write_text(f"rig: bench-1\nsmu: {{resource: sim}}\nheater: {{port: sim, lease: {lease}}}\n")
    code, _, err = run(capsys, "validate", str(THERAPY), "--rig", str(rig))
    assert code == 2
    assert err.startswith(f"{rig}:3:")
    assert message in err
    assert "Traceback" not in err
