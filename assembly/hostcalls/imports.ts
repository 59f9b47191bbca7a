// Raw host imports that @solo-io/proxy-runtime 0.1.8 does not declare (or declares wrongly).
// Everything else comes from "@solo-io/proxy-runtime/imports".

// Envoy (proxy-wasm-cpp-host src/exports.cc, set_buffer_bytes) replaces `length` bytes at `start`
// with `data`; (0, current_size) replaces the whole body. The SDK 0.1.8 declares no such import
// (its "proxy_set_buffer_status" binds the wrong name).
// @ts-ignore: decorator
@external("env", "proxy_set_buffer_bytes")
export declare function proxy_set_buffer_bytes(
  buffer_type: i32,
  start: u32,
  length: u32,
  data_ptr: usize,
  data_size: usize,
): u32;
