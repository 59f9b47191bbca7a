// startPlugin / Plugin / Worker: the public face of the host, shaped like proxy-wasm-go-sdk's
// proxytest (startPlugin, initializeHttpContext, callOnRequestHeaders, getSentLocalResponse, …)
// plus a high-level http() that runs one request the way Envoy's connection manager would.
//
// Start-up follows Envoy (proxy-wasm-cpp-host src/wasm.cc createWasm + WasmHandleBase::canary, and
// Envoy's per-worker getOrCreateThreadLocalPlugin): the configuration is first tried on a throwaway
// "canary" VM — if its on_vm_start/on_configure fails, the filter config is rejected and no worker
// starts — then every worker gets its own VM instance with its own root context.
import { readFile } from "node:fs/promises";
import {
  DEFAULT_BUFFER_LIMIT_BYTES,
  FilterDataStatus,
  FilterTrailersStatus,
  MetricType,
  type AbiVersion,
} from "./abi.ts";
import { systemClock, type Clock } from "./clock.ts";
import type { StreamContext } from "./context.ts";
import { HeaderMap, fromLatin1, toLatin1 } from "./header-map.ts";
import {
  WASI_FUNCTIONS,
  WASI_MODULES,
  WasmParseError,
  capMemoryPages,
  checkLink,
  envFunctions,
  parseModule,
} from "./link.ts";
import { SharedData, sharedDataFor } from "./shared-data.ts";
import {
  HttpDriver,
  buildRequest,
  codecRejects,
  type HttpRequest,
  type HttpResult,
  type Upstream,
} from "./stream.ts";
import type { ClusterAnswer } from "./callouts.ts";
import { Vm, WasmTrap, type ClusterHandler, type Instrumentation, type PluginCore } from "./vm.ts";

export interface PluginOptions {
  /** Path of a .wasm file, its bytes, or a compiled module (then import signatures are not checked). */
  wasm: string | Uint8Array | WebAssembly.Module;
  rootId: string;
  vmId?: string;
  pluginName?: string;
  /** Plugin configuration (buffer type 7). */
  configuration?: string | Uint8Array;
  /** VM configuration (buffer type 6). */
  vmConfiguration?: string | Uint8Array;
  /** Number of worker VMs (Envoy --concurrency); default 1. */
  workers?: number;
  /** Envoy ≥ 1.35 PluginConfig.allow_on_headers_stop_iteration; default false. */
  allowOnHeadersStopIteration?: boolean;
  /** failure_policy FAIL_OPEN; default FAIL_CLOSED. */
  failOpen?: boolean;
  clock?: Clock;
  sharedData?: SharedData;
  /** Listener per_connection_buffer_limit_bytes; default 1 MiB. */
  bufferLimitBytes?: number;
  /** Clusters for proxy_http_call; null = the cluster exists but has no healthy upstream. */
  clusters?: Record<string, ClusterHandler | null>;
  /** vm_config.environment_variables, visible through WASI environ_get. */
  environment?: Record<string, string>;
  /** HTTP connection manager max_request_headers_kb (default 60) and common_http_protocol_options.max_headers_count (default 100): bigger requests get 431 from the codec. */
  maxRequestHeadersKb?: number;
  maxHeadersCount?: number;
  /** Run start + configure on a throwaway canary VM first, as Envoy does; default true. */
  canary?: boolean;
  /**
   * NOT an Envoy behaviour, for instrumented test builds only: extra import modules (e.g.
   * AssemblyScript's `rtrace`, to count live allocations in a leak test). Imports from `modules`
   * are exempt from the link check (everything else is checked as Envoy would); `imports` is
   * called once per VM with an accessor of that VM's memory (set before _start runs).
   */
  instrumentation?: Instrumentation;
  logSink?: (level: number, message: string) => void;
}

export class PluginStartError extends Error {
  constructor(
    message: string,
    readonly logs: string[],
  ) {
    super(logs.length > 0 ? `${message}\n${logs.map((l) => `  ${l}`).join("\n")}` : message);
    this.name = "PluginStartError";
  }
}

export interface LogEntry {
  vm: string;
  level: number;
  message: string;
}

function bytesOf(v: string | Uint8Array | undefined): Buffer {
  if (v === undefined) return Buffer.alloc(0);
  return typeof v === "string" ? Buffer.from(v, "utf8") : Buffer.from(v);
}

