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
#   STRIP                 GNU strip to use (default: strip, if it is GNU binutils')
#   LMF_LAMBDA_BYTECODE   whether to ship the modules' bytecode (unchecked-hash .pyc, compiled by a
#                         CPython 3.12: LMF_PYTHON312, else python3.12, pyenv's or uv's):
#                         unset (the default): shipped, so a Lambda cold start compiles nothing in
#                         its read-only /var/task (handler import 0.6 s instead of 2.1 s, for 37 MB
#                         more unzipped: 216 MB of 250); with no CPython 3.12 found, the build
#                         says so and ships none. 1: shipped, no CPython 3.12 is an error.
#                         0: none, the bytecode-free package (179 MB; see docs/infrastructure.md)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/lambdas/dist/local-ml-flow-lambda.zip}"
BUILD_DIR="${LMF_LAMBDA_BUILD_DIR:-$ROOT/lambdas/build}"
BYTECODE="${LMF_LAMBDA_BYTECODE:-default}"
case "$BYTECODE" in
    0 | 1 | default) ;;
    *) echo "error: LMF_LAMBDA_BYTECODE must be 0 or 1 (unset: 1 if a CPython 3.12 is found)," \
        "not '$BYTECODE'" >&2; exit 1 ;;
esac
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
# (UV_COMPILE_BYTECODE from the caller's environment would contradict --no-compile)
env -u UV_COMPILE_BYTECODE "$UV" pip install --quiet --no-config --require-hashes \
    --only-binary :all: --no-compile \
    --target "$PKG" --python-version 3.12 --python-platform x86_64-manylinux_2_34 \
    -r "$ROOT/lambdas/requirements.txt"

# Parts of the dependencies the functions never import, dropped whole. Every entry was checked
# by running both functions (every model kind) from the unzipped package on CPython 3.12 with
# a dump of sys.modules: nothing under these paths is ever imported. tests/infra/
# test_packaging.py runs the functions from the built zip the same way, so an upgrade that
# starts to need one of them fails a test, not a deployment. A listed path that no longer
# exists stops the build: check the list again after an upgrade.
DROP=(
    # skops' model cards (skops.card) and their table printer: never written by the functions
    wcwidth 'wcwidth-*.dist-info' prettytable 'prettytable-*.dist-info'
    # scipy subpackages that scikit-learn's linear, ensemble, tree, metrics and
    # model_selection code never imports
    scipy/signal scipy/cluster scipy/odr scipy/fftpack scipy/differentiate scipy/datasets
    scipy/misc scipy/stats/_unuran
    # scipy.optimize.minimize's COBYQA and COBYLA solvers (imported only when chosen)
    scipy/_lib/cobyqa scipy/_lib/pyprima
    # extension modules never imported: the MatrixMarket reader (loaded only inside
    # scipy.io.mmread/mmwrite/mminfo) and numpy's SIMD test module (numpy's tests only)
    'scipy/io/_fast_matrix_market/_fmm_core.cpython-312-x86_64-linux-gnu.so'
    'numpy/_core/_simd.cpython-312-x86_64-linux-gnu.so'
    # joblib's test suite; pydantic's v1 compatibility API
    joblib/test pydantic/v1
    # adapters for libraries that are not in the package (matplotlib, pyarrow, polars,
    # dask, duckdb, ibis, pyspark, torch, cupy)
    pandas/plotting/_matplotlib narwhals/_arrow narwhals/_polars narwhals/_dask
    narwhals/_duckdb narwhals/_ibis narwhals/_spark_like narwhals/_sql
    scipy/_lib/array_api_compat/torch scipy/_lib/array_api_compat/cupy
    sklearn/externals/array_api_compat/torch sklearn/externals/array_api_compat/cupy
    # scikit-learn's bundled toy datasets (read only by sklearn.datasets.load_*)
    sklearn/datasets/data sklearn/datasets/descr sklearn/datasets/images
)
tree_bytes() { find "$1" -type f -printf '%s\n' | awk '{ n += $1 } END { print n + 0 }'; }
in_mb() { awk -v n="$1" 'BEGIN { printf "%.1f MB", n / 1048576 }'; }
installed=$(tree_bytes "$PKG")
echo "==> dropping what the functions never import (installed: $(in_mb "$installed"))"
for entry in "${DROP[@]}"; do
    # shellcheck disable=SC2206 # the glob in an entry expands here, on purpose
    matches=("$PKG"/$entry)
    if [[ ! -e "${matches[0]}" ]]; then
        echo "error: $entry is not in the package any more: update DROP in $0" >&2
        exit 1
    fi
    rm -rf "${matches[@]}"
