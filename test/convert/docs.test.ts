// docs/convert.md's console transcripts run as written (in a scratch folder instead of /tmp, and with the
// binary instead of npx) and print exactly what the page shows, so the worked examples cannot drift.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { root } from "./support.ts";

interface Step {
  command: string;
  expected: string;
}

/** The ```console blocks of a Markdown page: `$ ` lines are commands, the lines after them their output. */
export function transcripts(markdown: string): Step[][] {
  const blocks: Step[][] = [];
  let block: Step[] | null = null;
  for (const line of markdown.split("\n")) {
    if (block === null) {
      if (line.trim() === "```console") block = [];
      continue;
    }
    if (line.trim() === "```") {
      blocks.push(block);
      block = null;
    } else if (line.startsWith("$ ")) block.push({ command: line.slice(2), expected: "" });
    else if (block.length > 0) block[block.length - 1].expected += `${line}\n`;
  }
  return blocks;
}

const SEPARATOR = "\x1e";

describe("docs/convert.md", () => {
  const blocks = transcripts(readFileSync(`${root}docs/convert.md`, "utf8"));

  it("has the worked examples", () => {
    const commands = blocks.flat().map((s) => s.command);
    assert.ok(commands.some((c) => c.startsWith("npx envoy-kvm convert apigee ")));
    assert.ok(commands.some((c) => c.startsWith("npx envoy-kvm convert kong ")));
    assert.ok(commands.some((c) => c.startsWith("npx envoy-kvm config check ")));
  });

  blocks.forEach((steps, i) => {
    it(`transcript ${i + 1}: ${steps[0].command}`, () => {
      const scratch = mkdtempSync(join(tmpdir(), "convert-docs-"));
      try {
        const local = (s: string) => s.replaceAll("/tmp/", `${scratch}/`);
        const script = steps
          .map(
            (s) =>
              `${local(s.command).replace(/^npx envoy-kvm /, "node bin/envoy-kvm.js ")} 2>&1; __s=$?; printf '${SEPARATOR}'; (exit $__s)`,
          )
          .join("\n");
        const run = spawnSync("bash", ["-c", script], { cwd: root, encoding: "utf8" });
        const outputs = run.stdout.split(SEPARATOR).slice(0, steps.length);
        assert.deepEqual(
          outputs,
          steps.map((s) => local(s.expected)),
        );
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
    });
  });
});
