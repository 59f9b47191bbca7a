// The HTTP load generator, run as its own process by bench/service.ts (never inside the service it measures):
// autocannon with `connections` keep-alive connections, one request in flight on each, keys drawn per request.
//   node --import tsx bench/lib/http-load.ts <base-url> <GET|PUT> <entries> <zipf-s> <seconds> <connections>
// Prints one JSON line: { rate, p50, p99, non2xx, errors }.
import autocannon from "autocannon";
import { BENCH_KVM, benchKey, keySampler, seededRandom } from "./keys.ts";

const [base, method, entries, s, seconds, connections] = process.argv.slice(2);
const next = keySampler(Number(entries), Number(s), seededRandom(7));
const body = Buffer.alloc(64, "w");

const result = await autocannon({
  url: base,
  connections: Number(connections),
  pipelining: 1,
  duration: Number(seconds),
  requests: [
    {
      method: method as "GET" | "PUT",
      setupRequest: (req) => {
        req.path = `/v1/kvms/${BENCH_KVM}/entries/${benchKey(next())}`;
        if (method === "PUT") {
          req.body = body;
          req.headers = { ...req.headers, "content-type": "application/octet-stream" };
        }
        return req;
      },
    },
  ],
});
const ok = result["2xx"];
console.log(
  JSON.stringify({
    rate: ok / Number(seconds),
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  }),
);
