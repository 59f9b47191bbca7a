// Header pairs wire format (proxy-wasm-cpp-host src/pairs_util.cc): u32 count, count × (u32 key size,
// u32 value size), then each key and value followed by a NUL byte; little-endian.
// Decoding follows PairsUtil::toPairs: any malformed buffer, more than PAIRS_MAX_COUNT pairs or more
// than PAIRS_MAX_BYTES yields NO pairs (not an error), and trailing bytes make it malformed too.
import { PAIRS_MAX_BYTES, PAIRS_MAX_COUNT } from "./abi.ts";

export type BytePair = [Buffer, Buffer];

export function encodePairs(pairs: ReadonlyArray<readonly [Uint8Array, Uint8Array]>): Buffer {
  let size = 4;
  for (const [k, v] of pairs) size += 8 + k.length + 1 + v.length + 1;
  const out = Buffer.alloc(size);
  out.writeUInt32LE(pairs.length, 0);
  let pos = 4;
  for (const [k, v] of pairs) {
    out.writeUInt32LE(k.length, pos);
    out.writeUInt32LE(v.length, pos + 4);
    pos += 8;
  }
  for (const [k, v] of pairs) {
    out.set(k, pos);
    pos += k.length + 1;
    out.set(v, pos);
    pos += v.length + 1;
  }
  return out;
}

export function decodePairs(buffer: Uint8Array): BytePair[] {
  if (buffer.length > PAIRS_MAX_BYTES || buffer.length < 4) return [];
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const count = view.getUint32(0, true);
  if (count > PAIRS_MAX_COUNT) return [];
  let pos = 4;
  if (pos + count * 8 > buffer.length) return [];
  const sizes: [number, number][] = [];
  for (let i = 0; i < count; i++) {
    sizes.push([view.getUint32(pos, true), view.getUint32(pos + 4, true)]);
    pos += 8;
  }
  const result: BytePair[] = [];
  for (const [ks, vs] of sizes) {
    if (pos + ks + 1 > buffer.length) return [];
    const key = Buffer.from(buffer.subarray(pos, pos + ks));
    pos += ks;
    if (buffer[pos++] !== 0) return [];
    if (pos + vs + 1 > buffer.length) return [];
    const value = Buffer.from(buffer.subarray(pos, pos + vs));
    pos += vs;
    if (buffer[pos++] !== 0) return [];
    result.push([key, value]);
  }
  if (pos !== buffer.length) return [];
  return result;
}

/** Convenience for tests and callers holding strings. */
export function encodeStringPairs(pairs: ReadonlyArray<readonly [string, string]>): Buffer {
  return encodePairs(pairs.map(([k, v]) => [Buffer.from(k), Buffer.from(v)] as const));
}
