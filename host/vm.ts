// One VM instance (an Envoy worker's copy of the module) and every host call it imports.
// Host-call semantics follow proxy-wasm-cpp-host src/exports.cc and src/context.cc and
// envoy source/extensions/common/wasm/context.cc; comments point at the subtle places.
import {
  BUFFER_TYPE_MAX,
  BufferType,
  FilterDataStatus,
  FilterHeadersStatus,
  FilterTrailersStatus,
  LogLevel,
  MAP_TYPE_MAX,
  METRIC_TYPE_MAX,
  MapType,
  MetricType,
  STREAM_TYPE_MAX,
  StreamType,
  WasmResult,
  type AbiVersion,
} from "./abi.ts";
import { msToNanos, type Clock } from "./clock.ts";
import { RootContext, StreamContext, VmContext, type AnyContext, type LocalReply } from "./context.ts";
import { HeaderMap } from "./header-map.ts";
import { WASI_FUNCTIONS, WASI_MODULES, envFunctions } from "./link.ts";
import { VmMemory } from "./memory.ts";
import { calloutOutcome, type ClusterAnswer, type ClusterHandler, type PendingCallout } from "./callouts.ts";
import { sharedQueues } from "./shared-queues.ts";
import { wasiFunctions } from "./wasi.ts";
import { decodePairs, encodePairs } from "./pairs.ts";
import { getProperty, setProperty, type PropertySource } from "./properties.ts";
import type { SharedData } from "./shared-data.ts";

export type { ClusterHandler, ClusterResponse } from "./callouts.ts";

/** What every VM of a plugin shares: configuration, stats, logs, shared data, clock. */
/** Test-only extra imports (PluginOptions.instrumentation); not an Envoy behaviour. */
export interface Instrumentation {
  modules: string[];
  imports(memory: () => WebAssembly.Memory | undefined): WebAssembly.Imports;
}

export interface PluginCore {
  readonly rootId: string;
  readonly vmId: string;
  readonly pluginName: string;
  readonly configuration: Buffer;
  readonly vmConfiguration: Buffer;
  readonly allowOnHeadersStopIteration: boolean;
  readonly failOpen: boolean;
  readonly bufferLimitBytes: number;
  readonly clusters: Record<string, ClusterHandler | null>;
  readonly environment: Record<string, string>;
  readonly sharedData: SharedData;
  readonly clock: Clock;
  readonly instrumentation: Instrumentation | undefined;
  log(vm: string, level: number, message: string): void;
  stat(type: number, name: string): { value: number; values: number[] };
  nextConnectionId(): number;
}

export class WasmTrap extends Error {}

const latin1 = (b: Buffer): string => b.toString("latin1");

/** A body buffer as Envoy's Buffer wrapper exposes it to get/set_buffer_bytes. */
interface BodyBuffer {
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

export class Vm {
  readonly memory = new VmMemory();
  failed = false;
  failMessage: string | undefined;
  private exports: Record<string, WebAssembly.ExportValue> = {};
  private readonly contexts = new Map<number, RootContext | StreamContext>();
  private readonly vmContext = new VmContext();
  private nextContextId = 1;
  root: RootContext | undefined;
  private current: AnyContext = this.vmContext;
  private effectiveContextId = 0;
  private depth = 0;
  private afterActions: (() => void)[] = [];
  private stopNextIteration = false;
  private readonly metricIds = new Map<number, { type: number; name: string }>();
  private nextMetricId = [0, 1, 2];
  private nextHttpCallId = 0;
  readonly pendingCallouts = new Map<number, PendingCallout>();

  constructor(
    readonly core: PluginCore,
    readonly module: WebAssembly.Module,
    readonly abi: AbiVersion,
    readonly name: string,
  ) {}

  // ---------------------------------------------------------------- lifecycle

  /** Instantiates the module and runs _initialize/_start (WasmBase::initialize → startVm). */
  instantiate(): void {
    const instance = this.withContext(
      this.vmContext,
      () => new WebAssembly.Instance(this.module, this.buildImports()),
    );
    if (!instance) throw new WasmTrap(this.failMessage ?? "instantiation failed");
    this.exports = instance.exports;
    const memory = this.exports.memory;
    if (!(memory instanceof WebAssembly.Memory)) throw new WasmTrap("Wasm module is missing memory export");
    const malloc = (this.exports.malloc ?? this.exports.proxy_on_memory_allocate) as (n: number) => number;
    this.memory.attach(memory, malloc);
    if (this.exports._initialize) {
      this.callVoid(this.vmContext, "_initialize");
      if (this.exports.main) this.callVoid(this.vmContext, "main", 0, 0);
    } else if (this.exports._start) {
      this.callVoid(this.vmContext, "_start");
    }
    if (this.failed) throw new WasmTrap(this.failMessage ?? "start failed");
  }

  /** WasmBase::start + configure: root on_context_create, on_vm_start, on_configure. */
  startRoot(): { ok: boolean; reason?: string } {
    const root = new RootContext(this.nextContextId++);
    this.contexts.set(root.id, root);
    this.root = root;
    root.pluginConfigurationVisible = true;
    this.callVoid(root, "proxy_on_context_create", root.id, 0);
    root.pluginConfigurationVisible = false;
    if (this.failed) return { ok: false, reason: this.failMessage };
    // ContextBase::onStart passes the vm configuration size to on_vm_start.
    const started = this.callNumber(root, "proxy_on_vm_start", root.id, this.core.vmConfiguration.length);
    if (this.failed) return { ok: false, reason: this.failMessage };
    if (started !== undefined && started === 0) return { ok: false, reason: "Failed to start base Wasm" };
    root.pluginConfigurationVisible = true;
    const configured = this.callNumber(root, "proxy_on_configure", root.id, this.core.configuration.length);
    root.pluginConfigurationVisible = false;
    if (this.failed) return { ok: false, reason: this.failMessage };
    if (configured !== undefined && configured === 0) {
      return { ok: false, reason: "Failed to configure base Wasm plugin" };
    }
    return { ok: true };
  }

