// Property host calls: proxy_get_property / proxy_set_property. The path rules live in
// ../properties.ts; this module hands them what the calling context may see.
import { WasmResult } from "../abi.ts";
import type { AnyContext } from "../context.ts";
import type { PluginCore } from "../core.ts";
import { getProperty, setProperty, type PropertySource } from "../properties.ts";
import type { HostApi, ImportFunctions } from "./host-api.ts";

/** The calling context as the property resolver sees it (request.* only while Envoy holds the headers). */
export function propertySource(core: PluginCore, ctx: AnyContext): PropertySource {
  const src: PropertySource = { pluginName: core.pluginName, rootId: core.rootId, vmId: core.vmId };
  if (ctx.kind === "stream") {
    src.stream = {
      requestHeaders: ctx.request.headersHeld || ctx.accessLogPhase ? ctx.request.headers : undefined,
      responseHeaders: ctx.response.headersHeld || ctx.accessLogPhase ? ctx.response.headers : undefined,
      responseCode: ctx.responseCode,
      responseCodeDetails: ctx.responseCodeDetails,
      routeName: ctx.routeName,
      startTimeMs: ctx.startTimeMs,
      filterState: ctx.filterState,
      overrides: ctx.overrides,
      connectionId: ctx.connectionId,
    };
  }
  return src;
}

export function propertyImports(host: HostApi): ImportFunctions {
  const mem = host.memory;
  return {
    proxy_get_property: (pathPtr: number, pathSize: number, valuePtrPtr: number, valueSizePtr: number) => {
      const path = mem.read(pathPtr, pathSize);
      if (!path) return WasmResult.InvalidMemoryAccess;
      const r = getProperty(propertySource(host.core, host.ctx()), path);
      if (r.result !== WasmResult.Ok || !r.value) return r.result;
      return mem.copyToPointerSize(r.value, valuePtrPtr, valueSizePtr)
        ? WasmResult.Ok
        : WasmResult.InvalidMemoryAccess;
    },
    proxy_set_property: (pathPtr: number, pathSize: number, valuePtr: number, valueSize: number) => {
      const path = mem.read(pathPtr, pathSize);
      const value = mem.read(valuePtr, valueSize);
      if (!path || !value) return WasmResult.InvalidMemoryAccess;
      return setProperty(propertySource(host.core, host.ctx()), path, value);
    },
  };
}
