// Buffer host calls (proxy-wasm-cpp-host src/exports.cc get_buffer_status / get_buffer_bytes /
// set_buffer_bytes; envoy source/extensions/common/wasm/context.cc Context::getBuffer and
// Buffer::copyFrom).
import { BUFFER_TYPE_MAX, BufferType, WasmResult } from "../abi.ts";
import type { AnyContext, RootContext, StreamHalf } from "../context.ts";
import type { PluginCore } from "../core.ts";
import { DIRECTIONS } from "../direction.ts";
import { u, type HostApi, type ImportFunctions } from "./host-api.ts";

/** A body buffer as Envoy's Buffer wrapper exposes it to get/set_buffer_bytes. */
export interface BodyBuffer {
  data(): Buffer;
  /** Envoy Buffer::copyFrom; undefined = immutable (BadArgument). */
  copyFrom?(start: number, length: number, data: Buffer): number;
}

function mutableBuffer(get: () => Buffer, set: (b: Buffer) => void): BodyBuffer {
  return {
    data: get,
    // envoy source/extensions/common/wasm/context.cc Buffer::copyFrom (1.35+, the version that also
    // reads allow_on_headers_stop_iteration): start 0 drains `length` bytes (OwnedImpl::drain stops
    // at the end of the buffer) and prepends the data — so length 0 prepends, 0 < length < size
    // replaces the first `length` bytes, length ≥ size replaces everything; start ≥ size appends;
    // 0 < start < size is BadArgument.
    copyFrom(start, length, data) {
      const current = get();
      if (start === 0) {
        set(Buffer.concat([data, current.subarray(Math.min(length, current.length))]));
        return WasmResult.Ok;
      }
      if (start >= current.length) {
        set(Buffer.concat([current, data]));
        return WasmResult.Ok;
      }
      return WasmResult.BadArgument;
    },
  };
}

function constBuffer(data: Buffer): BodyBuffer {
  return { data: () => data };
}

/**
 * The body one direction's callback sees: the filter manager's buffered body while this filter
 * buffers (StopIterationAndBuffer), else the current data frame, else nothing.
 */
export function bodyBuffer(half: StreamHalf): BodyBuffer {
  if (half.bufferingBody) {
    return mutableBuffer(
      () => half.buffered ?? Buffer.alloc(0),
      (b) => (half.buffered = b),
    );
  }
  if (half.bodyChunk !== undefined) {
    return mutableBuffer(
      () => half.bodyChunk ?? Buffer.alloc(0),
      (b) => (half.bodyChunk = b),
    );
  }
  return constBuffer(Buffer.alloc(0));
}

/** Context::getBuffer. */
function bufferOf(
  core: PluginCore,
  ctx: AnyContext,
  root: RootContext | undefined,
  type: number,
): BodyBuffer | undefined {
  switch (type) {
    case BufferType.VmConfiguration:
      return constBuffer(core.vmConfiguration);
    case BufferType.PluginConfiguration:
      return ctx.kind === "root" && ctx.pluginConfigurationVisible
        ? constBuffer(core.configuration)
        : undefined;
    case DIRECTIONS.request.bodyBuffer:
      return ctx.kind === "stream" ? bodyBuffer(ctx.request) : constBuffer(Buffer.alloc(0));
    case DIRECTIONS.response.bodyBuffer:
      return ctx.kind === "stream" ? bodyBuffer(ctx.response) : constBuffer(Buffer.alloc(0));
    case BufferType.HttpCallResponseBody: {
      const response = root?.httpCallResponse;
      return response ? constBuffer(response.body) : undefined;
    }
    case BufferType.NetworkDownstreamData:
    case BufferType.NetworkUpstreamData:
    case BufferType.GrpcReceiveBuffer:
    case BufferType.CallData:
      return constBuffer(Buffer.alloc(0));
    default:
      return undefined;
  }
}

export function bufferImports(host: HostApi): ImportFunctions {
  const mem = host.memory;
  const buffer = (type: number): BodyBuffer | undefined => {
    const ctx = host.ctx();
    return bufferOf(host.core, ctx, host.rootOf(ctx), type);
  };
  return {
    proxy_get_buffer_status: (type: number, lengthPtr: number, flagsPtr: number) => {
      if (u(type) > BUFFER_TYPE_MAX) return WasmResult.BadArgument;
      const b = buffer(u(type));
      if (!b) return WasmResult.NotFound;
      if (!mem.writeU32(lengthPtr, b.data().length)) return WasmResult.InvalidMemoryAccess;
      return mem.writeU32(flagsPtr, 0) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
    },
    proxy_get_buffer_bytes: (
      type: number,
      start: number,
      length: number,
      ptrPtr: number,
      sizePtr: number,
    ) => {
      if (u(type) > BUFFER_TYPE_MAX) return WasmResult.BadArgument;
      const b = buffer(u(type));
      if (!b) return WasmResult.NotFound;
      const data = b.data();
      const s = u(start);
      let len = u(length);
      // proxy-wasm-cpp-host src/exports.cc get_buffer_bytes (since #303 "Don't overread
      // buffers"): start past the end makes the length 0, a range past the end is clamped, and
      // a zero length writes pointer 0 then size 0 (each InvalidMemoryAccess if its slot is
      // outside memory) and returns Ok without allocating. (The `start > start + length`
      // overflow check cannot fire: both are u32 widened to 64 bits.)
      if (s > data.length) len = 0;
      else if (s + len > data.length) len = data.length - s;
      if (len === 0) {
        if (!mem.writeU32(ptrPtr, 0)) return WasmResult.InvalidMemoryAccess;
        return mem.writeU32(sizePtr, 0) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
      }
      return mem.copyToPointerSize(data.subarray(s, s + len), ptrPtr, sizePtr)
        ? WasmResult.Ok
        : WasmResult.InvalidMemoryAccess;
    },
    proxy_set_buffer_bytes: (
      type: number,
      start: number,
      length: number,
      dataPtr: number,
      dataSize: number,
    ) => {
      if (u(type) > BUFFER_TYPE_MAX) return WasmResult.BadArgument;
      const b = buffer(u(type));
      if (!b) return WasmResult.NotFound;
      const data = mem.read(dataPtr, dataSize);
      if (!data) return WasmResult.InvalidMemoryAccess;
      if (!b.copyFrom) return WasmResult.BadArgument;
      return b.copyFrom(u(start), u(length), data);
    },
  };
}
