// The AssemblyScript 0.17 rules of eslint.config.js catch what they are meant to in assembly/ (and
// let through what is safe), so a violation fails `npm test`'s lint step.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ESLint } from "eslint";

const eslint = new ESLint();

async function problems(source: string): Promise<string[]> {
  const [result] = await eslint.lintText(source, { filePath: "assembly/lint_probe.ts" });
  return result.messages.map((m) => m.ruleId ?? m.message);
}

describe("lint rules for the AssemblyScript filter", () => {
  it("rejects throw", async () => {
    assert.deepEqual(await problems('export function f(): void {\n  throw new Error("x");\n}\n'), [
      "no-restricted-syntax",
    ]);
  });

  it("rejects a conditional expression over strings, objects or unknown identifiers", async () => {
    const cases = [
      'export function f(c: bool): string {\n  return c ? "a" : "b";\n}\n',
      "export function f(c: bool, a: string, b: string): string {\n  return c ? a : b;\n}\n",
      'export function f(c: bool, a: string): string {\n  return c ? a : a + "x";\n}\n',
      "export function f(c: bool, a: i32[]): i32[] {\n  return c ? a : [];\n}\n",
    ];
    for (const source of cases) {
      assert.deepEqual(await problems(source), ["assemblyscript/no-managed-conditional"], source);
    }
  });

  it("accepts a conditional expression whose branches are numbers, booleans, casts or enum members", async () => {
    const cases = [
      "export function f(c: bool): i32 {\n  return c ? 1 : -1;\n}\n",
      "export function f(c: bool, x: u32): i32 {\n  return c ? <i32>x : 0;\n}\n",
      "export function f(c: bool, s: string): i32 {\n  return c ? s.length : 0;\n}\n",
      "export function f(c: bool): bool {\n  return c ? Kind.Object == Kind.Array : false;\n}\n",
      "export function f(c: bool): i32 {\n  return c ? Kind.Object : Kind.Array;\n}\n",
    ];
    for (const source of cases) assert.deepEqual(await problems(source), [], source);
  });

  it("rejects conditional field initialisation in a constructor", async () => {
    const source =
      "export class A {\n  x: i32 = 0;\n  constructor(c: bool) {\n    if (c) this.x = 1;\n  }\n}\n";
    assert.deepEqual(await problems(source), ["no-restricted-syntax"]);
    const unconditional =
      "export class A {\n  x: i32 = 0;\n  constructor(c: i32) {\n    this.x = c;\n  }\n}\n";
    assert.deepEqual(await problems(unconditional), []);
  });

  it("lints every source file under assembly/ but the import declarations", async () => {
    assert.equal(await eslint.isPathIgnored("assembly/config.ts"), false);
    assert.equal(await eslint.isPathIgnored("assembly/__tests__/config.spec.ts"), false);
    assert.equal(await eslint.isPathIgnored("assembly/generated/schema_constants.ts"), false);
    assert.equal(await eslint.isPathIgnored("assembly/hostcalls/imports.ts"), true);
  });
});
