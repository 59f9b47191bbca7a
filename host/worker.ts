// One worker VM as tests drive it: proxytest's low-level calls (initializeHttpContext,
// callOnRequestHeaders, getSentLocalResponse, callOnHttpCallResponse, …) and http(), one request
// through Envoy's connection manager (stream.ts).
import { FilterDataStatus, FilterTrailersStatus } from "./abi.ts";
import type { ClusterAnswer } from "./callouts.ts";
import type { StreamContext, StreamHalf } from "./context.ts";
import { bytesOf, type Core } from "./core.ts";
import { payloadTooLargeReply, type Direction } from "./direction.ts";
import { HeaderMap, fromLatin1, toLatin1 } from "./header-map.ts";
import {
  buildRequest,
  codecRejects,
  type HttpRequest,
  type HttpResult,
  type Upstream,
} from "./http-message.ts";
import { HttpDriver } from "./stream.ts";
import type { Vm } from "./vm.ts";

export interface HttpContextOptions {
  routeName?: string;
  properties?: Record<string, string | Uint8Array>;
  filterState?: Record<string, string | Uint8Array>;
}

export class Worker {
  private readonly streams = new Map<number, StreamContext>();
  /** The trailer maps given to callOnRequestTrailers / callOnResponseTrailers, as the module left them. */
  private readonly trailers = new Map<number, { request?: HeaderMap; response?: HeaderMap }>();

  constructor(
    readonly vm: Vm,
    private readonly core: Core,
  ) {}

  /** The VM failed (a trap); with FAIL_CLOSED every stream on it now gets 503 wasm_fail_stream. */
  get failed(): boolean {
    return this.vm.failed;
  }

  get rootContextId(): number {
    return this.vm.root?.id ?? 0;
  }

  initializeHttpContext(opts: HttpContextOptions = {}): number {
    const stream = this.vm.createStream(opts.routeName ?? "");
    // Override keys are property paths; "." and "\0" both separate tokens (a dotted path is never
    // a valid lookup in Envoy, so the dot form is unambiguous here).
    for (const [k, v] of Object.entries(opts.properties ?? {})) {
      stream.overrides.set(toLatin1(k).replaceAll(".", "\0"), bytesOf(v));
    }
    for (const [k, v] of Object.entries(opts.filterState ?? {}))
      stream.filterState.set("wasm." + toLatin1(k), bytesOf(v));
    this.streams.set(stream.id, stream);
    return stream.id;
  }

  private stream(id: number): StreamContext {
    const s = this.streams.get(id);
    if (!s) throw new Error(`no http context ${id} on this worker`);
    return s;
  }

  /** proxy_on_request_headers; returns the status after Envoy's translation (StopIteration → StopAll…). */
  callOnRequestHeaders(id: number, headers: [string, string][], endOfStream: boolean): number {
    return this.vm.onHeaders(
      "request",
      this.stream(id),
      HeaderMap.fromPairs(headers, "request"),
      endOfStream,
    );
  }

  callOnRequestBody(id: number, body: Uint8Array, endOfStream: boolean): number {
    return this.callOnBody("request", id, body, endOfStream);
  }

  callOnResponseHeaders(id: number, headers: [string, string][], endOfStream: boolean): number {
    return this.vm.onHeaders("response", this.stream(id), HeaderMap.fromPairs(headers), endOfStream);
  }

  callOnResponseBody(id: number, body: Uint8Array, endOfStream: boolean): number {
    return this.callOnBody("response", id, body, endOfStream);
  }

  /**
   * proxy_on_request_trailers; returns the FilterTrailersStatus (anything above StopIteration, or a
   * local reply sent from the callback, is StopIteration). Map 1 is the trailers during the call and,
   * after a stop, until proxy_continue_stream; a Continue releases the buffered body.
   */
  callOnRequestTrailers(id: number, trailers: [string, string][]): number {
    return this.callOnTrailers("request", id, trailers);
  }

  callOnResponseTrailers(id: number, trailers: [string, string][]): number {
    return this.callOnTrailers("response", id, trailers);
  }

  private callOnBody(which: Direction, id: number, body: Uint8Array, endOfStream: boolean): number {
    const s = this.stream(id);
    const r = this.vm.onBody(which, s, Buffer.from(body), endOfStream);
    this.afterLowLevelData(s, r.status, r.chunk, which);
    return r.status;
  }

  private callOnTrailers(which: Direction, id: number, trailers: [string, string][]): number {
    const s = this.stream(id);
    const half = s[which];
    const map = HeaderMap.fromPairs(trailers);
    this.trailersOf(id)[which] = map;
    const status = this.vm.onTrailers(which, s, map);
    if (status === FilterTrailersStatus.Continue && half.buffered !== undefined) {
      half.lastBody = half.buffered;
      half.buffered = undefined;
      half.bodyChunk = undefined;
    }
    return status;
  }

  private trailersOf(id: number): { request?: HeaderMap; response?: HeaderMap } {
    let t = this.trailers.get(id);
    if (!t) {
      t = {};
      this.trailers.set(id, t);
    }
    return t;
  }