  // ---------------------------------------------------------------- calling into the module

  private withContext<T>(ctx: AnyContext, fn: () => T): T | undefined {
    const savedCurrent = this.current;
    const savedEffective = this.effectiveContextId;
    this.current = ctx;
    this.effectiveContextId = 0;
    this.depth++;
    try {
      return fn();
    } catch (err) {
      this.fail(err);
      return undefined;
    } finally {
      this.depth--;
      this.current = savedCurrent;
      this.effectiveContextId = savedEffective;
    }
  }

  private fail(err: unknown, functionName?: string): void {
    const message = err instanceof Error ? err.message : String(err);
    const label = err instanceof WebAssembly.RuntimeError ? "Uncaught RuntimeError" : "Uncaught Error";
    // V8::getFailMessage: "Function: <name> failed: <trap message>"; Envoy logs it at error level.
    const text = functionName
      ? `Function: ${functionName} failed: ${label}: ${message}`
      : `${label}: ${message}`;
    if (!this.failed) {
      this.failed = true;
      this.failMessage = text;
      this.core.log(this.name, LogLevel.Error, text);
    }
  }

  private invoke(ctx: AnyContext, name: string, args: number[]): { called: boolean; value?: number } {
    const fn = this.exports[name];
    if (typeof fn !== "function") return { called: false };
    let value: number | undefined;
    const savedCurrent = this.current;
    const savedEffective = this.effectiveContextId;
    this.current = ctx;
    this.effectiveContextId = 0;
    this.depth++;
    try {
      const r = (fn as (...a: number[]) => unknown)(...args);
      value = typeof r === "number" ? r >>> 0 : undefined;
    } catch (err) {
      this.fail(err, name);
    } finally {
      this.depth--;
      this.current = savedCurrent;
      this.effectiveContextId = savedEffective;
    }
    return { called: true, value };
  }

  /** Runs the deferred "after VM call" actions once the outermost call returned (DeferAfterCallActions). */
  private finishCall(): void {
    if (this.depth > 0) return;
    this.stopNextIteration = false;
    while (this.afterActions.length > 0) {
      const actions = this.afterActions;
      this.afterActions = [];
      for (const action of actions) action();
    }
  }

  callVoid(ctx: AnyContext, name: string, ...args: number[]): void {
    this.invoke(ctx, name, args);
    this.finishCall();
  }

  callNumber(ctx: AnyContext, name: string, ...args: number[]): number | undefined {
    const r = this.invoke(ctx, name, args);
    this.finishCall();
    return r.value;
  }

  // ---------------------------------------------------------------- streams

  createStream(routeName: string | undefined): StreamContext {
    if (!this.root) throw new Error("root context not started");
    const stream = new StreamContext(this.nextContextId++, this.root.id, routeName, this.core.clock.nowMs());
    stream.connectionId = this.core.nextConnectionId();
    this.contexts.set(stream.id, stream);
    // ContextBase::onCreate: skipped once the VM failed.
    if (!this.failed) this.callVoid(stream, "proxy_on_context_create", stream.id, stream.rootId);
    return stream;
  }

  /**
   * CHECK_FAIL_HTTP (proxy-wasm-cpp-host src/context.cc): with a failed VM, FAIL_OPEN lets the
   * stream pass, FAIL_CLOSED sends one 503 `wasm_fail_stream` local reply (Context::failStream).
   */
  private checkFail(stream: StreamContext): "open" | "closed" | undefined {
    if (!this.failed) return undefined;
    if (this.core.failOpen) return "open";
    if (!stream.failureLocalReplySent) {
      stream.failureLocalReplySent = true;
      stream.localReply = {
        statusCode: 503,
        details: "wasm_fail_stream",
        body: Buffer.alloc(0),
        headers: [],
        grpcStatus: 14, // Grpc::Status::WellKnownGrpcStatus::Unavailable
      };
    }
    return "closed";
  }

  /** ContextBase::convertVmCallResultToFilterHeadersStatus. */
  private headersStatus(result: number | undefined, stopNext: boolean): number {
    const r = result ?? FilterHeadersStatus.Continue;
    if (stopNext || r > FilterHeadersStatus.StopAllIterationAndWatermark) {
      return FilterHeadersStatus.StopAllIterationAndWatermark;
    }
    if (r === FilterHeadersStatus.StopIteration && !this.core.allowOnHeadersStopIteration) {
      // Proxy-Wasm 0.2.* hosts turn StopIteration into StopAllIterationAndWatermark
      // (proxy-wasm-cpp-host issue #143); Envoy ≥ 1.35 keeps it with allow_on_headers_stop_iteration.
      return FilterHeadersStatus.StopAllIterationAndWatermark;
    }
    // envoy context.cc convertFilterHeadersStatus has no case for ContinueAndEndStream: it falls to
    // the default, Continue (the body is not dropped).
    if (r === FilterHeadersStatus.ContinueAndEndStream) return FilterHeadersStatus.Continue;
    return r;
  }

