// Keys are arbitrary byte strings. On the wire they travel percent-encoded in the URL path, so they are decoded
// here from the raw request URL byte by byte: the router's own decoding goes through UTF-8 strings and would
// not round-trip bytes such as %FF.
import { isUtf8 } from "node:buffer";
import { badRequest } from "./errors.ts";
import { MAX_KEY_BYTES } from "./config.ts";

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
}

/** Percent-decodes one path segment into bytes; null when a '%' is not followed by two hex digits. */
export function percentDecodeBytes(segment: string): Buffer | null {
  // latin1: Node hands over the request line one byte per character, so stray raw bytes map back 1:1.
  const raw = Buffer.from(segment, "latin1");
  const out = Buffer.allocUnsafe(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== 0x25) {
      out[n++] = raw[i];
      continue;
    }
    const hi = i + 2 < raw.length ? hexValue(raw[i + 1]) : -1;
    const lo = i + 2 < raw.length ? hexValue(raw[i + 2]) : -1;
    if (hi < 0 || lo < 0) return null;
    out[n++] = hi * 16 + lo;
    i += 2;
  }
  return out.subarray(0, n);
}

/** Encodes bytes for a path segment: unreserved characters stay, everything else becomes %XX. */
export function percentEncodeBytes(bytes: Buffer): string {
  let out = "";
  for (const b of bytes) {
    const unreserved =
      (b >= 0x30 && b <= 0x39) ||
      (b >= 0x41 && b <= 0x5a) ||
      (b >= 0x61 && b <= 0x7a) ||
      b === 0x2d ||
      b === 0x2e ||
      b === 0x5f ||
      b === 0x7e;
    out += unreserved ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

const ENTRY_PATH = /^(\/(?:admin\/)?v1\/kvms\/[^/?#]+\/entries\/)([^?#]*)/;
export const KEY_PLACEHOLDER = ":key";

/**
 * Fastify's rewriteUrl hook: the key part of an entry URL is swapped for a placeholder before routing. The
 * router would otherwise reject keys that are not UTF-8 (%FF → 400 FST_ERR_BAD_URL) or longer than its
 * parameter limit, and keys containing '/' would not match one path parameter. The handlers read the key from
 * the original URL (keyFromUrl), and request logs show the placeholder, so keys stay out of the logs.
 */
export function rewriteEntryUrl(url: string): string {
  return url.replace(ENTRY_PATH, (_all, head: string) => `${head}${KEY_PLACEHOLDER}`);
}

/** The key of an entry URL (…/kvms/{kvm}/entries/{key}), validated: 1..MAX_KEY_BYTES bytes. */
export function keyFromUrl(url: string): Buffer {
  const match = ENTRY_PATH.exec(url);
  // Clients never send a fragment; a raw '#' here is a key byte that was not percent-encoded, and reading the
  // key up to it would write another key than the one meant.
  if (match !== null && url[match[0].length] === "#") {
    throw badRequest("invalid_key", "key holds a raw '#': percent-encode it as %23");
  }
  const encoded = match === null ? "" : match[2];
  const key = percentDecodeBytes(encoded);
  if (key === null) throw badRequest("invalid_key", "key is not valid percent-encoding");
  return checkKey(key);
}

/** The key of the request's entry URL as sent, before rewriteEntryUrl. */
export function keyFromRequest(request: { raw: { url?: string; originalUrl?: string } }): Buffer {
  return keyFromUrl(request.raw.originalUrl ?? request.raw.url ?? "");
}

export function checkKey(key: Buffer, what = "key"): Buffer {
  if (key.length === 0) throw badRequest("invalid_key", `${what} must not be empty`);
  if (key.length > MAX_KEY_BYTES) {
    throw badRequest("key_too_long", `${what} is ${key.length} bytes; the limit is ${MAX_KEY_BYTES} bytes`);
  }
  return key;
}

/**
 * JSON carries keys and values as UTF-8 strings when they are valid UTF-8; other byte strings go in a
 * `<field>_base64` field instead, so every byte string survives a JSON round trip.
 */
export function bytesToJson<F extends string>(field: F, bytes: Buffer): Record<string, string> {
  return isUtf8(bytes)
    ? { [field]: bytes.toString("utf8") }
    : { [`${field}_base64`]: bytes.toString("base64") };
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** In a u-mode regex a well-formed surrogate pair is one code point; only unpaired halves match. */
const LONE_SURROGATE = /\p{Surrogate}/u;

/** Reads `<field>` (UTF-8) or `<field>_base64` from a JSON object: exactly one must be present. */
export function bytesFromJson(obj: Record<string, unknown>, field: string, where: string): Buffer {
  const text = obj[field];
  const b64 = obj[`${field}_base64`];
  if ((text === undefined) === (b64 === undefined)) {
    throw badRequest("bad_request", `${where}: exactly one of "${field}" and "${field}_base64" is required`);
  }
  if (typeof text === "string") {
    // UTF-8 can not encode a lone surrogate ("\ud800" in JSON): Buffer.from would write U+FFFD instead, and
    // two different names would become the same key.
    if (LONE_SURROGATE.test(text)) {
      throw badRequest(
        "bad_request",
        `${where}: "${field}" holds a lone surrogate, which is not Unicode text: send the bytes as "${field}_base64"`,
      );
    }
    return Buffer.from(text, "utf8");
  }
  if (typeof b64 !== "string" || b64.length % 4 !== 0 || !BASE64.test(b64)) {
    throw badRequest("bad_request", `${where}: "${field}_base64" is not valid base64`);
  }
  return Buffer.from(b64, "base64");
}

const TOKEN_ENTRY = 1;
const TOKEN_MAP = 2;

/** Page tokens are opaque to clients: a tag byte + the last key (or map name) of the previous page. */
export function encodePageToken(kind: "entry" | "map", last: Buffer): string {
  return Buffer.concat([Buffer.from([kind === "entry" ? TOKEN_ENTRY : TOKEN_MAP]), last]).toString(
    "base64url",
  );
}

export function decodePageToken(kind: "entry" | "map", token: string | undefined): Buffer | null {
  if (token === undefined || token === "") return null;
  const raw = /^[A-Za-z0-9_-]+$/.test(token) ? Buffer.from(token, "base64url") : Buffer.alloc(0);
  if (raw.length < 2 || raw[0] !== (kind === "entry" ? TOKEN_ENTRY : TOKEN_MAP)) {
    throw badRequest("invalid_page_token", "page_token is not a token this listing returned");
  }
  return raw.subarray(1);
}