  /** The filter manager's side of a body callback: buffer on StopIteration*, release on Continue. */
  private afterLowLevelData(s: StreamContext, status: number, chunk: Buffer, which: Direction): void {
    const half = s[which];
    if (status === FilterDataStatus.Continue) {
      half.lastBody = Buffer.concat([half.buffered ?? Buffer.alloc(0), chunk]);
      half.buffered = undefined;
    } else if (
      status === FilterDataStatus.StopIterationAndBuffer ||
      status === FilterDataStatus.StopIterationAndWatermark
    ) {
      half.buffered = Buffer.concat([half.buffered ?? Buffer.alloc(0), chunk]);
      if (
        status === FilterDataStatus.StopIterationAndBuffer &&
        half.buffered.length > this.core.bufferLimitBytes &&
        !s.localReply
      ) {
        s.localReply = payloadTooLargeReply(which);
      }
    }
  }

  /** Stream end: proxy_on_log, proxy_on_done, proxy_on_delete (Envoy logs before destroying filters). */
  completeHttpContext(id: number): void {
    this.vm.completeStream(this.stream(id));
  }

  getCurrentRequestHeaders(id: number): [string, string][] {
    return this.stream(id).request.headers?.toPairs() ?? [];
  }

  getCurrentRequestBody(id: number): Buffer {
    return this.currentBody(this.stream(id).request);
  }

  /**
   * The trailers given to callOnRequestTrailers with the module's edits, or those the module added
   * from the end_of_stream body callback; [] when there are none.
   */
  getCurrentRequestTrailers(id: number): [string, string][] {
    return this.currentTrailers("request", id);
  }

  getCurrentResponseTrailers(id: number): [string, string][] {
    return this.currentTrailers("response", id);
  }

  getCurrentResponseHeaders(id: number): [string, string][] {
    return this.stream(id).response.headers?.toPairs() ?? [];
  }

  getCurrentResponseBody(id: number): Buffer {
    return this.currentBody(this.stream(id).response);
  }

  private currentBody(half: StreamHalf): Buffer {
    return Buffer.from(half.buffered ?? half.bodyChunk ?? half.lastBody ?? Buffer.alloc(0));
  }

  private currentTrailers(which: Direction, id: number): [string, string][] {
    const s = this.stream(id);
    return (this.trailers.get(id)?.[which] ?? s[which].trailers)?.toPairs() ?? [];
  }

  getSentLocalResponse(
    id: number,
  ):
    | { statusCode: number; details: string; body: Buffer; headers: [string, string][]; grpcStatus: number }
    | undefined {
    const reply = this.stream(id).localReply;
    if (!reply) return undefined;
    return {
      statusCode: reply.statusCode,
      details: reply.details,
      body: Buffer.from(reply.body),
      headers: reply.headers.map(([k, v]) => [fromLatin1(k), fromLatin1(v)]),
      grpcStatus: reply.grpcStatus,
    };
  }

  /** Filter state of the stream, keyed as Envoy stores it: proxy_set_property("x") → "wasm.x". */
  getFilterState(id: number): Map<string, Buffer> {
    const out = new Map<string, Buffer>();
    for (const [k, v] of this.stream(id).filterState) out.set(fromLatin1(k), Buffer.from(v));
    return out;
  }

  /** What the module asked for that Envoy defers until after the callback (continue, reset). */
  getStreamActions(id: number): { continueRequest: boolean; continueResponse: boolean; reset: boolean } {
    const s = this.stream(id);
    return {
      continueRequest: s.request.continueRequested,
      continueResponse: s.response.continueRequested,
      reset: s.resetRequested,
    };
  }

  /** Tokens of http callouts whose answer has not been delivered yet. */
  pendingCallouts(): number[] {
    return [...this.vm.httpCalls.pending.keys()];
  }

  /** What each pending callout sent (proxytest's GetCalloutAttributes). */
  getCalloutAttributes(): {
    token: number;
    cluster: string;
    headers: [string, string][];
    body: Buffer;
    timeoutMs: number;
  }[] {
    return [...this.vm.httpCalls.pending.values()].map((p) => ({
      token: p.token,
      cluster: p.cluster,
      ...p.request,
    }));
  }

  /**
   * Delivers `answer` to proxy_on_http_call_response now, whatever the cluster handler does
   * (a handler that never settles leaves the timing to the test). Throws for an unknown token.
   */
  callOnHttpCallResponse(token: number, answer: ClusterAnswer): void {
    if (!this.vm.httpCalls.answer(token, answer)) throw new Error(`no pending http callout ${token}`);
  }

  /** Waits for every pending callout and delivers each answer to proxy_on_http_call_response. */
  async flushCallouts(): Promise<void> {
    for (;;) {
      const next = this.vm.httpCalls.nextSettled();
      if (!next) return;
      this.vm.httpCalls.dispatch(await next);
    }
  }

  callOnTick(): void {
    this.vm.callOnTick();
  }

  /** Runs one request through Envoy's decode path, the upstream, and the encode path. */
  async http(req: HttpRequest, upstream: Upstream): Promise<HttpResult> {
    const { headers } = buildRequest(req, "");
    if (codecRejects(headers, this.core.maxRequestHeadersKb, this.core.maxHeadersCount)) {
      // No filter chain is created for such a request: the module never sees it.
      const body = Buffer.from("Request Header Fields Too Large");
      return {
        status: 431,
        headers: [
          ["content-length", String(body.length)],
          ["content-type", "text/plain"],
        ],
        body,
        localReply: { details: "http1.headers_too_large" },
        streamId: 0,
      };
    }
    const id = this.initializeHttpContext({
      routeName: req.routeName,
      properties: req.properties,
      filterState: req.filterState,
    });
    const stream = this.stream(id);
    return new HttpDriver(this.vm, stream, this.core.bufferLimitBytes).run(req, upstream);
  }
}
