// Shared-data host calls (proxy-wasm-cpp-host src/exports.cc get_shared_data / set_shared_data; the
// store and its CAS rules are ../shared-data.ts).
import { WasmResult } from "../abi.ts";
import { u, type HostApi, type ImportFunctions } from "./host-api.ts";

export function sharedDataImports(host: HostApi): ImportFunctions {
  const mem = host.memory;
  const store = host.core.sharedData;
  return {
    proxy_get_shared_data: (
      keyPtr: number,
      keySize: number,
      valuePtrPtr: number,
      valueSizePtr: number,
      casPtr: number,
    ) => {
      const key = mem.read(keyPtr, keySize);
      if (!key) return WasmResult.InvalidMemoryAccess;
      const entry = store.peek(key); // copied into the module at once, below
      if (!entry) return WasmResult.NotFound;
      if (!mem.copyToPointerSize(entry.value, valuePtrPtr, valueSizePtr))
        return WasmResult.InvalidMemoryAccess;
      return mem.writeU32(casPtr, entry.cas) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
    },
    proxy_set_shared_data: (
      keyPtr: number,
      keySize: number,
      valuePtr: number,
      valueSize: number,
      cas: number,
    ) => {
      const key = mem.read(keyPtr, keySize);
      const value = mem.read(valuePtr, valueSize);
      if (!key || !value) return WasmResult.InvalidMemoryAccess;
      return store.set(key, value, u(cas));
    },
  };
}
