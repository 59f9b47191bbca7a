// An Envoy-like header map (envoy source/common/http/header_map_impl.cc): keys are lower-cased on
// every insert, pseudo-headers (":method", ":path", …) stay in front of regular headers, values keep
// their bytes. Entries are stored as latin1 strings so every byte round-trips unchanged.
//
// A request header map ("request" kind, Envoy's RequestHeaderMapImpl) also has Envoy's O(1)
// ("inline") headers. HeaderMapImpl::insertByKey — behind addViaMove (what the HTTP/1 and HTTP/2
// codecs call for every received header line, source/common/http/http1/codec_impl.cc
// completeCurrentHeader) and addCopy (what proxy_add_header_map_value, proxy_set_header_map_pairs
// and proxy_http_call's pairs use, extensions/common/wasm/context.cc) — looks the key up in the
// static table first: a second value of an inline header is appended to the existing entry with
// appendToHeader (delimiter "," — "; " only for cookie, which is not inline; an empty new value
// adds nothing, an empty old value takes the new one without a delimiter), while any other header
// gets an entry of its own. get_header_map_value returns entry[0], so for a repeated custom header
// the module sees the first value only, for a repeated inline header all values joined.
// The merge is the header map's doing, not the codec's, so it is the same for HTTP/1.1 and HTTP/2
// except for cookies: the HTTP/2 codec rebuilds crumbled cookie fields into one "; "-joined value
// (Utility::reconstituteCrumbledCookies); the host models HTTP/1.1, where repeated Cookie lines
// stay separate entries.

/**
 * The request headers Envoy's official build (≥ 1.35) registers as inline: INLINE_REQ_HEADERS and
 * INLINE_REQ_RESP_HEADERS (envoy/http/header_map.h) plus the custom inline headers the linked-in
 * extensions register (RegisterCustomInlineHeader), exactly as the startup log prints them
 * ("HTTP header map info: request header map: … bytes: …", source/server/server.cc). A bootstrap
 * `inline_headers` entry would add more; "host" is an alias of ":authority" (StaticLookupTable's
 * HostLegacy special case).
 */
export const INLINE_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  ":authority",
  ":method",
  ":path",
  ":protocol",
  ":scheme",
  "accept",
  "accept-encoding",
  "access-control-request-headers",
  "access-control-request-method",
  "access-control-request-private-network",
  "authentication",
  "authorization",
  "cache-control",
  "cdn-loop",
  "connection",
  "content-encoding",
  "content-length",
  "content-type",
  "expect",
  "grpc-accept-encoding",
  "grpc-timeout",
  "if-match",
  "if-modified-since",
  "if-none-match",
  "if-range",
  "if-unmodified-since",
  "keep-alive",
  "origin",
  "pragma",
  "proxy-connection",
  "proxy-status",
  "referer",
  "te",
  "transfer-encoding",
  "upgrade",
  "user-agent",
  "via",
  "x-client-trace-id",
  "x-envoy-attempt-count",
  "x-envoy-decorator-operation",
  "x-envoy-downstream-service-cluster",
  "x-envoy-downstream-service-node",
  "x-envoy-expected-rq-timeout-ms",
  "x-envoy-external-address",
  "x-envoy-force-trace",
  "x-envoy-hedge-on-per-try-timeout",
  "x-envoy-internal",
  "x-envoy-ip-tags",
  "x-envoy-is-timeout-retry",
  "x-envoy-max-retries",
  "x-envoy-original-path",
  "x-envoy-original-url",
  "x-envoy-retriable-header-names",
  "x-envoy-retriable-status-codes",
  "x-envoy-retry-grpc-on",
  "x-envoy-retry-on",
  "x-envoy-upstream-alt-stat-name",
  "x-envoy-upstream-rq-per-try-timeout-ms",
  "x-envoy-upstream-rq-timeout-alt-response",
  "x-envoy-upstream-rq-timeout-ms",
  "x-envoy-upstream-stream-duration-ms",
  "x-forwarded-client-cert",
  "x-forwarded-for",
  "x-forwarded-host",
  "x-forwarded-port",
  "x-forwarded-proto",
  "x-request-id",
]);

