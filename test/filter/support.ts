// Runs the compiled release filter on the Node proxy-wasm host, the way the tests need it.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ManualClock, startPlugin, type Plugin, type PluginOptions, type Worker } from "../../host/index.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
export const FILTER_WASM = `${root}build/kvm_filter.wasm`;
export const FILTER_DEBUG_WASM = `${root}build/kvm_filter.debug.wasm`;

// The filter's one root id constant (assembly/constants.ts), read rather than repeated.
export const ROOT_ID = /ROOT_ID = "([^"]+)"/.exec(readFileSync(`${root}assembly/constants.ts`, "utf8"))![1];

let vmCounter = 0;

export interface KvmOptions extends Partial<PluginOptions> {
  clock?: ManualClock;
}

// Each plugin gets its own vm_id, so its shared data starts empty unless the test passes one.
export async function startKvm(config: unknown, options: KvmOptions = {}): Promise<Plugin> {
  return startPlugin({
    wasm: process.env.FILTER_BUILD === "debug" ? FILTER_DEBUG_WASM : FILTER_WASM,
    rootId: ROOT_ID,
    vmId: `test-vm-${process.pid}-${++vmCounter}`,
    configuration: typeof config === "string" ? config : JSON.stringify(config),
    allowOnHeadersStopIteration: true,
    clock: options.clock ?? new ManualClock(1_700_000_000_000),
    ...options,
  });
}

export type Pairs = [string, string][];

export function headerOf(headers: Pairs | undefined, name: string): string | undefined {
  return headers?.find(([k]) => k === name)?.[1];
}

export interface Sent {
  method?: string;
  path: string;
  headers?: Pairs;
  body?: string | Uint8Array;
  routeName?: string;
}

// One request through the filter to an upstream that answers 200 and records what it got.
export async function send(worker: Worker, req: Sent) {
  const headers: Pairs = [...(req.headers ?? [])];
  if (req.body !== undefined && !headers.some(([k]) => k === "content-length")) {
    headers.push(["content-length", String(Buffer.byteLength(req.body))]);
  }
  const res = await worker.http(
    {
      method: req.method ?? (req.body === undefined ? "GET" : "POST"),
      path: req.path,
      authority: "api.example.com",
      headers,
      body: req.body,
      routeName: req.routeName,
    },
    () => ({ status: 200, headers: [["x-upstream", "yes"]], body: "upstream" }),
  );
  return {
    ...res,
    json: () => JSON.parse(res.body.toString("utf8")),
    upstreamHeader: (name: string) => headerOf(res.upstreamRequest?.headers, name),
    upstreamBody: () => res.upstreamRequest?.body.toString("utf8"),
    responseHeader: (name: string) => headerOf(res.headers, name),
  };
}

// A put operation in the Kong shape with a literal key, for brevity.
export function op(fields: Record<string, unknown>): Record<string, unknown> {
  return { policy: "local", kvm_name: "settings", ...fields };
}
