// Per-request state and the sources and destinations of operations. Every read returns null
// for "missing"; every write returns an OpError or null. Nothing here throws.
import { Destination, DestinationType, Source, SourceType } from "./model";
import { badRequest, OpError } from "./errors";
import { JsonKind, jsonQuote } from "./json";
import { JsonSpan, findJsonPath, jsonStringText, scanJson, setJsonPath } from "./json_scan";
import { decodeUtf8, encodeUtf8, hasLoneSurrogate } from "./utf8";
import { isHeaderValueControl } from "./chars";
import { getQueryParam, setQueryParam } from "./query";
import { BufferType, MapType, WasmResult } from "./hostcalls/abi";
import { getHeader, getProperty, replaceHeader, setBufferBytes, setProperty } from "./hostcalls/calls";

function bytesOf(s: string): ArrayBuffer {
  return String.UTF8.encode(s);
}

function sliceBuffer(view: Uint8Array, start: i32, end: i32): ArrayBuffer {
  return view.buffer.slice(view.byteOffset + start, view.byteOffset + end);
}

// A header value must be field-value bytes (RFC 9110 §5.5): HTAB, SP, visible ASCII and obs-text
// 0x80-0xFF. Envoy itself only refuses NUL, CR and LF, but other control bytes would make an HTTP/2
// upstream reset the stream (RFC 9113 §8.2.1), failing every request that reads the entry.
function validHeaderValue(value: ArrayBuffer): bool {
  const base = changetype<usize>(value);
  for (let i = 0; i < value.byteLength; i++) {
    if (isHeaderValueControl(load<u8>(base + i))) return false;
  }
  return true;
}

// No `cond ? param : expression` with managed values here or anywhere in the filter: AssemblyScript
// 0.17 miscompiles that shape (it releases the parameter once too often, or leaks).
function describe(kind: string, name: string): string {
  if (name.length == 0) return kind;
  return kind + ' "' + name + '"';
}

export function sourceLabel(source: Source): string {
  if (source.type == SourceType.Header) return describe("header", source.name);
  if (source.type == SourceType.Query) return describe("query parameter", source.name);
  if (source.type == SourceType.Body) {
    if (source.name.length == 0) return "request body";
    return describe("body field", source.name);
  }
  if (source.type == SourceType.SharedContext) return describe("shared context", source.name);
  return "literal";
}

export class RequestState {
  // The whole request body, once it has been read at end of stream; null before or without one.
  body: Uint8Array | null = null;
  bodyChanged: bool = false;
  // The body's JSON root (validated, no tree built), computed once per body version.
  private bodyRoot: JsonSpan | null = null;
  private bodyScanned: bool = false;

  // Values set by earlier operations of this request (mirrored to Envoy filter state).
  shared: Map<string, ArrayBuffer> = new Map();

  responseHeaderNames: string[] = [];
  responseHeaderValues: ArrayBuffer[] = [];

  setBody(body: ArrayBuffer): void {
    this.body = Uint8Array.wrap(body);
    this.bodyScanned = false;
    this.bodyRoot = null;
  }

  // Drops the body once the operations ran: a stream may stay open long after, and wasm memory
  // never shrinks.
  releaseBody(): void {
    this.body = null;
    this.bodyScanned = false;
    this.bodyRoot = null;
  }

  private bodyJson(): JsonSpan | null {
    if (!this.bodyScanned) {
      this.bodyScanned = true;
      const body = this.body;
      if (body !== null) this.bodyRoot = scanJson(body);
    }
    return this.bodyRoot;
  }

  // Why the last readSource returned null when the input is there but unusable (null: missing).
  readError: OpError | null = null;

  // The source's bytes, or null when it is missing (or unusable: then readError says why).
  readSource(source: Source): ArrayBuffer | null {
    this.readError = null;
    switch (source.type) {
      case SourceType.Header:
        return getHeader(MapType.RequestHeaders, source.name);
      case SourceType.Query: {
        const path = getHeader(MapType.RequestHeaders, ":path");
        if (path === null) return null;
        const value = getQueryParam(Uint8Array.wrap(path), Uint8Array.wrap(bytesOf(source.name)));
        if (value === null) return null;
        return value.buffer;
      }
      case SourceType.Body:
        return this.readBody(source.name);
      case SourceType.SharedContext: {
        if (this.shared.has(source.name)) return this.shared.get(source.name);
        // Set by another filter as Envoy filter state (proxy_set_property of a wasm filter).
        return getProperty(source.name);
      }
    }
    return bytesOf(source.name);
  }

