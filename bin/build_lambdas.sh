#!/usr/bin/env bash
# Build the Lambda zip (both functions, one artifact) without Docker.
#
#   ./bin/build_lambdas.sh [OUT_ZIP]      default: lambdas/dist/local-ml-flow-lambda.zip
#
# Dependencies: lambdas/requirements.txt, exported from uv.lock (./bin/lock.sh) with every
# version and hash pinned - the very versions the venv and the API run - installed by uv as
# manylinux wheels for CPython 3.12 x86_64 (what the python3.12 Lambda runtime runs),
# whatever the build machine is.
# Environment:
#   PYTHON                Python (>= 3.11) running the packager (and installing uv if missing)
#                         (default: .venv/bin/python if present, else python3)
#   UV                    the uv to use (default: found or installed, see bin/lib/venv.sh)
#   LMF_LAMBDA_BUILD_DIR  scratch directory, wiped before and after (default: lambdas/build)
#   LMF_KEEP_BUILD=1      keep the unpacked tree in the scratch directory, to inspect it
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/lambdas/dist/local-ml-flow-lambda.zip}"
BUILD_DIR="${LMF_LAMBDA_BUILD_DIR:-$ROOT/lambdas/build}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

# shellcheck source=bin/lib/venv.sh
. "$ROOT/bin/lib/venv.sh"
find_uv

PKG="$BUILD_DIR/package"
rm -rf "$BUILD_DIR"
mkdir -p "$PKG"

# Any manylinux wheel up to glibc 2.34, the glibc of Amazon Linux 2023 under the python3.12
# runtime (current numpy/scipy wheels are manylinux_2_28 only).
echo "==> dependencies (uv.lock's versions; CPython 3.12, manylinux x86_64 wheels) into $PKG"
"$UV" pip install --quiet --no-config --require-hashes --only-binary :all: --no-compile \
    --target "$PKG" --python-version 3.12 --python-platform x86_64-manylinux_2_34 \
    -r "$ROOT/lambdas/requirements.txt"

echo "==> local_ml_flow (without the API, the CLI and the embedded emulator)"
cp -R "$ROOT/src/local_ml_flow" "$PKG/local_ml_flow"
rm -rf "$PKG/local_ml_flow/api" "$PKG/local_ml_flow/cli.py" "$PKG/local_ml_flow/embedded.py" \
    "$PKG/local_ml_flow/emulator_main.py" "$PKG/local_ml_flow/lambda_package.py"

echo "==> resolved distributions"
find "$PKG" -maxdepth 1 -name '*.dist-info' -printf '    %f\n' | sed 's/\.dist-info$//' | sort

echo "==> zip"
"$PYTHON" "$ROOT/lambdas/package_zip.py" "$PKG" "$OUT"

if [[ "${LMF_KEEP_BUILD:-0}" != 1 ]]; then
    rm -rf "$BUILD_DIR"
fi
