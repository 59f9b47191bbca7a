// Cost of the filter's cluster operations, measured on the Node proxy-wasm host with the compiled
// release .wasm against the real KVM service (built in-process, on PostgreSQL: DATABASE_URL, or an
// embedded one). Requests run `--concurrency` at a time on one worker; the callout latency is the
// filter's own histogram (envoy_kvm.cluster.<op>.callout_ms), measured by the VM's clock.
//
//   DATABASE_URL=postgres://… node --import tsx bench/filter-cluster.ts [--requests 1000] [--concurrency 8]
//
// Prints a Markdown table; BENCHMARKS.md keeps the figures quoted in the docs.
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startPlugin, type Worker } from "../host/index.ts";
import { startService } from "../test/e2e/helpers.ts";

const { values } = parseArgs({
  options: { requests: { type: "string", default: "1000" }, concurrency: { type: "string", default: "8" } },
});
const REQUESTS = Number(values.requests);
const CONCURRENCY = Number(values.concurrency);

const root = fileURLToPath(new URL("../", import.meta.url));
const ROOT_ID = /ROOT_ID = "([^"]+)"/.exec(readFileSync(`${root}assembly/constants.ts`, "utf8"))![1];
const KEYS = 200;

const get = (extra: Record<string, unknown> = {}) => ({
  policy: "cluster",
  kvm_name: "bench",
  operation_type: "get",
  key_source_type: "header",
  key_source_name: "x-k",
  output_destination_type: "header",
  output_destination_name: "x-out",
  default_value: "none",
  ...extra,
});
const scenarios: { name: string; op: Record<string, unknown>; metric: string; warm?: boolean }[] = [
  { name: "cluster get (callout every request)", op: get(), metric: "get" },
  { name: "cluster get, cache_ttl 60, warm cache", op: get({ cache_ttl: 60 }), metric: "get", warm: true },
  {
    name: "cluster put (callout every request)",
    op: {
      policy: "cluster",
      kvm_name: "bench",
      operation_type: "put",
      key_source_type: "header",
      key_source_name: "x-k",
      value_source_type: "literal",
      value_source_name: "value",
    },
    metric: "put",
  },
];

function percentile(sorted: number[], p: number): string {
  if (sorted.length === 0) return "–";
  return String(sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]);
}

async function run(worker: Worker, requests: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  const lane = async () => {
    while (next < requests) {
      const i = next++;
      const res = await worker.http({ path: "/", headers: [["x-k", `k${i % KEYS}`]] }, () => ({
        status: 200,
      }));
      if (res.status !== 200) throw new Error(`status ${res.status}: ${res.body.toString()}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  return performance.now() - started;
}

const service = await startService();
try {
  for (let i = 0; i < KEYS; i++) {
    await service.app.app.inject({ method: "PUT", url: `/v1/kvms/bench/entries/k${i}`, payload: "value" });
  }
  console.log(`${REQUESTS} requests, ${CONCURRENCY} at a time, one worker, release build\n`);
  console.log("| scenario | requests/s | callouts | callout ms p50 | p99 |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const s of scenarios) {
    const plugin = await startPlugin({
      wasm: `${root}build/kvm_filter.wasm`,
      rootId: ROOT_ID,
      vmId: `bench-${s.name}`,
      // A generous timeout: the service shares this process (and a noisy machine) with the host.
      configuration: JSON.stringify({ kvm_service: { timeout_ms: 10000 }, operations: [s.op] }),
      allowOnHeadersStopIteration: true,
      clusters: { kvm_service: { address: service.address } },
    });
    const metric = `${ROOT_ID}.cluster.${s.metric}.callout_ms.bench`;
    if (s.warm) await run(plugin.worker(), KEYS);
    const warmed = plugin.getHistogramValues(metric)?.length ?? 0;
    const ms = await run(plugin.worker(), REQUESTS);
    const latencies = (plugin.getHistogramValues(metric)?.slice(warmed) ?? []).sort((a, b) => a - b);
    console.log(
      `| ${s.name} | ${Math.round((REQUESTS / ms) * 1000)} | ${latencies.length} | ${percentile(latencies, 50)} | ${percentile(latencies, 99)} |`,
    );
  }
} finally {
  await service.close();
}
