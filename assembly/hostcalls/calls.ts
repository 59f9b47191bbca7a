// The only module that touches raw host imports. Small wrappers that never trap: every
// host answer other than Ok becomes null / a returned WasmResult, never an exception (the SDK
// 0.1.8 wrappers throw on NotFound, which is a trap in Envoy — docs/envoy-behaviour.md §8, §10).
import * as imports from "@solo-io/proxy-runtime/imports";
import { free } from "@solo-io/proxy-runtime/malloc";
import { environ_get, environ_sizes_get } from "bindings/wasi_unstable";
import { proxy_set_buffer_bytes } from "./imports";
import { WasmResult, LogLevel, MetricType } from "./abi";

// Out-parameters the host writes into. Module-level, so a call needs no allocation; every
// wrapper reads them back before the next host call.
const outPtr = memory.data(8);
const outSize = memory.data(8);
const outCas = memory.data(8);
const outU64 = memory.data(8);

// The host copies a returned value in through the module's exported `malloc`, which hands it an
// ArrayBuffer holding one reference (@solo-io/proxy-runtime malloc.ts). Copy the bytes out into
// a buffer this module owns and drop that reference. Reusing the malloc'd buffer itself, as the
// SDK's toArrayBuffer does, releases it one time too many under AssemblyScript 0.17's reference
// counting (a debug build traps in rt/pure.ts; a release build reads freed memory).
function takeReturnedBuffer(): ArrayBuffer {
  const ptr = load<usize>(outPtr);
  const size = load<usize>(outSize);
  if (ptr == 0) return new ArrayBuffer(0);
  const out = new ArrayBuffer(size as i32);
  memory.copy(changetype<usize>(out), ptr, size);
  free(ptr);
  return out;
}

function resetOut(): void {
  store<usize>(outPtr, 0);
  store<usize>(outSize, 0);
}

export function log(level: LogLevel, message: string): void {
  const bytes = String.UTF8.encode(message);
  imports.proxy_log(level as usize, changetype<usize>(bytes), bytes.byteLength);
}

export function getHeader(map: i32, name: string): ArrayBuffer | null {
  const key = String.UTF8.encode(name);
  resetOut();
  const result = imports.proxy_get_header_map_value(
    map,
    changetype<usize>(key),
    key.byteLength,
    outPtr,
    outSize,
  );
  if (result != WasmResult.Ok) return null;
  return takeReturnedBuffer();
}

export function replaceHeader(map: i32, name: string, value: ArrayBuffer): WasmResult {
  const key = String.UTF8.encode(name);
  return imports.proxy_replace_header_map_value(
    map,
    changetype<usize>(key),
    key.byteLength,
    changetype<usize>(value),
    value.byteLength,
  ) as WasmResult;
}

export function getBufferBytes(bufferType: i32, start: u32, length: u32): ArrayBuffer | null {
  resetOut();
  const result = imports.proxy_get_buffer_bytes(bufferType, start, length, outPtr, outSize);
  if (result != WasmResult.Ok) return null;
  return takeReturnedBuffer();
}

export function setBufferBytes(bufferType: i32, start: u32, length: u32, data: ArrayBuffer): WasmResult {
  return proxy_set_buffer_bytes(
    bufferType,
    start,
    length,
    changetype<usize>(data),
    data.byteLength,
  ) as WasmResult;
}

// Property paths are NUL-separated tokens (`xds\0route_name`); a dotted path is NotFound
// (docs/envoy-behaviour.md §6).
export function getProperty(path: string): ArrayBuffer | null {
  const bytes = String.UTF8.encode(path);
  resetOut();
  const result = imports.proxy_get_property(changetype<usize>(bytes), bytes.byteLength, outPtr, outSize);
  if (result != WasmResult.Ok) return null;
  return takeReturnedBuffer();
}

export function setProperty(path: string, value: ArrayBuffer): WasmResult {
  const bytes = String.UTF8.encode(path);
  return imports.proxy_set_property(
    changetype<usize>(bytes),
    bytes.byteLength,
    changetype<usize>(value),
    value.byteLength,
  ) as WasmResult;
}

export class SharedDataEntry {
  constructor(
    public result: WasmResult,
    public value: ArrayBuffer,
    public cas: u32,
  ) {}
}

// Envoy shared data (docs/envoy-behaviour.md §3): NotFound when absent; otherwise the value and its CAS.
export function getSharedData(key: ArrayBuffer): SharedDataEntry {
  resetOut();
  store<u32>(outCas, 0);
  const result = imports.proxy_get_shared_data(
    changetype<usize>(key),
    key.byteLength,
    outPtr,
    outSize,
    outCas,
  ) as WasmResult;
  if (result != WasmResult.Ok) return new SharedDataEntry(result, new ArrayBuffer(0), 0);
  const cas = load<u32>(outCas);
  return new SharedDataEntry(result, takeReturnedBuffer(), cas);
}

// cas 0 = unconditional; a stale non-zero cas on a present key → CasMismatch.
export function setSharedData(key: ArrayBuffer, value: ArrayBuffer, cas: u32): WasmResult {
  return imports.proxy_set_shared_data(
    changetype<usize>(key),
    key.byteLength,
    changetype<usize>(value),
    value.byteLength,
    cas,
  ) as WasmResult;
}

// Wall clock in milliseconds (proxy_get_current_time_nanoseconds is the realtime clock).
export function nowMs(): u64 {
  store<u64>(outU64, 0);
  imports.proxy_get_current_time_nanoseconds(outU64);
  return load<u64>(outU64) / 1000000;
}

