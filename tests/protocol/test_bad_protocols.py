"""The corpus of bad protocols: each file gives exactly the report in EXPECTED.txt."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.cli import main
from controller.rig import simulated_rig
from controller.validate import load_protocol

BAD = Path(__file__).resolve().parent.parent / "bad_protocols"


@dataclass(frozen=True)
class Case:
    file: str
    sim: bool
    expected: str


def _cases() -> list[Case]:
    cases: list[Case] = []
    header: list[str] | None = None
    body: list[str] = []

    def close() -> None:
        if header is not None:
            cases.append(Case(header[0], "--sim" in header[1:], "\n".join(body).strip("\n")))

    for line in (BAD / "EXPECTED.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("== "):
            close()
            header, body = line[3:].split(), []
        elif header is not None:
            body.append(line)
    close()
    return cases


CASES = _cases()


def test_corpus_is_complete() -> None:
    files = sorted(p.name for p in BAD.glob("*.yaml"))
    assert len(files) >= 30
    assert sorted(c.file for c in CASES) == files, "every bad file has exactly one expectation"
    assert all(c.expected for c in CASES), "every bad file has at least one problem"


@pytest.mark.parametrize("case", CASES, ids=[c.file for c in CASES])
def test_exact_report(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BAD)
    loaded = load_protocol(Path(case.file), simulated_rig() if case.sim else None)
    assert not loaded.ok
    assert loaded.protocol is None
    assert "\n".join(p.format() for p in loaded.problems) == case.expected
    for p in loaded.problems:
        assert p.file == case.file
        assert p.line >= 1
        assert p.col >= 1
        assert p.message
        assert p.hint


@pytest.mark.parametrize("case", CASES, ids=[c.file for c in CASES])
def test_cli_exit_code_and_output(
    case: Case, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(BAD)
    argv = ["validate", case.file, *(["--sim"] if case.sim else [])]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    n = sum(1 for line in case.expected.splitlines() if not line.startswith("    hint: "))
    assert err == f"{case.expected}\n{n} problem{'s' * (n != 1)} found\n"
    assert "Traceback" not in err


def test_rig_limits_need_a_rig(monkeypatch: pytest.MonkeyPatch) -> None:
    """The --sim cases are valid without a rig: those limits are the rig's, not the file's."""
    monkeypatch.chdir(BAD)
    for case in CASES:
        if case.sim:
            assert load_protocol(Path(case.file)).ok, case.file
