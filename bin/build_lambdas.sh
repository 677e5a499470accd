#!/usr/bin/env bash
# Build the Lambda zip (both functions, one artifact) without Docker.
#
#   ./bin/build_lambdas.sh [OUT_ZIP]      default: lambdas/dist/local-ml-flow-lambda.zip
#
# Dependencies come from lambdas/requirements.txt as manylinux wheels for CPython 3.12
# x86_64 (what the python3.12 Lambda runtime runs), whatever the build machine is.
# Environment:
#   PYTHON                Python (>= 3.11) running pip and the packager
#                         (default: .venv/bin/python if present, else python3)
#   LMF_LAMBDA_BUILD_DIR  scratch directory, wiped before and after (default: lambdas/build)
#   LMF_KEEP_BUILD=1      keep the unpacked tree in the scratch directory, to inspect it
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/lambdas/dist/local-ml-flow-lambda.zip}"
BUILD_DIR="${LMF_LAMBDA_BUILD_DIR:-$ROOT/lambdas/build}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

# manylinux2014 (glibc 2.17) and every newer manylinux tag up to glibc 2.34, the glibc of
# Amazon Linux 2023 under the python3.12 runtime: current numpy/scipy wheels are
# manylinux_2_28 only, and stopping at manylinux2014 would pin the functions to older
# releases than the API runs (a model pickled by one scikit-learn, read by another).
PLATFORMS=(--platform manylinux2014_x86_64)
for minor in $(seq 17 34); do
    PLATFORMS+=(--platform "manylinux_2_${minor}_x86_64")
done

PKG="$BUILD_DIR/package"
rm -rf "$BUILD_DIR"
mkdir -p "$PKG"

echo "==> dependencies (CPython 3.12, manylinux x86_64 wheels) into $PKG"
"$PYTHON" -m pip install \
    --quiet --disable-pip-version-check --no-input --no-compile \
    --target "$PKG" \
    --implementation cp --python-version 3.12 --only-binary=:all: \
    "${PLATFORMS[@]}" \
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
