// Every file, folder and heading the documentation cites exists in this repository (a reader must
// never be sent to notes that live elsewhere), and the checker catches each kind of broken reference.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  ROOT,
  checkFiles,
  describe as describeReference,
  documentationFiles,
  findBrokenReferences,
  headingAnchors,
} from "../../scripts/doc-references.ts";

describe("documentation references", () => {
  it("covers README.md and every Markdown file in the repository's folders", () => {
    const files = documentationFiles();
    for (const file of [
      "envoy/plugins/README.md",
      "README.md",
      "docs/envoy-behaviour.md",
      "docs/filter.md",
      "docs/host.md",
      "docs/service.md",
    ]) {
      assert.ok(files.includes(file), `${file} is checked`);
    }
  });

  it("resolve to files and headings of this repository", () => {
    assert.deepEqual(checkFiles(documentationFiles()).map(describeReference), []);
  });

  it("are reported when they point outside the repository or at nothing", () => {
    const text = [
      "# Example",
      "## Local heading",
      "See `proxy-notes.md §3` and ../notes/reference/proxy-notes.md.", // 3
      "A [missing file](missing.md) and [a missing heading](host.md#no-such-heading).", // 4
      "The module `assembly/no_such_module.ts` and [outside](../../etc/passwd).", // 5
      "Outside: [notes](../../notes/todo.txt) and [a fragment](#no-such-heading).", // 6
      "Fine: [host](host.md), `docs/envoy-behaviour.md §3`, [shared data](envoy-behaviour.md#3-shared-data),",
      "[here](#local-heading), Envoy's `src/shared_data.cc`, `assembly/`, [Envoy](https://www.envoyproxy.io/).",
      "```console",
      "$ cat build/kvm_filter.wasm assembly/inside_a_fence.ts",
      "```",
    ].join("\n");
    const found = findBrokenReferences(ROOT, "docs/example.md", text).map(
      ({ line, reference, reason }) => `${line} ${reference}: ${reason}`,
    );
    assert.deepEqual(found, [
      "3 proxy-notes.md: no such Markdown file in the repository",
      "3 ../notes/reference/proxy-notes.md: no such Markdown file in the repository",
      "3 ../notes/reference/proxy-notes.md: no such file or folder",
      "4 missing.md: no such file or folder",
      "4 host.md#no-such-heading: no heading with anchor #no-such-heading",
      "5 ../../etc/passwd: outside the repository",
      "5 assembly/no_such_module.ts: no such file or folder",
      "6 ../../notes/todo.txt: outside the repository",
      "6 #no-such-heading: no heading with anchor #no-such-heading",
    ]);
  });
});

describe("headingAnchors", () => {
  it("follows GitHub's rules: punctuation dropped, spaces to dashes, repeats numbered", () => {
    const anchors = headingAnchors(
      [
        "# envoy-kvm",
        "## §10 @solo-io/proxy-runtime 0.1.8 defects",
        "## §5 Pausing, bodies, headers",
        "### `kvm_service`",
        "## Tests",
        "## Tests",
        "```",
        "# not a heading inside a fence",
        "```",
      ].join("\n"),
    );
    assert.deepEqual(
      [...anchors],
      [
        "envoy-kvm",
        "10-solo-ioproxy-runtime-018-defects",
        "5-pausing-bodies-headers",
        "kvm_service",
        "tests",
        "tests-1",
      ],
    );
  });
});

describe("code comments", () => {
  // Comments cite the project's own notes (docs/*.md §N) or upstream files by name, never notes that
  // live outside the repository. Every `docs/<file>.md §N` must name a file here with a `## §N` heading.
  const sources = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard"], {
    cwd: ROOT,
    encoding: "utf8",
  })
    .split("\n")
    .filter((f) => /\.(ts|js|cjs|mjs|sh|ya?ml|json)$/.test(f) && !f.startsWith("test/unit/doc-references"))
    .filter((f) => existsSync(join(ROOT, f)));

  it("cite no notes from outside the repository", () => {
    const outside = sources.filter((f) =>
      /envoy-host\.md|\.\.\/shared\/reference|shared\/STYLE\.md/.test(readFileSync(join(ROOT, f), "utf8")),
    );
    assert.deepEqual(outside, []);
  });

  it("cite sections of docs that exist", () => {
    const broken: string[] = [];
    for (const file of sources) {
      const text = readFileSync(join(ROOT, file), "utf8");
      for (const m of text.matchAll(/docs\/([\w-]+\.md)(?: §(\d+))?/g)) {
        const doc = join(ROOT, "docs", m[1]);
        if (!existsSync(doc)) {
          broken.push(`${file}: docs/${m[1]}`);
        } else if (
          m[2] !== undefined &&
          !new RegExp(`^## §${m[2]}\\b`, "m").test(readFileSync(doc, "utf8"))
        ) {
          broken.push(`${file}: docs/${m[1]} §${m[2]}`);
        }
      }
    }
    assert.deepEqual(broken, []);
  });
});
