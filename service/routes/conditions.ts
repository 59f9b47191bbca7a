// Request headers shared by the data plane and the admin entry routes: conditional writes and TTL.
import type { IncomingHttpHeaders } from "node:http";
import { badRequest } from "../errors.ts";
import type { Condition } from "../repository.ts";

/** 10 years: long enough for "practically forever", short enough that now() + ttl never overflows. */
export const MAX_TTL_SECONDS = 315_360_000;
const MAX_VERSION = 2n ** 63n - 1n;

/** Versions travel as strong entity tags, "42"; the bare form 42 is accepted too. */
export const etag = (version: number) => `"${version}"`;

function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}

/**
 * If-None-Match: * → create only; If-Match: * → replace only; If-Match: <version> → compare-and-set.
 * (RFC 9110 §13.1.1–13.1.2 semantics; entity-tag lists are not supported.)
 */
export function parseCondition(headers: IncomingHttpHeaders, allowAbsent = true): Condition {
  const ifMatch = single(headers, "if-match")?.trim();
  const ifNoneMatch = single(headers, "if-none-match")?.trim();
  if (ifMatch !== undefined && ifNoneMatch !== undefined) {
    throw badRequest("invalid_precondition", "send If-Match or If-None-Match, not both");
  }
  if (ifNoneMatch !== undefined) {
    if (!allowAbsent || ifNoneMatch !== "*") {
      throw badRequest("invalid_precondition", 'If-None-Match supports only "*" (create if absent) on PUT');
    }
    return { kind: "absent" };
  }
  if (ifMatch === undefined) return { kind: "none" };
  if (ifMatch === "*") return { kind: "present" };
  // If-Match compares strongly (RFC 9110 §13.1.1): a weak tag never matches, so it is a failed precondition,
  // not a malformed header. Versions start at 1, so version 0 never matches.
  if (/^W\/"\d{1,19}"$/.test(ifMatch)) return { kind: "version", version: 0n };
  const match = /^"?(\d{1,19})"?$/.exec(ifMatch);
  if (match === null || (ifMatch.startsWith('"') !== ifMatch.endsWith('"') && ifMatch.length > 1)) {
    throw badRequest("invalid_precondition", 'If-Match must be "*" or a version from an etag, e.g. "42"');
  }
  // Strong comparison is character by character (RFC 9110 §8.8.3.2): etags are written without leading zeros,
  // so "0426978" is a different tag from "426978" and never matches, although the numbers are equal.
  if (match[1].startsWith("0")) return { kind: "version", version: 0n };
  const version = BigInt(match[1]);
  // A version beyond bigint can not exist, so it can never match; keep it in range for the SQL cast.
  return { kind: "version", version: version > MAX_VERSION ? 0n : version };
}

export function parseTtlSeconds(raw: string | string[] | undefined, what = "x-kvm-ttl"): number | null {
  if (raw === undefined) return null;
  const text = Array.isArray(raw) ? raw.join(",") : raw;
  if (!/^\s*\d{1,10}\s*$/.test(text) || Number(text) > MAX_TTL_SECONDS) {
    throw badRequest("invalid_ttl", `${what} must be whole seconds between 0 and ${MAX_TTL_SECONDS}`);
  }
  const ttl = Number(text);
  return ttl === 0 ? null : ttl;
}

/**
 * GET's If-None-Match: true when the header is "*" or lists the version ("42", W/"42" or bare 42). Weak
 * comparison, as RFC 9110 §13.1.2 prescribes for If-None-Match.
 */
export function matchesVersion(header: string | string[] | undefined, version: number): boolean {
  if (header === undefined) return false;
  const text = Array.isArray(header) ? header.join(",") : header;
  return text.split(",").some((tag) => {
    const t = tag.trim().replace(/^W\//, "");
    return t === "*" || t === `"${version}"` || t === String(version);
  });
}
