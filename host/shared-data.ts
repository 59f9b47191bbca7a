// Envoy's shared data (proxy-wasm-cpp-host src/shared_data.cc, docs/envoy-behaviour.md §3):
// - one store per vm_id, process-wide, shared by every worker VM and every plugin with that vm_id;
// - ONE u32 CAS counter for the whole process (SharedData::nextCas: starts at 1, skips 0 on wrap);
// - set with cas 0 is unconditional; a present key with a different cas → CasMismatch;
//   an absent key is written whatever the cas (there is no create-if-absent);
// - no delete through the ABI, no eviction.
import { WasmResult } from "./abi.ts";

let nextCasValue = 1;

function nextCas(): number {
  const result = nextCasValue;
  nextCasValue = (nextCasValue + 1) >>> 0;
  if (nextCasValue === 0) nextCasValue = 1;
  return result;
}

/** Test hook: lets a test prove the counter skips 0 when it wraps. */
export function setNextCasForTest(value: number): void {
  nextCasValue = value >>> 0 || 1;
}

function keyOf(key: string | Uint8Array): string {
  // Keys are byte strings in Envoy; latin1 maps every byte to one UTF-16 unit and back.
  return typeof key === "string"
    ? Buffer.from(key, "utf8").toString("latin1")
    : Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("latin1");
}

export class SharedData {
  private readonly entries = new Map<string, { value: Buffer; cas: number }>();

  get(key: string | Uint8Array): { value: Buffer; cas: number } | undefined {
    const entry = this.entries.get(keyOf(key));
    return entry ? { value: Buffer.from(entry.value), cas: entry.cas } : undefined;
  }

  /** As get, without the copy: the stored bytes themselves, for a caller that copies them out at once. */
  peek(key: string | Uint8Array): { readonly value: Uint8Array; readonly cas: number } | undefined {
    return this.entries.get(keyOf(key));
  }

  set(key: string | Uint8Array, value: Uint8Array, cas: number): number {
    const k = keyOf(key);
    const existing = this.entries.get(k);
    if (existing && cas !== 0 && cas >>> 0 !== existing.cas) return WasmResult.CasMismatch;
    this.entries.set(k, { value: Buffer.from(value), cas: nextCas() });
    return WasmResult.Ok;
  }

  keys(): Buffer[] {
    return [...this.entries.keys()].map((k) => Buffer.from(k, "latin1"));
  }

  get size(): number {
    return this.entries.size;
  }
}

const registry = new Map<string, SharedData>();

/** The process-wide store for a vm_id (Envoy keys shared data by vm_config.vm_id). */
export function sharedDataFor(vmId: string): SharedData {
  let store = registry.get(vmId);
  if (!store) {
    store = new SharedData();
    registry.set(vmId, store);
  }
  return store;
}

/** Drops a vm_id's store, as Envoy does when the last VM with that vm_id goes away. */
export function dropSharedData(vmId: string): void {
  registry.delete(vmId);
}
