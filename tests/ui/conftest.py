"""Journals of simulated runs, written once per session (see journals.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ui.journals import START_UNIX, WrittenRun, write_run

DAY = 86_400.0


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def therapy_run(runs_dir: Path) -> WrittenRun:
    return write_run("heat-therapy-LiBH4.yaml", runs_dir, start_unix=START_UNIX)


@pytest.fixture(scope="session")
def control_run(runs_dir: Path) -> WrittenRun:
    return write_run("control-no-therapy-LiBH4.yaml", runs_dir, start_unix=START_UNIX + 10 * DAY)


@pytest.fixture(scope="session")
def ccd_run(runs_dir: Path) -> WrittenRun:
    return write_run("ccd-ramp-160C.yaml", runs_dir, start_unix=START_UNIX + 20 * DAY)


@pytest.fixture(scope="session")
def dcpol_run(runs_dir: Path) -> WrittenRun:
    return write_run("dc-polarization.yaml", runs_dir, start_unix=START_UNIX + 30 * DAY)


@pytest.fixture(scope="session")
def all_runs(
    therapy_run: WrittenRun, control_run: WrittenRun, ccd_run: WrittenRun, dcpol_run: WrittenRun
) -> list[WrittenRun]:
    return [therapy_run, control_run, ccd_run, dcpol_run]
