// Cost of the filter's local operations on the request path, measured on the Node proxy-wasm
// host with the compiled release .wasm. Every scenario is compared with a baseline measured in
// the same run: the same filter whose operations are on a route the request does not take, so
// the ratio isolates what the operations themselves cost (host overhead is in both).
//
//   node --import tsx bench/filter-local.ts [--requests 20000] [--rounds 5] [--only <part of a scenario name>]
//
// Prints a Markdown table; BENCHMARKS.md keeps the figures quoted in the docs.
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startPlugin, type Worker } from "../host/index.ts";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "20000" },
    rounds: { type: "string", default: "5" },
    // Only the scenarios whose name contains this (e.g. "get hit", to profile one under --cpu-prof).
    only: { type: "string", default: "" },
  },
});
const REQUESTS = Number(values.requests);
const ROUNDS = Number(values.rounds);

const root = fileURLToPath(new URL("../", import.meta.url));
const ROOT_ID = /ROOT_ID = "([^"]+)"/.exec(readFileSync(`${root}assembly/constants.ts`, "utf8"))![1];

type Req = Parameters<Worker["http"]>[0];
interface Scenario {
  name: string;
  /** Store a value under every key the requests use first, so gets hit. */
  seed?: boolean;
  ops: Record<string, unknown>[];
  request: (i: number) => Req;
}

const base = { policy: "local", kvm_name: "bench" };
const KEYS = 1000;
const scenarios: Scenario[] = [
  {
    name: "get hit → header",
    seed: true,
    ops: [
      {
        ...base,
        operation_type: "get",
        key_source_type: "header",
        key_source_name: "x-k",
        output_destination_type: "header",
        output_destination_name: "x-out",
      },
    ],
    request: (i) => ({ path: "/", headers: [["x-k", `k${i % KEYS}`]] }),
  },
  {
    name: "get miss + default_value",
    ops: [
      {
        ...base,
        operation_type: "get",
        key_source_type: "header",
        key_source_name: "x-k",
        output_destination_type: "header",
        output_destination_name: "x-out",
        default_value: "d",
      },
    ],
    request: (i) => ({ path: "/", headers: [["x-k", `absent${i % KEYS}`]] }),
  },
  {
    name: "put header value, ttl 60",
    ops: [
      {
        ...base,
        operation_type: "put",
        key_source_type: "header",
        key_source_name: "x-k",
        value_source_type: "header",
        value_source_name: "x-v",
        ttl: 60,
      },
    ],
    request: (i) => ({
      path: "/",
      headers: [
        ["x-k", `k${i % KEYS}`],
        ["x-v", "v".repeat(64)],
      ],
    }),
  },
  {
    name: "put JSON body field (1 KiB body)",
    ops: [
      {
        ...base,
        operation_type: "put",
        key_source_type: "body",
        key_source_name: "user.id",
        value_source_type: "body",
        value_source_name: "user.plan",
      },
    ],
    request: (i) => ({
      method: "POST",
      path: "/",
      headers: [["content-type", "application/json"]],
      body: JSON.stringify({ user: { id: `u${i % KEYS}`, plan: "gold" }, pad: "p".repeat(960) }),
    }),
  },
  {
    name: "composite key (3 fragments) get → query",
    seed: true,
    ops: [
      {
        ...base,
        operation_type: "get",
        key: [
          { source_type: "header", source_name: "x-tenant" },
          { source_type: "literal", source_name: "cfg" },
          { source_type: "query", source_name: "name" },
        ],
        output_destination_type: "query",
        output_destination_name: "v",
      },
    ],
    request: (i) => ({ path: `/items?name=k${i % KEYS}&page=2`, headers: [["x-tenant", "acme"]] }),
  },
  {
    name: "4 operations (put, get, get, delete)",
    ops: [
      {
        ...base,
        operation_type: "put",
        key_source_type: "header",
        key_source_name: "x-k",
        value_source_type: "literal",
        value_source_name: "v",
      },
      {
        ...base,
        operation_type: "get",
        key_source_type: "header",
        key_source_name: "x-k",
        output_destination_type: "header",
        output_destination_name: "x-a",
      },
      {
        ...base,
        operation_type: "get",
        key_source_type: "header",
        key_source_name: "x-k",
        output_destination_type: "response_header",
        output_destination_name: "x-b",
      },
      { ...base, operation_type: "delete", key_source_type: "header", key_source_name: "x-k" },
    ],
    request: (i) => ({ path: "/", headers: [["x-k", `k${i % KEYS}`]] }),
  },
];

const upstream = () => ({ status: 200 });

async function workerFor(ops: Record<string, unknown>[], vmId: string, route: string): Promise<Worker> {
  const plugin = await startPlugin({
    wasm: `${root}build/kvm_filter.wasm`,
    rootId: ROOT_ID,
    vmId,
    configuration: JSON.stringify({ routes: { [route]: ops } }),
    allowOnHeadersStopIteration: true,
  });
  return plugin.worker();
}

async function timeRequests(worker: Worker, request: (i: number) => Req, routeName: string): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < REQUESTS; i++) {
    const res = await worker.http({ ...request(i), routeName }, upstream);
    if (res.status !== 200) throw new Error(`status ${res.status}: ${res.body.toString()}`);
  }
  return Number(process.hrtime.bigint() - start) / 1000 / REQUESTS; // µs per request
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const rows: string[] = [];
for (const [n, s] of scenarios.entries()) {
  if (!s.name.includes(values.only)) continue;
  const worker = await workerFor(s.ops, `bench-${n}`, "kvm");
  if (s.seed) {
    // A put with the same key shape as the scenario's get, on the same vm_id (shared data).
    const { key_source_type, key_source_name, key } = s.ops[0];
    const put = {
      ...base,
      operation_type: "put",
      key_source_type,
      key_source_name,
      key,
      value_source_type: "literal",
      value_source_name: "value",
    };
    const seeder = await workerFor([put], `bench-${n}`, "kvm");
    for (let i = 0; i < KEYS; i++) await seeder.http({ ...s.request(i), routeName: "kvm" }, upstream);
  }
  const baselines: number[] = [];
  const runs: number[] = [];
  // Warm up both paths, then alternate baseline and scenario rounds so drift hits both alike.
  await timeRequests(worker, s.request, "other");
  await timeRequests(worker, s.request, "kvm");
  for (let r = 0; r < ROUNDS; r++) {
    baselines.push(await timeRequests(worker, s.request, "other"));
    runs.push(await timeRequests(worker, s.request, "kvm"));
  }
  const b = median(baselines);
  const m = median(runs);
  rows.push(
    `| ${s.name} | ${b.toFixed(1)} | ${m.toFixed(1)} | +${(m - b).toFixed(1)} | ${(m / b).toFixed(2)}× |`,
  );
}

console.log(`${REQUESTS} requests × ${ROUNDS} rounds per scenario, medians; node ${process.version}\n`);
console.log(
  "| scenario | baseline µs/req (no operation on the route) | with operations µs/req | added µs | ratio |",
);
console.log("| --- | ---: | ---: | ---: | ---: |");
for (const row of rows) console.log(row);
