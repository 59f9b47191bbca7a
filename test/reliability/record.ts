// RELIABILITY.md's table is produced by the tests themselves. A test that has proven a fault or input class
// calls `recordReliability` after its assertions passed; each test process (node --test runs one per file)
// writes its rows to build/reliability/<file>.json when it exits. scripts/reliability.ts then checks the
// committed table against those rows (`npm test`) or rewrites it (`npm run reliability:write`).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export type ReliabilityArea = "faults" | "bad input" | "concurrency" | "security";

export interface ReliabilityRow {
  area: ReliabilityArea;
  /** The fault or input class, e.g. "PostgreSQL stopped and restarted under load". */
  name: string;
  /** How many cases were run: requests, generated inputs, injected faults. */
  cases: number;
  /** The observed result in a few words, e.g. "0 traps, 0 hangs, 0 acknowledged writes lost". */
  result: string;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const RELIABILITY_DIR = path.join(ROOT, "build", "reliability");

const rows = new Map<string, ReliabilityRow & { test: string }>();
let registered = false;

/** Long campaigns run with KVM_LONG=1; the committed table shows the short runs `npm test` makes. */
export const LONG_CAMPAIGN = process.env.KVM_LONG === "1";

/** Records a class as proven. Call it only after the assertions that prove it; a class recorded twice sums. */
export function recordReliability(row: ReliabilityRow): void {
  const test = path.relative(ROOT, process.argv[1] ?? "unknown");
  const known = rows.get(row.name);
  if (known !== undefined && known.result !== row.result) {
    throw new Error(
      `reliability class "${row.name}" recorded with two results: "${known.result}", "${row.result}"`,
    );
  }
  rows.set(row.name, { ...row, cases: (known?.cases ?? 0) + row.cases, test });
  if (!registered) {
    registered = true;
    process.on("exit", writeRows);
  }
}

function writeRows(): void {
  if (rows.size === 0) return;
  fs.mkdirSync(RELIABILITY_DIR, { recursive: true });
  const first = [...rows.values()][0];
  const file = path.join(RELIABILITY_DIR, `${first.test.replace(/[^A-Za-z0-9.-]+/g, "_")}.json`);
  fs.writeFileSync(file, `${JSON.stringify([...rows.values()], null, 2)}\n`);
}
