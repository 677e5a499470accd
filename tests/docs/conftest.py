"""The README test's skipped blocks are listed in the terminal summary (tests/conftest.py)."""

from __future__ import annotations

# tests/docs/test_readme.py records them under this name (record_property)
NOT_RUN = "readme_blocks_not_run"
