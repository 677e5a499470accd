#!/usr/bin/env bash
# Builds the API image (Dockerfile) and the Lambda image (lambdas/Dockerfile) and proves them:
# the API image serves /ready, a pipeline run, /predict and the dashboard as a non-root user and
# passes its own HEALTHCHECK; the Lambda image runs both handlers through its Runtime Interface
# Client with {} events and scores 65.29%; neither holds test data, .git, .venv, state or
# secrets (bin/lib/check_images.py). Prints sizes, build times and cold starts.
#
#   ./bin/check_images.sh                 # podman here: bases made on this machine, see below
#   ./bin/check_images.sh --engine docker --no-build \
#       --api-image local-ml-flow:ci --lambda-image local-ml-flow-lambda:ci   # CI: images built
#
# With podman (the default) no registry is needed: the bases are made here, a Debian bookworm
# root from Debian's packages (mmdebstrap) with this machine's CPython 3.12 (LMF_PYTHON312, else
# python3.12 on PATH or under pyenv), and the Lambda base adds awslambdaric and boto3 from PyPI
# (bin/lib/images/); they are passed as PYTHON_BASE / LAMBDA_BASE, the only difference from the
# images CI builds on python:3.12-slim-bookworm and public.ecr.aws/lambda/python:3.12.
# LMF_DATASET_PATH (a housing.csv) is mounted into the API container; without it the image
# fetches the reference file itself.
# Exit status: 0 all checks pass, 1 a check or a build failed (the error is printed), 77 the
# check cannot run here (the reason is printed: no podman, podman cannot run a container, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

engine="podman --runtime runc --cgroup-manager=cgroupfs"
run_flags="--ulimit nofile=4096:4096 --ulimit nproc=4096:4096"
build=1
api_image=localhost/local-ml-flow:check
lambda_image=localhost/local-ml-flow-lambda:check
while [ $# -gt 0 ]; do
  case "$1" in
    --engine) engine="$2"; run_flags=""; shift 2 ;;
    --run-flags) run_flags="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --api-image) api_image="$2"; shift 2 ;;
    --lambda-image) lambda_image="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

skip() { echo "SKIP: $*"; exit 77; }
read -r -a eng <<<"$engine"
read -r -a rflags <<<"$run_flags"
command -v "${eng[0]}" >/dev/null 2>&1 \
  || skip "no ${eng[0]} (Debian: apt-get install podman buildah runc mmdebstrap)"
command -v python3 >/dev/null 2>&1 || skip "no python3 to run the checks"
dataset="${LMF_DATASET_PATH:-}"
if [ -n "$dataset" ] && [ ! -f "$dataset" ]; then
  echo "error: LMF_DATASET_PATH=$dataset is not a file" >&2
  exit 1
fi

secs() { python3 -c 'import time; print(f"{time.monotonic():.3f}")'; }
elapsed() { python3 -c "print(f'{$(secs) - $1:.1f}')"; }
# One build: its time is printed; a failure shows the build's last lines and exits 1.
build_image() { # tag file context [build args...]
  local tag="$1" file="$2" context="$3" log t0
  shift 3
  log="$(mktemp)"
  t0="$(secs)"
  if ! "${eng[@]}" build "${rflags[@]}" --format docker -t "$tag" -f "$file" "$@" "$context" >"$log" 2>&1; then
    tail -40 "$log" >&2
    rm -f "$log"
    echo "FAILED: building $tag from $file" >&2
    exit 1
  fi
  rm -f "$log"
  echo "==> built $tag from $file in $(elapsed "$t0") s"
}

if [ "$build" = 1 ]; then
  [ "${eng[0]}" = podman ] || { echo "error: building here needs podman (CI builds with docker, then --no-build)" >&2; exit 2; }
  command -v mmdebstrap >/dev/null 2>&1 || skip "no mmdebstrap to make the base (apt-get install mmdebstrap)"
  "${eng[@]}" info >/dev/null 2>&1 || skip "podman cannot start here: $("${eng[@]}" info 2>&1 | tail -1)"
  # The first CPython 3.12 that runs (a pyenv shim may exist without the version active).
  prefix=""
  for python312 in ${LMF_PYTHON312:-} python3.12 \
      "$(find "${PYENV_ROOT:-$HOME/.pyenv}/versions" -maxdepth 3 -path '*/3.12*/bin/python3.12' 2>/dev/null | sort -V | tail -1)"; do
    prefix="$("$python312" -c 'import sys; assert sys.version_info[:2] == (3, 12); print(sys.base_prefix)' 2>/dev/null)" && break
    prefix=""
  done
  [ -n "$prefix" ] || skip "no CPython 3.12 runs here to make the base from (set LMF_PYTHON312)"
  case "$prefix" in /usr) skip "$python312 is the system's Python (/usr): give a self-contained 3.12 (e.g. pyenv's) in LMF_PYTHON312" ;; esac

  debian=localhost/lmf-check-debian:bookworm
  if ! "${eng[@]}" image exists "$debian"; then
    t0="$(secs)"
    tarball="$(mktemp --suffix=.tar)"
    # Debian's runtime libraries of CPython's extension modules, passwd for useradd, CA certs.
    mmdebstrap --quiet --variant=minbase \
      --include=ca-certificates,passwd,libbz2-1.0,libexpat1,libffi8,liblzma5,libncursesw6,libreadline8,libsqlite3-0,libssl3,libtinfo6,libuuid1,zlib1g \
      bookworm "$tarball"
    "${eng[@]}" import --quiet "$tarball" "$debian" >/dev/null
    rm -f "$tarball"
    echo "==> made $debian with mmdebstrap in $(elapsed "$t0") s (kept for the next runs)"
  fi
  context="$(mktemp -d)"
  trap 'rm -rf "$context"' EXIT
  mkdir "$context/python"
  # The interpreter and its standard library; not its installed packages, tests or IDLE.
  tar -C "$prefix" -cf - --exclude='lib/python3.12/site-packages/*' --exclude='lib/python3.12/test' \
      --exclude='lib/python3.12/idlelib' --exclude='lib/python3.12/tkinter' \
      --exclude='lib/python3.12/turtledemo' --exclude='__pycache__' --exclude='*.a' \
      --exclude='bin/pip*' --exclude='bin/idle*' --exclude='bin/pydoc*' --exclude='bin/2to3*' \
      bin lib include | tar -C "$context/python" -xf -
  cp /etc/ssl/certs/ca-certificates.crt "$context/"
  cp bin/lib/images/*.Containerfile "$context/"
  build_image localhost/lmf-check-python:3.12 "$context/python.Containerfile" "$context" \
    --build-arg DEBIAN_BASE="$debian"
  build_image localhost/lmf-check-lambda:3.12 "$context/lambda.Containerfile" "$context" \
    --build-arg PYTHON_BASE=localhost/lmf-check-python:3.12
  build_image "$api_image" Dockerfile . --build-arg PYTHON_BASE=localhost/lmf-check-python:3.12
  build_image "$lambda_image" lambdas/Dockerfile . --build-arg LAMBDA_BASE=localhost/lmf-check-lambda:3.12
fi

for image in "$api_image" "$lambda_image"; do
  size="$("${eng[@]}" image inspect --format '{{.Size}}' "$image")"
  echo "==> size of $image: $((size / 1000000)) MB"
done
args=(--engine "$engine" --run-flags "$run_flags" --api-image "$api_image" --lambda-image "$lambda_image")
[ -z "$dataset" ] || args+=(--dataset "$(realpath "$dataset")")
python3 bin/lib/check_images.py "${args[@]}"
echo "==> the images pass"