class Core implements PluginCore {
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
  readonly maxRequestHeadersKb: number;
  readonly maxHeadersCount: number;
  readonly instrumentation: Instrumentation | undefined;
  readonly logs: LogEntry[] = [];
  readonly stats = new Map<string, { type: number; name: string; value: number; values: number[] }>();
  private connectionId = 0;

  constructor(private readonly opts: PluginOptions) {
    this.rootId = opts.rootId;
    this.vmId = opts.vmId ?? "";
    this.pluginName = opts.pluginName ?? "";
    this.configuration = bytesOf(opts.configuration);
    this.vmConfiguration = bytesOf(opts.vmConfiguration);
    this.allowOnHeadersStopIteration = opts.allowOnHeadersStopIteration ?? false;
    this.failOpen = opts.failOpen ?? false;
    this.bufferLimitBytes = opts.bufferLimitBytes ?? DEFAULT_BUFFER_LIMIT_BYTES;
    this.clusters = opts.clusters ?? {};
    this.environment = opts.environment ?? {};
    this.sharedData = opts.sharedData ?? sharedDataFor(this.vmId);
    this.instrumentation = opts.instrumentation;
    this.clock = opts.clock ?? systemClock;
    this.maxRequestHeadersKb = opts.maxRequestHeadersKb ?? 60;
    this.maxHeadersCount = opts.maxHeadersCount ?? 100;
  }

  log(vm: string, level: number, message: string): void {
    this.logs.push({ vm, level, message });
    this.opts.logSink?.(level, message);
  }

  stat(type: number, name: string): { value: number; values: number[] } {
    const key = `${type}:${name}`;
    let s = this.stats.get(key);
    if (!s) {
      s = { type, name, value: 0, values: [] };
      this.stats.set(key, s);
    }
    return s;
  }

  nextConnectionId(): number {
    return ++this.connectionId;
  }
}

export class Plugin {
  readonly workers: Worker[] = [];

  constructor(private readonly core: Core) {}

  get sharedData(): SharedData {
    return this.core.sharedData;
  }

  get clock(): Clock {
    return this.core.clock;
  }

  worker(i = 0): Worker {
    const w = this.workers[i];
    if (!w) throw new RangeError(`no worker ${i} (the plugin has ${this.workers.length})`);
    return w;
  }

  /** `worker(0).http(…)`: one request on the first worker. */
  http(req: HttpRequest, upstream: Upstream): Promise<HttpResult> {
    return this.worker(0).http(req, upstream);
  }

  /** Log messages of every VM (canary first, then workers), in order; with a level, only that level. */
  getLogs(level?: number): string[] {
    return this.core.logs.filter((l) => level === undefined || l.level === level).map((l) => l.message);
  }

  getLogEntries(): LogEntry[] {
    return this.core.logs.map((l) => ({ ...l }));
  }

  getCounterMetric(name: string): number | undefined {
    return this.core.stats.get(`${MetricType.Counter}:${name}`)?.value;
  }

  getGaugeMetric(name: string): number | undefined {
    return this.core.stats.get(`${MetricType.Gauge}:${name}`)?.value;
  }

  getHistogramValues(name: string): number[] | undefined {
    return this.core.stats.get(`${MetricType.Histogram}:${name}`)?.values.slice();
  }

