#!/usr/bin/env bash
# The test command: syncs .venv with uv.lock (dev extra included), then runs ruff, mypy, the
# import contracts (.importlinter) and pytest, the tests spread over the CPUs (pytest-xdist;
# LMF_TEST_WORKERS=N to choose, 0 for none). Extra arguments go to pytest. Exits non-zero on
# any failure.
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
.venv/bin/pytest -n "${LMF_TEST_WORKERS:-auto}" --dist loadfile "$@"
