// The README's and docs' console transcripts replay as shown, each page on a fresh state (docs/docs-that-run.md),
// and every transcript is either replayed or says why not.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { documentationFiles } from "../../scripts/doc-references.ts";
import { embeddedPostgresUnavailable } from "../../service/embedded-postgres.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { ROOT, Replay, consoleBlocks, outputPattern, replayDocument } from "./replay.ts";

const pages = documentationFiles().filter((file) =>
  consoleBlocks(readFileSync(join(ROOT, file), "utf8")).some((b) => b.notReplayed === null),
);

describe("the transcript convention", () => {
  it("finds the pages with transcripts", () => {
    for (const page of [
      "README.md",
      "docs/convert.md",
      "docs/gateway.md",
      "docs/service.md",
      "envoy/plugins/README.md",
    ]) {
      assert.ok(pages.includes(page), page);
    }
  });

  it("every fenced block with `$ ` prompts is a console block, and holds commands", () => {
    const problems: string[] = [];
    for (const file of documentationFiles()) {
      const markdown = readFileSync(join(ROOT, file), "utf8");
      let fence: string | null = null;
      markdown.split("\n").forEach((line, i) => {
        if (line.startsWith("```")) fence = fence === null ? line.slice(3).trim() : null;
        else if (fence !== null && fence !== "console" && line.startsWith("$ ")) {
          problems.push(
            `${file}:${i + 1}: a \`$ \` prompt in a \`\`\`${fence} block (transcripts are \`\`\`console)`,
          );
        }
      });
      const blocks = consoleBlocks(markdown);
      for (const block of blocks) {
        if (block.steps.length === 0)
          problems.push(`${file}:${block.line}: a console block without a command`);
      }
      const markers = markdown.split("\n").filter((l) => l.trim().startsWith("<!-- not replayed")).length;
      if (markers !== blocks.filter((b) => b.notReplayed !== null).length) {
        problems.push(`${file}: a "<!-- not replayed: reason -->" marker not right above a console block`);
      }
    }
    assert.deepEqual(problems, []);
  });

  it("`…` matches within a line, and a line of `…` matches any lines", () => {
    assert.ok(outputPattern("pid … in …/x\n").test("pid 12 in /a/b/x\n"));
    assert.ok(!outputPattern("pid … in x\n").test("pid 12\n in x\n"));
    assert.ok(outputPattern("a\n…\nd\n").test("a\nb\nc\nd\n"));
    assert.ok(outputPattern("a\n…\nd\n").test("a\nd\n"));
    assert.ok(!outputPattern("a\nd\n").test("a\nd\nmore\n"));
    assert.ok(outputPattern("a\nd\n", true).test("a\nd\nmore\n"));
    assert.ok(!outputPattern("a.c\n").test("abc\n"), "text is literal");
  });

  it("reads here-documents and markers", () => {
    const blocks = consoleBlocks(
      [
        "<!-- not replayed: needs Docker -->",
        "```console",
        "$ docker compose up",
        "```",
        "```console",
        "$ cat > /tmp/x <<'EOF'",
        "$ not a command",
        "EOF",
        "$ cat /tmp/x",
        "x",
        "```",
      ].join("\n"),
    );
    assert.deepEqual(
      blocks.map((b) => [b.notReplayed, b.steps.map((s) => [s.command, s.expected])]),
      [
        ["needs Docker", [["docker compose up", ""]]],
        [
          null,
          [
            ["cat > /tmp/x <<'EOF'\n$ not a command\nEOF", ""],
            ["cat /tmp/x", "x\n"],
          ],
        ],
      ],
    );
  });
});

describe("the replay", () => {
  it("fails on output other than shown, carries state and `$?` from step to step, maps the doc's values", async () => {
    const scratch = mkdtempSync(join(tmpdir(), "envoy-kvm-replay-"));
    const replay = new Replay(scratch, process.env, [{ shown: "/tmp/", actual: `${scratch}/` }]);
    try {
      await replay.step({ command: "echo hi", expected: "hi\n\n", line: 1 });
      await assert.rejects(replay.step({ command: "echo hi", expected: "ho\n", line: 2 }), /line 2: echo hi/);
      await assert.rejects(replay.step({ command: "echo hi; echo there", expected: "hi\n", line: 3 }));
      await replay.step({ command: "export GREETING=hello; false", expected: "", line: 4 });
      await replay.step({ command: "echo $? $GREETING", expected: "1 hello\n", line: 5 });
      await replay.step({ command: "cat > /tmp/a <<'EOF'\nx\nEOF", expected: "", line: 6 });
      await replay.step({ command: "ls /tmp/", expected: "a\n", line: 7 });
      await replay.step({ command: "echo /tmp/a", expected: "/tmp/a\n", line: 8 });
      await replay.step({ command: "echo >&2 oops", expected: "oops\n", line: 9 });
    } finally {
      await replay.close();
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

// Each page on its own fresh state; the pages at once, to keep the wall time near the slowest page's. Pages that
// start the stack need the embedded PostgreSQL.
const embedded = embeddedPostgresUnavailable();
describe("transcripts replay as shown", { concurrency: true }, () => {
  for (const page of pages) {
    const startsStack = /^\$ (npm start|npx envoy-kvm service)\b/m.test(
      readFileSync(join(ROOT, page), "utf8"),
    );
    it(page, { timeout: 240_000, skip: (startsStack && embedded) || false }, (t) => replayDocument(t, page));
  }
});