  /** Every defined metric, as Envoy's /stats would list them. */
  getMetrics(): { type: "counter" | "gauge" | "histogram"; name: string; value: number }[] {
    const names = ["counter", "gauge", "histogram"] as const;
    return [...this.core.stats.values()].map((s) => ({ type: names[s.type], name: s.name, value: s.value }));
  }
}

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
    return this.vm.onRequestHeaders(this.stream(id), HeaderMap.fromPairs(headers, "request"), endOfStream);
  }

  callOnRequestBody(id: number, body: Uint8Array, endOfStream: boolean): number {
    const s = this.stream(id);
    const r = this.vm.onRequestBody(s, Buffer.from(body), endOfStream);
    this.afterLowLevelData(s, r.status, r.chunk, "request");
    return r.status;
  }

  callOnResponseHeaders(id: number, headers: [string, string][], endOfStream: boolean): number {
    return this.vm.onResponseHeaders(this.stream(id), HeaderMap.fromPairs(headers), endOfStream);
  }

  callOnResponseBody(id: number, body: Uint8Array, endOfStream: boolean): number {
    const s = this.stream(id);
    const r = this.vm.onResponseBody(s, Buffer.from(body), endOfStream);
    this.afterLowLevelData(s, r.status, r.chunk, "response");
    return r.status;
  }

  /**
   * proxy_on_request_trailers; returns the FilterTrailersStatus (anything above StopIteration, or a
   * local reply sent from the callback, is StopIteration). Map 1 is the trailers during the call and,
   * after a stop, until proxy_continue_stream; a Continue releases the buffered body.
   */
  callOnRequestTrailers(id: number, trailers: [string, string][]): number {
    const s = this.stream(id);
    const map = HeaderMap.fromPairs(trailers);
    this.trailersOf(id).request = map;
    const status = this.vm.onRequestTrailers(s, map);
    if (status === FilterTrailersStatus.Continue && s.requestBuffered !== undefined) {
      s.lastRequestBody = s.requestBuffered;
      s.requestBuffered = undefined;
      s.requestBodyChunk = undefined;
    }
    return status;
  }

  callOnResponseTrailers(id: number, trailers: [string, string][]): number {
    const s = this.stream(id);
    const map = HeaderMap.fromPairs(trailers);
    this.trailersOf(id).response = map;
    const status = this.vm.onResponseTrailers(s, map);
    if (status === FilterTrailersStatus.Continue && s.responseBuffered !== undefined) {
      s.lastResponseBody = s.responseBuffered;
      s.responseBuffered = undefined;
      s.responseBodyChunk = undefined;
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
  private afterLowLevelData(
    s: StreamContext,
    status: number,
    chunk: Buffer,
    which: "request" | "response",
  ): void {
    const buffered = which === "request" ? s.requestBuffered : s.responseBuffered;
    if (status === FilterDataStatus.Continue) {
      const out = Buffer.concat([buffered ?? Buffer.alloc(0), chunk]);
      if (which === "request") {
        s.lastRequestBody = out;
        s.requestBuffered = undefined;
      } else {
        s.lastResponseBody = out;
        s.responseBuffered = undefined;
      }
    } else if (
      status === FilterDataStatus.StopIterationAndBuffer ||
      status === FilterDataStatus.StopIterationAndWatermark
    ) {
      const next = Buffer.concat([buffered ?? Buffer.alloc(0), chunk]);
      if (which === "request") s.requestBuffered = next;
      else s.responseBuffered = next;
      if (
        status === FilterDataStatus.StopIterationAndBuffer &&
        next.length > this.core.bufferLimitBytes &&
        !s.localReply
      ) {
        s.localReply =
          which === "request"
            ? {
                statusCode: 413,
                details: "request_payload_too_large",
                body: Buffer.from("Payload Too Large"),
                headers: [],
                grpcStatus: -1,
              }
            : {
                statusCode: 500,
                details: "response_payload_too_large",
                body: Buffer.from("Internal Server Error"),
                headers: [],
                grpcStatus: -1,
              };
      }
    }
  }

  /** Stream end: proxy_on_log, proxy_on_done, proxy_on_delete (Envoy logs before destroying filters). */
  completeHttpContext(id: number): void {
    this.vm.completeStream(this.stream(id));
  }

  getCurrentRequestHeaders(id: number): [string, string][] {
    return this.stream(id).requestHeaders.toPairs();
  }

  getCurrentRequestBody(id: number): Buffer {
    const s = this.stream(id);
    return Buffer.from(s.requestBuffered ?? s.requestBodyChunk ?? s.lastRequestBody ?? Buffer.alloc(0));
  }

  /**
   * The trailers given to callOnRequestTrailers with the module's edits, or those the module added
   * from the end_of_stream body callback; [] when there are none.
   */
  getCurrentRequestTrailers(id: number): [string, string][] {
    const s = this.stream(id);
    return (this.trailers.get(id)?.request ?? s.requestTrailers)?.toPairs() ?? [];
  }

  getCurrentResponseTrailers(id: number): [string, string][] {
    const s = this.stream(id);
    return (this.trailers.get(id)?.response ?? s.responseTrailers)?.toPairs() ?? [];
  }

  getCurrentResponseHeaders(id: number): [string, string][] {
    return this.stream(id).responseHeaders?.toPairs() ?? [];
  }

  getCurrentResponseBody(id: number): Buffer {
    const s = this.stream(id);
    return Buffer.from(s.responseBuffered ?? s.responseBodyChunk ?? s.lastResponseBody ?? Buffer.alloc(0));
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
      continueRequest: s.continueRequestRequested,
      continueResponse: s.continueResponseRequested,
      reset: s.resetRequested,
    };
  }

  /** Tokens of http callouts whose answer has not been delivered yet. */
  pendingCallouts(): number[] {
    return [...this.vm.pendingCallouts.keys()];
  }

  /** What each pending callout sent (proxytest's GetCalloutAttributes). */
  getCalloutAttributes(): {
    token: number;
    cluster: string;
    headers: [string, string][];
    body: Buffer;
    timeoutMs: number;
  }[] {
    return [...this.vm.pendingCallouts.values()].map((p) => ({
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
    if (!this.vm.answerCallout(token, answer)) throw new Error(`no pending http callout ${token}`);
  }

  /** Waits for every pending callout and delivers each answer to proxy_on_http_call_response. */
  async flushCallouts(): Promise<void> {
    for (;;) {
      const next = this.vm.nextSettledCallout();
      if (!next) return;
      this.vm.dispatchCallout(await next);
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

async function loadModule(
  wasm: PluginOptions["wasm"],
  instrumented: string[],
): Promise<{ module: WebAssembly.Module; abi: AbiVersion }> {
  if (wasm instanceof WebAssembly.Module) {
    const exports = WebAssembly.Module.exports(wasm).map((e) => e.name);
    const abi: AbiVersion | undefined = exports.includes("proxy_abi_version_0_2_1")
      ? "0_2_1"
      : exports.includes("proxy_abi_version_0_2_0")
        ? "0_2_0"
        : exports.includes("proxy_abi_version_0_1_0")
          ? "0_1_0"
          : undefined;
    if (!abi) throw new PluginStartError("Missing or unknown Proxy-Wasm ABI version", []);
    // Node does not expose import signatures of a compiled module: check the names only.
    const env = envFunctions(abi);
    for (const imp of WebAssembly.Module.imports(wasm)) {
      const known =
        imp.kind === "memory" ||
        instrumented.includes(imp.module) ||
        (imp.kind === "function" &&
          (imp.module === "env"
            ? imp.name in env
            : (WASI_MODULES as readonly string[]).includes(imp.module) && imp.name in WASI_FUNCTIONS));
      if (!known) {
        throw new PluginStartError(
          `Failed to load Wasm module due to a missing import: ${imp.module}.${imp.name}`,
          [],
        );
      }
    }
    return { module: wasm, abi };
  }
  const bytes = typeof wasm === "string" ? await readFile(wasm) : Buffer.from(wasm);
  let parsed;
  try {
    parsed = parseModule(bytes);
  } catch (err) {
    if (err instanceof WasmParseError)
      throw new PluginStartError(`Failed to parse corrupted Wasm module: ${err.message}`, []);
    throw err;
  }
  const link = checkLink(parsed, instrumented);
  if (link.error || !link.abi) throw new PluginStartError(link.error ?? "link failed", []);
  let module: WebAssembly.Module;
  try {
    module = await WebAssembly.compile(capMemoryPages(bytes));
  } catch (err) {
    throw new PluginStartError(`Failed to load Wasm bytecode: ${(err as Error).message}`, []);
  }
  return { module, abi: link.abi };
}

function startVm(core: Core, module: WebAssembly.Module, abi: AbiVersion, name: string): Vm {
  const vm = new Vm(core, module, abi, name);
  const logsBefore = core.logs.length;
  const logs = () => core.logs.slice(logsBefore).map((l) => l.message);
  try {
    vm.instantiate();
  } catch (err) {
    if (
      err instanceof WasmTrap ||
      err instanceof WebAssembly.RuntimeError ||
      err instanceof WebAssembly.LinkError
    ) {
      throw new PluginStartError(`Failed to initialize Wasm code on ${name}: ${err.message}`, logs());
    }
    throw err;
  }
  const started = vm.startRoot();
  if (!started.ok) throw new PluginStartError(`${started.reason ?? "start failed"} (${name})`, logs());
  return vm;
}

/**
 * Loads the module, checks it links like Envoy would, runs the canary configuration, then starts
 * `workers` VM instances. Rejects with PluginStartError (message + that VM's logs) when Envoy would
 * refuse the filter configuration.
 */
export async function startPlugin(opts: PluginOptions): Promise<Plugin> {
  const core = new Core(opts);
  const { module, abi } = await loadModule(opts.wasm, core.instrumentation?.modules ?? []);
  if (opts.canary ?? true) startVm(core, module, abi, "canary");
  const plugin = new Plugin(core);
  const count = opts.workers ?? 1;
  for (let i = 0; i < count; i++)
    plugin.workers.push(new Worker(startVm(core, module, abi, `worker${i}`), core));
  return plugin;
}
