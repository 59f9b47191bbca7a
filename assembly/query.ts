// Query strings of the request `:path`. Envoy hands the module the raw path (request.query is
// not decoded either, docs/envoy-behaviour.md §6), so decoding and encoding live here. Works on bytes:
// a decoded value may be any byte sequence.
import { hexDigitValue, isUrlUnreserved } from "./chars";

// application/x-www-form-urlencoded decoding: '+' is a space, %XX a byte; a malformed escape
// is kept as it is (browsers and Envoy's own Utility::PercentEncoding do the same).
export function decodeQueryComponent(bytes: Uint8Array, start: i32, end: i32): Uint8Array {
  const out = new Uint8Array(end - start);
  let n = 0;
  let i = start;
  while (i < end) {
    const c = bytes[i];
    if (c == 0x2b) {
      out[n++] = 0x20;
      i++;
    } else if (c == 0x25 && i + 2 < end) {
      const hi = hexDigitValue(bytes[i + 1]);
      const lo = hexDigitValue(bytes[i + 2]);
      if (hi < 0 || lo < 0) {
        out[n++] = c;
        i++;
      } else {
        out[n++] = ((hi << 4) | lo) as u8;
        i += 3;
      }
    } else {
      out[n++] = c;
      i++;
    }
  }
  return out.slice(0, n);
}

const HEX = "0123456789ABCDEF";

// Percent-encodes every byte outside RFC 3986's unreserved set.
export function encodeQueryComponent(bytes: Uint8Array): Uint8Array {
  let size = 0;
  for (let i = 0; i < bytes.length; i++) size += isUrlUnreserved(bytes[i]) ? 1 : 3;
  const out = new Uint8Array(size);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (isUrlUnreserved(c)) {
      out[n++] = c;
    } else {
      out[n++] = 0x25;
      out[n++] = HEX.charCodeAt(c >> 4) as u8;
      out[n++] = HEX.charCodeAt(c & 15) as u8;
    }
  }
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): bool {
  if (a.length != b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] != b[i]) return false;
  return true;
}

function indexOfByte(bytes: Uint8Array, c: u8, from: i32, end: i32): i32 {
  for (let i = from; i < end; i++) if (bytes[i] == c) return i;
  return -1;
}

// Start of the query (after '?') or -1; the fragment, if a client sent one, ends it.
function queryBounds(path: Uint8Array): i32 {
  return indexOfByte(path, 0x3f, 0, path.length);
}

function queryEnd(path: Uint8Array): i32 {
  const hash = indexOfByte(path, 0x23, 0, path.length);
  if (hash < 0) return path.length;
  return hash;
}

// The decoded value of the first parameter named `name` (compared after decoding), or null.
// A parameter without '=' has an empty value.
export function getQueryParam(path: Uint8Array, name: Uint8Array): Uint8Array | null {
  const q = queryBounds(path);
  if (q < 0) return null;
  const end = queryEnd(path);
  let i = q + 1;
  while (i <= end) {
    let amp = indexOfByte(path, 0x26, i, end);
    if (amp < 0) amp = end;
    if (amp > i) {
      const eq = indexOfByte(path, 0x3d, i, amp);
      let nameEnd = amp;
      if (eq >= 0) nameEnd = eq;
      if (bytesEqual(decodeQueryComponent(path, i, nameEnd), name)) {
        if (eq < 0) return new Uint8Array(0);
        return decodeQueryComponent(path, eq + 1, amp);
      }
    }
    i = amp + 1;
  }
  return null;
}

// Writes bytes into `out` at `n`, or only counts them when `out` is null: the same code sizes the
// result and then fills it, so building a path is linear in its length (no array of pieces, which
// AssemblyScript 0.17 would grow one slot per push).
class PathWriter {
  n: i32 = 0;
  out: Uint8Array | null = null;

  bytes(source: Uint8Array, start: i32, end: i32): void {
    const out = this.out;
    if (out !== null) out.set(source.subarray(start, end), this.n);
    this.n += end - start;
  }

  byte(c: u8): void {
    const out = this.out;
    if (out !== null) out[this.n] = c;
    this.n += 1;
  }
}

// `name=value`, percent-encoded.
function encodedPair(name: Uint8Array, value: Uint8Array): Uint8Array {
  const encodedName = encodeQueryComponent(name);
  const encodedValue = encodeQueryComponent(value);
  const out = new Uint8Array(encodedName.length + 1 + encodedValue.length);
  out.set(encodedName, 0);
  out[encodedName.length] = 0x3d; // =
  out.set(encodedValue, encodedName.length + 1);
  return out;
}

// Writes the new path (see setQueryParam) through `w`.
function writePath(w: PathWriter, path: Uint8Array, name: Uint8Array, pair: Uint8Array): void {
  const q = queryBounds(path);
  const end = queryEnd(path);
  if (q < 0) {
    w.bytes(path, 0, end);
    w.byte(0x3f); // ?
    w.bytes(pair, 0, pair.length);
    w.bytes(path, end, path.length);
    return;
  }
  w.bytes(path, 0, q + 1);
  let kept = 0;
  let replaced = false;
  let i = q + 1;
  while (i <= end) {
    let amp = indexOfByte(path, 0x26, i, end);
    if (amp < 0) amp = end;
    if (amp > i) {
      const eq = indexOfByte(path, 0x3d, i, amp);
      let nameEnd = amp;
      if (eq >= 0) nameEnd = eq;
      if (!bytesEqual(decodeQueryComponent(path, i, nameEnd), name)) {
        if (kept++ > 0) w.byte(0x26); // &
        w.bytes(path, i, amp);
      } else if (!replaced) {
        if (kept++ > 0) w.byte(0x26);
        w.bytes(pair, 0, pair.length);
        replaced = true;
      }
    }
    i = amp + 1;
  }
  if (!replaced) {
    if (kept > 0) w.byte(0x26);
    w.bytes(pair, 0, pair.length);
  }
  w.bytes(path, end, path.length);
}

// A new path whose query has `name` set to `value`: the first parameter of that name is
// replaced in place and later duplicates are dropped; otherwise it is appended.
export function setQueryParam(path: Uint8Array, name: Uint8Array, value: Uint8Array): Uint8Array {
  const pair = encodedPair(name, value);
  const w = new PathWriter();
  writePath(w, path, name, pair);
  const out = new Uint8Array(w.n);
  w.n = 0;
  w.out = out;
  writePath(w, path, name, pair);
  return out;
}
