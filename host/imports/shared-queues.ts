// Shared-queue host calls (proxy-wasm-cpp-host src/exports.cc *_shared_queue; the registry is
// ../shared-queues.ts).
import { WasmResult } from "../abi.ts";
import { sharedQueues } from "../shared-queues.ts";
import { u, type HostApi, type ImportFunctions } from "./host-api.ts";

export function sharedQueueImports(host: HostApi): ImportFunctions {
  const mem = host.memory;
  return {
    proxy_register_shared_queue: (namePtr: number, nameSize: number, tokenPtr: number) => {
      const name = mem.read(namePtr, nameSize);
      if (!name) return WasmResult.InvalidMemoryAccess;
      const token = sharedQueues.register(host.core.vmId, name.toString("latin1"), (t) =>
        host.onQueueReady(t),
      );
      return mem.writeU32(tokenPtr, token) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
    },
    proxy_resolve_shared_queue: (
      vmPtr: number,
      vmSize: number,
      namePtr: number,
      nameSize: number,
      tokenPtr: number,
    ) => {
      const vm = mem.read(vmPtr, vmSize);
      const name = mem.read(namePtr, nameSize);
      if (!vm || !name) return WasmResult.InvalidMemoryAccess;
      const token = sharedQueues.resolve(vm.toString("latin1"), name.toString("latin1"));
      if (token === undefined) return WasmResult.NotFound;
      return mem.writeU32(tokenPtr, token) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
    },
    proxy_dequeue_shared_queue: (token: number, dataPtrPtr: number, dataSizePtr: number) => {
      const r = sharedQueues.dequeue(u(token));
      if (typeof r === "number") return r;
      return mem.copyToPointerSize(r, dataPtrPtr, dataSizePtr)
        ? WasmResult.Ok
        : WasmResult.InvalidMemoryAccess;
    },
    proxy_enqueue_shared_queue: (token: number, dataPtr: number, dataSize: number) => {
      const data = mem.read(dataPtr, dataSize);
      if (!data) return WasmResult.InvalidMemoryAccess;
      return sharedQueues.enqueue(u(token), data);
    },
  };
}