  private dataStatus(result: number | undefined, stopNext: boolean): number {
    const r = result ?? FilterDataStatus.Continue;
    if (stopNext || r > FilterDataStatus.StopIterationNoBuffer) return FilterDataStatus.StopIterationNoBuffer;
    return r;
  }

  /** ContextBase::convertVmCallResultToFilterTrailersStatus: anything above StopIteration stops. */
  private trailersStatus(result: number | undefined, stopNext: boolean): number {
    const r = result ?? FilterTrailersStatus.Continue;
    if (stopNext || r > FilterTrailersStatus.StopIteration) return FilterTrailersStatus.StopIteration;
    return r;
  }

  private callFilter(
    stream: StreamContext,
    name: string,
    args: number[],
    kind: "headers" | "data" | "trailers",
  ): number {
    const openStatus = FilterHeadersStatus.Continue;
    const closedStatus =
      kind === "headers"
        ? FilterHeadersStatus.StopAllIterationAndWatermark
        : kind === "data"
          ? FilterDataStatus.StopIterationNoBuffer
          : FilterTrailersStatus.StopIteration;
    const pre = this.checkFail(stream);
    if (pre) return pre === "open" ? openStatus : closedStatus;
    const r = this.invoke(stream, name, args);
    const stopNext = this.stopNextIteration;
    let status: number;
    const post = this.checkFail(stream);
    if (post) status = post === "open" ? openStatus : closedStatus;
    else if (!r.called) status = openStatus;
    else if (kind === "headers") status = this.headersStatus(r.value, stopNext);
    else if (kind === "data") status = this.dataStatus(r.value, stopNext);
    else status = this.trailersStatus(r.value, stopNext);
    this.finishCall();
    return status;
  }

  /** Context::decodeHeaders. */
  onRequestHeaders(stream: StreamContext, headers: HeaderMap, endOfStream: boolean): number {
    stream.requestHeaders = headers;
    stream.requestHeadersHeld = true;
    stream.endOfStream = endOfStream;
    const args =
      this.abi === "0_1_0" ? [stream.id, headers.size] : [stream.id, headers.size, endOfStream ? 1 : 0];
    const status = this.callFilter(stream, "proxy_on_request_headers", args, "headers");
    if (status === FilterHeadersStatus.Continue) stream.requestHeadersHeld = false;
    return status;
  }

  /**
   * Context::decodeData. `chunk` is the new data; when the previous call returned
   * StopIterationAndBuffer the filter manager has already appended it to the buffered body, and the
   * module sees (and may rewrite) the whole buffered body.
   */
  onRequestBody(
    stream: StreamContext,
    chunk: Buffer,
    endOfStream: boolean,
  ): { status: number; chunk: Buffer } {
    if (stream.bufferingRequestBody) {
      stream.requestBuffered = Buffer.concat([stream.requestBuffered ?? Buffer.alloc(0), chunk]);
      stream.requestBodyChunk = Buffer.alloc(0);
    } else {
      stream.requestBodyChunk = Buffer.from(chunk);
    }
    stream.endOfStream = endOfStream;
    const size = this.requestBodyBuffer(stream).data().length;
    const status = this.callFilter(
      stream,
      "proxy_on_request_body",
      [stream.id, size, endOfStream ? 1 : 0],
      "data",
    );
    // The data that moves on is what the module left in the chunk (it may have rewritten it).
    const chunkOut = stream.requestBodyChunk ?? Buffer.alloc(0);
    stream.bufferingRequestBody = false;
    if (status === FilterDataStatus.Continue) stream.requestBodyChunk = undefined;
    else if (status === FilterDataStatus.StopIterationAndBuffer) stream.bufferingRequestBody = true;
    return { status, chunk: chunkOut };
  }

  /**
   * Context::decodeTrailers. The module may edit the trailers (map 1) until it continues. The body
   * (buffer 0) it sees is the filter manager's buffered body if its last body callback returned
   * StopIterationAndBuffer (buffering_request_body_ stays set); otherwise Envoy still points at the
   * last data frame's buffer, which the codec drained after dispatching it: empty, and anything
   * written there reaches nobody.
   */
  onRequestTrailers(stream: StreamContext, trailers: HeaderMap): number {
    if (!stream.bufferingRequestBody && stream.requestBodyChunk !== undefined) {
      stream.requestBodyChunk = Buffer.alloc(0);
    }
    stream.requestTrailers = trailers;
    const status = this.callFilter(
      stream,
      "proxy_on_request_trailers",
      [stream.id, trailers.size],
      "trailers",
    );
    if (status === FilterTrailersStatus.Continue) stream.requestTrailers = undefined;
    return status;
  }

  /** Context::encodeHeaders: the VM is not called after the failure reply was sent. */
  onResponseHeaders(stream: StreamContext, headers: HeaderMap, endOfStream: boolean): number {
    stream.responseHeaders = headers;
    if (stream.failureLocalReplySent) return FilterHeadersStatus.Continue;
    stream.responseHeadersHeld = true;
    stream.endOfStream = endOfStream;
    const args =
      this.abi === "0_1_0" ? [stream.id, headers.size] : [stream.id, headers.size, endOfStream ? 1 : 0];
    const status = this.callFilter(stream, "proxy_on_response_headers", args, "headers");
    if (status === FilterHeadersStatus.Continue) stream.responseHeadersHeld = false;
    return status;
  }

