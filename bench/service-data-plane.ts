// Data-plane throughput and latency over real HTTP: GET hits, PUTs, and compare-and-set PUTs against a
// migrated throwaway database (DATABASE_URL's server, or an embedded PostgreSQL when unset). Each
// scenario is also given as a ratio to a baseline measured in the same run: GET /healthz, the same
// HTTP stack and client without the database, so the ratio shows what storage adds on this machine.
//   node --import tsx bench/service-data-plane.ts [seconds=5] [concurrency=32]
import http from "node:http";
import { createTestDatabase, startTestApp } from "../test/service/helpers.ts";

interface Answer {
  status: number;
  etag: string;
}

// node:http with a keep-alive agent: much cheaper per request than fetch, so the client (same process, same
// cores) takes less of the machine away from the service it measures.
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
function request(
  url: string,
  method = "GET",
  body?: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, etag: String(res.headers.etag ?? "") }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const seconds = Number(process.argv[2] ?? 5);
const concurrency = Number(process.argv[3] ?? 32);
const KEYS = 1000;

const db = await createTestDatabase();
const t = await startTestApp(db.url, { KVM_PG_POOL_MAX: "20" });
try {
  const base = await t.app.listen({ host: "127.0.0.1", port: 0 });
  const url = (i: number) => `${base}/v1/kvms/bench/entries/key-${i % KEYS}`;
  for (let i = 0; i < KEYS; i++) await request(url(i), "PUT", `value-${i}`);

  let baselineRate = 0;
  async function scenario(name: string, op: (i: number) => Promise<Answer>) {
    const latencies: number[] = [];
    let failures = 0;
    const deadline = performance.now() + seconds * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, async (_, w) => {
        for (let i = w; performance.now() < deadline; i += concurrency) {
          const start = performance.now();
          const res = await op(i);
          latencies.push(performance.now() - start);
          if (res.status >= 500) failures++;
        }
      }),
    );
    latencies.sort((a, b) => a - b);
    const q = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(2);
    const rate = latencies.length / seconds;
    if (baselineRate === 0) baselineRate = rate;
    console.log(
      `${name.padEnd(10)} ${rate.toFixed(0).padStart(7)} req/s  ` +
        `p50 ${q(0.5)} ms  p99 ${q(0.99)} ms  5xx ${failures}  ${(rate / baselineRate).toFixed(2)}× baseline rate`,
    );
  }

  console.log(`${seconds} s per scenario, ${concurrency} concurrent clients, ${KEYS} keys`);
  await scenario("baseline", () => request(`${base}/healthz`));
  await scenario("GET hit", (i) => request(url(i)));
  await scenario("PUT", (i) => request(url(i), "PUT", `v${i}`, { "x-kvm-ttl": "3600" }));
  await scenario("GET+CAS", async (i) => {
    const read = await request(url(i));
    return request(url(i), "PUT", `c${i}`, { "if-match": read.etag });
  });
} finally {
  agent.destroy();
  await t.close();
  await db.drop();
}
