// HTTP callouts: proxy_http_call and the pending calls it leaves until their answer reaches
// proxy_on_http_call_response (envoy source/extensions/common/wasm/context.cc Context::httpCall,
// onHttpCallSuccess, onHttpCallFailure; how Envoy answers each failure is in ../callouts.ts).
// gRPC calls are not emulated.
import { WasmResult } from "../abi.ts";
import {
  calloutOutcome,
  type CalloutOutcome,
  type ClusterAnswer,
  type ClusterHandler,
  type PendingCallout,
} from "../callouts.ts";
import type { RootContext } from "../context.ts";
import { HeaderMap } from "../header-map.ts";
import { decodePairs } from "../pairs.ts";
import { u, type HostApi, type ImportFunctions } from "./host-api.ts";

/** The callouts of one VM: started by proxy_http_call, answered by their cluster handler or a test. */
export class HttpCalls {
  readonly pending = new Map<number, PendingCallout>();
  private nextId = 0;

  /** `deliver` runs proxy_on_http_call_response on the root context that made the call. */
  constructor(private readonly deliver: (callout: PendingCallout, outcome: CalloutOutcome) => void) {}

  start(
    root: RootContext,
    cluster: string,
    handler: ClusterHandler,
    headers: HeaderMap,
    body: Buffer,
    timeoutMs: number,
  ): number {
    this.nextId += 4; // kCalloutIncrement: http call ids are 4, 8, 12, …
    const token = this.nextId >>> 0;
    const request = { headers: headers.toPairs(), body, timeoutMs };
    const pending: PendingCallout = {
      token,
      rootId: root.id,
      cluster,
      request,
      settled: Promise.resolve(token),
    };
    pending.settled = Promise.resolve()
      .then(() => handler(request))
      .then(
        (answer) => {
          pending.outcome ??= calloutOutcome(answer);
          return token;
        },
        () => {
          pending.outcome ??= calloutOutcome("reset");
          return token;
        },
      );
    this.pending.set(token, pending);
    return token;
  }

  /** Resolves with the token of the first pending callout whose upstream answered. */
  nextSettled(): Promise<number> | undefined {
    const pending = [...this.pending.values()];
    if (pending.length === 0) return undefined;
    return Promise.race(pending.map((p) => p.settled));
  }

  /** Delivers an answer now, whatever the cluster handler does (proxytest's CallOnHttpCallResponse). */
  answer(token: number, answer: ClusterAnswer): boolean {
    const pending = this.pending.get(token);
    if (!pending) return false;
    pending.outcome = calloutOutcome(answer);
    this.dispatch(token);
    return true;
  }

  /** Context::onHttpCallSuccess / onHttpCallFailure for a settled callout. */
  dispatch(token: number): void {
    const pending = this.pending.get(token);
    if (!pending || !pending.outcome) return;
    this.pending.delete(token);
    this.deliver(pending, pending.outcome);
  }
}

export function httpCallImports(host: HostApi, calls: HttpCalls): ImportFunctions {
  const mem = host.memory;
  const core = host.core;
  return {
    proxy_http_call: (
      upstreamPtr: number,
      upstreamSize: number,
      headersPtr: number,
      headersSize: number,
      bodyPtr: number,
      bodySize: number,
      trailersPtr: number,
      trailersSize: number,
      timeoutMs: number,
      tokenPtr: number,
    ) => {
      const root = host.rootOf(host.ctx());
      const upstream = mem.read(upstreamPtr, upstreamSize);
      const body = mem.read(bodyPtr, bodySize);
      const headerPairs = mem.read(headersPtr, headersSize);
      const trailerPairs = mem.read(trailersPtr, trailersSize);
      if (!upstream || !body || !headerPairs || !trailerPairs) return WasmResult.InvalidMemoryAccess;
      // The token is written once before the call to check the pointer (exports.cc http_call).
      if (!mem.writeU32(tokenPtr, 0)) return WasmResult.InvalidMemoryAccess;
      if (!root) return WasmResult.BadArgument;
      // Context::httpCall: negative timeout (as int) → BadArgument, unknown cluster → BadArgument,
      // missing :path, :method or :authority → BadArgument, no healthy upstream → InternalFailure.
      if ((timeoutMs | 0) < 0) return WasmResult.BadArgument;
      const clusterName = upstream.toString("latin1");
      if (!Object.prototype.hasOwnProperty.call(core.clusters, clusterName)) return WasmResult.BadArgument;
      // buildRequestHeaderMapFromPairs: addCopy into a RequestHeaderMapImpl (inline headers merge).
      const headers = new HeaderMap("request");
      for (const [k, v] of decodePairs(headerPairs)) headers.add(k.toString("latin1"), v.toString("latin1"));
      if (!headers.has(":path") || !headers.has(":method") || !headers.has(":authority")) {
        return WasmResult.BadArgument;
      }
      if (body.length > 0) headers.replace("content-length", String(body.length));
      // What the AsyncClient adds before the router sends the request (envoy source/common/http/
      // async_client_impl.cc AsyncStreamImpl::sendHeaders: x-envoy-internal; no x-forwarded-for,
      // Context::httpCall sets send_xff false; source/common/router/router.cc
      // FilterUtility::finalTimeout: the expected timeout, since the AsyncClient's router config
      // does not suppress Envoy headers).
      headers.replace("x-envoy-internal", "true");
      if (u(timeoutMs) > 0) headers.replace("x-envoy-expected-rq-timeout-ms", String(u(timeoutMs)));
      const handler = core.clusters[clusterName];
      if (!handler) return WasmResult.InternalFailure;
      const token = calls.start(root, clusterName, handler, headers, body, u(timeoutMs));
      mem.writeU32(tokenPtr, token);
      return WasmResult.Ok;
    },
    proxy_grpc_call: () => WasmResult.Unimplemented,
    proxy_grpc_stream: () => WasmResult.Unimplemented,
    proxy_grpc_close: () => WasmResult.NotFound,
    proxy_grpc_cancel: () => WasmResult.NotFound,
    proxy_grpc_send: () => WasmResult.BadArgument,
  };
}
