// Header-map host calls (proxy-wasm-cpp-host src/exports.cc *_header_map_*; envoy
// source/extensions/common/wasm/context.cc Context::getMap / getConstMap). Which map a call may
// touch depends on what the stream still holds: see docs/host.md "Streams".
import { MAP_TYPE_MAX, MapType, WasmResult } from "../abi.ts";
import type { AnyContext, RootContext } from "../context.ts";
import { mapDirection } from "../direction.ts";
import { HeaderMap } from "../header-map.ts";
import { decodePairs, encodePairs } from "../pairs.ts";
import { u, type HostApi, type ImportFunctions } from "./host-api.ts";

/** Context::getMap: the maps the filter may modify right now. */
function mutableMap(ctx: AnyContext, type: number): HeaderMap | undefined {
  const slot = mapDirection(type);
  if (ctx.kind !== "stream" || !slot) return undefined;
  const half = ctx[slot.which];
  if (slot.part === "headers") return half.headersHeld ? half.headers : undefined;
  if (!half.trailers && half.bodyChunk !== undefined && ctx.endOfStream) {
    half.trailers = new HeaderMap(); // decoder_callbacks_->addDecodedTrailers() / addEncodedTrailers()
  }
  return half.trailers;
}

/** Context::getConstMap. */
function constMap(ctx: AnyContext, root: RootContext | undefined, type: number): HeaderMap | undefined {
  if (type === MapType.HttpCallResponseHeaders || type === MapType.HttpCallResponseTrailers) {
    const response = root?.httpCallResponse;
    if (!response) return undefined;
    return type === MapType.HttpCallResponseHeaders ? response.headers : response.trailers;
  }
  const slot = mapDirection(type);
  if (ctx.kind !== "stream" || !slot) return undefined;
  const half = ctx[slot.which];
  if (slot.part === "headers") return ctx.accessLogPhase || half.headersHeld ? half.headers : undefined;
  return ctx.accessLogPhase ? half.loggedTrailers : half.trailers;
}

export function headerMapImports(host: HostApi): ImportFunctions {
  const mem = host.memory;
  const editMap = (
    type: number,
    keyPtr: number,
    keySize: number,
    valuePtr: number,
    valueSize: number,
    edit: (map: HeaderMap, key: string, value: string) => void,
  ): number => {
    if (u(type) > MAP_TYPE_MAX) return WasmResult.BadArgument;
    const key = mem.readLatin1(keyPtr, keySize);
    const value = mem.readLatin1(valuePtr, valueSize);
    if (key === undefined || value === undefined) return WasmResult.InvalidMemoryAccess;
    const map = mutableMap(host.ctx(), u(type));
    if (!map) return WasmResult.BadArgument;
    edit(map, key, value);
    return WasmResult.Ok;
  };
  const readableMap = (type: number): { ctx: AnyContext; map: HeaderMap | undefined } => {
    const ctx = host.ctx();
    return { ctx, map: constMap(ctx, host.rootOf(ctx), type) };
  };
  return {
    proxy_get_header_map_value: (
      type: number,
      keyPtr: number,
      keySize: number,
      valuePtrPtr: number,
      valueSizePtr: number,
    ) => {
      if (u(type) > MAP_TYPE_MAX) return WasmResult.BadArgument;
      const key = mem.readLatin1(keyPtr, keySize);
      if (key === undefined) return WasmResult.InvalidMemoryAccess;
      const { ctx, map } = readableMap(u(type));
      if (!map)
        return ctx.kind === "stream" && ctx.accessLogPhase ? WasmResult.NotFound : WasmResult.BadArgument;
      const value = map.get(key);
      if (value === undefined) return WasmResult.NotFound;
      return mem.copyToPointerSize(value, valuePtrPtr, valueSizePtr)
        ? WasmResult.Ok
        : WasmResult.InvalidMemoryAccess;
    },
    proxy_add_header_map_value: (
      type: number,
      keyPtr: number,
      keySize: number,
      valuePtr: number,
      valueSize: number,
    ) => editMap(type, keyPtr, keySize, valuePtr, valueSize, (map, k, v) => map.add(k, v)),
    proxy_replace_header_map_value: (
      type: number,
      keyPtr: number,
      keySize: number,
      valuePtr: number,
      valueSize: number,
    ) => editMap(type, keyPtr, keySize, valuePtr, valueSize, (map, k, v) => map.replace(k, v)),
    proxy_remove_header_map_value: (type: number, keyPtr: number, keySize: number) => {
      if (u(type) > MAP_TYPE_MAX) return WasmResult.BadArgument;
      const key = mem.read(keyPtr, keySize);
      if (!key) return WasmResult.InvalidMemoryAccess;
      const map = mutableMap(host.ctx(), u(type));
      if (!map) return WasmResult.BadArgument;
      map.remove(key.toString("latin1"));
      return WasmResult.Ok;
    },
    proxy_get_header_map_pairs: (type: number, ptrPtr: number, sizePtr: number) => {
      if (u(type) > MAP_TYPE_MAX) return WasmResult.BadArgument;
      const { map } = readableMap(u(type));
      const entries = map ? map.rawEntries() : [];
      const encoded =
        entries.length === 0
          ? Buffer.alloc(0)
          : encodePairs(
              entries.map(([k, v]) => [Buffer.from(k, "latin1"), Buffer.from(v, "latin1")] as const),
            );
      return mem.copyToPointerSize(encoded, ptrPtr, sizePtr) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
    },
    proxy_set_header_map_pairs: (type: number, ptr: number, size: number) => {
      if (u(type) > MAP_TYPE_MAX) return WasmResult.BadArgument;
      const data = mem.read(ptr, size);
      if (!data) return WasmResult.InvalidMemoryAccess;
      const map = mutableMap(host.ctx(), u(type));
      if (!map) return WasmResult.BadArgument;
      map.clear();
      for (const [k, v] of decodePairs(data)) map.add(k.toString("latin1"), v.toString("latin1"));
      return WasmResult.Ok;
    },
    proxy_get_header_map_size: (type: number, resultPtr: number) => {
      if (u(type) > MAP_TYPE_MAX) return WasmResult.BadArgument;
      const map = mutableMap(host.ctx(), u(type));
      if (!map) return WasmResult.BadArgument;
      return mem.writeU32(resultPtr, map.byteSize()) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
    },
  };
}