done
echo "    dropped $(in_mb $(( installed - $(tree_bytes "$PKG") ))) (${#DROP[@]} entries)"

echo "==> local_ml_flow (without the API, the CLI and the embedded emulator)"
cp -R "$ROOT/src/local_ml_flow" "$PKG/local_ml_flow"
rm -rf "$PKG/local_ml_flow/api" "$PKG/local_ml_flow/cli.py" "$PKG/local_ml_flow/embedded.py" \
    "$PKG/local_ml_flow/emulator_main.py" "$PKG/local_ml_flow/lambda_package.py" \
    "$PKG/local_ml_flow/statedir.py"

echo "==> resolved distributions"
find "$PKG" -maxdepth 1 -name '*.dist-info' -printf '    %f\n' | sed 's/\.dist-info$//' | sort

# GNU strip for the extension modules' symbol tables (not another strip: macOS's cannot
# write ELF); without it the zip is still valid, only larger.
STRIP_ARGS=()
for candidate in "${STRIP:-}" strip x86_64-linux-gnu-strip; do
    if [[ -n "$candidate" ]] && "$candidate" --version 2>/dev/null | grep -q '^GNU strip'; then
        STRIP_ARGS=(--strip "$(command -v "$candidate")")
        break
    fi
done

BYTECODE_ARGS=()
if [[ "$BYTECODE" != 0 ]]; then
    # LMF_PYTHON312 as given (the packager checks it is a 3.12), else the first 3.12 that
    # runs: a pyenv shim answers to python3.12 even when that version is not active
    PY312="${LMF_PYTHON312:-}"
    if [[ -z "$PY312" ]]; then
        for candidate in python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12 \
            /usr/local/bin/python3.12 /usr/bin/python3.12 \
            "$("$UV" python find --no-project 3.12 2>/dev/null || true)"; do
            if [[ -n "$candidate" ]] && "$candidate" -c \
                'import sys; sys.exit(sys.implementation.cache_tag != "cpython-312")' 2>/dev/null
            then
                PY312="$(command -v "$candidate")"
                break
            fi
        done
    fi
    if [[ -n "$PY312" ]]; then
        echo "==> bytecode compiled by $PY312"
        BYTECODE_ARGS=(--bytecode "$PY312")
    elif [[ "$BYTECODE" == 1 ]]; then
        echo "error: LMF_LAMBDA_BYTECODE=1 needs a CPython 3.12: set LMF_PYTHON312" \
            "(uv python install 3.12 gives one)" >&2
        exit 1
    else
        echo "warning: no CPython 3.12 found (LMF_PYTHON312, python3.12, pyenv, uv): this zip" \
            "ships no bytecode, so every Lambda cold start compiles what it imports (about" \
            "1.5 s more). Install one (uv python install 3.12), or set LMF_LAMBDA_BYTECODE=0" \
            "to build without it on purpose, or =1 to make this an error." >&2
    fi
fi

echo "==> zip"
"$PYTHON" "$ROOT/lambdas/package_zip.py" "$PKG" "$OUT" "${STRIP_ARGS[@]}" "${BYTECODE_ARGS[@]}"

if [[ "${LMF_KEEP_BUILD:-0}" != 1 ]]; then
    rm -rf "$BUILD_DIR"
fi
