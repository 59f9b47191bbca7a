// No request costs the filter more than linear time in its size. For every source × destination
// pair, a put from the source and a get of the same key into the destination run on the release
// build with values of the worst characters (those JSON, query and header encodings expand), at
// 64 KiB and at 1 MiB. The cost is the number of memory accesses the module makes (test/filter/
// cost.ts: deterministic, no clock), so 16 times the input may cost at most 16 times as much plus a
// margin; a quadratic path costs 256 times as much, and the budget stops it early (a trap) rather
// than letting it run for minutes, as a 1 MiB escaped value once did inside Envoy.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { startKvm } from "./support.ts";
import { CostCounter, countingFilter } from "./cost.ts";
import {
  DESTINATIONS,
  SOURCES,
  WORST,
  configuration,
  headerSafe,
  request,
  type Request,
} from "./worst-case.ts";

const SMALL = 64 * 1024;
const LARGE = 1024 * 1024;
// Linear cost gives a ratio of at most LARGE / SMALL = 16 (fixed costs make it less). The margin
// covers what does not scale exactly with the input (allocator bookkeeping, page growth); counts do
// not vary between runs, so it does not need to absorb noise.
const MAX_RATIO = 20;
// And a ceiling on the 64 KiB request itself, so a quadratic path fails in seconds rather than
// running billions of accesses first: today's worst pair costs about 420 accesses per input byte.
const MAX_ACCESSES_PER_BYTE = 1500;

// The accesses one request costs, or Infinity when it went over `budget` (the module trapped).
async function measure(
  config: unknown,
  req: Request,
  budget: number,
): Promise<{ accesses: number; status: number }> {
  const counter = new CostCounter();
  const plugin = await startKvm(config, {
    wasm: countingFilter(),
    canary: false,
    bufferLimitBytes: 32 * 1024 * 1024,
    maxRequestHeadersKb: 8192,
    instrumentation: counter.instrumentation(),
  });
  const worker = plugin.worker();
  const before = counter.accesses;
  counter.allow(budget);
  let status = 0;
  try {
    const res = await worker.http({ method: "POST", authority: "api.example.com", ...req }, () => ({
      status: 200,
      body: "upstream",
    }));
    status = res.status;
  } catch {
    status = -1;
  }
  if (worker.failed) return { accesses: Infinity, status };
  return { accesses: counter.accesses - before, status };
}

// Runs `at(size)` (a configuration and a request) at 64 KiB and 1 MiB and checks the cost ratio.
async function assertLinear(name: string, at: (size: number) => { config: unknown; req: Request }) {
  const smallCase = at(SMALL);
  const small = await measure(smallCase.config, smallCase.req, SMALL * MAX_ACCESSES_PER_BYTE);
  assert.ok(
    Number.isFinite(small.accesses),
    `${name}: the 64 KiB request went over ${MAX_ACCESSES_PER_BYTE} memory accesses per byte`,
  );
  const largeCase = at(LARGE);
  const large = await measure(largeCase.config, largeCase.req, small.accesses * MAX_RATIO + 1);
  const ratio = large.accesses / small.accesses;
  assert.equal(
    large.status,
    small.status,
    `${name}: status ${small.status} at 64 KiB, ${large.status} at 1 MiB`,
  );
  assert.ok(
    ratio <= MAX_RATIO,
    `${name}: 16× the input cost ${ratio.toFixed(1)}× the accesses (${small.accesses} → ${large.accesses})`,
  );
}

describe("request cost grows linearly with the request (release build, counted memory accesses)", () => {
  for (const source of SOURCES) {
    for (const destination of DESTINATIONS) {
      for (const char of WORST) {
        if (char !== '"' && headerSafe(source, destination)) continue;
        const name = `${source} → ${destination}, ${JSON.stringify(char)}`;
        it(name, () =>
          assertLinear(name, (size) => ({
            config: configuration(source, destination, source === "literal" ? char.repeat(size) : "x"),
            req: request(source, char, size),
          })),
        );
      }
    }
  }
});

describe("request cost grows linearly with the request's shape (release build, counted memory accesses)", () => {
  it("a query destination on a path with many parameters", () =>
    assertLinear("many query parameters", (size) => ({
      config: configuration("literal", "query", "x"),
      req: { path: "/p?" + "a=1&".repeat(size / 4) + "w=old", headers: [], body: "{}", filterState: {} },
    })));

  it("a body field source and destination in an object with many members", () =>
    assertLinear("many body members", (size) => {
      const members = Array.from({ length: size / 16 }, (_, i) => `"m${String(i).padStart(6, "0")}":"x"`);
      return {
        config: configuration("body field", "body field", "x"),
        req: { path: "/p", headers: [], body: "{" + members.join(",") + ',"v":"value"}', filterState: {} },
      };
    }));
});
