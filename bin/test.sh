#!/usr/bin/env bash
# The test command: sets up .venv (if missing), installs the project with its dev extra,
# then runs ruff, mypy, the import contracts (.importlinter) and pytest. Extra arguments go
# to pytest. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bin/lib/venv.sh
. bin/lib/venv.sh
ensure_venv dev

echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy"
.venv/bin/mypy
echo "==> import contracts (.importlinter)"
.venv/bin/lint-imports --no-cache
echo "==> pytest"
.venv/bin/pytest "$@"
