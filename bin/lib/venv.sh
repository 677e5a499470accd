# shellcheck shell=bash
# The project's .venv, exactly as uv.lock says: `uv sync --frozen`, with uv itself installed
# from PyPI into a user location first when it is missing.
#   find_uv            sets UV to a usable uv (>= LMF_UV_MIN), installing it when needed
#   ensure_venv [dev]  creates/syncs .venv (with the dev extra for the tests)

# The uv installed when none is found (the one that wrote uv.lock); any uv >= LMF_UV_MIN reads it.
LMF_UV_VERSION="0.13.9"
LMF_UV_MIN="0.9.0"
# uv's own home when we install it: ${XDG_CACHE_HOME:-~/.cache}/local-ml-flow/uv
LMF_UV_HOME="${LMF_UV_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/local-ml-flow/uv}"

# uv_ok PATH: PATH is a uv whose version is >= LMF_UV_MIN.
uv_ok() {
  local version
  version="$("$1" --version 2>/dev/null | awk '{print $2}')" || return 1
  [ -n "$version" ] || return 1
  [ "$(printf '%s\n%s\n' "$LMF_UV_MIN" "$version" | sort -V | head -n 1)" = "$LMF_UV_MIN" ]
}

find_uv() {
  local candidate python="${PYTHON:-python3}"
  for candidate in "${UV:-}" "$(command -v uv 2>/dev/null || true)" "$LMF_UV_HOME/bin/uv" \
      "$HOME/.local/bin/uv"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && uv_ok "$candidate"; then
      UV="$candidate"
      return 0
    fi
  done
  echo "==> installing uv $LMF_UV_VERSION from PyPI into $LMF_UV_HOME (once)"
  if "$python" -m venv "$LMF_UV_HOME" >/dev/null 2>&1 \
      && "$LMF_UV_HOME/bin/python" -m pip install --quiet --disable-pip-version-check \
        "uv==$LMF_UV_VERSION" >/dev/null 2>&1 \
      && uv_ok "$LMF_UV_HOME/bin/uv"; then
    UV="$LMF_UV_HOME/bin/uv"
    return 0
  fi
  # no venv module (e.g. Debian without python3-venv): pip's user scheme
  if "$python" -m pip install --quiet --user --disable-pip-version-check \
      "uv==$LMF_UV_VERSION" >/dev/null 2>&1 && uv_ok "$HOME/.local/bin/uv"; then
    UV="$HOME/.local/bin/uv"
    return 0
  fi
  echo "error: uv >= $LMF_UV_MIN is needed and could not be installed from PyPI with" \
    "$python (no network, or no pip/venv). Install it yourself (pipx install uv, or see" \
    "https://docs.astral.sh/uv/getting-started/installation/) or set UV=/path/to/uv." >&2
  return 1
}

ensure_venv() {
  local extra="${1:-}" python="${PYTHON:-python3}"
  local -a args=(sync --frozen)
  find_uv || return 1
  if [ -x .venv/bin/python ]; then
    .venv/bin/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
      echo "error: .venv has $(.venv/bin/python --version 2>&1); local-ml-flow needs >= 3.11." \
        "Remove .venv and set PYTHON to a newer python3." >&2
      return 1
    }
  else
    if ! command -v "$python" >/dev/null 2>&1; then
      echo "error: $python not found; install Python >= 3.11 or set PYTHON=/path/to/python3" >&2
      return 1
    fi
    args+=(--python "$(command -v "$python")")
  fi
  if [ "$extra" = dev ]; then
    args+=(--extra dev)
  else
    # keep the dev tools a previous `./bin/test.sh` installed
    args+=(--inexact)
  fi
  echo "==> .venv as uv.lock says ($("$UV" --version))"
  UV_PYTHON_DOWNLOADS="${UV_PYTHON_DOWNLOADS:-never}" "$UV" "${args[@]}" --quiet
}
