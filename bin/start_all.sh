#!/usr/bin/env bash
# Bring the whole stack up and serve the API until Ctrl-C.
#   with Docker (engine + compose v2 plugin): Lambda zip -> LocalStack + Terraform (docker
#       compose) -> one pipeline run through real Lambda invocations -> API in compose
#   without (or --embedded): the same code on the embedded AWS emulator
# Options:
#   --embedded       use the embedded emulator even when Docker is there; its state (runs,
#                    models, datasets) lives in .lmf/state (or LMF_STATE_DIR)
#   --fresh          embedded: start with an empty state
#   --port N         the API's port (default: LMF_API_PORT, else 8000)
#   --dataset PATH   a housing CSV: validated, then the current housing.csv (the one it
#                    replaces is archived). Without it the stored one is used; an empty
#                    state gets LMF_DATASET_PATH, else the verified download
# Environment: LMF_LOCALSTACK_PORT (LocalStack's edge port on the host, default 4566),
#   PYTHON (the python3 that creates .venv), UV (the uv to use).
set -euo pipefail
caller_dir="$PWD"
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'error: %s (see --help)\n' "$*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; }
# absolute PATH: relative paths are the caller's, not the project root's
absolute() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$caller_dir" "$1" ;; esac; }
# port_in_use PORT: something accepts connections on 127.0.0.1:PORT
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
valid_port() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }

