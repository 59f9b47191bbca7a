// The filter's targets from issue 9, each against a baseline measured in the same run, on the Node
// proxy-wasm host with the release .wasm (BENCHMARKS.md, "Filter"):
//   - a local get with 1,000,000 entries in shared data against the same get with 1,000;
//   - a cluster get served from cache_ttl against a local get (same keys, values, destination);
//   - concurrent cluster-get misses on one key: callouts made;
//   - shared-data bytes per entry against the raw key + value bytes;
//   - the pass-through request (a route without operations): µs and debug log lines per request,
//     and with --before <wasm> the same request on another build of the filter, for a ratio.
//
//   node --import tsx bench/filter-targets.ts [--requests 5000] [--rounds 3] [--before /tmp/old.wasm]
//
// Prints one line per figure, "<name>: <value>", for bench/all.ts to pick up.
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  LogLevel,
  ManualClock,
  startPlugin,
  type Plugin,
  type PluginOptions,
  type Worker,
} from "../host/index.ts";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "5000" },
    rounds: { type: "string", default: "3" },
    before: { type: "string" },
  },
});
const REQUESTS = Number(values.requests);
const ROUNDS = Number(values.rounds);

const root = fileURLToPath(new URL("../", import.meta.url));
const RELEASE_WASM = `${root}build/kvm_filter.wasm`;
const ROOT_ID = /ROOT_ID = "([^"]+)"/.exec(readFileSync(`${root}assembly/constants.ts`, "utf8"))![1];
const VALUE = "v".repeat(64);
const SMALL = 1_000;
const LARGE = 1_000_000;

type Req = Parameters<Worker["http"]>[0];
const upstream = () => ({ status: 200 });
const keyRequest = (key: string): Req => ({ path: "/", headers: [["x-k", key]], routeName: "kvm" });

const getOp = (policy: string, extra: Record<string, unknown> = {}) => ({
  policy,
  kvm_name: "bench",
  operation_type: "get",
  key_source_type: "header",
  key_source_name: "x-k",
  output_destination_type: "header",
  output_destination_name: "x-out",
  ...extra,
});

let vms = 0;
async function start(
  ops: Record<string, unknown>[],
  options: { wasm?: string; clusters?: PluginOptions["clusters"] } = {},
) {
  return startPlugin({
    wasm: options.wasm ?? RELEASE_WASM,
    rootId: ROOT_ID,
    vmId: `bench-targets-${process.pid}-${++vms}`,
    configuration: JSON.stringify({ routes: { kvm: ops } }),
    allowOnHeadersStopIteration: true,
    clock: new ManualClock(1_700_000_000_000),
    clusters: options.clusters,
  });
}

// A local entry as assembly/entry.ts lays it out: [u8 format 1][u64 expiry, 0 = never][payload].
function localEntry(payload: string): Buffer {
  const out = Buffer.alloc(9 + Buffer.byteLength(payload));
  out[0] = 1;
  out.write(payload, 9);
  return out;
}

// Writes `count` entries k0…k<count-1> the way the filter's local put would.
function seed(plugin: Plugin, count: number): void {
  const value = localEntry(VALUE);
  for (let i = 0; i < count; i++) plugin.sharedData.set(`${ROOT_ID}:bench:k${i}`, value, 0);
}

async function timeRequests(worker: Worker, request: (i: number) => Req, check?: string): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < REQUESTS; i++) {
    const res = await worker.http(request(i), upstream);
    if (res.status !== 200) throw new Error(`status ${res.status}: ${res.body.toString()}`);
    if (check !== undefined && res.upstreamRequest?.headers.find(([k]) => k === "x-out")?.[1] !== check) {
      throw new Error("the get did not deliver the stored value");
    }
  }
  return Number(process.hrtime.bigint() - start) / 1000 / REQUESTS;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

// Alternates rounds of each measurement (after one warm-up round each) so drift hits all alike.
async function compare(runs: (() => Promise<number>)[]): Promise<number[]> {
  const samples = runs.map(() => [] as number[]);
  for (const run of runs) await run();
  for (let r = 0; r < ROUNDS; r++) {
    for (const [i, run] of runs.entries()) samples[i].push(await run());
  }
  return samples.map(median);
}

const figure = (name: string, value: string) => console.log(`${name}: ${value}`);
const us = (x: number) => `${x.toFixed(1)} µs`;

// 1. Local get, 1M entries against 1k. Keys drawn with a fixed stride so every request hits.
{
  const small = await start([getOp("local")]);
  const large = await start([getOp("local")]);
  seed(small, SMALL);
  seed(large, LARGE);
  const [a, b] = await compare([
    () => timeRequests(small.worker(), (i) => keyRequest(`k${(i * 7919) % SMALL}`), VALUE),
    () => timeRequests(large.worker(), (i) => keyRequest(`k${(i * 7919 * 1009) % LARGE}`), VALUE),
  ]);
  figure("local get, 1k entries", us(a));
  figure("local get, 1M entries", us(b));
  figure("ratio 1M/1k", `${(b / a).toFixed(2)}×`);
}

