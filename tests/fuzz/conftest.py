"""The fuzz tier: run by `make fuzz` only (collect_ignore in tests/conftest.py keeps it out)."""

from __future__ import annotations

import pytest

from tests.fuzz import budget


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "budgeted: shares FUZZ_SECONDS with the other properties")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    shares = sum(1 for item in items if item.get_closest_marker("budgeted"))
    budget.PROPERTIES = max(shares, 1)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    write = terminalreporter.write_line
    if budget.RUNS:
        write("")
        write(f"fuzz summary (FUZZ_SECONDS={budget.TOTAL_SECONDS:g} for the properties)")
        for run in budget.RUNS:
            write(f"  {run.name:<48} {run.examples:>8} examples {run.seconds:7.1f} s")
        total = sum(r.examples for r in budget.RUNS)
        write(f"  {'properties, total':<48} {total:>8} examples")
    for line in budget.API_LINES:
        write(line)
