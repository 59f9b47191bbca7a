// RELIABILITY.md's table from the rows the tests recorded (test/reliability/record.ts).
//   node --import tsx scripts/reliability.ts          check: the committed table is what this run proved
//   node --import tsx scripts/reliability.ts --write  rewrite the table from this run
// `npm test` runs the check after the Node tests, so a class that stops being proven, or whose case count
// changes, fails the run until RELIABILITY.md says so.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as prettier from "prettier";
import { LONG_CAMPAIGN, RELIABILITY_DIR, type ReliabilityRow } from "../test/reliability/record.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const DOC = path.join(ROOT, "RELIABILITY.md");
const BEGIN = "<!-- reliability:begin (npm run reliability:write) -->";
const END = "<!-- reliability:end -->";
const AREAS = ["faults", "concurrency", "bad input", "security"];

type Recorded = ReliabilityRow & { test: string };

function recordedRows(): Recorded[] {
  if (!fs.existsSync(RELIABILITY_DIR)) return [];
  return fs
    .readdirSync(RELIABILITY_DIR)
    .filter((name) => name.endsWith(".json"))
    .flatMap((name) => JSON.parse(fs.readFileSync(path.join(RELIABILITY_DIR, name), "utf8")) as Recorded[]);
}

function table(rows: Recorded[]): string {
  const sorted = [...rows].sort(
    (a, b) => AREAS.indexOf(a.area) - AREAS.indexOf(b.area) || a.name.localeCompare(b.name),
  );
  const cell = (text: string) => text.replace(/\|/g, "\\|");
  return [
    "| area | fault or input class | cases | result | proven by |",
    "|---|---|---:|---|---|",
    ...sorted.map((r) => `| ${r.area} | ${cell(r.name)} | ${r.cases} | ${cell(r.result)} | ${r.test} |`),
  ].join("\n");
}

const rows = recordedRows();
const names = new Set<string>();
for (const row of rows) {
  if (names.has(row.name)) throw new Error(`reliability class "${row.name}" is recorded by two test files`);
  names.add(row.name);
}
const doc = fs.readFileSync(DOC, "utf8");
const start = doc.indexOf(BEGIN);
const end = doc.indexOf(END);
if (start < 0 || end < start) throw new Error(`RELIABILITY.md lacks the markers ${BEGIN} … ${END}`);
// Prettier pads the committed table; rows are compared cell by cell.
const cells = (markdown: string) =>
  markdown
    .split("\n")
    .filter((line) => line.startsWith("|") && !/^\|[\s|:-]+\|$/.test(line))
    .map((line) =>
      line
        .split(/(?<!\\)\|/)
        .map((cell) => cell.trim())
        .join(" | "),
    )
    .join("\n");
const generated = table(rows);
const committed = doc.slice(start + BEGIN.length, end).trim();

if (process.argv.includes("--write")) {
  const text = `${doc.slice(0, start + BEGIN.length)}\n${generated}\n${doc.slice(end)}`;
  fs.writeFileSync(DOC, await prettier.format(text, { filepath: DOC }));
  console.log(`RELIABILITY.md: ${rows.length} classes written`);
} else if (LONG_CAMPAIGN) {
  console.log(`KVM_LONG=1: the table of this run (not compared with RELIABILITY.md)\n${generated}`);
} else if (cells(generated) !== cells(committed)) {
  const have = new Set(cells(committed).split("\n"));
  const want = new Set(cells(generated).split("\n"));
  for (const line of have) if (!want.has(line)) console.error(`- ${line}`);
  for (const line of want) if (!have.has(line)) console.error(`+ ${line}`);
  console.error(
    "RELIABILITY.md's table is not what this run proved (- committed, + this run): a class failed to record, " +
      "or its cases changed. Run the whole suite, then `npm run reliability:write` if the change is intended.",
  );
  process.exit(1);
} else {
  console.log(`RELIABILITY.md: ${rows.length} classes proven by this run, as committed`);
}
