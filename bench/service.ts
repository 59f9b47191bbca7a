// The KVM service against raw PostgreSQL, measured in the same run on the same database server (the machine is
// shared and noisy: read the ratios). For each scenario:
//   raw      — bench/lib/pg-load.ts, its own process: node-postgres pool of `connections`, prepared statements,
//              the statement the service runs (same columns), the same keys;
//   service  — `envoy-kvm service` as its own process (pool of `connections`), loaded over HTTP by
//              bench/lib/http-load.ts (autocannon) from a third process, `connections` keep-alive connections.
// Each load runs `warmup` seconds unmeasured first (PostgreSQL buffers, the service's cache, V8's JIT).
//
//   node --import tsx bench/service.ts [--seconds 10] [--warmup 3] [--connections 32]
//     [--scenarios get-zipf,get-uniform,put] [--profile <dir>] [--service-only] [--env K=V,…]
//
// --profile writes the service's V8 CPU profile(s) (node --cpu-prof) into <dir>; bench/profile-summary.ts reads them.
import { spawn, execFile } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import pg from "pg";
import { createTestDatabase } from "../test/service/helpers.ts";
import { migrateUp } from "../service/migrate.ts";
import { BENCH_KVM, VALUE_BYTES } from "./lib/keys.ts";

const { values: opts } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    warmup: { type: "string", default: "5" },
    connections: { type: "string", default: "32" },
    scenarios: { type: "string", default: "get-zipf,get-uniform,put" },
    profile: { type: "string" },
    "service-only": { type: "boolean", default: false },
    env: { type: "string", default: "" },
  },
});
const SECONDS = Number(opts.seconds);
const WARMUP = Number(opts.warmup);
const CONNECTIONS = Number(opts.connections);
const root = fileURLToPath(new URL("../", import.meta.url));
const run = promisify(execFile);

interface Figures {
  rate: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx?: number;
}

async function child(script: string, args: (string | number)[]): Promise<Figures> {
  const { stdout } = await run(process.execPath, ["--import", "tsx", script, ...args.map(String)], {
    cwd: root,
    maxBuffer: 1 << 20,
  });
  const lines = stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as Figures;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Seeds `n` entries k0…k(n-1) of VALUE_BYTES bytes with one INSERT … SELECT (triggers skipped: no cache yet). */
async function seed(url: string, n: number): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query("SET session_replication_role = replica");
    await client.query(
      `INSERT INTO kvm_data (kvm_name, key, value)
       SELECT $1, convert_to('k' || i, 'UTF8'), decode(repeat('76', $2::int), 'hex')
       FROM generate_series(0, $3::int - 1) AS i`,
      [BENCH_KVM, VALUE_BYTES, n],
    );
    await client.query("VACUUM ANALYZE kvm_data");
  } finally {
    await client.end();
  }
}

interface Service {
  base: string;
  /** The read cache's hit share of GETs since start, from /metrics. */
  cacheHits(): Promise<string>;
  stop(): Promise<void>;
}

const extraEnv = Object.fromEntries(
  opts.env
    .split(",")
    .filter((kv) => kv.includes("="))
    .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
);

async function startService(databaseUrl: string): Promise<Service> {
  const port = await freePort();
  const execArgv = opts.profile === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${opts.profile}`];
  const proc = spawn(process.execPath, [...execArgv, "bin/envoy-kvm.js", "service"], {
    cwd: root,
    // Logs go to /dev/null: written in full by pino, read by nobody.
    stdio: ["ignore", "ignore", "inherit"],
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      KVM_INSECURE: "1",
      HOST: "127.0.0.1",
      PORT: String(port),
      KVM_PG_POOL_MAX: String(CONNECTIONS),
      ...extraEnv,
    },
  });
  const exited = new Promise<void>((resolve) => proc.on("exit", () => resolve()));
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      const res = await fetch(`${base}/readyz`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (i > 300) throw new Error("the service did not become ready in 30 s");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    base,
    cacheHits: async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      const count = (event: string) =>
        Number(new RegExp(`kvm_cache_events_total\\{event="${event}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
      const [hit, miss, bypass] = [count("hit"), count("miss"), count("bypass")];
      const all = hit + miss + bypass;
      return all === 0 ? "no cache reads" : `cache hits ${((100 * hit) / all).toFixed(1)}% of ${all} reads`;
    },
    stop: async () => {
      proc.kill("SIGINT");
      await exited;
    },
  };
}

