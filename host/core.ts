// What every VM of a plugin shares (configuration, stats, logs, shared data, clock): the options
// startPlugin takes and the core built from them. The VMs and host calls see it as PluginCore;
// nothing here imports a VM.
import { DEFAULT_BUFFER_LIMIT_BYTES } from "./abi.ts";
import type { ClusterHandler } from "./callouts.ts";
import { systemClock, type Clock } from "./clock.ts";
import { SharedData, sharedDataFor } from "./shared-data.ts";
import { endpointHandler, type ClusterEndpoint } from "./upstream.ts";

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
  /**
   * Clusters for proxy_http_call by name: a handler (the test answers each callout), an endpoint
   * `{ address: "host:port" }` (a real HTTP upstream, see upstream.ts), or null (the cluster
   * exists but has no healthy upstream).
   */
  clusters?: Record<string, ClusterHandler | ClusterEndpoint | null>;
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

/** Test-only extra imports (PluginOptions.instrumentation); not an Envoy behaviour. */
export interface Instrumentation {
  modules: string[];
  imports(memory: () => WebAssembly.Memory | undefined): WebAssembly.Imports;
}

/** What every VM of a plugin shares: configuration, stats, logs, shared data, clock. */
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

export interface LogEntry {
  vm: string;
  level: number;
  message: string;
}

export function bytesOf(v: string | Uint8Array | undefined): Buffer {
  if (v === undefined) return Buffer.alloc(0);
  return typeof v === "string" ? Buffer.from(v, "utf8") : Buffer.from(v);
}

export class Core implements PluginCore {
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
    this.clusters = {};
    for (const [name, cluster] of Object.entries(opts.clusters ?? {})) {
      this.clusters[name] =
        cluster === null || typeof cluster === "function" ? cluster : endpointHandler(cluster);
    }
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
