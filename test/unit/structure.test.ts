// The shape of the source tree: no import cycles inside a component folder and no source file
// past ~500 lines. Extend by adding a folder to the lists below.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importCycles, oversizedFiles } from "./source-tree.ts";

const root = new URL("../../", import.meta.url).pathname;
const MAX_LINES = 500;

/** Component folders whose .ts files must not import each other in a cycle. */
const ACYCLIC = ["host", "service", "gateway", "convert", "assembly"];
/** Component folders whose source files stay under MAX_LINES. */
const SHORT_FILES = ["host", "service", "gateway", "convert", "assembly"];

describe("source tree", () => {
  for (const folder of ACYCLIC) {
    it(`${folder}/ has no import cycles`, () => {
      assert.deepEqual(importCycles(join(root, folder)), []);
    });
  }
  for (const folder of SHORT_FILES) {
    it(`${folder}/ has no source file over ${MAX_LINES} lines`, () => {
      assert.deepEqual(oversizedFiles(join(root, folder), MAX_LINES), []);
    });
  }
});

describe("the checks themselves", () => {
  const scratch = () => mkdtempSync(join(tmpdir(), "structure-"));
  const write = (dir: string, files: Record<string, string>) => {
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(join(dir, name, ".."), { recursive: true });
      writeFileSync(join(dir, name), text);
    }
  };

  it("finds a cycle through type-only imports, .ts-less specifiers and an index.ts, once", () => {
    const dir = scratch();
    try {
      write(dir, {
        "a.ts": 'import type { B } from "./b.ts";\nexport type A = B;\n',
        "b.ts": 'import { c } from "./sub";\nexport type B = number;\nexport const b = c;\n',
        "sub/index.ts": 'export { a } from "../a";\nexport const c = 1;\n',
        "d.ts": '// import { a } from "./a.ts";\nconst s = "import { a } from \'./a.ts\'";\nexport { s };\n',
      });
      assert.deepEqual(importCycles(dir), [["a.ts", "b.ts", "sub/index.ts", "a.ts"]]);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it("accepts an acyclic folder and ignores imports that leave it", () => {
    const dir = scratch();
    try {
      write(dir, {
        "a.ts": 'import { b } from "./b.ts";\nimport x from "../outside.ts";\nexport const a = b + x;\n',
        "b.ts": 'import { readFileSync } from "node:fs";\nexport const b = readFileSync.length;\n',
      });
      assert.deepEqual(importCycles(dir), []);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it("names files over the line limit", () => {
    const dir = scratch();
    try {
      write(dir, { "long.ts": "export {};\n".repeat(3), "short.ts": "export {};\n".repeat(2) });
      assert.deepEqual(oversizedFiles(dir, 2), ["long.ts (3 lines)"]);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});
