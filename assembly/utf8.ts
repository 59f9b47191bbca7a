// Strict UTF-8 (RFC 3629) validation, decoding and encoding.
//
// AssemblyScript's String.UTF8.decode does not validate: it silently folds overlong forms,
// surrogate code points and truncated sequences into some string. Request data is untrusted, so
// everything that turns bytes into a string goes through isValidUtf8 first; the std decoder is
// only used on input this module has already validated.

import { isHighSurrogate, isLowSurrogate } from "./chars";

// Returns the length of the well-formed UTF-8 sequence starting at `i`, or 0 when the bytes there
// are not one (Unicode 15, table 3-7 "Well-Formed UTF-8 Byte Sequences").
function sequenceLength(bytes: Uint8Array, i: i32): i32 {
  const n = bytes.length;
  const b0 = <u32>unchecked(bytes[i]);
  if (b0 < 0x80) return 1;
  if (b0 < 0xc2) return 0; // continuation byte, or C0/C1 (overlong two-byte forms)
  if (b0 < 0xe0) {
    if (i + 1 >= n) return 0;
    return isContinuation(unchecked(bytes[i + 1])) ? 2 : 0;
  }
  if (b0 < 0xf0) {
    if (i + 2 >= n) return 0;
    const b1 = <u32>unchecked(bytes[i + 1]);
    // E0 needs A0..BF (shorter forms are overlong); ED needs 80..9F (A0..BF are surrogates).
    const lo: u32 = b0 == 0xe0 ? 0xa0 : 0x80;
    const hi: u32 = b0 == 0xed ? 0x9f : 0xbf;
    if (b1 < lo || b1 > hi) return 0;
    return isContinuation(unchecked(bytes[i + 2])) ? 3 : 0;
  }
  if (b0 < 0xf5) {
    if (i + 3 >= n) return 0;
    const b1 = <u32>unchecked(bytes[i + 1]);
    // F0 needs 90..BF (overlong below); F4 needs 80..8F (above U+10FFFF otherwise).
    const lo: u32 = b0 == 0xf0 ? 0x90 : 0x80;
    const hi: u32 = b0 == 0xf4 ? 0x8f : 0xbf;
    if (b1 < lo || b1 > hi) return 0;
    if (!isContinuation(unchecked(bytes[i + 2]))) return 0;
    return isContinuation(unchecked(bytes[i + 3])) ? 4 : 0;
  }
  return 0; // F5..FF never appear in UTF-8
}

function isContinuation(b: u8): bool {
  return (b & 0xc0) == 0x80;
}

export function isValidUtf8(bytes: Uint8Array): bool {
  return firstInvalidUtf8(bytes) < 0;
}

// The offset of the first byte that does not start a well-formed sequence, or -1 when all of
// `bytes` is valid UTF-8.
export function firstInvalidUtf8(bytes: Uint8Array): i32 {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const len = sequenceLength(bytes, i);
    if (len == 0) return i;
    i += len;
  }
  return -1;
}

// The decoded text, or null when `bytes` is not valid UTF-8.
export function decodeUtf8(bytes: Uint8Array): string | null {
  if (!isValidUtf8(bytes)) return null;
  const n = bytes.length;
  // Decoded here rather than with String.UTF8.decodeUnsafe, whose shrinking __renew rtrace flags in
  // AssemblyScript 0.17. A four-byte sequence is two UTF-16 code units, any other one.
  let units = 0;
  for (let i = 0; i < n; i++) {
    const b = <u32>unchecked(bytes[i]);
    if ((b & 0xc0) != 0x80) units += b >= 0xf0 ? 2 : 1;
  }
  const out = new Uint16Array(units);
  decodeUtf8Into(bytes, 0, n, out, 0);
  return String.UTF16.decode(out.buffer);
}

// The one UTF-8 decoder: decodes already-validated UTF-8 in [start, end) into `out` from index `o`
// and returns the index after the last unit written. `out` needs at most `end - start` units from
// `o` (no sequence decodes to more code units than it has bytes).
export function decodeUtf8Into(bytes: Uint8Array, start: i32, end: i32, out: Uint16Array, o: i32): i32 {
  let i = start;
  while (i < end) {
    const b0 = <u32>bytes[i];
    if (b0 < 0x80) {
      out[o++] = <u16>b0;
      i += 1;
    } else if (b0 < 0xe0 && i + 1 < end) {
      out[o++] = <u16>(((b0 & 0x1f) << 6) | ((<u32>bytes[i + 1]) & 0x3f));
      i += 2;
    } else if (b0 < 0xf0 && i + 2 < end) {
      out[o++] = <u16>(
        (((b0 & 0x0f) << 12) | (((<u32>bytes[i + 1]) & 0x3f) << 6) | ((<u32>bytes[i + 2]) & 0x3f))
      );
      i += 3;
    } else if (i + 3 < end) {
      const cp =
        ((b0 & 0x07) << 18) |
        (((<u32>bytes[i + 1]) & 0x3f) << 12) |
        (((<u32>bytes[i + 2]) & 0x3f) << 6) |
        ((<u32>bytes[i + 3]) & 0x3f);
      const v = cp - 0x10000;
      out[o++] = <u16>(0xd800 | (v >> 10));
      out[o++] = <u16>(0xdc00 | (v & 0x3ff));
      i += 4;
    } else {
      // Only reachable if the caller skipped validation; stop instead of reading past `end`.
      break;
    }
  }
  return o;
}

// UTF-8 bytes of `s`. A lone surrogate (possible in an AssemblyScript string, never in UTF-8)
// becomes U+FFFD, so the output is always valid UTF-8.
export function encodeUtf8(s: string): Uint8Array {
  const n = s.length;
  let size = 0;
  for (let i = 0; i < n; i++) {
    const c = <u32>s.charCodeAt(i);
    if (c < 0x80) size += 1;
    else if (c < 0x800) size += 2;
    else if (isSurrogatePairAt(s, i)) {
      size += 4;
      i++;
    } else size += 3;
  }
  const out = new Uint8Array(size);
  let o = 0;
  for (let i = 0; i < n; i++) {
    let c = <u32>s.charCodeAt(i);
    if (c < 0x80) {
      out[o++] = <u8>c;
    } else if (c < 0x800) {
      out[o++] = <u8>(0xc0 | (c >> 6));
      out[o++] = <u8>(0x80 | (c & 0x3f));
    } else if (isSurrogatePairAt(s, i)) {
      const cp = 0x10000 + (((c & 0x3ff) << 10) | ((<u32>s.charCodeAt(i + 1)) & 0x3ff));
      out[o++] = <u8>(0xf0 | (cp >> 18));
      out[o++] = <u8>(0x80 | ((cp >> 12) & 0x3f));
      out[o++] = <u8>(0x80 | ((cp >> 6) & 0x3f));
      out[o++] = <u8>(0x80 | (cp & 0x3f));
      i++;
    } else {
      if (isHighSurrogate(c) || isLowSurrogate(c)) c = 0xfffd;
      out[o++] = <u8>(0xe0 | (c >> 12));
      out[o++] = <u8>(0x80 | ((c >> 6) & 0x3f));
      out[o++] = <u8>(0x80 | (c & 0x3f));
    }
  }
  return out;
}

function isSurrogatePairAt(s: string, i: i32): bool {
  if (i + 1 >= s.length) return false;
  return isHighSurrogate(s.charCodeAt(i)) && isLowSurrogate(s.charCodeAt(i + 1));
}
