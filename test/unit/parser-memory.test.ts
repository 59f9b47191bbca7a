// The configuration and JSON parsers under AssemblyScript's rtrace: the shared configuration table
// and thousands of generated (often broken) JSON documents go through the real AssemblyScript code,
// and the runtime must never trap, never free a block twice and never leak one. as-pect's own
// rtrace cannot be trusted for this (5.0.1 ignores in-place resizes, see
// assembly/__tests__/rtrace-onresize.cjs); lib/rtrace of the AssemblyScript release in use can.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Rtrace } from "assemblyscript/lib/rtrace";
import { configCases } from "../filter/config-cases.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const ASC = join(ROOT, "node_modules", "assemblyscript", "bin", "asc");

interface Harness {
  memory: WebAssembly.Memory;
  _start(): void;
  prepare(length: number): number;
  configError(): number;
  jsonProbe(): number;
  reset(): void;
}

class Traced {
  readonly problems: string[] = [];
  readonly exports: Harness;
  private readonly rtrace: Rtrace;
  private memory: WebAssembly.Memory | undefined;

  constructor(wasm: Uint8Array<ArrayBuffer>) {
    this.rtrace = new Rtrace({
      onerror: (error) => {
        this.problems.push(error.message);
      },
      getMemory: () => {
        if (!this.memory) throw new Error("memory read before instantiation");
        return this.memory;
      },
    });
    const abort = (_message: number, _file: number, line: number, column: number) => {
      throw new Error(`abort at ${line}:${column}`);
    };
    const instance = new WebAssembly.Instance(new WebAssembly.Module(wasm), {
      rtrace: this.rtrace as unknown as WebAssembly.ModuleImports,
      env: { abort },
    });
    this.exports = instance.exports as unknown as Harness;
    this.memory = this.exports.memory;
    this.exports._start();
  }

  write(bytes: Uint8Array): void {
    const at = this.exports.prepare(bytes.length);
    new Uint8Array(this.exports.memory.buffer, at, bytes.length).set(bytes);
  }

  // An AssemblyScript 0.17 string: UTF-16 code units, byte length in the header word before it.
  readString(pointer: number): string {
    const length = new Uint32Array(this.exports.memory.buffer, pointer - 4, 1)[0];
    return Buffer.from(new Uint8Array(this.exports.memory.buffer, pointer, length)).toString("utf16le");
  }

  // Blocks still allocated after dropping the globals and collecting cycles.
  liveBlocks(): number {
    this.exports.reset();
    return this.rtrace.check();
  }
}

// A small deterministic generator (the same documents on every run).
function generator(seed: number): (n: number) => number {
  let state = seed;
  return (n) => {
    state = (Math.imul(state, 1103515245) + 12345) & 0x7fffffff;
    return state % n;
  };
}

const SAMPLES = [
  '{"a":{"b":[1,2,{"c":"d"}]},"user":{"id":"u\\u00e9"},"items":[{"sku":1},{"sku":"x"}]}',
  '{"a" : 1 , "b":[ ] }',
  '{"x":{"y":{}}}',
  '"\\ud800"',
  "[1,2.5e3,true,null]",
  "{}",
];
const JSON_ALPHABET = Buffer.from('{}[]":,.\\ u0123456789abcdeftrnl-+eE\t\n');

// A random JSON value, serialized with random whitespace.
function randomJson(random: (n: number) => number, depth: number): string {
  const space = () => [" ", "", "\n", "\t", ""][random(5)];
  const kind = depth > 4 ? random(4) : random(6);
  switch (kind) {
    case 0:
      return ["null", "true", "false", "0", "-1.5e2", "12345678901234567890"][random(6)];
    case 1:
      return JSON.stringify(["", "a", "é😀", '\u0000"\\', "user.id"][random(5)]);
    case 2:
      return String(random(1000) - 500);
    case 3:
      return JSON.stringify(String.fromCharCode(random(0x10000)));
    case 4: {
      const items = Array.from(
        { length: random(4) },
        () => space() + randomJson(random, depth + 1) + space(),
      );
      return "[" + items.join(",") + "]";
    }
    default: {
      const keys = ["a", "b", "user", "id", "items", "0", "1", "sku", "x", "y"];
      const members = Array.from(
        { length: random(5) },
        () =>
          space() + JSON.stringify(keys[random(keys.length)]) + space() + ":" + randomJson(random, depth + 1),
      );
      return "{" + members.join(",") + space() + "}";
    }
  }
}

