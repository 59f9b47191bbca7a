// The KVM service against raw PostgreSQL, measured in the same run on the same database server (the machine is
// shared and noisy: read the ratios). For each scenario:
//   raw      — bench/lib/pg-load.ts, its own process: node-postgres pool of `connections`, prepared statements,
//              the statement the service runs (same columns), the same keys;
//   service  — `envoy-kvm service` as its own process (pool of `connections`), loaded over HTTP by
//              bench/lib/http-load.ts (autocannon) from a third process, `connections` keep-alive connections;
//   floor    — (GET scenarios with a latency target) bench/lib/floor-server.ts: a Fastify route answering a
//              constant, loaded the same way: the p99 no Node HTTP server beats on this machine at that moment.
// Each load runs `warmup` seconds unmeasured first (PostgreSQL buffers, the service's cache, V8's JIT). Then
// `rounds` rounds of one measured load each, the order alternating between rounds (raw, service, floor; then
// floor, service, raw; …), so a burst of other work on the machine or a checkpoint does not land on one side
// only. Rates are over all rounds; p50 is the median of the rounds', p99 the worst round's. Before each
// measured PUT load a CHECKPOINT, so every write load starts with the same full-page-write debt.
// The service's and the floor's event-loop delay (monitorEventLoopDelay, bench/lib/loop-delay.ts), their CPU time
// per request (steadier than rates on a busy machine) and the service's garbage-collection time are read over
// each measured load; "idle" is the delay of this (waiting) process in the same seconds: what the machine's
// scheduler alone adds.
//
//   node --import tsx bench/service.ts [--seconds 10] [--warmup 5] [--rounds 2] [--connections 32]
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
import {
  cpuSecondsFromMetrics,
  gcSecondsFromMetrics,
  loopDelayFromMetrics,
  loopDelayMonitor,
  type LoopDelay,
} from "./lib/loop-delay.ts";

const { values: opts } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    warmup: { type: "string", default: "5" },
    rounds: { type: "string", default: "2" },
    connections: { type: "string", default: "32" },
    scenarios: { type: "string", default: "get-zipf,get-uniform,put" },
    profile: { type: "string" },
    "service-only": { type: "boolean", default: false },
    env: { type: "string", default: "" },
  },
});
const SECONDS = Number(opts.seconds);
const WARMUP = Number(opts.warmup);
const ROUNDS = Number(opts.rounds);
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

async function checkpoint(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query("CHECKPOINT");
  } finally {
    await client.end();
  }
}

interface Server {
  base: string;
  /** Event-loop delay since the previous call; CPU and (the service's) GC seconds since start. */
  loop(): Promise<{ delay: LoopDelay; cpuSeconds: number; gcSeconds: number }>;
  stop(): Promise<void>;
}

interface Service extends Server {
  /** The read cache's hit share of GETs since start, from /metrics. */
  cacheHits(): Promise<string>;
}

const extraEnv = Object.fromEntries(
  opts.env
    .split(",")
    .filter((kv) => kv.includes("="))
    .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
);

