// The request and response as Envoy's HTTP connection manager sees them around the filter chain:
// what http() takes and returns, the request the codec hands to the first filter, and the response
// a local reply becomes.
import type { LocalReply } from "./context.ts";
import { HeaderMap, toLatin1 } from "./header-map.ts";

export interface HttpRequest {
  method?: string;
  path: string;
  authority?: string;
  scheme?: string;
  headers?: [string, string][];
  body?: Uint8Array | string;
  /** The body as separate data frames (no content-length is added). */
  chunks?: Uint8Array[];
  /** Request trailers: the last data frame then has no end_of_stream and on_request_trailers follows. */
  trailers?: [string, string][];
  routeName?: string;
  /** Property overrides: exact NUL-separated paths → raw values. */
  properties?: Record<string, string | Uint8Array>;
  /** Filter state set by earlier filters: keys as given to proxy_set_property (stored as "wasm.<key>"). */
  filterState?: Record<string, string | Uint8Array>;
}

export interface UpstreamAnswer {
  status: number;
  headers?: [string, string][];
  body?: Uint8Array | string;
  /** Response trailers: the body then has no end_of_stream and on_response_trailers follows. */
  trailers?: [string, string][];
}

/** What reached the upstream; `trailers` only when the request went on with trailers. */
export interface UpstreamRequest {
  headers: [string, string][];
  body: Buffer;
  trailers?: [string, string][];
  /** The stream's filter state as the router sees it, keys as Envoy stores them (`wasm.<name>` for what a wasm
   *  filter set with proxy_set_property): what later filters, the router's header formatters
   *  (%FILTER_STATE(…)%) and access logs read. */
  filterState: Map<string, Buffer>;
}

export type Upstream = (r: UpstreamRequest) => Promise<UpstreamAnswer> | UpstreamAnswer;

export interface HttpResult {
  status: number;
  /** Response headers as the client gets them, without ":status". */
  headers: [string, string][];
  body: Buffer;
  /** Response trailers as the client gets them (absent when the response had none). */
  trailers?: [string, string][];
  localReply?: { details: string };
  /** What reached the upstream (absent when the request never went upstream). */
  upstreamRequest?: UpstreamRequest;
  streamId: number;
}

/**
 * The HTTP/1 codec refuses request headers above max_request_headers_kb (default 60) or
 * max_headers_count (default 100) with 431 before any filter exists
 * (envoy source/common/http/http1/codec_impl.cc).
 */
export function codecRejects(headers: HeaderMap, maxKb: number, maxCount: number): boolean {
  return headers.byteSize() > maxKb * 1024 || headers.size > maxCount;
}

/** The response Envoy's sendLocalReply encodes (Utility::prepareLocalReply, then modify_headers). */
export function localReplyHeaders(reply: LocalReply): HeaderMap {
  const headers = new HeaderMap();
  headers.add(":status", String(reply.statusCode));
  // Utility::prepareLocalReply (source/common/http/utility.cc): modify_headers (the module's extra
  // headers) run first; then, with a body, content-length is set and content-type defaults to
  // text/plain only when they did not set one; without a body both are removed.
  for (const [k, v] of reply.headers) headers.add(k, v);
  if (reply.body.length > 0) {
    headers.replace("content-length", String(reply.body.length));
    if (headers.get("content-type") === undefined) headers.add("content-type", "text/plain");
  } else {
    headers.remove("content-length");
    headers.remove("content-type");
  }
  return headers;
}

/** Trailers as the codec hands them to the filter chain (keys lower-cased). */
export function toTrailerMap(pairs: [string, string][]): HeaderMap {
  const map = new HeaderMap();
  for (const [k, v] of pairs) map.add(toLatin1(k), toLatin1(v));
  return map;
}

export function toBody(body: Uint8Array | string | undefined): Buffer {
  if (body === undefined) return Buffer.alloc(0);
  return typeof body === "string" ? Buffer.from(body, "utf8") : Buffer.from(body);
}

/** The request as Envoy's connection manager hands it to the first filter. */
export function buildRequest(
  request: HttpRequest,
  requestId: string,
): { headers: HeaderMap; chunks: Buffer[]; trailers: HeaderMap | undefined } {
  // Each pair is one HTTP/1.1 header line: the codec adds it with addViaMove, so a repeated
  // inline header is merged into one entry ("a,b") and any other repeats (see header-map.ts).
  const headers = new HeaderMap("request");
  headers.add(":authority", toLatin1(request.authority ?? "example.com"));
  headers.add(":path", toLatin1(request.path));
  headers.add(":method", toLatin1(request.method ?? "GET"));
  headers.add(":scheme", toLatin1(request.scheme ?? "http"));
  for (const [k, v] of request.headers ?? []) headers.add(toLatin1(k), toLatin1(v));
  let chunks: Buffer[];
  if (request.chunks !== undefined) {
    chunks = request.chunks.filter((c) => c.length > 0).map((c) => Buffer.from(c));
  } else {
    const body = toBody(request.body);
    chunks = body.length > 0 ? [body] : [];
    if (body.length > 0 && !headers.has("content-length")) headers.add("content-length", String(body.length));
  }
  // ConnectionManagerUtility::mutateRequestHeaders runs before the filters.
  if (!headers.has("x-forwarded-proto")) headers.add("x-forwarded-proto", toLatin1(request.scheme ?? "http"));
  if (!headers.has("x-request-id")) headers.add("x-request-id", requestId);
  const trailers = request.trailers === undefined ? undefined : toTrailerMap(request.trailers);
  return { headers, chunks, trailers };
}
