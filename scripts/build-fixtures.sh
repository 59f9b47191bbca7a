#!/usr/bin/env bash
# Builds the small AssemblyScript modules the host tests load (test/host/fixtures/*.ts → build/fixtures/).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/fixtures
shopt -s nullglob
for src in test/host/fixtures/*.ts; do
  name=$(basename "$src" .ts)
  npx asc "$src" --config assembly/__tests__/asconfig.json --use abort=abort_proc_exit \
    --optimizeLevel 1 -b "build/fixtures/$name.wasm"
done