async function untilReady(url: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      const res = await fetch(url);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (i > 300) throw new Error(`${url} did not become ready in 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

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
  await untilReady(`${base}/readyz`);
  const metrics = async () => (await fetch(`${base}/metrics`)).text();
  return {
    base,
    loop: async () => {
      const text = await metrics();
      return {
        delay: loopDelayFromMetrics(text),
        cpuSeconds: cpuSecondsFromMetrics(text),
        gcSeconds: gcSecondsFromMetrics(text),
      };
    },
    cacheHits: async () => {
      const text = await metrics();
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

async function startFloor(): Promise<Server> {
  const proc = spawn(process.execPath, ["--import", "tsx", "bench/lib/floor-server.ts"], {
    cwd: root,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => proc.on("exit", () => resolve()));
  const base = await new Promise<string>((resolve, reject) => {
    proc.stdout.once("data", (chunk: Buffer) => resolve(chunk.toString().trim()));
    proc.once("exit", () => reject(new Error("the floor server exited")));
  });
  return {
    base,
    loop: async () => ({
      ...((await (await fetch(`${base}/loop-delay`)).json()) as { delay: LoopDelay; cpuSeconds: number }),
      gcSeconds: 0,
    }),
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

/** The figures of several rounds of one load: rates added up, the median p50, the worst p99. */
function combine(rounds: Figures[]): Figures {
  const p50s = rounds.map((f) => f.p50).sort((a, b) => a - b);
  return {
    rate: rounds.reduce((sum, f) => sum + f.rate, 0) / rounds.length,
    p50: p50s[Math.floor((p50s.length - 1) / 2)],
    p99: Math.max(...rounds.map((f) => f.p99)),
    errors: rounds.reduce((sum, f) => sum + f.errors + (f.non2xx ?? 0), 0),
  };
}

const fmt = (f: Figures) =>
  `${f.rate.toFixed(0).padStart(6)}/s  p50 ${f.p50.toFixed(2)} ms  p99 ${f.p99.toFixed(2)} ms` +
  (f.errors + (f.non2xx ?? 0) > 0 ? `  errors ${f.errors + (f.non2xx ?? 0)}` : "");
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const fmtDelay = (d: LoopDelay) => `p99 ${d.p99.toFixed(1)} ms, max ${d.max.toFixed(1)} ms`;
const worst = (ds: LoopDelay[]): LoopDelay => ({
  p50: Math.max(...ds.map((d) => d.p50)),
  p99: Math.max(...ds.map((d) => d.p99)),
  max: Math.max(...ds.map((d) => d.max)),
});

/** One measured HTTP load against `server`, with its event-loop delay, CPU and GC time over the same seconds. */
async function httpRound(server: Server, sc: Scenario, idle: { takeMs(): LoopDelay }) {
  const before = await server.loop();
  idle.takeMs();
  const figures = await child("bench/lib/http-load.ts", [
    server.base,
    sc.http,
    sc.entries,
    sc.zipf,
    SECONDS,
    CONNECTIONS,
  ]);
  const idleDelay = idle.takeMs();
  const after = await server.loop();
  return {
    figures,
    delay: after.delay,
    idleDelay,
    gcMsPerS: (1000 * (after.gcSeconds - before.gcSeconds)) / SECONDS,
    cpuUsPerRequest: (1e6 * (after.cpuSeconds - before.cpuSeconds)) / (figures.rate * SECONDS),
  };
}

const db = await createTestDatabase();
const seeded = new Map<number, string>();
const lines: string[] = [];
try {
  console.log(
    `${ROUNDS} × ${SECONDS} s per load (order alternating) after ${WARMUP} s warm-up, ${CONNECTIONS} connections; ` +
      `node ${process.version}; shared machine: read the ratios`,
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
    const dbUrl = url;
    const load = [sc.entries, sc.zipf];
    const withRaw = !opts["service-only"];
    const withFloor = sc.p99Target !== null;
    const rawLoad = (kind: string, seconds: number) =>
      child("bench/lib/pg-load.ts", [dbUrl, kind, ...load, seconds, CONNECTIONS]);
    const service = await startService(dbUrl);
    const floor = withFloor ? await startFloor() : null;
    const idle = loopDelayMonitor();
    const raw: Figures[] = [];
    const rawNoTrigger: Figures[] = [];
    const http: Figures[] = [];
    const serviceDelay: LoopDelay[] = [];
    const gc: number[] = [];
    const cpu: number[] = [];
    const floorCpu: number[] = [];
    const idleDelay: LoopDelay[] = [];
    const floorFigures: Figures[] = [];
    const floorDelay: LoopDelay[] = [];
    let hits = "";
    try {
      if (WARMUP > 0) {
        if (withRaw) await rawLoad(sc.raw, WARMUP);
        await child("bench/lib/http-load.ts", [service.base, sc.http, ...load, WARMUP, CONNECTIONS]);
        if (floor !== null) {
          await child("bench/lib/http-load.ts", [floor.base, "GET", ...load, WARMUP, CONNECTIONS]);
        }
      }
      const phases: (() => Promise<void>)[] = [
        async () => {
          if (!withRaw) return;
          if (sc.http === "PUT") await checkpoint(dbUrl);
          raw.push(await rawLoad(sc.raw, SECONDS));
          if (sc.raw === "upsert") {
            await checkpoint(dbUrl);
            rawNoTrigger.push(await rawLoad("upsert-no-trigger", SECONDS));
          }
        },
        async () => {
          if (sc.http === "PUT") await checkpoint(dbUrl);
          const r = await httpRound(service, sc, idle);
          http.push(r.figures);
          serviceDelay.push(r.delay);
          idleDelay.push(r.idleDelay);
          gc.push(r.gcMsPerS);
          cpu.push(r.cpuUsPerRequest);
        },
        async () => {
          if (floor === null) return;
          const r = await httpRound(floor, { ...sc, http: "GET" }, idle);
          floorFigures.push(r.figures);
          floorDelay.push(r.delay);
          floorCpu.push(r.cpuUsPerRequest);
        },
      ];
      for (let round = 0; round < ROUNDS; round++) {
        for (const phase of round % 2 === 0 ? phases : [...phases].reverse()) await phase();
      }
      if (sc.http === "GET") hits = `  (${await service.cacheHits()}, warm-up included)`;
    } finally {
      await service.stop();
      await floor?.stop();
    }
    console.log(sc.name);
    const rawFigures = raw.length > 0 ? combine(raw) : null;
    if (rawFigures !== null) console.log(`  raw PostgreSQL ${sc.raw.padEnd(18)} ${fmt(rawFigures)}`);
    const noTrigger = rawNoTrigger.length > 0 ? combine(rawNoTrigger) : null;
    if (noTrigger !== null) console.log(`  raw PostgreSQL upsert, no trigger ${fmt(noTrigger)}`);
    const httpFigures = combine(http);
    console.log(`  service ${sc.http.padEnd(25)} ${fmt(httpFigures)}${hits}`);
    console.log(
      `    service CPU ${median(cpu).toFixed(0)} µs/request; event-loop delay ${fmtDelay(worst(serviceDelay))}; ` +
        `GC ${Math.max(...gc).toFixed(1)} ms/s; ` +
        `idle process on this machine meanwhile: ${fmtDelay(worst(idleDelay))}`,
    );
    const floorAll = floorFigures.length > 0 ? combine(floorFigures) : null;
    if (floorAll !== null) {
      console.log(`  floor: Fastify constant route  ${fmt(floorAll)}`);
      console.log(
        `    floor CPU ${median(floorCpu).toFixed(0)} µs/request; event-loop delay ${fmtDelay(worst(floorDelay))}`,
      );
    }
    if (rawFigures !== null) {
      const ratio = httpFigures.rate / rawFigures.rate;
      const p99ok = sc.p99Target === null || httpFigures.p99 <= sc.p99Target;
      const met = ratio >= sc.target && p99ok;
      const line =
        `${sc.name}: ${ratio.toFixed(2)}× raw (target ≥ ${sc.target.toFixed(1)}×)` +
        (sc.p99Target === null
          ? ""
          : `, p99 ${httpFigures.p99.toFixed(1)} ms (target ≤ ${sc.p99Target} ms` +
            (floorAll === null ? ")" : `; floor ${floorAll.p99.toFixed(1)} ms, a constant Fastify route)`)) +
        (noTrigger === null
          ? ""
          : `; ${(httpFigures.rate / noTrigger.rate).toFixed(2)}× raw without the trigger`) +
        `  ${met ? "MET" : "MISSED"}`;
      console.log(`  ${line}`);
      lines.push(line);
    }
  }
  if (lines.length > 0) console.log(`\nSummary\n${lines.map((l) => `  ${l}`).join("\n")}`);
} finally {
  await db.drop();
}
