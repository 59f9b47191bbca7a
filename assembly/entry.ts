// How a `local` entry is laid out in Envoy shared data. Envoy has no TTL and no delete
// (docs/envoy-behaviour.md §3), so the expiry travels inside the value:
//   [u8 format = 1][u64 expires_at_ms, little-endian, 0 = never][payload]
// An empty shared-data value is a deleted entry. Anything else that does not parse (another
// filter's key under the same vm_id, a future format) reads as absent and is overwritten.

export const ENTRY_FORMAT: u8 = 1;
export const ENTRY_HEADER_BYTES: i32 = 9;

export class LocalEntry {
  constructor(
    public expiresAtMs: u64,
    public payload: ArrayBuffer,
  ) {}

  isLiveAt(nowMs: u64): bool {
    return this.expiresAtMs == 0 || nowMs < this.expiresAtMs;
  }
}

export function encodeEntry(expiresAtMs: u64, payload: ArrayBuffer): ArrayBuffer {
  const out = new ArrayBuffer(ENTRY_HEADER_BYTES + payload.byteLength);
  const base = changetype<usize>(out);
  store<u8>(base, ENTRY_FORMAT);
  store<u64>(base + 1, expiresAtMs);
  memory.copy(base + ENTRY_HEADER_BYTES, changetype<usize>(payload), payload.byteLength);
  return out;
}

// null for a deleted (empty) or unreadable value.
export function decodeEntry(stored: ArrayBuffer): LocalEntry | null {
  if (stored.byteLength < ENTRY_HEADER_BYTES) return null;
  const base = changetype<usize>(stored);
  if (load<u8>(base) != ENTRY_FORMAT) return null;
  const expiresAtMs = load<u64>(base + 1);
  return new LocalEntry(expiresAtMs, stored.slice(ENTRY_HEADER_BYTES));
}

// Expiry for a TTL in whole seconds; 0 = never. Saturates instead of wrapping.
export function expiryFor(nowMs: u64, ttlSeconds: u32): u64 {
  if (ttlSeconds == 0) return 0;
  const ttlMs = (ttlSeconds as u64) * 1000;
  if (nowMs > u64.MAX_VALUE - ttlMs) return u64.MAX_VALUE;
  return nowMs + ttlMs;
}
