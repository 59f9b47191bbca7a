// The remaining runtime host calls: status, configuration, time and timers, effective context,
// foreign functions (proxy-wasm-cpp-host src/exports.cc; envoy source/extensions/common/wasm/
// context.cc and foreign.cc).
import { WasmResult } from "../abi.ts";
import { msToNanos } from "../clock.ts";
import { u, type HostApi, type ImportFunctions } from "./host-api.ts";

export function runtimeImports(host: HostApi): ImportFunctions {
  const mem = host.memory;
  const core = host.core;
  return {
    proxy_get_status: (codePtr: number, msgPtrPtr: number, msgSizePtr: number) => {
      const ctx = host.ctx();
      if (!mem.writeU32(codePtr, ctx.statusCode)) return WasmResult.InvalidMemoryAccess;
      return mem.copyToPointerSize(Buffer.from(ctx.statusMessage), msgPtrPtr, msgSizePtr)
        ? WasmResult.Ok
        : WasmResult.InvalidMemoryAccess;
    },
    proxy_get_configuration: (ptrPtr: number, sizePtr: number) => {
      const ctx = host.ctx();
      const value =
        ctx.kind === "root" && ctx.pluginConfigurationVisible ? core.configuration : core.vmConfiguration;
      return mem.copyToPointerSize(value, ptrPtr, sizePtr) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
    },
    proxy_set_tick_period_milliseconds: (ms: number) => {
      const root = host.rootOf(host.ctx());
      if (root) root.tickPeriodMs = u(ms);
      return WasmResult.Ok;
    },
    proxy_get_current_time_nanoseconds: (ptr: number) =>
      mem.writeU64(ptr, msToNanos(core.clock.nowMs())) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess,
    proxy_set_effective_context: (id: number) =>
      host.setEffectiveContext(u(id)) ? WasmResult.Ok : WasmResult.BadArgument,
    // WasmBase::done only knows root contexts that are shutting down; none are here.
    proxy_done: () => WasmResult.NotFound,
    proxy_call_foreign_function: (namePtr: number, nameSize: number, argsPtr: number, argsSize: number) => {
      const name = mem.read(namePtr, nameSize);
      if (!name || !mem.read(argsPtr, argsSize)) return WasmResult.InvalidMemoryAccess;
      // Envoy registers e.g. clear_route_cache as a foreign function; the rest are not emulated.
      if (name.toString("latin1") === "clear_route_cache") return WasmResult.Ok;
      return WasmResult.NotFound;
    },
    pthread_equal: (a: number, b: number) => (a === b ? 1 : 0),
    emscripten_notify_memory_growth: () => undefined,
  };
}
