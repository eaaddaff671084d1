"""Show the corpus precision/recall tables in pytest's terminal summary."""

from __future__ import annotations

from collections.abc import Callable

import pytest

_TABLES: dict[str, str] = {}


@pytest.fixture
def record() -> Callable[[str, str], None]:
    def add(title: str, table: str) -> None:
        _TABLES[title] = table

    return add


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for title, table in _TABLES.items():
        terminalreporter.write_sep("-", f"short detection: {title}")
        terminalreporter.write_line(table)
