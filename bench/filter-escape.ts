// Cost of the worst-case value on every source × destination pair: a put from the source and a get
// of the same key into the destination, with a value of one repeated character that the encodings
// expand (`"`, and U+0001 where no header carries it), at 64 KiB and 1 MiB, on the release build.
// Two measures: wall-clock milliseconds per request (median of --runs), and the memory accesses
// the module makes (the release build instrumented as in test/filter/cost.ts; deterministic). Linear
// cost gives a 1 MiB / 64 KiB ratio of at most 16; test/filter/linear-cost.test.ts asserts it on the
// access counts.
//
//   node --import tsx bench/filter-escape.ts [--runs 3]
//
// Prints a Markdown table; BENCHMARKS.md keeps the figures quoted in the docs.
import { parseArgs } from "node:util";
import { startKvm } from "../test/filter/support.ts";
import { CostCounter, countingFilter } from "../test/filter/cost.ts";
import {
  DESTINATIONS,
  SOURCES,
  WORST,
  configuration,
  headerSafe,
  request,
  type Request,
} from "../test/filter/worst-case.ts";

const { values } = parseArgs({ options: { runs: { type: "string", default: "3" } } });
const RUNS = Number(values.runs);
const SIZES = [64 * 1024, 1024 * 1024];

const options = { canary: false, bufferLimitBytes: 32 * 1024 * 1024, maxRequestHeadersKb: 8192 };

async function once(
  config: unknown,
  req: Request,
  counted: boolean,
): Promise<{ ms: number; accesses: number }> {
  const counter = new CostCounter();
  const plugin = await startKvm(config, {
    ...options,
    ...(counted ? { wasm: countingFilter(), instrumentation: counter.instrumentation() } : {}),
  });
  const before = counter.accesses;
  const start = process.hrtime.bigint();
  await plugin
    .worker()
    .http({ method: "POST", authority: "bench", ...req }, () => ({ status: 200, body: "upstream" }));
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  return { ms, accesses: counter.accesses - before };
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const rows: string[] = [
  "| source → destination | char | 64 KiB ms | 1 MiB ms | time ratio | 64 KiB accesses | 1 MiB accesses | access ratio |",
  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
];
for (const source of SOURCES) {
  for (const destination of DESTINATIONS) {
    for (const char of WORST) {
      if (char !== '"' && headerSafe(source, destination)) continue;
      const ms: number[] = [];
      const accesses: number[] = [];
      for (const size of SIZES) {
        const config = configuration(source, destination, source === "literal" ? char.repeat(size) : "x");
        const req = request(source, char, size);
        const times: number[] = [];
        for (let r = 0; r < RUNS; r++) times.push((await once(config, req, false)).ms);
        ms.push(median(times));
        accesses.push((await once(config, req, true)).accesses);
      }
      rows.push(
        `| ${source} → ${destination} | ${JSON.stringify(char)} | ${ms[0].toFixed(1)} | ${ms[1].toFixed(1)} | ` +
          `${(ms[1] / ms[0]).toFixed(1)}× | ${accesses[0]} | ${accesses[1]} | ${(accesses[1] / accesses[0]).toFixed(2)}× |`,
      );
      console.error(rows[rows.length - 1]);
    }
  }
}
console.log(rows.join("\n"));
