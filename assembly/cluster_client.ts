// The `cluster` policy's client for the KVM service's data plane (docs/service.md, "Data-plane
// API"): one HTTP callout through Envoy per operation, to the cluster named in `kvm_service`.
//   get    GET    {path_prefix}/kvms/{kvm}/entries/{key}   (If-None-Match: "<version>" to revalidate a cached entry)
//   put    PUT    … raw value as the body; x-kvm-ttl for `ttl`; If-None-Match: * for `override: false`
//   delete DELETE …
// The key is percent-encoded byte for byte, so any key (NUL, '/', non-UTF-8) round-trips. Envoy's
// answers, its own failures included, are turned into one CalloutAnswer (docs/envoy-behaviour.md §4).
import { isUrlUnreserved } from "./chars";
import { KvmService, Operation, OperationType } from "./model";
import { OpError } from "./errors";
import { MapType, BufferType, WasmResult } from "./hostcalls/abi";
import { CalloutDispatch, getBufferBytes, getHeader, httpCall } from "./hostcalls/calls";

// An upper-case hexadecimal digit for 0-15.
function hexDigit(n: i32): u8 {
  if (n < 10) return (0x30 + n) as u8;
  return (0x37 + n) as u8;
}

// "{path_prefix}/kvms/{kvm}/entries/{percent-encoded key}" as bytes.
export function entryPath(service: KvmService, kvmName: string, key: ArrayBuffer): ArrayBuffer {
  let prefix = service.pathPrefix;
  if (prefix.endsWith("/")) prefix = prefix.substring(0, prefix.length - 1);
  const head = String.UTF8.encode(prefix + "/kvms/" + kvmName + "/entries/");
  const keyBase = changetype<usize>(key);
  let size = head.byteLength;
  for (let i = 0; i < key.byteLength; i++) {
    if (isUrlUnreserved(load<u8>(keyBase + i))) size += 1;
    else size += 3;
  }
  const out = new ArrayBuffer(size);
  const base = changetype<usize>(out);
  memory.copy(base, changetype<usize>(head), head.byteLength);
  let at = base + head.byteLength;
  for (let i = 0; i < key.byteLength; i++) {
    const c = load<u8>(keyBase + i);
    if (isUrlUnreserved(c)) {
      store<u8>(at, c);
      at += 1;
    } else {
      store<u8>(at, 0x25); // '%'
      store<u8>(at + 1, hexDigit(c >> 4));
      store<u8>(at + 2, hexDigit(c & 15));
      at += 3;
    }
  }
  return out;
}

function methodOf(type: OperationType): string {
  if (type == OperationType.Put) return "PUT";
  if (type == OperationType.Delete) return "DELETE";
  return "GET";
}

// Dispatches the operation's callout. `value` is the put's value (ignored otherwise);
// `revalidateVersion` (get) asks for a 304 when the entry still has that version (0 = no).
export function dispatchCallout(
  service: KvmService,
  token: string,
  op: Operation,
  key: ArrayBuffer,
  value: ArrayBuffer | null,
  revalidateVersion: u64,
): CalloutDispatch {
  const names = new Array<string>();
  const values = new Array<ArrayBuffer>();
  names.push(":method");
  values.push(String.UTF8.encode(methodOf(op.operationType)));
  names.push(":path");
  values.push(entryPath(service, op.kvmName, key));
  names.push(":authority");
  values.push(String.UTF8.encode(service.authority));
  if (token.length > 0) {
    names.push("authorization");
    values.push(String.UTF8.encode("Bearer " + token));
  }
  let body = new ArrayBuffer(0);
  if (op.operationType == OperationType.Put) {
    if (value !== null) body = value;
    if (op.ttlSeconds > 0) {
      names.push("x-kvm-ttl");
      values.push(String.UTF8.encode(op.ttlSeconds.toString()));
    }
    if (!op.override) {
      names.push("if-none-match");
      values.push(String.UTF8.encode("*"));
    }
  } else if (op.operationType == OperationType.Get && revalidateVersion != 0) {
    names.push("if-none-match");
    values.push(String.UTF8.encode('"' + revalidateVersion.toString() + '"'));
  }
  return httpCall(service.cluster, names, values, body, service.timeoutMs);
}

// CalloutAnswer.status values that are not HTTP statuses.
export const NO_HEADERS: u32 = 0; // the callback had no headers (proxy_get_status: BrokenConnection)
export const INVALID_STATUS: u32 = 1; // headers without a usable :status

