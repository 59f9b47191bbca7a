// Stream-control host calls: continue, close and local replies (envoy
// source/extensions/common/wasm/context.cc continueStream, closeStream, sendLocalResponse). Envoy
// defers their effect until the VM call returns (addAfterVmCallAction); the stream driver
// (../stream.ts) applies them.
import { STREAM_TYPE_MAX, StreamType, WasmResult } from "../abi.ts";
import type { LocalReply } from "../context.ts";
import { decodePairs } from "../pairs.ts";
import { u, type HostApi, type ImportFunctions } from "./host-api.ts";

const latin1 = (b: Buffer): string => b.toString("latin1");

export function streamControlImports(host: HostApi): ImportFunctions {
  const mem = host.memory;
  /** Context::continueStream: the continue is deferred; the held request maps are released now. */
  const continueStream = (type: number): number => {
    if (type > STREAM_TYPE_MAX) return WasmResult.BadArgument;
    const ctx = host.ctx();
    if (type === StreamType.Upstream) return WasmResult.Unimplemented;
    if (type === StreamType.Downstream) return WasmResult.Ok;
    if (ctx.kind === "stream") {
      const half = type === StreamType.Request ? ctx.request : ctx.response;
      host.afterVmCall(() => (half.continueRequested = true));
      // Envoy clears request_headers_, request_body_buffer_ and request_trailers_ whichever
      // direction is continued.
      ctx.request.headersHeld = false;
      ctx.request.bodyChunk = undefined;
      ctx.request.trailers = undefined;
    }
    return WasmResult.Ok;
  };
  return {
    proxy_continue_stream: (type: number) => continueStream(u(type)),
    proxy_continue_request: () => continueStream(StreamType.Request),
    proxy_continue_response: () => continueStream(StreamType.Response),
    proxy_close_stream: (type: number) => {
      if (u(type) > STREAM_TYPE_MAX) return WasmResult.BadArgument;
      const ctx = host.ctx();
      if (ctx.kind === "stream" && (u(type) === StreamType.Request || u(type) === StreamType.Response)) {
        ctx.responseCodeDetails ??= "wasm_close_stream";
        host.afterVmCall(() => (ctx.resetRequested = true));
      }
      return WasmResult.Ok;
    },
    proxy_send_local_response: (
      code: number,
      detailsPtr: number,
      detailsSize: number,
      bodyPtr: number,
      bodySize: number,
      pairsPtr: number,
      pairsSize: number,
      grpcStatus: number,
    ) => {
      const details = mem.read(detailsPtr, detailsSize);
      const body = mem.read(bodyPtr, bodySize);
      const pairs = mem.read(pairsPtr, pairsSize);
      if (!details || !body || !pairs) return WasmResult.InvalidMemoryAccess;
      const ctx = host.ctx();
      if (ctx.kind === "stream") {
        const reply: LocalReply = {
          statusCode: u(code),
          // StringUtil::replaceAllEmptySpace: whitespace in details becomes "_".
          details: details.toString("latin1").replace(/[ \t\f\v\n\r]/g, "_"),
          body,
          headers: decodePairs(pairs).map(([k, v]) => [latin1(k), latin1(v)]),
          grpcStatus: grpcStatus | 0,
        };
        host.afterVmCall(() => {
          if (!ctx.localReply) ctx.localReply = reply;
        });
      }
      // WasmBase::stopNextIteration: the callback's return status no longer continues the stream.
      host.stopNextIteration();
      return WasmResult.Ok;
    },
    proxy_clear_route_cache: () => WasmResult.Ok,
  };
}
