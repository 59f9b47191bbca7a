#!/usr/bin/env bash
# Stops and removes the Docker sandbox. `--volumes` also drops the database volume.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .sandbox/env ]; then
  set -a
  # shellcheck source=/dev/null
  . .sandbox/env
  set +a
fi
docker compose down --remove-orphans "$@"