// What came back. NO_HEADERS: the callback had no headers (the connection broke after the answer
// started, or the body was over Envoy's 32 MiB); any other status is the answer's :status, Envoy's
// own 503 (no connection) and 504 (timeout) included.
export class CalloutAnswer {
  constructor(
    public status: u32,
    public body: ArrayBuffer,
    public version: u64, // from the etag `"<version>"`; 0 when absent or not a version
  ) {}
}

function parseDecimal(bytes: ArrayBuffer, start: i32, end: i32): u64 {
  if (end <= start || end - start > 19) return 0;
  const base = changetype<usize>(bytes);
  let n: u64 = 0;
  for (let i = start; i < end; i++) {
    const c = load<u8>(base + i);
    if (c < 0x30 || c > 0x39) return 0;
    n = n * 10 + ((c - 0x30) as u64);
  }
  return n;
}

// Inside proxy_on_http_call_response only: the answer's headers and body are readable there alone.
export function readAnswer(headerCount: u32, bodySize: u32): CalloutAnswer {
  if (headerCount == 0) return new CalloutAnswer(NO_HEADERS, new ArrayBuffer(0), 0);
  const statusBytes = getHeader(MapType.HttpCallResponseHeaders, ":status");
  let status: u64 = 0;
  if (statusBytes !== null) status = parseDecimal(statusBytes, 0, statusBytes.byteLength);
  if (status < 100 || status > 999) status = 0;
  let body = new ArrayBuffer(0);
  if (bodySize > 0) {
    const read = getBufferBytes(BufferType.HttpCallResponseBody, 0, bodySize);
    if (read !== null) body = read;
  }
  let version: u64 = 0;
  const etag = getHeader(MapType.HttpCallResponseHeaders, "etag");
  if (etag !== null && etag.byteLength >= 3) {
    const base = changetype<usize>(etag);
    if (load<u8>(base) == 0x22 && load<u8>(base + etag.byteLength - 1) == 0x22) {
      version = parseDecimal(etag, 1, etag.byteLength - 1);
    }
  }
  // A :status that is missing or not a three-digit number: an answer the operation cannot use.
  if (status == 0) return new CalloutAnswer(INVALID_STATUS, body, version);
  return new CalloutAnswer(status as u32, body, version);
}

function startsWithAscii(bytes: ArrayBuffer, prefix: string): bool {
  const p = String.UTF8.encode(prefix);
  if (bytes.byteLength < p.byteLength) return false;
  return memory.compare(changetype<usize>(bytes), changetype<usize>(p), p.byteLength) == 0;
}

// The error for an answer the operation cannot use. Messages carry statuses and cluster names,
// never keys, values or tokens.
export function answerError(service: KvmService, answer: CalloutAnswer): OpError {
  const status = answer.status;
  if (status == NO_HEADERS) {
    return new OpError(
      503,
      "kvm_service_reset",
      "the connection to the KVM service broke before its answer was complete",
    );
  }
  if (status == 504) {
    return new OpError(
      503,
      "kvm_service_timeout",
      "the KVM service did not answer within " + service.timeoutMs.toString() + " ms",
    );
  }
  if (status == 503 && startsWithAscii(answer.body, "upstream connect error")) {
    // Envoy's own reply: no connection, a reset before the answer, or an answer that was not HTTP.
    return new OpError(
      503,
      "kvm_service_unreachable",
      'Envoy got no answer from cluster "' + service.cluster + '"',
    );
  }
  if (status == 401 || status == 403) {
    return new OpError(
      503,
      "kvm_service_unauthorized",
      "the KVM service refused the token (" + status.toString() + "); check kvm_service.token_env",
    );
  }
  if (status == 413) {
    // The service's limit (KVM_MAX_VALUE_BYTES) may be below the filter's: still the client's value.
    return new OpError(400, "value_too_large", "the value is larger than the KVM service accepts (413)");
  }
  if (status == INVALID_STATUS)
    return new OpError(503, "kvm_service_error", "the KVM service answered without a valid :status");
  return new OpError(503, "kvm_service_error", "the KVM service answered " + status.toString());
}

export function dispatchError(service: KvmService, result: WasmResult): OpError {
  if (result == WasmResult.InternalFailure) {
    return new OpError(
      503,
      "kvm_service_unreachable",
      'cluster "' + service.cluster + '" has no healthy upstream',
    );
  }
  return new OpError(
    503,
    "kvm_service_unavailable",
    'Envoy refused the callout to cluster "' +
      service.cluster +
      '" (result ' +
      result.toString() +
      "): is the cluster defined?",
  );
}
