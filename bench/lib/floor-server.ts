// The latency floor for the service benchmark, run as its own process by bench/service.ts: a Fastify app whose
// one route, shaped like the data plane's GET, answers a constant 64-byte value (no database, no cache, no
// hooks, no logging). Loaded by the same autocannon as the service, in the same run, its p99 is what this
// machine allows any Node HTTP server at that concurrency.
//   node --import tsx bench/lib/floor-server.ts   → prints its base URL; GET /loop-delay: the loop's delays
//   since the previous call, and the CPU seconds used since start
import Fastify from "fastify";
import { loopDelayMonitor } from "./loop-delay.ts";

const delay = loopDelayMonitor();
const app = Fastify({ logger: false });
const value = Buffer.alloc(64, "v");
app.get("/v1/kvms/:kvm/entries/:key", async (_request, reply) => {
  reply.type("application/octet-stream");
  return value;
});
app.get("/loop-delay", async () => {
  const cpu = process.cpuUsage();
  return { delay: delay.takeMs(), cpuSeconds: (cpu.user + cpu.system) / 1e6 };
});
const url = await app.listen({ host: "127.0.0.1", port: 0 });
console.log(url);
process.on("SIGINT", () => void app.close().then(() => process.exit(0)));
