// The raw PostgreSQL baseline, run as its own process by bench/service.ts: `connections` workers, each with one
// statement in flight, over a node-postgres pool of the same size, prepared (named) statements, the same keys
// and the same columns as the service.
//   node --import tsx bench/lib/pg-load.ts <database-url> <get|upsert|upsert-no-trigger> <entries> <zipf-s> <seconds> <connections>
// Prints one JSON line: { rate, p50, p99, errors }.
import pg from "pg";
import { BENCH_KVM, benchKey, keySampler, seededRandom } from "./keys.ts";
import { GET_ENTRY_SQL, UPSERT_ENTRY_SQL } from "../../service/statements.ts";

const [url, kind, entries, s, seconds, connections] = process.argv.slice(2);
const next = keySampler(Number(entries), Number(s), seededRandom(7));
const value = Buffer.alloc(64, "w");
const concurrency = Number(connections);
const pool = new pg.Pool({
  connectionString: url,
  max: concurrency,
  // "no-trigger": the same statement with row triggers skipped (what the write costs without the cache's
  // change notification).
  options: kind === "upsert-no-trigger" ? "-c session_replication_role=replica" : undefined,
});
const query = (i: number): pg.QueryConfig => {
  const key = Buffer.from(benchKey(i));
  return kind === "get"
    ? { name: "bench_get", text: GET_ENTRY_SQL, values: [BENCH_KVM, key] }
    : { name: "bench_upsert", text: UPSERT_ENTRY_SQL, values: [BENCH_KVM, key, value, null, null] };
};

// Every connection opened (and each statement prepared on it) before the clock starts, as the service's are.
await Promise.all(Array.from({ length: concurrency }, () => pool.query(query(0))));
const latencies: number[] = [];
let errors = 0;
const deadline = performance.now() + Number(seconds) * 1000;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) {
      const start = performance.now();
      try {
        await pool.query(query(next()));
        latencies.push(performance.now() - start);
      } catch {
        errors++;
      }
    }
  }),
);
await pool.end();
latencies.sort((a, b) => a - b);
const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
console.log(JSON.stringify({ rate: latencies.length / Number(seconds), p50: q(0.5), p99: q(0.99), errors }));