interface Scenario {
  name: string;
  entries: number;
  zipf: number;
  http: "GET" | "PUT";
  raw: "get" | "upsert";
  target: number;
  p99Target: number | null;
}

const SCENARIOS: Record<string, Scenario> = {
  "get-zipf": {
    name: "GET, Zipf s=1, 100k entries",
    entries: 100_000,
    zipf: 1,
    http: "GET",
    raw: "get",
    target: 1.0,
    p99Target: 5,
  },
  "get-uniform": {
    name: "GET, uniform, 1M entries",
    entries: 1_000_000,
    zipf: 0,
    http: "GET",
    raw: "get",
    target: 0.5,
    p99Target: null,
  },
  put: {
    name: "PUT, Zipf s=1, 100k entries",
    entries: 100_000,
    zipf: 1,
    http: "PUT",
    raw: "upsert",
    target: 0.8,
    p99Target: null,
  },
};

const fmt = (f: Figures) =>
  `${f.rate.toFixed(0).padStart(6)}/s  p50 ${f.p50.toFixed(2)} ms  p99 ${f.p99.toFixed(2)} ms` +
  (f.errors + (f.non2xx ?? 0) > 0 ? `  errors ${f.errors + (f.non2xx ?? 0)}` : "");

const db = await createTestDatabase();
const seeded = new Map<number, string>();
const lines: string[] = [];
try {
  console.log(
    `${SECONDS} s per load after ${WARMUP} s warm-up, ${CONNECTIONS} connections; node ${process.version}; ` +
      "shared machine: read the ratios",
  );
  for (const id of opts.scenarios.split(",")) {
    const sc = SCENARIOS[id];
    if (sc === undefined) throw new Error(`unknown scenario ${id}`);
    let url = seeded.get(sc.entries);
    if (url === undefined || sc.http === "PUT") {
      // PUTs change the data: they get a database of their own.
      url = seeded.size === 0 ? db.url : await db.createSibling();
      await migrateUp(url);
      await seed(url, sc.entries);
      if (sc.http === "GET") seeded.set(sc.entries, url);
    }
    const load = [sc.entries, sc.zipf];
    let raw: Figures | null = null;
    let rawNoTrigger: Figures | null = null;
    if (!opts["service-only"]) {
      if (WARMUP > 0) await child("bench/lib/pg-load.ts", [url, sc.raw, ...load, WARMUP, CONNECTIONS]);
      raw = await child("bench/lib/pg-load.ts", [url, sc.raw, ...load, SECONDS, CONNECTIONS]);
      console.log(`${sc.name}\n  raw PostgreSQL ${sc.raw.padEnd(18)} ${fmt(raw)}`);
      if (sc.raw === "upsert") {
        rawNoTrigger = await child("bench/lib/pg-load.ts", [
          url,
          "upsert-no-trigger",
          ...load,
          SECONDS,
          CONNECTIONS,
        ]);
        console.log(`  raw PostgreSQL upsert, no trigger ${fmt(rawNoTrigger)}`);
      }
    }
    const service = await startService(url);
    let http: Figures;
    let hits = "";
    try {
      if (WARMUP > 0) {
        await child("bench/lib/http-load.ts", [service.base, sc.http, ...load, WARMUP, CONNECTIONS]);
      }
      http = await child("bench/lib/http-load.ts", [service.base, sc.http, ...load, SECONDS, CONNECTIONS]);
      if (sc.http === "GET") hits = `  (${await service.cacheHits()}, warm-up included)`;
    } finally {
      await service.stop();
    }
    console.log(`  service ${sc.http.padEnd(25)} ${fmt(http)}${hits}`);
    if (raw !== null) {
      const ratio = http.rate / raw.rate;
      const p99ok = sc.p99Target === null || http.p99 <= sc.p99Target;
      const met = ratio >= sc.target && p99ok;
      const line =
        `${sc.name}: ${ratio.toFixed(2)}× raw (target ≥ ${sc.target.toFixed(1)}×)` +
        (sc.p99Target === null ? "" : `, p99 ${http.p99.toFixed(1)} ms (target ≤ ${sc.p99Target} ms)`) +
        (rawNoTrigger === null
          ? ""
          : `; ${(http.rate / rawNoTrigger.rate).toFixed(2)}× raw without the trigger`) +
        `  ${met ? "MET" : "MISSED"}`;
      console.log(`  ${line}`);
      lines.push(line);
    }
  }
  if (lines.length > 0) console.log(`\nSummary\n${lines.map((l) => `  ${l}`).join("\n")}`);
} finally {
  await db.drop();
}
