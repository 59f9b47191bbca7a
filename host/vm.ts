// One VM instance (an Envoy worker's copy of the module): its contexts, the calls into the module
// and the stream callbacks. The host calls it imports live in imports/, one module per ABI area.
// Host-call semantics follow proxy-wasm-cpp-host src/exports.cc and src/context.cc and
// envoy source/extensions/common/wasm/context.cc; comments point at the subtle places.
import {
  FilterDataStatus,
  FilterHeadersStatus,
  FilterTrailersStatus,
  LogLevel,
  WasmResult,
  type AbiVersion,
} from "./abi.ts";
import type { CalloutOutcome, PendingCallout } from "./callouts.ts";
import { RootContext, StreamContext, VmContext, type AnyContext } from "./context.ts";
import type { PluginCore } from "./core.ts";
import { DIRECTIONS, type Direction } from "./direction.ts";
import type { HeaderMap } from "./header-map.ts";
import { bodyBuffer } from "./imports/buffers.ts";
import type { HostApi } from "./imports/host-api.ts";
import { HttpCalls } from "./imports/http-calls.ts";
import { buildImports } from "./imports/index.ts";
import { VmMemory } from "./memory.ts";

export class WasmTrap extends Error {}

export class Vm implements HostApi {
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
  private stopNext = false;
  readonly httpCalls = new HttpCalls((callout, outcome) => this.onHttpCallResponse(callout, outcome));

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
      () => new WebAssembly.Instance(this.module, buildImports(this, this.httpCalls, this.abi)),
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
    this.stopNext = false;
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
    const stopNext = this.stopNext;
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

  /** Context::decodeHeaders / encodeHeaders. */
  onHeaders(which: Direction, stream: StreamContext, headers: HeaderMap, endOfStream: boolean): number {
    const info = DIRECTIONS[which];
    const half = stream[which];
    half.headers = headers;
    if (info.skippedAfterFailureReply && stream.failureLocalReplySent) return FilterHeadersStatus.Continue;
    half.headersHeld = true;
    stream.endOfStream = endOfStream;
    const args =
      this.abi === "0_1_0" ? [stream.id, headers.size] : [stream.id, headers.size, endOfStream ? 1 : 0];
    const status = this.callFilter(stream, info.onHeaders, args, "headers");
    if (status === FilterHeadersStatus.Continue) half.headersHeld = false;
    return status;
  }

  /**
   * Context::decodeData / encodeData. `chunk` is the new data; when the previous call returned
   * StopIterationAndBuffer the filter manager has already appended it to the buffered body, and the
   * module sees (and may rewrite) the whole buffered body.
   */
  onBody(
    which: Direction,
    stream: StreamContext,
    chunk: Buffer,
    endOfStream: boolean,
  ): { status: number; chunk: Buffer } {
    const info = DIRECTIONS[which];
    const half = stream[which];
    if (info.skippedAfterFailureReply && stream.failureLocalReplySent) {
      return { status: FilterDataStatus.Continue, chunk: Buffer.from(chunk) };
    }
    if (half.bufferingBody) {
      half.buffered = Buffer.concat([half.buffered ?? Buffer.alloc(0), chunk]);
      half.bodyChunk = Buffer.alloc(0);
    } else {
      half.bodyChunk = Buffer.from(chunk);
    }
    stream.endOfStream = endOfStream;
    const size = bodyBuffer(half).data().length;
    const status = this.callFilter(stream, info.onBody, [stream.id, size, endOfStream ? 1 : 0], "data");
    // The data that moves on is what the module left in the chunk (it may have rewritten it).
    const chunkOut = half.bodyChunk ?? Buffer.alloc(0);
    half.bufferingBody = false;
    if (status === FilterDataStatus.Continue) half.bodyChunk = undefined;
    else if (status === FilterDataStatus.StopIterationAndBuffer) half.bufferingBody = true;
    return { status, chunk: chunkOut };
  }

  /**
   * Context::decodeTrailers / encodeTrailers. The module may edit the trailers (map 1 or 3) until it
   * continues. The body (buffer 0 or 1) it sees is the filter manager's buffered body if its last
   * body callback returned StopIterationAndBuffer (buffering_request_body_ stays set); otherwise
   * Envoy still points at the last data frame's buffer, which the codec drained after dispatching
   * it: empty, and anything written there reaches nobody.
   */
  onTrailers(which: Direction, stream: StreamContext, trailers: HeaderMap): number {
    const info = DIRECTIONS[which];
    const half = stream[which];
    if (info.skippedAfterFailureReply && stream.failureLocalReplySent) return FilterTrailersStatus.Continue;
    if (!half.bufferingBody && half.bodyChunk !== undefined) half.bodyChunk = Buffer.alloc(0);
    half.trailers = trailers;
    const status = this.callFilter(stream, info.onTrailers, [stream.id, trailers.size], "trailers");
    if (status === FilterTrailersStatus.Continue) half.trailers = undefined;
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

  /** Context::onHttpCallSuccess / onHttpCallFailure → proxy_on_http_call_response on the root context. */
  private onHttpCallResponse(callout: PendingCallout, outcome: CalloutOutcome): void {
    const root = this.contexts.get(callout.rootId);
    if (!root || root.kind !== "root" || this.failed) return;
    const token = callout.token;
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

  // ---------------------------------------------------------------- HostApi: what the host calls see

  ctx(): AnyContext {
    if (this.effectiveContextId !== 0) {
      const eff = this.contexts.get(this.effectiveContextId);
      if (eff) return eff;
    }
    return this.current;
  }

  rootOf(ctx: AnyContext): RootContext | undefined {
    if (ctx.kind === "root") return ctx;
    if (ctx.kind === "stream") {
      const r = this.contexts.get(ctx.rootId);
      return r && r.kind === "root" ? r : undefined;
    }
    return this.root;
  }

  setEffectiveContext(id: number): boolean {
    if (!this.contexts.has(id)) return false;
    this.effectiveContextId = id;
    return true;
  }

  log(level: number, message: string): void {
    this.core.log(this.name, level, message);
  }

  afterVmCall(action: () => void): void {
    this.afterActions.push(action);
  }

  stopNextIteration(): void {
    this.stopNext = true;
  }

  onQueueReady(token: number): void {
    if (this.root && !this.failed) this.callVoid(this.root, "proxy_on_queue_ready", this.root.id, token);
  }
}