// 2. Cluster get from cache_ttl against a local get, same 1k keys and 64-byte values.
let cachePlugin: Plugin;
{
  const local = await start([getOp("local")]);
  seed(local, SMALL);
  let callouts = 0;
  const cached = await start([getOp("cluster", { cache_ttl: 3600 })], {
    clusters: {
      kvm_service: () => {
        callouts++;
        return {
          headers: [
            [":status", "200"],
            ["etag", '"1"'],
          ],
          body: VALUE,
        };
      },
    },
  });
  for (let i = 0; i < SMALL; i++) await cached.worker().http(keyRequest(`k${i}`), upstream);
  const warmCallouts = callouts;
  const request = (i: number) => keyRequest(`k${(i * 7919) % SMALL}`);
  const [a, b] = await compare([
    () => timeRequests(local.worker(), request, VALUE),
    () => timeRequests(cached.worker(), request, VALUE),
  ]);
  if (callouts !== warmCallouts) throw new Error("a warm cache_ttl get made a callout");
  figure("local get (same keys)", us(a));
  figure("cluster get from cache_ttl", us(b));
  figure("ratio cache_ttl/local", `${(b / a).toFixed(2)}×`);
  cachePlugin = cached;
}

// 3. Concurrent misses on one key: callouts made for 32 requests in flight at once.
{
  let callouts = 0;
  let release = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  const plugin = await start([getOp("cluster", { cache_ttl: 60 })], {
    clusters: {
      kvm_service: async () => {
        callouts++;
        await gate;
        return { headers: [[":status", "200"]], body: VALUE };
      },
    },
  });
  const w = plugin.worker();
  const inFlight = Array.from({ length: 32 }, () => w.http(keyRequest("hot"), upstream));
  await new Promise((r) => setImmediate(r));
  release();
  const answered = (await Promise.all(inFlight)).filter(
    (res) => res.upstreamRequest?.headers.find(([k]) => k === "x-out")?.[1] === VALUE,
  ).length;
  figure(
    "concurrent misses on one key",
    `32 requests, ${callouts} callout(s), ${answered} answered with the value`,
  );
}

// 4. Shared-data bytes per entry (key + value as stored) against the raw key + value bytes.
{
  const plugin = await start([
    {
      policy: "local",
      kvm_name: "bench",
      operation_type: "put",
      key_source_type: "header",
      key_source_name: "x-k",
      value_source_type: "literal",
      value_source_name: VALUE,
    },
  ]);
  for (let i = 0; i < SMALL; i++) await plugin.worker().http(keyRequest(`k${i}`), upstream);
  const bytes = (p: Plugin, prefix: string) => {
    let stored = 0;
    let entries = 0;
    for (const key of p.sharedData.keys()) {
      if (!key.toString("latin1").startsWith(prefix)) continue;
      stored += key.length + p.sharedData.get(key)!.value.length;
      entries++;
    }
    return { perEntry: stored / entries, entries };
  };
  let raw = 0;
  for (let i = 0; i < SMALL; i++) raw += `k${i}`.length + VALUE.length;
  raw /= SMALL;
  const local = bytes(plugin, `${ROOT_ID}:bench:`);
  const cache = bytes(cachePlugin, `${ROOT_ID}/cache:bench:`);
  figure("raw key + value bytes per entry", raw.toFixed(1));
  figure(
    "local entry bytes in shared data",
    `${local.perEntry.toFixed(1)} (${(local.perEntry / raw).toFixed(2)}×, ${local.entries} entries)`,
  );
  figure(
    "cluster cache entry bytes in shared data",
    `${cache.perEntry.toFixed(1)} (${(cache.perEntry / raw).toFixed(2)}×, ${cache.entries} entries)`,
  );
}

// 5. The pass-through request: the filter on a route without operations.
{
  const passThrough = (i: number): Req => ({ path: "/", headers: [["x-k", `k${i}`]], routeName: "other" });
  const debugLinesPerRequest = async (plugin: Plugin) => {
    const before = plugin.getLogs(LogLevel.Debug).length;
    for (let i = 0; i < 100; i++) await plugin.worker().http(passThrough(i), upstream);
    return (plugin.getLogs(LogLevel.Debug).length - before) / 100;
  };
  const current = await start([getOp("local")]);
  const wasms = [current];
  if (values.before !== undefined) wasms.push(await start([getOp("local")], { wasm: values.before }));
  const times = await compare(wasms.map((p) => () => timeRequests(p.worker(), passThrough)));
  figure("pass-through request", `${us(times[0])}, ${await debugLinesPerRequest(current)} debug log lines`);
  if (values.before !== undefined) {
    figure(
      "pass-through request, --before build",
      `${us(times[1])}, ${await debugLinesPerRequest(wasms[1])} debug log lines`,
    );
    figure("ratio pass-through now/before", `${(times[0] / times[1]).toFixed(2)}×`);
  }
}
