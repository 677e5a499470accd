# shellcheck shell=bash
# ensure_venv [EXTRA]: create .venv with Python >= 3.11 if missing and install the project
# (with the optional extra) when pyproject.toml changed since the last install.
ensure_venv() {
  local extra="${1:-}" python="${PYTHON:-python3}" spec="." stamp want
  if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: $python not found; install Python >= 3.11 or set PYTHON=/path/to/python3" >&2
    return 1
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $("$python" --version 2>&1)"
    "$python" -m venv .venv
  fi
  .venv/bin/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
    echo "error: .venv has $(.venv/bin/python --version 2>&1); local-ml-flow needs >= 3.11." \
      "Remove .venv and set PYTHON to a newer python3." >&2
    return 1
  }
  [ -n "$extra" ] && spec=".[$extra]"
  stamp=".venv/.lmf-installed${extra:+-$extra}"
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  # an install with the dev extra also satisfies a plain one
  if [ -z "$extra" ] && [ "$(cat .venv/.lmf-installed-dev 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> installing local-ml-flow${extra:+[$extra]} into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e "$spec"
    echo "$want" >"$stamp"
  fi
}