  onResponseBody(
    stream: StreamContext,
    chunk: Buffer,
    endOfStream: boolean,
  ): { status: number; chunk: Buffer } {
    if (stream.failureLocalReplySent) return { status: FilterDataStatus.Continue, chunk: Buffer.from(chunk) };
    if (stream.bufferingResponseBody) {
      stream.responseBuffered = Buffer.concat([stream.responseBuffered ?? Buffer.alloc(0), chunk]);
      stream.responseBodyChunk = Buffer.alloc(0);
    } else {
      stream.responseBodyChunk = Buffer.from(chunk);
    }
    stream.endOfStream = endOfStream;
    const size = this.responseBodyBuffer(stream).data().length;
    const status = this.callFilter(
      stream,
      "proxy_on_response_body",
      [stream.id, size, endOfStream ? 1 : 0],
      "data",
    );
    const chunkOut = stream.responseBodyChunk ?? Buffer.alloc(0);
    stream.bufferingResponseBody = false;
    if (status === FilterDataStatus.Continue) stream.responseBodyChunk = undefined;
    else if (status === FilterDataStatus.StopIterationAndBuffer) stream.bufferingResponseBody = true;
    return { status, chunk: chunkOut };
  }

  /** Context::encodeTrailers: like onRequestTrailers; skipped after the failure reply was sent. */
  onResponseTrailers(stream: StreamContext, trailers: HeaderMap): number {
    if (stream.failureLocalReplySent) return FilterTrailersStatus.Continue;
    if (!stream.bufferingResponseBody && stream.responseBodyChunk !== undefined) {
      stream.responseBodyChunk = Buffer.alloc(0);
    }
    stream.responseTrailers = trailers;
    const status = this.callFilter(
      stream,
      "proxy_on_response_trailers",
      [stream.id, trailers.size],
      "trailers",
    );
    if (status === FilterTrailersStatus.Continue) stream.responseTrailers = undefined;
    return status;
  }

  /** Envoy order at stream end: access log (on_log), then filter destroy (on_done, on_delete). */
  completeStream(stream: StreamContext): void {
    if (stream.completed) return;
    stream.completed = true;
    if (!this.failed) {
      stream.accessLogPhase = true;
      this.callVoid(stream, "proxy_on_log", stream.id);
      stream.accessLogPhase = false;
    }
    if (!this.failed) this.callNumber(stream, "proxy_on_done", stream.id);
    if (!this.failed) this.callVoid(stream, "proxy_on_delete", stream.id);
    this.contexts.delete(stream.id);
  }

  callOnTick(): void {
    if (this.root && !this.failed) this.callVoid(this.root, "proxy_on_tick", this.root.id);
  }

  // ---------------------------------------------------------------- callouts

  /** Resolves with the token of the first pending callout whose upstream answered. */
  nextSettledCallout(): Promise<number> | undefined {
    const pending = [...this.pendingCallouts.values()];
    if (pending.length === 0) return undefined;
    return Promise.race(pending.map((p) => p.settled));
  }

  /** Delivers an answer now, whatever the cluster handler does (proxytest's CallOnHttpCallResponse). */
  answerCallout(token: number, answer: ClusterAnswer): boolean {
    const pending = this.pendingCallouts.get(token);
    if (!pending) return false;
    pending.outcome = calloutOutcome(answer);
    this.dispatchCallout(token);
    return true;
  }

  /** Context::onHttpCallSuccess / onHttpCallFailure → proxy_on_http_call_response on the root context. */
  dispatchCallout(token: number): void {
    const pending = this.pendingCallouts.get(token);
    if (!pending || !pending.outcome) return;
    this.pendingCallouts.delete(token);
    const root = this.contexts.get(pending.rootId);
    if (!root || root.kind !== "root" || this.failed) return;
    const outcome = pending.outcome;
    if (outcome.kind === "response") {
      root.httpCallResponse = { headers: outcome.headers, body: outcome.body, trailers: outcome.trailers };
      this.invoke(root, "proxy_on_http_call_response", [
        root.id,
        token,
        outcome.headers.size,
        outcome.body.length,
        outcome.trailers.size,
      ]);
      root.httpCallResponse = undefined;
    } else {
      root.statusCode = WasmResult.BrokenConnection;
      root.statusMessage = "reset";
      this.invoke(root, "proxy_on_http_call_response", [root.id, token, 0, 0, 0]);
      root.statusMessage = "";
    }
    this.finishCall();
  }

  private startCallout(
    root: RootContext,
    cluster: string,
    handler: ClusterHandler,
    headers: HeaderMap,
    body: Buffer,
    timeoutMs: number,
  ): number {
    this.nextHttpCallId += 4; // kCalloutIncrement: http call ids are 4, 8, 12, …
    const token = this.nextHttpCallId >>> 0;
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
    this.pendingCallouts.set(token, pending);
    return token;
  }

  // ---------------------------------------------------------------- context helpers for host calls

  /** contextOrEffectiveContext(): the effective context if it still exists, else the current one. */
  private ctx(): AnyContext {
    if (this.effectiveContextId !== 0) {
      const eff = this.contexts.get(this.effectiveContextId);
      if (eff) return eff;
    }
    return this.current;
  }

  private rootOf(ctx: AnyContext): RootContext | undefined {
    if (ctx.kind === "root") return ctx;
    if (ctx.kind === "stream") {
      const r = this.contexts.get(ctx.rootId);
      return r && r.kind === "root" ? r : undefined;
    }
    return this.root;
  }