/** "request": Envoy's RequestHeaderMapImpl (inline headers merge); "plain": every value its own entry. */
export type HeaderMapKind = "request" | "plain";

export function toLatin1(value: string | Uint8Array): string {
  return typeof value === "string"
    ? Buffer.from(value, "utf8").toString("latin1")
    : Buffer.from(value).toString("latin1");
}

export function fromLatin1(value: string): string {
  return Buffer.from(value, "latin1").toString("utf8");
}

function lowerAscii(key: string): string {
  // Envoy's LowerCaseString lowers ASCII only (absl::AsciiStrToLower).
  return key.replace(/[A-Z]+/g, (s) => s.toLowerCase());
}

export class HeaderMap {
  private entries: [string, string][] = [];

  constructor(readonly kind: HeaderMapKind = "plain") {}

  static fromPairs(
    pairs: ReadonlyArray<readonly [string | Uint8Array, string | Uint8Array]>,
    kind: HeaderMapKind = "plain",
  ): HeaderMap {
    const map = new HeaderMap(kind);
    for (const [k, v] of pairs) map.add(toLatin1(k), toLatin1(v));
    return map;
  }

  /** The key as the map stores it: lower-cased; in a request map "host" is ":authority". */
  private keyOf(key: string): string {
    const k = lowerAscii(key);
    return this.kind === "request" && k === "host" ? ":authority" : k;
  }

  private isInline(k: string): boolean {
    return this.kind === "request" && INLINE_REQUEST_HEADERS.has(k);
  }

  /**
   * Adds a value (HeaderMapImpl::addCopy / addViaMove → insertByKey); key and value are latin1 byte
   * strings. An inline header that is already present gets the value appended (appendToHeader).
   */
  add(key: string, value: string): void {
    const k = this.keyOf(key);
    if (this.isInline(k)) {
      const entry = this.entries.find(([ek]) => ek === k);
      if (entry) {
        if (value.length > 0) entry[1] = entry[1].length === 0 ? value : `${entry[1]},${value}`;
        return;
      }
    }
    if (k.startsWith(":")) {
      let i = 0;
      while (i < this.entries.length && this.entries[i][0].startsWith(":")) i++;
      this.entries.splice(i, 0, [k, value]);
    } else {
      this.entries.push([k, value]);
    }
  }

  /** HeaderMapImpl::setCopy: every existing entry of the key goes, one new entry is added. */
  replace(key: string, value: string): void {
    this.remove(key);
    this.add(key, value);
  }

  remove(key: string): void {
    const k = this.keyOf(key);
    this.entries = this.entries.filter(([ek]) => ek !== k);
  }

  /** First value of the key (Envoy's getHeaderMapValue returns entry[0]). */
  get(key: string): string | undefined {
    const k = this.keyOf(key);
    return this.entries.find(([ek]) => ek === k)?.[1];
  }

  /** All values joined with "," (HeaderUtility::getAllOfHeaderAsString, used by CEL request.headers). */
  getAllJoined(key: string): string | undefined {
    const k = this.keyOf(key);
    const values = this.entries.filter(([ek]) => ek === k).map(([, v]) => v);
    return values.length === 0 ? undefined : values.join(",");
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  clear(): void {
    this.entries = [];
  }

  get size(): number {
    return this.entries.length;
  }

  /** HeaderMap::byteSize: the sum of key and value lengths. */
  byteSize(): number {
    return this.entries.reduce((n, [k, v]) => n + k.length + v.length, 0);
  }

  /** Entries as latin1 byte strings. */
  rawEntries(): [string, string][] {
    return this.entries.map(([k, v]) => [k, v]);
  }

  /** Entries as UTF-8 decoded strings, for the public API. */
  toPairs(): [string, string][] {
    return this.entries.map(([k, v]) => [fromLatin1(k), fromLatin1(v)]);
  }

  clone(): HeaderMap {
    const copy = new HeaderMap(this.kind);
    copy.entries = this.rawEntries();
    return copy;
  }
}
