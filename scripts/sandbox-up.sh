#!/usr/bin/env bash
# Brings the Docker sandbox up (docker-compose.yml) and returns once every service is healthy.
# Builds the filter first (Envoy mounts build/kvm_filter.wasm). Tokens and the database password
# come from the environment; missing ones are generated once into .sandbox/env (git-ignored) and
# reused by the other sandbox scripts.
set -euo pipefail
cd "$(dirname "$0")/.."

npm run --silent build:release
chmod a+r build/kvm_filter.wasm envoy/envoy.yaml # Envoy runs as the user `envoy`

mkdir -p .sandbox
touch .sandbox/env
chmod 600 .sandbox/env
for name in KVM_DATA_TOKEN KVM_ADMIN_TOKEN POSTGRES_PASSWORD; do
  if [ -z "${!name:-}" ] && ! grep -q "^$name=" .sandbox/env; then
    echo "$name=$(node -e 'console.log(require("node:crypto").randomBytes(24).toString("hex"))')" >>.sandbox/env
  fi
done
set -a
# shellcheck source=/dev/null
. .sandbox/env
set +a

docker compose up --build --detach --wait
echo "sandbox up: Envoy on http://127.0.0.1:10000 (admin :9901), KVM service on http://127.0.0.1:8081"
echo "tokens: .sandbox/env (KVM_ADMIN_TOKEN for the envoy-kvm kvm commands)"