  private readBody(path: string): ArrayBuffer | null {
    const body = this.body;
    if (body === null || body.length == 0) return null;
    if (path.length == 0) return sliceBuffer(body, 0, body.length);
    const root = this.bodyJson();
    if (root === null) return null;
    const found = findJsonPath(body, root, path);
    if (found === null) return null;
    if (found.kind == JsonKind.String) {
      // A JSON string's text, as UTF-8 without quotes or escapes. One with a lone surrogate escape
      // (`"\ud800"`) is not Unicode text and has no UTF-8 form: refused rather than written as
      // U+FFFD, which would make different strings one key.
      const text = jsonStringText(body, found);
      if (hasLoneSurrogate(text)) {
        this.readError = badRequest(
          "invalid_body",
          'body field "' + path + '" is not valid Unicode text (it has a lone surrogate escape)',
        );
        return null;
      }
      return encodeUtf8(text).buffer;
    }
    // Any other JSON value: its JSON text exactly as the client sent it.
    return sliceBuffer(body, found.start, found.end);
  }

  writeDestination(destination: Destination, value: ArrayBuffer): OpError | null {
    switch (destination.type) {
      case DestinationType.Header: {
        if (!validHeaderValue(value)) return headerValueError(destination.name);
        return hostWrite(replaceHeader(MapType.RequestHeaders, destination.name, value), "header");
      }
      case DestinationType.Query: {
        const path = getHeader(MapType.RequestHeaders, ":path");
        if (path === null) return badRequest("invalid_request", "the request has no :path");
        const updated = setQueryParam(
          Uint8Array.wrap(path),
          Uint8Array.wrap(bytesOf(destination.name)),
          Uint8Array.wrap(value),
        );
        return hostWrite(
          replaceHeader(MapType.RequestHeaders, ":path", sliceBuffer(updated, 0, updated.length)),
          "query",
        );
      }
      case DestinationType.Body:
        return this.writeBody(destination.name, value);
      case DestinationType.SharedContext: {
        this.shared.set(destination.name, value);
        // Also Envoy filter state, for later filters and access logs. Failing to mirror it
        // does not fail the operation: later operations of this filter still see it.
        setProperty(destination.name, value);
        return null;
      }
      case DestinationType.ResponseHeader: {
        if (!validHeaderValue(value)) return headerValueError(destination.name);
        for (let i = 0; i < this.responseHeaderNames.length; i++) {
          if (this.responseHeaderNames[i] == destination.name) {
            this.responseHeaderValues[i] = value;
            return null;
          }
        }
        this.responseHeaderNames.push(destination.name);
        this.responseHeaderValues.push(value);
        return null;
      }
    }
    return null;
  }

  private writeBody(path: string, value: ArrayBuffer): OpError | null {
    const body = this.body;
    if (body === null) {
      return badRequest("missing_body", "the request has no body to write to");
    }
    if (path.length == 0) {
      this.replaceBody(Uint8Array.wrap(value));
      return null;
    }
    const root = this.bodyJson();
    if (root === null || root.kind != JsonKind.Object) {
      return badRequest(
        "invalid_body",
        'the request body is not a JSON object; cannot set field "' + path + '"',
      );
    }
    const text = decodeUtf8(Uint8Array.wrap(value));
    if (text === null) {
      return badRequest(
        "invalid_value",
        'the value is not UTF-8 text; cannot put it into JSON field "' + path + '"',
      );
    }
    const updated = setJsonPath(body, root, path, jsonQuote(text));
    if (updated === null) {
      return badRequest("invalid_body", 'body field "' + path + '" crosses a value that is not an object');
    }
    this.replaceBody(updated);
    return null;
  }

  private replaceBody(body: Uint8Array): void {
    this.body = body;
    this.bodyChanged = true;
    this.bodyScanned = false;
    this.bodyRoot = null;
  }

  // Hands a changed body back to Envoy while the headers are still held, fixing content-length
  // (Envoy does not: docs/envoy-behaviour.md §5).
  flushBody(originalSize: u32): OpError | null {
    const body = this.body;
    if (!this.bodyChanged || body === null) return null;
    const result = setBufferBytes(BufferType.RequestBody, 0, originalSize, sliceBuffer(body, 0, body.length));
    if (result != WasmResult.Ok) return hostWrite(result, "body");
    if (getHeader(MapType.RequestHeaders, "content-length") !== null) {
      replaceHeader(MapType.RequestHeaders, "content-length", bytesOf(body.length.toString()));
    }
    return null;
  }

  // A failed operation's local reply must not carry values earlier operations meant for a
  // successful response.
  dropResponseHeaders(): void {
    this.responseHeaderNames = [];
    this.responseHeaderValues = [];
  }

  applyResponseHeaders(): void {
    for (let i = 0; i < this.responseHeaderNames.length; i++) {
      replaceHeader(MapType.ResponseHeaders, this.responseHeaderNames[i], this.responseHeaderValues[i]);
    }
  }
}

function headerValueError(name: string): OpError {
  return badRequest(
    "invalid_value",
    'the value cannot be sent in header "' + name + '": it contains control characters',
  );
}

function hostWrite(result: WasmResult, what: string): OpError | null {
  if (result == WasmResult.Ok) return null;
  return new OpError(
    500,
    "write_failed",
    "Envoy refused the " + what + " write (result " + result.toString() + ")",
  );
}
