#!/usr/bin/env bash
# The test command: syncs .venv with uv.lock (dev extra included), then runs ruff, mypy, the
# import contracts (.importlinter) and pytest, the tests spread over one worker more than
# there are CPUs (pytest-xdist: most tests wait on servers, emulators and subprocesses, so a
# third worker on two CPUs fills the waits; LMF_TEST_WORKERS=N to choose, 0 for none). Extra
# arguments go to pytest. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bin/lib/venv.sh
. bin/lib/venv.sh
# Bytecode compiled once at install (about 35 s on a fresh venv, nothing when up to date):
# where PYTHONDONTWRITEBYTECODE is set, as on CI machines, every process of the suite (API
# servers, the emulator, its function workers, CLI runs) would otherwise compile pandas,
# scikit-learn and friends from source again, about 5 s each. (For this sync only: the
# Lambda build's own uv install must not inherit it.)
UV_COMPILE_BYTECODE="${UV_COMPILE_BYTECODE:-1}" ensure_venv dev

echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy"
.venv/bin/mypy
echo "==> import contracts (.importlinter)"
.venv/bin/lint-imports --no-cache
# --- browser tests (tests/browser) need a Chromium: Debian's package, never a download -------
echo "==> chromium for the browser tests"
if [ -z "${LMF_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "chromium is missing: apt-get install -y chromium"
    { apt-get install -y -qq chromium || { apt-get update -qq && apt-get install -y -qq chromium; }; } \
      >/dev/null || echo "WARNING: could not install chromium: the browser tests will be SKIPPED" >&2
  else
    echo "WARNING: no chromium and no root apt-get: the browser tests will be SKIPPED" \
      "(install chromium or set LMF_CHROMIUM)" >&2
  fi
fi
# -------------------------------------------------------------------------------------------
echo "==> pytest"
workers="${LMF_TEST_WORKERS:-$(($(nproc 2>/dev/null || echo 1) + 1))}"
.venv/bin/pytest -n "$workers" --dist loadfile "$@"
