// proxy_get_property / proxy_set_property as Envoy implements them
// (envoy source/extensions/common/wasm/context.cc Context::getProperty/findValue/setProperty and
// source/extensions/filters/common/expr/context.cc for the CEL attributes):
// - the path is split on NUL; the first token is a CEL top-level attribute (request, response, xds,
//   filter_state, …), then plugin_name / plugin_root_id / plugin_vm_id, and otherwise the filter-state
//   object "wasm.<token>" that proxy_set_property wrote; a dotted path is just one unknown token;
// - request.* needs the request headers Envoy still holds for the filter (request_headers_ is cleared
//   once on_request_headers returned Continue or the stream was continued), so e.g. request.path is
//   NotFound in a body callback after the headers went on;
// - strings are returned raw, ints as 8 bytes little-endian, whole maps fail to serialize here
//   (HeadersWrapper and the attribute wrappers do not list their keys).
import { WasmResult } from "./abi.ts";
import type { HeaderMap } from "./header-map.ts";

export type PropertyValue =
  | { kind: "string"; value: Buffer }
  | { kind: "int64"; value: bigint }
  | { kind: "uint64"; value: bigint }
  | { kind: "bool"; value: boolean }
  | { kind: "bytes"; value: Buffer }
  | { kind: "map"; get(key: Buffer): PropertyValue | undefined };

/** What the property resolver needs to know about the calling context. */
export interface PropertySource {
  pluginName: string;
  rootId: string;
  vmId: string;
  /** Undefined for root and VM contexts: they have no request stream info. */
  stream?: {
    requestHeaders: HeaderMap | undefined; // only while Envoy holds them
    responseHeaders: HeaderMap | undefined;
    responseCode: number | undefined;
    responseCodeDetails: string | undefined;
    routeName: string | undefined;
    startTimeMs: number;
    filterState: Map<string, Buffer>;
    overrides: Map<string, Buffer>;
    connectionId: number;
  };
}

const str = (s: string | Buffer): PropertyValue => ({
  kind: "string",
  value: typeof s === "string" ? Buffer.from(s, "latin1") : s,
});

function headerValue(headers: HeaderMap | undefined, key: string): PropertyValue | undefined {
  if (!headers) return undefined;
  const v = headers.get(key);
  return v === undefined ? undefined : str(v);
}

function headersMap(headers: HeaderMap | undefined): PropertyValue {
  return {
    kind: "map",
    get: (key) => {
      const joined = headers?.getAllJoined(key.toString("latin1"));
      return joined === undefined ? undefined : str(joined);
    },
  };
}

function requestMap(s: NonNullable<PropertySource["stream"]>): PropertyValue {
  const h = s.requestHeaders;
  const path = (): string | undefined => h?.get(":path");
  const lookups: Record<string, () => PropertyValue | undefined> = {
    headers: () => headersMap(h),
    path: () => headerValue(h, ":path"),
    url_path: () => {
      const p = path();
      if (p === undefined) return undefined;
      const q = p.indexOf("?");
      return str(q < 0 ? p : p.slice(0, q));
    },
    query: () => {
      const p = path();
      if (p === undefined) return undefined;
      const q = p.indexOf("?");
      if (q < 0) return str("");
      const rest = p.slice(q + 1);
      const f = rest.indexOf("#");
      return str(f < 0 ? rest : rest.slice(0, f));
    },
    host: () => headerValue(h, ":authority"),
    scheme: () => headerValue(h, ":scheme"),
    method: () => headerValue(h, ":method"),
    referer: () => headerValue(h, "referer"),
    id: () => headerValue(h, "x-request-id"),
    useragent: () => headerValue(h, "user-agent"),
    protocol: () => str("HTTP/1.1"),
    time: () => ({ kind: "int64", value: BigInt(Math.floor(s.startTimeMs)) * 1_000_000n }),
  };
  return { kind: "map", get: (key) => lookups[key.toString("latin1")]?.() };
}

function responseMap(s: NonNullable<PropertySource["stream"]>): PropertyValue {
  const lookups: Record<string, () => PropertyValue | undefined> = {
    headers: () => headersMap(s.responseHeaders),
    code: () => (s.responseCode === undefined ? undefined : { kind: "int64", value: BigInt(s.responseCode) }),
    code_details: () => (s.responseCodeDetails === undefined ? undefined : str(s.responseCodeDetails)),
  };
  return { kind: "map", get: (key) => lookups[key.toString("latin1")]?.() };
}

