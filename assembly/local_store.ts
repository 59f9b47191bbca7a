// The `local` policy: entries in Envoy shared data, one store per vm_id shared by every worker
// (docs/envoy-behaviour.md §3). Writes are read-modify-write with the CAS returned by the read, retried on
// CasMismatch. Envoy offers no atomic create-if-absent: while a key has never been written, two
// workers can both read NotFound and both write (cas 0), so the very first insert of a key is
// last-writer-wins even with `override: false`. Once the key exists (even deleted = empty),
// every write is CAS-guarded.
import { ROOT_ID } from "./constants";
import { decodeEntry, encodeEntry, expiryFor } from "./entry";
import { OpError, storeFailure } from "./errors";
import { WasmResult } from "./hostcalls/abi";
import { getSharedData, nowMs, setSharedData, SharedDataEntry } from "./hostcalls/calls";

const MAX_CAS_ATTEMPTS = 32;

// "<root id>:<kvm_name>:<key bytes>". kvm_name cannot contain ':', so the split is unambiguous.
export function sharedDataKey(kvmName: string, key: ArrayBuffer): ArrayBuffer {
  const prefix = String.UTF8.encode(ROOT_ID + ":" + kvmName + ":");
  const out = new ArrayBuffer(prefix.byteLength + key.byteLength);
  memory.copy(changetype<usize>(out), changetype<usize>(prefix), prefix.byteLength);
  memory.copy(changetype<usize>(out) + prefix.byteLength, changetype<usize>(key), key.byteLength);
  return out;
}

function readFailure(entry: SharedDataEntry): OpError | null {
  if (entry.result == WasmResult.Ok || entry.result == WasmResult.NotFound) return null;
  return storeFailure("shared data read failed (result " + entry.result.toString() + ")");
}

export class LocalRead {
  constructor(
    public error: OpError | null,
    public value: ArrayBuffer | null, // null = miss (absent, deleted or expired)
  ) {}
}

// The clock is read only for an entry that can expire: one host call less on a read of one that can not.
export function readLocalEntry(kvmName: string, key: ArrayBuffer): LocalRead {
  const entry = getSharedData(sharedDataKey(kvmName, key));
  const failure = readFailure(entry);
  if (failure !== null) return new LocalRead(failure, null);
  if (entry.result == WasmResult.NotFound) return new LocalRead(null, null);
  const decoded = decodeEntry(entry.value);
  if (decoded === null) return new LocalRead(null, null);
  if (decoded.expiresAtMs != 0 && !decoded.isLiveAt(nowMs())) return new LocalRead(null, null);
  return new LocalRead(null, decoded.payload);
}

function writeFailure(result: WasmResult): OpError {
  return storeFailure("shared data write failed (result " + result.toString() + ")");
}

function contention(): OpError {
  return storeFailure(
    "shared data write lost the compare-and-swap race " + MAX_CAS_ATTEMPTS.toString() + " times",
  );
}

// Stores `value` with its TTL. With override false an existing unexpired value is kept and
// the put still succeeds (Apigee's add-if-absent).
export function writeLocalEntry(
  kvmName: string,
  key: ArrayBuffer,
  value: ArrayBuffer,
  ttlSeconds: u32,
  override: bool,
  nowMs: u64,
): OpError | null {
  const storeKey = sharedDataKey(kvmName, key);
  const encoded = encodeEntry(expiryFor(nowMs, ttlSeconds), value);
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const current = getSharedData(storeKey);
    const failure = readFailure(current);
    if (failure !== null) return failure;
    const present = current.result == WasmResult.Ok;
    if (!override && present) {
      const decoded = decodeEntry(current.value);
      if (decoded !== null && decoded.isLiveAt(nowMs)) return null;
    }
    let cas: u32 = 0; // absent: an unconditional first write
    if (present) cas = current.cas;
    const result = setSharedData(storeKey, encoded, cas);
    if (result == WasmResult.Ok) return null;
    if (result != WasmResult.CasMismatch) return writeFailure(result);
  }
  return contention();
}

// Deleting writes an empty value (Envoy has no delete). A key that was never written is left
// alone, so deletes of unknown keys do not grow the store.
export function deleteLocalEntry(kvmName: string, key: ArrayBuffer): OpError | null {
  const storeKey = sharedDataKey(kvmName, key);
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const current = getSharedData(storeKey);
    const failure = readFailure(current);
    if (failure !== null) return failure;
    if (current.result == WasmResult.NotFound || current.value.byteLength == 0) return null;
    const result = setSharedData(storeKey, new ArrayBuffer(0), current.cas);
    if (result == WasmResult.Ok) return null;
    if (result != WasmResult.CasMismatch) return writeFailure(result);
  }
  return contention();
}
