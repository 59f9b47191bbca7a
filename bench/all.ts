// `npm run bench`: the whole suite, each figure next to its target (issue 9). Every ratio is against a
// baseline measured in the same run, because the machine is shared and noisy.
//   1. bench/service.ts — service GET (Zipf s=1 over 100k; uniform over 1M) and PUT against raw PostgreSQL;
//   2. bench/filter-local.ts — the filter's local operations against the same request with no operation;
//   3. bench/filter-targets.ts — 1M vs 1k entries, cache_ttl hit vs local get, concurrent misses,
//      shared-data bytes per entry, the pass-through request.
// Options are passed on to bench/service.ts (e.g. --seconds 10 --scenarios get-zipf,put); FILTER_REQUESTS
// and FILTER_ROUNDS size the filter benches (default 20000 × 5: at 5000 × 3 the median of the local get's ratio
// moved by ±0.05 from run to run, as much as its distance to the target).
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));

function run(script: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ["--import", "tsx", script, ...args], {
      cwd: root,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    proc.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      process.stdout.write(chunk);
    });
    proc.on("error", reject);
    proc.on("exit", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${script} exited with ${code}`)),
    );
  });
}

console.log("== service data plane against raw PostgreSQL (bench/service.ts)\n");
const service = await run("bench/service.ts", process.argv.slice(2));

console.log("\n== filter, local operations (bench/filter-local.ts)\n");
const filterSize = [
  "--requests",
  process.env.FILTER_REQUESTS ?? "20000",
  "--rounds",
  process.env.FILTER_ROUNDS ?? "5",
];
const filter = await run("bench/filter-local.ts", filterSize);

console.log("\n== filter, targets (bench/filter-targets.ts)\n");
const targets = await run("bench/filter-targets.ts", filterSize);
const figureOf = (name: string) =>
  targets
    .split("\n")
    .find((line) => line.startsWith(`${name}: `))
    ?.slice(name.length + 2);
const ratioFigure = (name: string) => {
  const text = figureOf(name);
  return text === undefined ? null : Number(text.replace("×", ""));
};

// Filter targets: a local get within 1.3× of the same request without an operation.
const ratioOf = (scenario: string) => {
  const row = filter.split("\n").find((line) => line.startsWith(`| ${scenario} |`));
  const cells = row?.split("|").map((c) => c.trim());
  return cells === undefined ? null : Number(cells[5].replace("×", ""));
};
const lines: string[] = [];
const getHit = ratioOf("get hit → header");
if (getHit !== null) {
  lines.push(
    `filter local get → header: ${getHit.toFixed(2)}× the no-operation request (target ≤ 1.3×)  ${getHit <= 1.3 ? "MET" : "MISSED"}`,
  );
}
const ratioTarget = (label: string, ratio: number | null, target: number) => {
  if (ratio !== null) {
    lines.push(`${label}: ${ratio.toFixed(2)}× (target ≤ ${target}×)  ${ratio <= target ? "MET" : "MISSED"}`);
  }
};
ratioTarget("filter local get, 1M entries vs 1k", ratioFigure("ratio 1M/1k"), 1.2);
ratioTarget("filter cluster get from cache_ttl vs local get", ratioFigure("ratio cache_ttl/local"), 1.2);
const misses = figureOf("concurrent misses on one key");
if (misses !== undefined) {
  const callouts = Number(/(\d+) callout/.exec(misses)?.[1]);
  lines.push(
    `filter concurrent misses on one key: ${misses} (target 1 callout)  ${callouts === 1 ? "MET" : "MISSED"}`,
  );
}
lines.push(
  `filter local entry bytes in shared data per entry: ${figureOf("local entry bytes in shared data")} against raw ${figureOf("raw key + value bytes per entry")}`,
);
lines.push(`filter pass-through request: ${figureOf("pass-through request")}`);
const summary = service.slice(service.indexOf("Summary\n") + "Summary\n".length).trimEnd();
console.log(`\n== Targets\n${summary}\n${lines.map((l) => `  ${l}`).join("\n")}`);