// Serialized header pairs (docs/envoy-behaviour.md §2): u32 count, then u32 key/value sizes, then each
// key and value followed by NUL; little-endian.
export function serializePairs(names: string[], values: ArrayBuffer[]): ArrayBuffer {
  const count = min(names.length, values.length);
  const keys = new Array<ArrayBuffer>(count);
  let size = 4 + 8 * count;
  for (let i = 0; i < count; i++) {
    keys[i] = String.UTF8.encode(names[i]);
    size += keys[i].byteLength + 1 + values[i].byteLength + 1;
  }
  const out = new ArrayBuffer(size);
  const base = changetype<usize>(out);
  store<u32>(base, count);
  let data = base + 4 + 8 * count;
  for (let i = 0; i < count; i++) {
    store<u32>(base + 4 + 8 * i, keys[i].byteLength);
    store<u32>(base + 8 + 8 * i, values[i].byteLength);
    memory.copy(data, changetype<usize>(keys[i]), keys[i].byteLength);
    data += keys[i].byteLength;
    store<u8>(data, 0);
    data += 1;
    memory.copy(data, changetype<usize>(values[i]), values[i].byteLength);
    data += values[i].byteLength;
    store<u8>(data, 0);
    data += 1;
  }
  return out;
}

export function sendLocalResponse(
  status: u32,
  details: string,
  body: ArrayBuffer,
  headerNames: string[],
  headerValues: ArrayBuffer[],
): WasmResult {
  const detailBytes = String.UTF8.encode(details);
  const pairs = serializePairs(headerNames, headerValues);
  return imports.proxy_send_local_response(
    status,
    changetype<usize>(detailBytes),
    detailBytes.byteLength,
    changetype<usize>(body),
    body.byteLength,
    changetype<usize>(pairs),
    pairs.byteLength,
    // No gRPC status: Envoy takes -1 as "none".
    -1,
  ) as WasmResult;
}

// Returns the metric id, or u32.MAX_VALUE when the host refused to define it.
export function defineMetric(type: MetricType, name: string): u32 {
  const bytes = String.UTF8.encode(name);
  store<u32>(outU64, 0);
  const result = imports.proxy_define_metric(type, changetype<usize>(bytes), bytes.byteLength, outU64);
  if (result != WasmResult.Ok) return u32.MAX_VALUE;
  return load<u32>(outU64);
}

export function incrementMetric(id: u32, offset: i64): void {
  if (id == u32.MAX_VALUE) return;
  imports.proxy_increment_metric(id, offset);
}

export class CalloutDispatch {
  constructor(
    public result: WasmResult,
    public token: u32,
  ) {}
}

// proxy_http_call (docs/envoy-behaviour.md §4). Envoy makes the call on the root context whatever
// context is current; the answer comes to the root's proxy_on_http_call_response. An unknown
// cluster or a missing pseudo-header is BadArgument and no healthy upstream InternalFailure, at
// dispatch, with no callback ever.
export function httpCall(
  cluster: string,
  headerNames: string[],
  headerValues: ArrayBuffer[],
  body: ArrayBuffer,
  timeoutMs: u32,
): CalloutDispatch {
  const upstream = String.UTF8.encode(cluster);
  const pairs = serializePairs(headerNames, headerValues);
  const noTrailers = serializePairs([], []);
  store<u32>(outU64, 0);
  const result = imports.proxy_http_call(
    changetype<usize>(upstream),
    upstream.byteLength,
    changetype<usize>(pairs),
    pairs.byteLength,
    changetype<usize>(body),
    body.byteLength,
    changetype<usize>(noTrailers),
    noTrailers.byteLength,
    timeoutMs,
    outU64,
  ) as WasmResult;
  return new CalloutDispatch(result, load<u32>(outU64));
}

// Resumes the request the filter paused (the effective context's, in a callout's answer). Never
// from the very callback that returns the stop (docs/envoy-behaviour.md §5).
export function continueRequest(): WasmResult {
  return imports.proxy_continue_stream(0) as WasmResult;
}

// BadArgument when the context no longer exists (a stream that ended while its callout was out).
export function setEffectiveContext(contextId: u32): WasmResult {
  return imports.proxy_set_effective_context(contextId) as WasmResult;
}

export function recordMetric(id: u32, value: u64): void {
  if (id == u32.MAX_VALUE) return;
  imports.proxy_record_metric(id, value);
}

// The VM's environment (Envoy: vm_config.environment_variables) through WASI, which Envoy
// provides to every module. null when the variable is not set.
export function getEnvironmentVariable(name: string): string | null {
  store<u32>(outPtr, 0);
  store<u32>(outSize, 0);
  if (environ_sizes_get(outPtr, outSize) != 0) return null;
  const count = load<u32>(outPtr);
  const size = load<u32>(outSize);
  if (count == 0) return null;
  const pointers = new ArrayBuffer(<i32>count * 4);
  const data = new ArrayBuffer(<i32>size);
  if (environ_get(changetype<usize>(pointers), changetype<usize>(data)) != 0) return null;
  const wanted = String.UTF8.encode(name + "=");
  const base = changetype<usize>(data);
  const end = base + size;
  for (let i: u32 = 0; i < count; i++) {
    const start = load<u32>(changetype<usize>(pointers) + i * 4) as usize;
    if (start < base || start + wanted.byteLength > end) continue;
    if (memory.compare(start, changetype<usize>(wanted), wanted.byteLength) != 0) continue;
    let stop = start + wanted.byteLength;
    while (stop < end && load<u8>(stop) != 0) stop++;
    return String.UTF8.decodeUnsafe(start + wanted.byteLength, stop - start - wanted.byteLength);
  }
  return null;
}
