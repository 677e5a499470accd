#!/usr/bin/env bash
# Bring the whole stack up and serve the API on :8000 until Ctrl-C.
#   with a Docker engine: Lambda zip -> LocalStack + Terraform (docker compose) -> one
#                         pipeline run through real Lambda invocations -> API in compose
#   without one (or --embedded): the same code on the embedded AWS emulator
# Options: --embedded  --port N  --dataset PATH  (or LMF_DATASET_PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bin/lib/venv.sh
. bin/lib/venv.sh

embedded=0
port="${LMF_API_PORT:-8000}"
dataset="${LMF_DATASET_PATH:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --embedded) embedded=1 ;;
    --port) port="$2"; shift ;;
    --dataset) dataset="$2"; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

logs=.lmf/logs
mkdir -p "$logs"
say() { printf '==> %s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }
# step NAME MESSAGE CMD...: say MESSAGE, run CMD with its output in $logs/NAME.log;
# on failure say which step failed and where its log is.
step() {
  local name="$1" message="$2"; shift 2
  say "$message"
  if ! "$@" >"$logs/$name.log" 2>&1; then
    tail -n 20 "$logs/$name.log" >&2 || true
    fail "step '$name' failed; full log: $logs/$name.log"
  fi
}

ensure_venv

# The dataset: a given file, else the verified download (cached).
if [ -n "$dataset" ]; then
  [ -f "$dataset" ] || fail "dataset file $dataset does not exist"
else
  step dataset-fetch "fetching the reference dataset (sha256-checked, cached)" \
    .venv/bin/local-ml-flow dataset fetch
  dataset="$(.venv/bin/python -c 'from local_ml_flow.settings import Settings; from local_ml_flow.datasource import cached_path; print(cached_path(Settings().cache_dir))')"
fi

docker_ok=0
if [ "$embedded" = 0 ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    docker_ok=1
  else
    say "no Docker engine answers: using the embedded AWS emulator instead (same code, in-process Lambdas)"
  fi
fi

if [ "$docker_ok" = 0 ]; then
  say "starting the embedded stack"
  exec .venv/bin/local-ml-flow serve --embedded --run-first --dataset "$dataset" --port "$port"
fi

# --- Docker: LocalStack + Terraform + the API in compose ----------------------------------
[ "$port" = 8000 ] || say "note: with Docker the API is published on :8000 (docker-compose.yml)"
step build-lambdas "building the Lambda zip" ./bin/build_lambdas.sh
mkdir -p .cache
cp "$dataset" .cache/housing.csv
step compose-up "starting LocalStack, Terraform and the API (docker compose)" \
  docker compose up --detach --build
trap 'say "stopping"; docker compose down >/dev/null 2>&1 || true; exit 0' INT TERM

say "waiting for LocalStack, Terraform and the API (first start pulls images; up to 10 min)"
deadline=$((SECONDS + 600))
until curl -fsS http://localhost:8000/ready >"$logs/ready.json" 2>/dev/null; do
  if [ "$(docker compose ps --all --format '{{.Service}} {{.State}} {{.ExitCode}}' terraform \
        | awk '$2 == "exited" && $3 != 0')" != "" ]; then
    docker compose logs terraform >"$logs/terraform.log" 2>&1 || true
    fail "terraform apply failed; log: $logs/terraform.log"
  fi
  [ "$SECONDS" -lt "$deadline" ] || {
    docker compose logs >"$logs/compose.log" 2>&1 || true
    fail "the stack was not ready after 10 minutes; log: $logs/compose.log"
  }
  sleep 3
done
say "functions deployed and Active; running the pipeline through LocalStack's Lambda"
if ! curl -fsS -X POST http://localhost:8000/pipeline/runs >"$logs/run.json"; then
  curl -sS -X POST http://localhost:8000/pipeline/runs >"$logs/run.json" || true
  fail "the pipeline run failed; response: $logs/run.json, logs: docker compose logs localstack"
fi
.venv/bin/python - "$logs/run.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
print(f"==> run {run['run_id']}: R² {run['metrics']['r2']:.4f} ({run['metrics']['score']})")
PY
say "API on http://localhost:8000  (Swagger UI: http://localhost:8000/docs)"
say "dashboard: http://localhost:8000/ui"
say "score: http://localhost:8000/result/local-ml-flow-data"
say "serving until Ctrl-C (then docker compose down)"
docker compose logs --follow api &
wait
