#!/usr/bin/env bash
# Checks envoy/envoy.yaml with the pinned Envoy image's own validator (`envoy --mode validate`),
# with the built filter mounted where the configuration expects it. Needs Docker only.
set -euo pipefail
cd "$(dirname "$0")/.."

image=${ENVOY_IMAGE:-$(sed -n 's/^ *image: \${ENVOY_IMAGE:-\(.*\)}$/\1/p' docker-compose.yml)}
if [ -z "$image" ]; then
  echo "sandbox-validate: no Envoy image in docker-compose.yml and ENVOY_IMAGE is not set" >&2
  exit 1
fi
npm run --silent build:release
chmod a+r build/kvm_filter.wasm envoy/envoy.yaml
docker run --rm \
  -e KVM_DATA_TOKEN=validate-only \
  -v "$PWD/envoy/envoy.yaml:/etc/envoy/envoy.yaml:ro" \
  -v "$PWD/build/kvm_filter.wasm:/etc/envoy/kvm_filter.wasm:ro" \
  "$image" --mode validate -c /etc/envoy/envoy.yaml
