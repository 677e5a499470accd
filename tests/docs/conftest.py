"""The README test's skipped blocks, listed in the terminal summary (with -q and xdist too)."""

from __future__ import annotations

import pytest

# tests/docs/test_readme.py records them under this name (record_property)
NOT_RUN = "readme_blocks_not_run"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    entries = [
        entry
        for kind in ("passed", "failed")
        for report in terminalreporter.stats.get(kind, [])
        if getattr(report, "when", "") == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == NOT_RUN
        for entry in value
    ]
    if entries:
        terminalreporter.section("README blocks not run by tests/docs/test_readme.py")
        for entry in entries:
            terminalreporter.write_line(entry)
