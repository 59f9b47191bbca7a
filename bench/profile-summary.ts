// Reads V8 CPU profiles (node --cpu-prof, as bench/service.ts --profile writes them) and prints where the
// time went: self time by package / area, and the top functions by self time.
//   node --import tsx bench/profile-summary.ts <file.cpuprofile | dir> [top=25]
import { readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const target = process.argv[2];
const top = Number(process.argv[3] ?? 25);
const files = statSync(target).isDirectory()
  ? readdirSync(target)
      .filter((f) => f.endsWith(".cpuprofile"))
      .map((f) => path.join(target, f))
  : [target];

/** node_modules/<pkg> (scoped too), our own folders, node: internals, or the V8 pseudo-frames. */
function area(url: string, fn: string): string {
  if (url === "")
    return fn === "(garbage collector)" || fn === "(idle)" || fn === "(program)" ? fn : "(native)";
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm !== null) return nm[1];
  if (url.startsWith("node:")) return `node:${url.slice(5).split("/")[0]}`;
  const own = /envoy-kvm[^/]*\/|\/wt\/[^/]+\/|\/work\/main\//.exec(url);
  if (own !== null)
    return url
      .slice(own.index + own[0].length)
      .split("/")
      .slice(0, 2)
      .join("/");
  return url;
}

/** Node core and V8 frames are charged to the nearest caller outside them (pg, fastify, pino, service/…). */
const isCore = (a: string) => a.startsWith("node:") || a === "(native)";

const byArea = new Map<string, number>();
const byOwner = new Map<string, number>();
const byFn = new Map<string, number>();
let total = 0;
for (const file of files) {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, Node>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n);
  const ownerCache = new Map<number, string>();
  const ownerOf = (node: Node): string => {
    const cached = ownerCache.get(node.id);
    if (cached !== undefined) return cached;
    const a = area(node.callFrame.url, node.callFrame.functionName);
    let owner = a;
    if (isCore(a)) {
      const up = parent.get(node.id);
      owner =
        up === undefined || up.callFrame.functionName === "(root)" ? `${a} (event loop, I/O)` : ownerOf(up);
      if (owner.endsWith("(event loop, I/O)")) owner = "node core (event loop, I/O, HTTP parsing)";
    }
    ownerCache.set(node.id, owner);
    return owner;
  };
  for (let i = 0; i < profile.samples.length; i++) {
    const node = nodes.get(profile.samples[i])!;
    const dt = profile.timeDeltas[i] ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    const a = area(url, functionName);
    byArea.set(a, (byArea.get(a) ?? 0) + dt);
    const o = ownerOf(node);
    byOwner.set(o, (byOwner.get(o) ?? 0) + dt);
    const fnKey = `${functionName || "(anonymous)"} ${a}:${lineNumber + 1}`;
    byFn.set(fnKey, (byFn.get(fnKey) ?? 0) + dt);
    total += dt;
  }
}
const busy = total - (byArea.get("(idle)") ?? 0);
const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
console.log(
  `${files.length} profile(s), ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (shares of busy time)\n`,
);
console.log("self time by area:");
for (const [a, us] of [...byArea]
  .filter(([a]) => a !== "(idle)")
  .sort((x, y) => y[1] - x[1])
  .slice(0, top)) {
  console.log(`  ${pct(us)}  ${a}`);
}
console.log("\nby owner (node core and native time charged to the nearest caller outside node core):");
for (const [o, us] of [...byOwner]
  .filter(([o]) => o !== "(idle)")
  .sort((x, y) => y[1] - x[1])
  .slice(0, top)) {
  console.log(`  ${pct(us)}  ${o}`);
}
console.log("\ntop functions by self time:");
for (const [f, us] of [...byFn]
  .filter(([f]) => !f.startsWith("(idle)"))
  .sort((x, y) => y[1] - x[1])
  .slice(0, top)) {
  console.log(`  ${pct(us)}  ${f}`);
}