// Random bytes, JSON-ish character soup, valid documents with a few bytes changed, and valid
// documents.
function generatedDocument(random: (n: number) => number): Buffer {
  const mode = random(5);
  if (mode === 0) return Buffer.from(Array.from({ length: random(40) }, () => random(256)));
  if (mode === 1)
    return Buffer.from(Array.from({ length: random(60) }, () => JSON_ALPHABET[random(JSON_ALPHABET.length)]));
  if (mode === 4)
    return Buffer.from(random(3) ? "{" + randomJson(random, 1).slice(1) : randomJson(random, 0));
  let bytes = Buffer.from(random(2) ? SAMPLES[random(SAMPLES.length)] : randomJson(random, 0));
  for (let edits = 1 + random(3); edits > 0; edits--) {
    const at = random(bytes.length + 1);
    const inserted = mode === 2 ? JSON_ALPHABET[random(JSON_ALPHABET.length)] : random(256);
    bytes = random(2)
      ? Buffer.concat([bytes.subarray(0, at), Buffer.from([inserted]), bytes.subarray(at)])
      : Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
  }
  return bytes;
}

function isJson(bytes: Buffer): boolean | undefined {
  const text = bytes.toString("utf8");
  if (!Buffer.from(text, "utf8").equals(bytes)) return undefined; // not UTF-8: JSON.parse cannot judge
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

describe("parsers under rtrace", () => {
  let dir = "";
  let wasm: Uint8Array<ArrayBuffer> = new Uint8Array(0);

  const stackTraceLimit = Error.stackTraceLimit;

  before(() => {
    // rtrace records a stack trace at every allocation and free; without frames that is cheap.
    Error.stackTraceLimit = 0;
    dir = mkdtempSync(join(tmpdir(), "envoy-kvm-rtrace-"));
    const out = join(dir, "harness.wasm");
    execFileSync(
      process.execPath,
      [
        ASC,
        "assembly/__tests__/rtrace-harness.ts",
        "--config",
        "assembly/__tests__/asconfig.json",
        "--runtime",
        "full",
        "--optimizeLevel",
        "1",
        "--use",
        "ASC_RTRACE=1",
        "--explicitStart",
        "-b",
        out,
      ],
      { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] },
    );
    wasm = new Uint8Array(readFileSync(out));
  });

  after(() => {
    Error.stackTraceLimit = stackTraceLimit;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("parses every configuration of the shared table without a memory fault or leak", () => {
    const traced = new Traced(wasm);
    const mismatches: string[] = [];
    const live: number[] = [];
    for (let round = 0; round < 3; round++) {
      for (const c of configCases) {
        const text = typeof c.config === "string" ? c.config : JSON.stringify(c.config);
        traced.write(Buffer.from(text, "utf8"));
        const pointer = traced.exports.configError();
        const error = pointer === 0 ? null : traced.readString(pointer);
        if (round === 0 && error !== c.error) mismatches.push(`${c.name}: ${error}`);
      }
      live.push(traced.liveBlocks());
    }
    assert.deepEqual(mismatches, []);
    // The first round may leave lazily created runtime globals; later rounds must add nothing.
    assert.deepEqual(live.slice(1), [live[0], live[0]], "blocks leaked");
    assert.deepEqual(traced.problems, []);
  });

  it("survives generated JSON, agrees with JSON.parse (parser and body scanner alike), and keeps path edits valid", () => {
    const traced = new Traced(wasm);
    const random = generator(20261127);
    const disagreements: string[] = [];
    const live: number[] = [];
    let valid = 0;
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 1500; i++) {
        const bytes = generatedDocument(random);
        traced.write(bytes);
        const verdict = traced.exports.jsonProbe();
        assert.notEqual(verdict, 2, `a path edit broke ${JSON.stringify(bytes.toString("latin1"))}`);
        assert.notEqual(
          verdict,
          3,
          `parser and scanner disagree on ${JSON.stringify(bytes.toString("latin1"))}`,
        );
        if (verdict === 0) valid++;
        const expected = isJson(bytes);
        if (expected !== undefined && expected !== (verdict === 0))
          disagreements.push(bytes.toString("utf8"));
      }
      live.push(traced.liveBlocks());
    }
    assert.deepEqual(disagreements, []);
    assert.ok(valid > 400, `only ${valid} generated documents were valid JSON; the generator lost its point`);
    assert.deepEqual(live.slice(1), [live[0], live[0]], "blocks leaked");
    assert.deepEqual(traced.problems, []);
  });
});
