#!/usr/bin/env bash
# Update uv.lock and the requirement files exported from it, in one command:
#   ./bin/lock.sh                                   after editing pyproject.toml (other pins kept)
#   ./bin/lock.sh --upgrade-package scikit-learn    one package to its newest allowed version
#   ./bin/lock.sh --upgrade                         every package
# Arguments go to `uv lock`. The exports (hash-pinned, for pip without uv):
#   requirements.lock.txt     the runtime dependencies: the API image (Dockerfile)
#   lambdas/requirements.txt  the `lambda` group: the Lambda zip and the Lambda image
# Then run ./bin/test.sh (tests/infra/test_lock.py checks that the exports match uv.lock).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bin/lib/venv.sh
. bin/lib/venv.sh
find_uv

"$UV" lock "$@"
"$UV" export --frozen --quiet --format requirements.txt --no-emit-project --no-default-groups \
  --output-file requirements.lock.txt
"$UV" export --frozen --quiet --format requirements.txt --only-group lambda \
  --output-file lambdas/requirements.txt
echo "==> uv.lock, requirements.lock.txt and lambdas/requirements.txt are up to date"