embedded=0
fresh=()
port="${LMF_API_PORT:-8000}"
edge_port="${LMF_LOCALSTACK_PORT:-4566}"
named=""  # the dataset given with --dataset
while [ $# -gt 0 ]; do
  case "$1" in
    --embedded) embedded=1 ;;
    --fresh) fresh=(--fresh) ;;
    --port=*|--dataset=*)  # the --option=value form: split in two
      option="${1%%=*}" value="${1#*=}"
      shift
      set -- "$option" "$value" "$@"
      continue ;;
    --port|--dataset)
      [ $# -ge 2 ] && [ -n "$2" ] || usage_error "$1 needs a value"
      if [ "$1" = --port ]; then port="$2"; else named="$2"; fi
      shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown option $1" ;;
  esac
  shift
done
valid_port "$port" || usage_error "--port must be a TCP port (1-65535), not '$port'"
valid_port "$edge_port" || usage_error "LMF_LOCALSTACK_PORT must be a TCP port, not '$edge_port'"
[ -z "$named" ] || named="$(absolute "$named")"
if [ -n "${LMF_DATASET_PATH:-}" ]; then  # relative to the caller, who set it
  LMF_DATASET_PATH="$(absolute "$LMF_DATASET_PATH")"
  export LMF_DATASET_PATH
fi
# before any set-up or training: a busy port would only show after them
port_in_use "$port" && fail "port $port is already in use (another local-ml-flow?):" \
  "stop what listens there, or choose another with --port N (or LMF_API_PORT)"

logs=.lmf/logs
mkdir -p "$logs"
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

# shellcheck source=bin/lib/venv.sh
. bin/lib/venv.sh
ensure_venv

# A dataset given with --dataset must be a regular file (checked before anything starts).
if [ -n "$named" ] && [ ! -f "$named" ]; then
  if [ -d "$named" ]; then fail "dataset $named is a folder: name the CSV file in it"
  elif [ -e "$named" ]; then fail "dataset $named is not a regular file (a device, FIFO or socket)"
  else fail "dataset file $named does not exist"; fi
fi

docker_ok=0
if [ "$embedded" = 0 ]; then
  if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
    say "no Docker engine answers: using the embedded AWS emulator instead (same code, in-process Lambdas)"
  elif ! docker compose version >/dev/null 2>&1; then
    say "Docker has no compose v2 plugin ('docker compose'): using the embedded AWS emulator instead"
  else
    docker_ok=1
  fi
fi

aws_cli_hint() {
  say "AWS CLI against it: AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1" \
    "aws --endpoint-url $1 s3 ls"
}

if [ "$docker_ok" = 0 ]; then
  say "starting the embedded stack (state in ${LMF_STATE_DIR:-$PWD/.lmf/state})"
  aws_cli_hint "http://127.0.0.1:${LMF_EMBEDDED_PORT:-4566}"
  named_dataset=()
  [ -z "$named" ] || named_dataset=(--dataset "$named")
  exec .venv/bin/local-ml-flow serve --embedded "${named_dataset[@]}" --port "$port" "${fresh[@]}"
fi

# Docker: the dataset the API container uploads (given, LMF_DATASET_PATH, else the download)
dataset="${named:-${LMF_DATASET_PATH:-}}"
if [ -z "$dataset" ]; then
  step dataset-fetch "fetching the reference dataset (sha256-checked, cached)" \
    .venv/bin/local-ml-flow dataset fetch
  dataset="$(.venv/bin/python -c 'from local_ml_flow.settings import Settings; from local_ml_flow.datasource import cached_path; print(cached_path(Settings().cache_dir))')"
fi
[ -f "$dataset" ] || fail "dataset file $dataset does not exist (LMF_DATASET_PATH?)"

# --- Docker: LocalStack + Terraform + the API in compose ----------------------------------
port_in_use "$edge_port" && fail "port $edge_port (LocalStack's edge) is already in use:" \
  "stop what listens there (another LocalStack?), or set LMF_LOCALSTACK_PORT"
# compose reads these: the published ports, and the user the Terraform container runs as
# (so terraform.tfstate and .terraform.lock.hcl stay yours)
export LMF_API_PORT="$port" LMF_LOCALSTACK_PORT="$edge_port"
LMF_UID="$(id -u)" LMF_GID="$(id -g)"
export LMF_UID LMF_GID
# every bind source exists before compose would create it (as root)
mkdir -p lambdas/dist .cache .lmf/terraform-data
zip=lambdas/dist/local-ml-flow-lambda.zip
if [ -f "$zip" ] && [ -z "$(find src lambdas/requirements.txt lambdas/package_zip.py \
    bin/build_lambdas.sh -newer "$zip" ! -name "*.pyc" ! -name __pycache__ -print -quit)" ]; then
  say "the Lambda zip is up to date ($zip)"
else
  step build-lambdas "building the Lambda zip" ./bin/build_lambdas.sh
fi
cp "$dataset" .cache/housing.csv

stop_stack() {
  say "stopping (docker compose down: LocalStack keeps nothing, the next start redeploys)"
  docker compose down >/dev/null 2>&1 || true
}
trap 'stop_stack; exit 0' INT TERM
step compose-up "starting LocalStack, Terraform and the API (docker compose)" \
  docker compose up --detach --build

# failed_service: the first service that exited (Terraform only when it failed), else nothing
failed_service() {
  docker compose ps --all --format '{{.Service}} {{.State}} {{.ExitCode}}' 2>/dev/null \
    | awk '($2 == "exited" || $2 == "dead") && !($1 == "terraform" && $3 == 0) {print $1; exit}'
}
fail_with_logs() {  # SERVICE MESSAGE
  docker compose logs "$1" >"$logs/$1.log" 2>&1 || true
  tail -n 20 "$logs/$1.log" >&2 || true
  stop_stack
  fail "$2; log: $logs/$1.log"
}

api="http://localhost:$port"
say "waiting for LocalStack, Terraform and the API (first start pulls images; up to 10 min)"
deadline=$((SECONDS + 600))
until curl -fsS "$api/ready" >"$logs/ready.json" 2>/dev/null; do
  service="$(failed_service)"
  [ -z "$service" ] || fail_with_logs "$service" "the $service container exited"
  if [ "$SECONDS" -ge "$deadline" ]; then
    docker compose logs >"$logs/compose.log" 2>&1 || true
    stop_stack
    fail "the stack was not ready after 10 minutes; log: $logs/compose.log"
  fi
  sleep 3
done
say "functions deployed and Active; running the pipeline through LocalStack's Lambda"
# one POST: its own response is the error (a second POST would start a second run)
status="$(curl -sS -o "$logs/run.json" -w '%{http_code}' -X POST "$api/pipeline/runs" || true)"
if [ "$status" != 201 ]; then
  cat "$logs/run.json" >&2 2>/dev/null || true
  printf '\n' >&2
  fail "the pipeline run failed (HTTP ${status:-no answer}); response: $logs/run.json," \
    "logs: docker compose logs localstack api"
fi
.venv/bin/python - "$logs/run.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
print(f"==> run {run['run_id']}: R² {run['metrics']['r2']:.4f} ({run['metrics']['score']})")
PY
say "API on http://localhost:$port  (Swagger UI: http://localhost:$port/docs)"
say "dashboard: http://localhost:$port/ui"
say "score: http://localhost:$port/result/local-ml-flow-data"
aws_cli_hint "http://localhost:$edge_port"
say "serving until Ctrl-C (then docker compose down: LocalStack keeps nothing across it)"
docker compose logs --follow api &
wait
