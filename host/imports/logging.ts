// Logging host calls (proxy-wasm-cpp-host src/exports.cc log, get_log_level; Envoy logs at every
// level the module asks for, so the host reports Trace as the current level).
import { LogLevel, WasmResult } from "../abi.ts";
import { u, type HostApi, type ImportFunctions } from "./host-api.ts";

export function loggingImports(host: HostApi): ImportFunctions {
  const mem = host.memory;
  return {
    proxy_log: (level: number, ptr: number, size: number) => {
      if (u(level) > LogLevel.Critical) return WasmResult.BadArgument;
      const message = mem.read(ptr, size);
      if (!message) return WasmResult.InvalidMemoryAccess;
      host.log(u(level), message.toString("utf8"));
      return WasmResult.Ok;
    },
    proxy_get_log_level: (ptr: number) =>
      mem.writeU32(ptr, LogLevel.Trace) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess,
  };
}