function xdsMap(s: NonNullable<PropertySource["stream"]>): PropertyValue {
  const lookups: Record<string, () => PropertyValue | undefined> = {
    route_name: () => (s.routeName === undefined ? undefined : str(s.routeName)),
  };
  return { kind: "map", get: (key) => lookups[key.toString("latin1")]?.() };
}

function filterStateMap(s: NonNullable<PropertySource["stream"]>): PropertyValue {
  return {
    kind: "map",
    get: (key) => {
      const v = s.filterState.get(key.toString("latin1"));
      return v === undefined ? undefined : { kind: "bytes", value: v };
    },
  };
}

function findTopLevel(src: PropertySource, name: Buffer): PropertyValue | undefined {
  const s = src.stream;
  const token = name.toString("latin1");
  if (s) {
    switch (token) {
      case "request":
        return requestMap(s);
      case "response":
        return responseMap(s);
      case "xds":
        return xdsMap(s);
      case "filter_state":
        return filterStateMap(s);
      case "connection":
        return {
          kind: "map",
          get: (k) =>
            k.toString("latin1") === "id" ? { kind: "uint64", value: BigInt(s.connectionId) } : undefined,
        };
      case "source":
      case "destination": {
        const address = token === "source" ? "127.0.0.1:40000" : "127.0.0.1:10000";
        const port = token === "source" ? 40000n : 10000n;
        return {
          kind: "map",
          get: (k) => {
            const key = k.toString("latin1");
            if (key === "address") return str(address);
            if (key === "port") return { kind: "int64", value: port };
            return undefined;
          },
        };
      }
    }
  }
  switch (token) {
    case "plugin_name":
      return str(src.pluginName);
    case "plugin_root_id":
      return str(src.rootId);
    case "plugin_vm_id":
      return str(src.vmId);
  }
  if (s) {
    // Filter state written by proxy_set_property lives under the CelState prefix "wasm.".
    const state = s.filterState.get("wasm." + token);
    if (state !== undefined) return { kind: "bytes", value: state };
  }
  return undefined;
}

function serialize(value: PropertyValue): { result: number; value?: Buffer } {
  switch (value.kind) {
    case "string":
    case "bytes":
      return { result: WasmResult.Ok, value: value.value };
    case "int64": {
      const b = Buffer.alloc(8);
      b.writeBigInt64LE(value.value);
      return { result: WasmResult.Ok, value: b };
    }
    case "uint64": {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(value.value);
      return { result: WasmResult.Ok, value: b };
    }
    case "bool":
      return { result: WasmResult.Ok, value: Buffer.from([value.value ? 1 : 0]) };
    case "map":
      return { result: WasmResult.SerializationFailure };
  }
}

/** Context::getProperty. */
export function getProperty(src: PropertySource, path: Buffer): { result: number; value?: Buffer } {
  const override = src.stream?.overrides.get(path.toString("latin1"));
  if (override !== undefined) return { result: WasmResult.Ok, value: override };
  let value: PropertyValue | undefined;
  let first = true;
  let start = 0;
  while (start < path.length) {
    let end = path.indexOf(0, start);
    if (end < 0) end = path.length;
    const part = path.subarray(start, end);
    start = end + 1;
    if (first) {
      first = false;
      value = findTopLevel(src, part);
      if (!value) return { result: WasmResult.NotFound };
    } else if (value && value.kind === "map") {
      value = value.get(part);
      if (!value) return { result: WasmResult.NotFound };
    } else {
      return { result: WasmResult.NotFound };
    }
  }
  if (!value) return { result: WasmResult.NotFound };
  return serialize(value);
}

/** Context::setProperty: a mutable CelState "wasm.<path>" in the stream's filter state. */
export function setProperty(src: PropertySource, path: Buffer, value: Buffer): number {
  if (!src.stream) return WasmResult.NotFound;
  src.stream.filterState.set("wasm." + path.toString("latin1"), Buffer.from(value));
  return WasmResult.Ok;
}
