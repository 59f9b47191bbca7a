// The read-through cache of `cluster` gets with `cache_ttl`: entries and misses in Envoy shared
// data, so every worker of the vm_id shares one cache (docs/envoy-behaviour.md §3). Layout:
//   key   "envoy_kvm/cache:<kvm_name>:<key bytes>"   (the local store's keys start "envoy_kvm:")
//   value [u8 format = 2][u64 fresh_until_ms][u8 present][u64 version][payload]
// A fresh entry is served without a callout; a stale one is revalidated with its version
// (If-None-Match → 304) when it has one. An empty value is a dropped entry (Envoy has no delete).
// Writes are unconditional (cas 0): the cache holds what some worker last saw, and a lost race
// only costs one more callout.
import { ROOT_ID } from "./constants";
import { getSharedData, setSharedData } from "./hostcalls/calls";
import { WasmResult } from "./hostcalls/abi";

const CACHE_FORMAT: u8 = 2;
const CACHE_HEADER_BYTES: i32 = 18;

export function cacheKey(kvmName: string, key: ArrayBuffer): ArrayBuffer {
  const prefix = String.UTF8.encode(ROOT_ID + "/cache:" + kvmName + ":");
  const out = new ArrayBuffer(prefix.byteLength + key.byteLength);
  memory.copy(changetype<usize>(out), changetype<usize>(prefix), prefix.byteLength);
  memory.copy(changetype<usize>(out) + prefix.byteLength, changetype<usize>(key), key.byteLength);
  return out;
}

export class CachedEntry {
  constructor(
    public freshUntilMs: u64,
    public present: bool, // false: a cached miss
    public version: u64, // 0: unknown, cannot be revalidated
    public payload: ArrayBuffer,
  ) {}

  isFreshAt(nowMs: u64): bool {
    return nowMs < this.freshUntilMs;
  }
}

// null: nothing cached (or a dropped or unreadable entry).
export function readCache(kvmName: string, key: ArrayBuffer): CachedEntry | null {
  const entry = getSharedData(cacheKey(kvmName, key));
  if (entry.result != WasmResult.Ok) return null;
  const stored = entry.value;
  if (stored.byteLength < CACHE_HEADER_BYTES) return null;
  const base = changetype<usize>(stored);
  if (load<u8>(base) != CACHE_FORMAT) return null;
  return new CachedEntry(
    load<u64>(base + 1),
    load<u8>(base + 9) != 0,
    load<u64>(base + 10),
    stored.slice(CACHE_HEADER_BYTES),
  );
}

export function writeCache(kvmName: string, key: ArrayBuffer, entry: CachedEntry): void {
  const out = new ArrayBuffer(CACHE_HEADER_BYTES + entry.payload.byteLength);
  const base = changetype<usize>(out);
  store<u8>(base, CACHE_FORMAT);
  store<u64>(base + 1, entry.freshUntilMs);
  store<u8>(base + 9, entry.present ? 1 : 0);
  store<u64>(base + 10, entry.version);
  memory.copy(base + CACHE_HEADER_BYTES, changetype<usize>(entry.payload), entry.payload.byteLength);
  setSharedData(cacheKey(kvmName, key), out, 0);
}

// A put or delete through this Envoy: the cached entry goes at once, so the next get fetches
// what the service now holds. A key never cached is left alone (no empty entries for it).
export function dropCache(kvmName: string, key: ArrayBuffer): void {
  const storeKey = cacheKey(kvmName, key);
  const entry = getSharedData(storeKey);
  if (entry.result != WasmResult.Ok || entry.value.byteLength == 0) return;
  setSharedData(storeKey, new ArrayBuffer(0), 0);
}

// Fresh until now + ttl seconds, saturating.
export function freshUntil(nowMs: u64, ttlSeconds: u32): u64 {
  const ttlMs = (ttlSeconds as u64) * 1000;
  if (nowMs > u64.MAX_VALUE - ttlMs) return u64.MAX_VALUE;
  return nowMs + ttlMs;
}
