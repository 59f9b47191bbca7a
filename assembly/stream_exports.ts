// The per-stream ABI exports, owned here instead of taken from @solo-io/proxy-runtime 0.1.8: the
// SDK's proxy_on_context_create (runtime.ts ensureContext / ensureRootContext) builds and logs
// seven debug strings per request — three of them joining every live context id — whatever the log
// level, and its lookups retain the context without a release, so every request's context stayed
// allocated. The filter keeps its stream contexts in its own table (streams.ts); the root context
// stays in the SDK's map, which the SDK's root exports (proxy_on_vm_start, proxy_on_configure,
// proxy_on_http_call_response, …) still serve. docs/envoy-behaviour.md §10.
import {
  ensureRootContext,
  FilterDataStatusValues,
  FilterHeadersStatusValues,
  FilterMetadataStatusValues,
  FilterTrailersStatusValues,
} from "@solo-io/proxy-runtime/runtime";
import { proxy_on_delete as sdkOnDelete, proxy_on_done as sdkOnDone } from "@solo-io/proxy-runtime/exports";
import { __collect } from "rt/index-full";
import { KvmHttpContext, KvmRootContext } from "./filter";
import { addStream, dropStream, streamPointer } from "./streams";

// Root contexts by id, filled by the factory index.ts registers (one per plugin sharing the VM).
const roots = new Map<u32, KvmRootContext>();

// Only after checking streamPointer(contextId) != 0.
function stream(contextId: u32): KvmHttpContext {
  return changetype<KvmHttpContext>(streamPointer(contextId));
}

export function createRootContext(contextId: u32): KvmRootContext {
  const root = new KvmRootContext(contextId);
  roots.set(contextId, root);
  return root;
}

export function proxy_on_context_create(contextId: u32, rootContextId: u32): void {
  if (rootContextId == 0) {
    ensureRootContext(contextId); // once per plugin: the SDK's factory call and its logs are fine
    return;
  }
  if (!roots.has(rootContextId) || streamPointer(contextId) != 0) return;
  addStream(contextId, changetype<usize>(new KvmHttpContext(contextId, roots.get(rootContextId))));
}

export function proxy_on_request_headers(contextId: u32, headers: u32, endOfStream: u32): i32 {
  if (streamPointer(contextId) == 0) return FilterHeadersStatusValues.Continue;
  return stream(contextId).onRequestHeaders(headers, endOfStream != 0);
}

export function proxy_on_request_body(contextId: u32, bodySize: u32, endOfStream: u32): i32 {
  if (streamPointer(contextId) == 0) return FilterDataStatusValues.Continue;
  return stream(contextId).onRequestBody(bodySize, endOfStream != 0);
}

export function proxy_on_request_trailers(contextId: u32, trailers: u32): i32 {
  if (streamPointer(contextId) == 0) return FilterTrailersStatusValues.Continue;
  return stream(contextId).onRequestTrailers(trailers);
}

export function proxy_on_response_headers(contextId: u32, headers: u32, endOfStream: u32): i32 {
  if (streamPointer(contextId) == 0) return FilterHeadersStatusValues.Continue;
  return stream(contextId).onResponseHeaders(headers, endOfStream != 0);
}

// The filter does not look at metadata, the response body or response trailers.
export function proxy_on_request_metadata(_contextId: u32, _elements: u32): i32 {
  return FilterMetadataStatusValues.Continue;
}

export function proxy_on_response_metadata(_contextId: u32, _elements: u32): i32 {
  return FilterMetadataStatusValues.Continue;
}

export function proxy_on_response_body(_contextId: u32, _bodySize: u32, _endOfStream: u32): i32 {
  return FilterDataStatusValues.Continue;
}

export function proxy_on_response_trailers(_contextId: u32, _trailers: u32): i32 {
  return FilterTrailersStatusValues.Continue;
}

export function proxy_on_log(_contextId: u32): void {}

// A root context goes to the SDK, which holds it; an id that is neither (never created) is ignored.
export function proxy_on_done(contextId: u32): u32 {
  if (roots.has(contextId)) return sdkOnDone(contextId);
  return 1;
}

export function proxy_on_delete(contextId: u32): void {
  if (roots.has(contextId)) {
    sdkOnDelete(contextId);
    roots.delete(contextId);
    return;
  }
  if (streamPointer(contextId) == 0) return;
  stream(contextId).onDelete();
  dropStream(contextId);
  // AssemblyScript 0.17's reference counting parks an object whose count once fell to a non-zero
  // value in a buffer of possible cycle roots, and frees it only in __collect (rt/pure.ts
  // decrement), which nothing else calls: without this the rtrace test sees a parsed JSON value
  // left allocated by a request reading an escaped body string. Cheap when the buffer is empty.
  __collect();
}
