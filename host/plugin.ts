// startPlugin / Plugin / Worker: the public face of the host, shaped like proxy-wasm-go-sdk's
// proxytest (startPlugin, initializeHttpContext, callOnRequestHeaders, getSentLocalResponse, …)
// plus a high-level http() that runs one request the way Envoy's connection manager would.
//
// Start-up follows Envoy (proxy-wasm-cpp-host src/wasm.cc createWasm + WasmHandleBase::canary, and
// Envoy's per-worker getOrCreateThreadLocalPlugin): the configuration is first tried on a throwaway
// "canary" VM — if its on_vm_start/on_configure fails, the filter config is rejected and no worker
// starts — then every worker gets its own VM instance with its own root context.
import { readFile } from "node:fs/promises";
import { MetricType, type AbiVersion } from "./abi.ts";
import type { Clock } from "./clock.ts";
import { Core, type LogEntry, type PluginOptions } from "./core.ts";
import type { HttpRequest, HttpResult, Upstream } from "./http-message.ts";
import {
  WASI_FUNCTIONS,
  WASI_MODULES,
  WasmParseError,
  capMemoryPages,
  checkLink,
  envFunctions,
  parseModule,
} from "./link.ts";
import type { SharedData } from "./shared-data.ts";
import { Vm, WasmTrap } from "./vm.ts";
import { Worker } from "./worker.ts";

export type { LogEntry, PluginOptions } from "./core.ts";

export class PluginStartError extends Error {
  constructor(
    message: string,
    readonly logs: string[],
  ) {
    super(logs.length > 0 ? `${message}\n${logs.map((l) => `  ${l}`).join("\n")}` : message);
    this.name = "PluginStartError";
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
