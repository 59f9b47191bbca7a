// The release .wasm links against what Envoy gives an ABI 0.2.0 module, nothing more.
import { it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { FILTER_WASM } from "./support.ts";

// docs/envoy-behaviour.md §1-§2 (proxy-wasm-cpp-host src/wasm.cc registers these for ABI 0.2.0). Notably
// absent: proxy_clear_route_cache, proxy_continue_request, proxy_get_configuration, proxy_get_log_level.
const ENVOY_ABI_0_2_0 = new Set(
  [
    "proxy_log",
    "proxy_get_status",
    "proxy_set_tick_period_milliseconds",
    "proxy_get_current_time_nanoseconds",
    "proxy_get_property",
    "proxy_set_property",
    "proxy_continue_stream",
    "proxy_close_stream",
    "proxy_send_local_response",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_register_shared_queue",
    "proxy_resolve_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_get_header_map_value",
    "proxy_add_header_map_value",
    "proxy_replace_header_map_value",
    "proxy_remove_header_map_value",
    "proxy_get_header_map_pairs",
    "proxy_set_header_map_pairs",
    "proxy_get_header_map_size",
    "proxy_get_buffer_status",
    "proxy_get_buffer_bytes",
    "proxy_set_buffer_bytes",
    "proxy_http_call",
    "proxy_grpc_call",
    "proxy_grpc_stream",
    "proxy_grpc_send",
    "proxy_grpc_cancel",
    "proxy_grpc_close",
    "proxy_define_metric",
    "proxy_increment_metric",
    "proxy_record_metric",
    "proxy_get_metric",
    "proxy_set_effective_context",
    "proxy_done",
    "proxy_call_foreign_function",
  ].map((name) => `env.${name}`),
);
// The environ pair reads the cluster policy's token (kvm_service.token_env); cpp-host registers it
// for every module (FOR_ALL_WASI_FUNCTIONS in include/proxy-wasm/exports.h).
const WASI = new Set([
  "wasi_unstable.proc_exit",
  "wasi_unstable.fd_write",
  "wasi_unstable.clock_time_get",
  "wasi_unstable.random_get",
  "wasi_unstable.environ_sizes_get",
  "wasi_unstable.environ_get",
]);

it("imports only host calls Envoy registers for ABI 0.2.0, and exports the ABI marker", () => {
  const module = new WebAssembly.Module(readFileSync(FILTER_WASM));
  const imports = WebAssembly.Module.imports(module).map((i) => `${i.module}.${i.name}`);
  const unexpected = imports.filter((name) => !ENVOY_ABI_0_2_0.has(name) && !WASI.has(name));
  assert.deepEqual(unexpected, []);
  // Guard against the SDK declarations the filter must bypass.
  assert.ok(!imports.includes("env.proxy_clear_route_cache"));
  assert.ok(
    !imports.includes("env.abort") && !imports.includes("env.trace") && !imports.includes("env.seed"),
  );
  const exports = WebAssembly.Module.exports(module).map((e) => e.name);
  for (const name of [
    "proxy_abi_version_0_2_0",
    "malloc",
    "memory",
    "proxy_on_request_headers",
    "proxy_on_configure",
  ]) {
    assert.ok(exports.includes(name), `missing export ${name}`);
  }
});
