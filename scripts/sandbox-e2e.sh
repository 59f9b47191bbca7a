#!/usr/bin/env bash
# Brings the Docker sandbox up, runs the e2e suite (every test/e2e/*.test.ts, the files `npm test` runs
# against the local gateway) against Envoy: GATEWAY_URL is Envoy, KVM_URL the KVM service and
# KVM_ADMIN_TOKEN (from .sandbox/env) its admin token (test/e2e/stack.ts). It prints every
# container's logs when anything failed, and tears the sandbox down whatever happened.
# ENVOY_IMAGE picks the Envoy release (docker-compose.yml has the default).
set -euo pipefail
cd "$(dirname "$0")/.."

finish() {
  status=$?
  if [ "$status" -ne 0 ]; then
    echo "sandbox-e2e: failed ($status); container logs follow" >&2
    docker compose logs --no-color --timestamps >&2 || true
  fi
  scripts/sandbox-down.sh --volumes || true
  exit "$status"
}
trap finish EXIT

scripts/sandbox-up.sh
set -a
# shellcheck source=/dev/null
. .sandbox/env
set +a
GATEWAY_URL=http://127.0.0.1:10000 KVM_URL=http://127.0.0.1:8081 \
  node --import tsx --test --test-concurrency=1 test/e2e/*.test.ts