  private propertySource(ctx: AnyContext): PropertySource {
    const core = this.core;
    const src: PropertySource = { pluginName: core.pluginName, rootId: core.rootId, vmId: core.vmId };
    if (ctx.kind === "stream") {
      src.stream = {
        requestHeaders: ctx.requestHeadersHeld || ctx.accessLogPhase ? ctx.requestHeaders : undefined,
        responseHeaders: ctx.responseHeadersHeld || ctx.accessLogPhase ? ctx.responseHeaders : undefined,
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

  /** Context::getMap: the maps the filter may modify right now. */
  private mutableMap(ctx: AnyContext, type: number): HeaderMap | undefined {
    if (ctx.kind !== "stream") return undefined;
    switch (type) {
      case MapType.RequestHeaders:
        return ctx.requestHeadersHeld ? ctx.requestHeaders : undefined;
      case MapType.RequestTrailers:
        if (!ctx.requestTrailers && ctx.requestBodyChunk !== undefined && ctx.endOfStream) {
          ctx.requestTrailers = new HeaderMap(); // decoder_callbacks_->addDecodedTrailers()
        }
        return ctx.requestTrailers;
      case MapType.ResponseHeaders:
        return ctx.responseHeadersHeld ? ctx.responseHeaders : undefined;
      case MapType.ResponseTrailers:
        if (!ctx.responseTrailers && ctx.responseBodyChunk !== undefined && ctx.endOfStream) {
          ctx.responseTrailers = new HeaderMap();
        }
        return ctx.responseTrailers;
      default:
        return undefined;
    }
  }

  /** Context::getConstMap. */
  private constMap(ctx: AnyContext, type: number): HeaderMap | undefined {
    if (type === MapType.HttpCallResponseHeaders || type === MapType.HttpCallResponseTrailers) {
      const response = this.rootOf(ctx)?.httpCallResponse;
      if (!response) return undefined;
      return type === MapType.HttpCallResponseHeaders ? response.headers : response.trailers;
    }
    if (ctx.kind !== "stream") return undefined;
    switch (type) {
      case MapType.RequestHeaders:
        return ctx.accessLogPhase || ctx.requestHeadersHeld ? ctx.requestHeaders : undefined;
      case MapType.RequestTrailers:
        return ctx.accessLogPhase ? undefined : ctx.requestTrailers;
      case MapType.ResponseHeaders:
        return ctx.accessLogPhase || ctx.responseHeadersHeld ? ctx.responseHeaders : undefined;
      case MapType.ResponseTrailers:
        return ctx.accessLogPhase ? ctx.loggedResponseTrailers : ctx.responseTrailers;
      default:
        return undefined;
    }
  }

  requestBodyBuffer(stream: StreamContext): BodyBuffer {
    if (stream.bufferingRequestBody) {
      return mutableBuffer(
        () => stream.requestBuffered ?? Buffer.alloc(0),
        (b) => (stream.requestBuffered = b),
      );
    }
    if (stream.requestBodyChunk !== undefined) {
      return mutableBuffer(
        () => stream.requestBodyChunk ?? Buffer.alloc(0),
        (b) => (stream.requestBodyChunk = b),
      );
    }
    return constBuffer(Buffer.alloc(0));
  }

  responseBodyBuffer(stream: StreamContext): BodyBuffer {
    if (stream.bufferingResponseBody) {
      return mutableBuffer(
        () => stream.responseBuffered ?? Buffer.alloc(0),
        (b) => (stream.responseBuffered = b),
      );
    }
    if (stream.responseBodyChunk !== undefined) {
      return mutableBuffer(
        () => stream.responseBodyChunk ?? Buffer.alloc(0),
        (b) => (stream.responseBodyChunk = b),
      );
    }
    return constBuffer(Buffer.alloc(0));
  }

  /** Context::getBuffer. */
  private buffer(ctx: AnyContext, type: number): BodyBuffer | undefined {
    switch (type) {
      case BufferType.VmConfiguration:
        return constBuffer(this.core.vmConfiguration);
      case BufferType.PluginConfiguration:
        return ctx.kind === "root" && ctx.pluginConfigurationVisible
          ? constBuffer(this.core.configuration)
          : undefined;
      case BufferType.HttpRequestBody:
        return ctx.kind === "stream" ? this.requestBodyBuffer(ctx) : constBuffer(Buffer.alloc(0));
      case BufferType.HttpResponseBody:
        return ctx.kind === "stream" ? this.responseBodyBuffer(ctx) : constBuffer(Buffer.alloc(0));
      case BufferType.HttpCallResponseBody: {
        const response = this.rootOf(ctx)?.httpCallResponse;
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

  private log(level: number, message: string): void {
    this.core.log(this.name, level, message);
  }

  // ---------------------------------------------------------------- imports

  private buildImports(): WebAssembly.Imports {
    const env: Record<string, (...args: never[]) => unknown> = {};
    const impl = this.hostFunctions();
    for (const name of Object.keys(envFunctions(this.abi))) {
      env[name] = impl[name] ?? (() => WasmResult.Unimplemented);
    }
    const wasi = wasiFunctions(this.memory, this.core, (level, message) => this.log(level, message));
    const extra = this.core.instrumentation?.imports(() => this.memory.wasmMemory) ?? {};
    const imports: WebAssembly.Imports = { ...extra, env };
    for (const module of WASI_MODULES) {
      const m: Record<string, (...args: never[]) => unknown> = {};
      for (const name of Object.keys(WASI_FUNCTIONS)) m[name] = wasi[name] ?? (() => 52);
      imports[module] = m;
    }
    return imports;
  }

  private hostFunctions(): Record<string, (...args: never[]) => unknown> {
    const mem = this.memory;
    const core = this.core;
    const u = (n: number): number => n >>> 0;
    const readOr = (ptr: number, size: number): Buffer | undefined => mem.read(ptr, size);
    return {
      proxy_log: (level: number, ptr: number, size: number) => {
        if (u(level) > LogLevel.Critical) return WasmResult.BadArgument;
        const message = readOr(ptr, size);
        if (!message) return WasmResult.InvalidMemoryAccess;
        this.log(u(level), message.toString("utf8"));
        return WasmResult.Ok;
      },
      proxy_get_log_level: (ptr: number) =>
        mem.writeU32(ptr, LogLevel.Trace) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess,
      proxy_get_status: (codePtr: number, msgPtrPtr: number, msgSizePtr: number) => {
        const ctx = this.ctx();
        if (!mem.writeU32(codePtr, ctx.statusCode)) return WasmResult.InvalidMemoryAccess;
        return mem.copyToPointerSize(Buffer.from(ctx.statusMessage), msgPtrPtr, msgSizePtr)
          ? WasmResult.Ok
          : WasmResult.InvalidMemoryAccess;
      },
      proxy_get_property: (pathPtr: number, pathSize: number, valuePtrPtr: number, valueSizePtr: number) => {
        const path = readOr(pathPtr, pathSize);
        if (!path) return WasmResult.InvalidMemoryAccess;
        const r = getProperty(this.propertySource(this.ctx()), path);
        if (r.result !== WasmResult.Ok || !r.value) return r.result;
        return mem.copyToPointerSize(r.value, valuePtrPtr, valueSizePtr)
          ? WasmResult.Ok
          : WasmResult.InvalidMemoryAccess;
      },
      proxy_set_property: (pathPtr: number, pathSize: number, valuePtr: number, valueSize: number) => {
        const path = readOr(pathPtr, pathSize);
        const value = readOr(valuePtr, valueSize);
        if (!path || !value) return WasmResult.InvalidMemoryAccess;
        return setProperty(this.propertySource(this.ctx()), path, value);
      },
      proxy_continue_stream: (type: number) => this.continueStream(u(type)),
      proxy_continue_request: () => this.continueStream(StreamType.Request),
      proxy_continue_response: () => this.continueStream(StreamType.Response),
      proxy_close_stream: (type: number) => {
        if (u(type) > STREAM_TYPE_MAX) return WasmResult.BadArgument;
        const ctx = this.ctx();
        if (ctx.kind === "stream" && (u(type) === StreamType.Request || u(type) === StreamType.Response)) {
          ctx.responseCodeDetails ??= "wasm_close_stream";
          this.afterActions.push(() => (ctx.resetRequested = true));
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
        const details = readOr(detailsPtr, detailsSize);
        const body = readOr(bodyPtr, bodySize);
        const pairs = readOr(pairsPtr, pairsSize);
        if (!details || !body || !pairs) return WasmResult.InvalidMemoryAccess;
        const ctx = this.ctx();
        if (ctx.kind === "stream") {
          const reply: LocalReply = {
            statusCode: u(code),
            // StringUtil::replaceAllEmptySpace: whitespace in details becomes "_".
            details: details.toString("latin1").replace(/[ \t\f\v\n\r]/g, "_"),
            body,
            headers: decodePairs(pairs).map(([k, v]) => [latin1(k), latin1(v)]),
            grpcStatus: grpcStatus | 0,
          };
          this.afterActions.push(() => {
            if (!ctx.localReply) ctx.localReply = reply;
          });
        }
        // WasmBase::stopNextIteration: the callback's return status no longer continues the stream.
        this.stopNextIteration = true;
        return WasmResult.Ok;
      },
      proxy_clear_route_cache: () => WasmResult.Ok,
      proxy_get_configuration: (ptrPtr: number, sizePtr: number) => {
        const ctx = this.ctx();
        const value =
          ctx.kind === "root" && ctx.pluginConfigurationVisible ? core.configuration : core.vmConfiguration;
        return mem.copyToPointerSize(value, ptrPtr, sizePtr) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
      },
      proxy_get_shared_data: (
        keyPtr: number,
        keySize: number,
        valuePtrPtr: number,
        valueSizePtr: number,
        casPtr: number,
      ) => {
        const key = readOr(keyPtr, keySize);
        if (!key) return WasmResult.InvalidMemoryAccess;
        const entry = core.sharedData.get(key);
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
        const key = readOr(keyPtr, keySize);
        const value = readOr(valuePtr, valueSize);
        if (!key || !value) return WasmResult.InvalidMemoryAccess;
        return core.sharedData.set(key, value, u(cas));
      },
      proxy_register_shared_queue: (namePtr: number, nameSize: number, tokenPtr: number) => {
        const name = readOr(namePtr, nameSize);
        if (!name) return WasmResult.InvalidMemoryAccess;
        const token = sharedQueues.register(core.vmId, name.toString("latin1"), this);
        return mem.writeU32(tokenPtr, token) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
      },
      proxy_resolve_shared_queue: (
        vmPtr: number,
        vmSize: number,
        namePtr: number,
        nameSize: number,
        tokenPtr: number,
      ) => {
        const vm = readOr(vmPtr, vmSize);
        const name = readOr(namePtr, nameSize);
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
        const data = readOr(dataPtr, dataSize);
        if (!data) return WasmResult.InvalidMemoryAccess;
        return sharedQueues.enqueue(u(token), data);
      },
      proxy_get_header_map_value: (
        type: number,
        keyPtr: number,
        keySize: number,
        valuePtrPtr: number,
        valueSizePtr: number,
      ) => {
        if (u(type) > MAP_TYPE_MAX) return WasmResult.BadArgument;
        const key = readOr(keyPtr, keySize);
        if (!key) return WasmResult.InvalidMemoryAccess;
        const ctx = this.ctx();
        const map = this.constMap(ctx, u(type));
        if (!map)
          return ctx.kind === "stream" && ctx.accessLogPhase ? WasmResult.NotFound : WasmResult.BadArgument;
        const value = map.get(key.toString("latin1"));
        if (value === undefined) return WasmResult.NotFound;
        return mem.copyToPointerSize(Buffer.from(value, "latin1"), valuePtrPtr, valueSizePtr)
          ? WasmResult.Ok
          : WasmResult.InvalidMemoryAccess;
      },
      proxy_add_header_map_value: (
        type: number,
        keyPtr: number,
        keySize: number,
        valuePtr: number,
        valueSize: number,
      ) => this.editMap(type, keyPtr, keySize, valuePtr, valueSize, (map, k, v) => map.add(k, v)),
      proxy_replace_header_map_value: (
        type: number,
        keyPtr: number,
        keySize: number,
        valuePtr: number,
        valueSize: number,
      ) => this.editMap(type, keyPtr, keySize, valuePtr, valueSize, (map, k, v) => map.replace(k, v)),
      proxy_remove_header_map_value: (type: number, keyPtr: number, keySize: number) => {
        if (u(type) > MAP_TYPE_MAX) return WasmResult.BadArgument;
        const key = readOr(keyPtr, keySize);
        if (!key) return WasmResult.InvalidMemoryAccess;
        const map = this.mutableMap(this.ctx(), u(type));
        if (!map) return WasmResult.BadArgument;
        map.remove(key.toString("latin1"));
        return WasmResult.Ok;
      },
      proxy_get_header_map_pairs: (type: number, ptrPtr: number, sizePtr: number) => {
        if (u(type) > MAP_TYPE_MAX) return WasmResult.BadArgument;
        const map = this.constMap(this.ctx(), u(type));
        const entries = map ? map.rawEntries() : [];
        const encoded =
          entries.length === 0
            ? Buffer.alloc(0)
            : encodePairs(
                entries.map(([k, v]) => [Buffer.from(k, "latin1"), Buffer.from(v, "latin1")] as const),
              );
        return mem.copyToPointerSize(encoded, ptrPtr, sizePtr)
          ? WasmResult.Ok
          : WasmResult.InvalidMemoryAccess;
      },
      proxy_set_header_map_pairs: (type: number, ptr: number, size: number) => {
        if (u(type) > MAP_TYPE_MAX) return WasmResult.BadArgument;
        const data = readOr(ptr, size);
        if (!data) return WasmResult.InvalidMemoryAccess;
        const map = this.mutableMap(this.ctx(), u(type));
        if (!map) return WasmResult.BadArgument;
        map.clear();
        for (const [k, v] of decodePairs(data)) map.add(k.toString("latin1"), v.toString("latin1"));
        return WasmResult.Ok;
      },
      proxy_get_header_map_size: (type: number, resultPtr: number) => {
        if (u(type) > MAP_TYPE_MAX) return WasmResult.BadArgument;
        const map = this.mutableMap(this.ctx(), u(type));
        if (!map) return WasmResult.BadArgument;
        return mem.writeU32(resultPtr, map.byteSize()) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
      },
      proxy_get_buffer_status: (type: number, lengthPtr: number, flagsPtr: number) => {
        if (u(type) > BUFFER_TYPE_MAX) return WasmResult.BadArgument;
        const buffer = this.buffer(this.ctx(), u(type));
        if (!buffer) return WasmResult.NotFound;
        if (!mem.writeU32(lengthPtr, buffer.data().length)) return WasmResult.InvalidMemoryAccess;
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
        const buffer = this.buffer(this.ctx(), u(type));
        if (!buffer) return WasmResult.NotFound;
        const data = buffer.data();
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
        const buffer = this.buffer(this.ctx(), u(type));
        if (!buffer) return WasmResult.NotFound;
        const data = readOr(dataPtr, dataSize);
        if (!data) return WasmResult.InvalidMemoryAccess;
        if (!buffer.copyFrom) return WasmResult.BadArgument;
        return buffer.copyFrom(u(start), u(length), data);
      },
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
        const root = this.rootOf(this.ctx());
        const upstream = readOr(upstreamPtr, upstreamSize);
        const body = readOr(bodyPtr, bodySize);
        const headerPairs = readOr(headersPtr, headersSize);
        const trailerPairs = readOr(trailersPtr, trailersSize);
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
        for (const [k, v] of decodePairs(headerPairs))
          headers.add(k.toString("latin1"), v.toString("latin1"));
        if (!headers.has(":path") || !headers.has(":method") || !headers.has(":authority")) {
          return WasmResult.BadArgument;
        }
        if (body.length > 0) headers.replace("content-length", String(body.length));
        const handler = core.clusters[clusterName];
        if (!handler) return WasmResult.InternalFailure;
        const token = this.startCallout(root, clusterName, handler, headers, body, u(timeoutMs));
        mem.writeU32(tokenPtr, token);
        return WasmResult.Ok;
      },
      proxy_grpc_call: () => WasmResult.Unimplemented,
      proxy_grpc_stream: () => WasmResult.Unimplemented,
      proxy_grpc_close: () => WasmResult.NotFound,
      proxy_grpc_cancel: () => WasmResult.NotFound,
      proxy_grpc_send: () => WasmResult.BadArgument,
      proxy_set_tick_period_milliseconds: (ms: number) => {
        const root = this.rootOf(this.ctx());
        if (root) root.tickPeriodMs = u(ms);
        return WasmResult.Ok;
      },
      proxy_get_current_time_nanoseconds: (ptr: number) =>
        mem.writeU64(ptr, msToNanos(core.clock.nowMs())) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess,
      proxy_define_metric: (type: number, namePtr: number, nameSize: number, idPtr: number) => {
        if (u(type) > METRIC_TYPE_MAX) return WasmResult.BadArgument;
        const name = readOr(namePtr, nameSize);
        if (!name) return WasmResult.InvalidMemoryAccess;
        // Envoy's metric ids carry the type in the low 2 bits (kMetricTypeMask) and step by 4.
        this.nextMetricId[u(type)] += 4;
        const id = this.nextMetricId[u(type)] >>> 0;
        const metricName = name.toString("utf8");
        this.metricIds.set(id, { type: u(type), name: metricName });
        core.stat(u(type), metricName);
        return mem.writeU32(idPtr, id) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
      },
      proxy_increment_metric: (id: number, offset: bigint) => {
        const type = u(id) & 3;
        if (type === MetricType.Histogram || type === 3) return WasmResult.BadArgument;
        const metric = this.metricIds.get(u(id));
        if (!metric) return WasmResult.NotFound;
        const stat = core.stat(metric.type, metric.name);
        if (type === MetricType.Counter) {
          if (offset <= 0n) return WasmResult.BadArgument;
          stat.value += Number(offset);
        } else {
          stat.value += Number(offset);
        }
        return WasmResult.Ok;
      },
      proxy_record_metric: (id: number, value: bigint) => {
        const metric = this.metricIds.get(u(id));
        if (!metric || metric.type !== (u(id) & 3)) return WasmResult.NotFound;
        const stat = core.stat(metric.type, metric.name);
        const v = Number(BigInt.asUintN(64, value));
        if (metric.type === MetricType.Counter) stat.value += v;
        else if (metric.type === MetricType.Gauge) stat.value = v;
        else stat.values.push(v);
        return WasmResult.Ok;
      },
      proxy_get_metric: (id: number, resultPtr: number) => {
        const type = u(id) & 3;
        if (type !== MetricType.Counter && type !== MetricType.Gauge) return WasmResult.BadArgument;
        const metric = this.metricIds.get(u(id));
        if (!metric) return WasmResult.NotFound;
        const stat = core.stat(metric.type, metric.name);
        return mem.writeU64(resultPtr, BigInt(Math.trunc(stat.value)))
          ? WasmResult.Ok
          : WasmResult.InvalidMemoryAccess;
      },
      proxy_set_effective_context: (id: number) => {
        if (!this.contexts.has(u(id))) return WasmResult.BadArgument;
        this.effectiveContextId = u(id);
        return WasmResult.Ok;
      },
      // WasmBase::done only knows root contexts that are shutting down; none are here.
      proxy_done: () => WasmResult.NotFound,
      proxy_call_foreign_function: (namePtr: number, nameSize: number, argsPtr: number, argsSize: number) => {
        const name = readOr(namePtr, nameSize);
        if (!name || !readOr(argsPtr, argsSize)) return WasmResult.InvalidMemoryAccess;
        // Envoy registers e.g. clear_route_cache as a foreign function; the rest are not emulated.
        if (name.toString("latin1") === "clear_route_cache") return WasmResult.Ok;
        return WasmResult.NotFound;
      },
      pthread_equal: (a: number, b: number) => (a === b ? 1 : 0),
      emscripten_notify_memory_growth: () => undefined,
    };
  }

  private editMap(
    type: number,
    keyPtr: number,
    keySize: number,
    valuePtr: number,
    valueSize: number,
    edit: (map: HeaderMap, key: string, value: string) => void,
  ): number {
    if (type >>> 0 > MAP_TYPE_MAX) return WasmResult.BadArgument;
    const key = this.memory.read(keyPtr, keySize);
    const value = this.memory.read(valuePtr, valueSize);
    if (!key || !value) return WasmResult.InvalidMemoryAccess;
    const map = this.mutableMap(this.ctx(), type >>> 0);
    if (!map) return WasmResult.BadArgument;
    edit(map, key.toString("latin1"), value.toString("latin1"));
    return WasmResult.Ok;
  }

  /** Context::continueStream: the continue is deferred; the held request maps are released now. */
  private continueStream(type: number): number {
    if (type > STREAM_TYPE_MAX) return WasmResult.BadArgument;
    const ctx = this.ctx();
    if (type === StreamType.Upstream) return WasmResult.Unimplemented;
    if (type === StreamType.Downstream) return WasmResult.Ok;
    if (ctx.kind === "stream") {
      if (type === StreamType.Request) this.afterActions.push(() => (ctx.continueRequestRequested = true));
      else this.afterActions.push(() => (ctx.continueResponseRequested = true));
      ctx.requestHeadersHeld = false;
      ctx.requestBodyChunk = undefined;
      ctx.requestTrailers = undefined;
    }
    return WasmResult.Ok;
  }
}
