// `envoy-kvm config check`: every configuration this repository ships passes, through the schema and
// the compiled filter; a refused one prints the filter's own line and exits 1.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { checkFile } from "../../convert/check.ts";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = path.join(ROOT, "bin/envoy-kvm.js");

function cli(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT }, (err, stdout) =>
      resolve({ code: err ? Number(err.code) : 0, stdout }),
    ),
  );
}

test("every wasm filter configuration in envoy/envoy.yaml passes", async () => {
  const file = path.join(ROOT, "envoy/envoy.yaml");
  const { ok, lines } = await checkFile(file, "envoy.yaml");
  assert.equal(ok, true, lines.join("\n"));
  // One line per envoy-kvm configuration found (each filter entry, and per-route ones), each accepted.
  assert.ok(lines.length >= 5, lines.join("\n"));
  for (const line of lines) assert.match(line, /^envoy\.yaml:\d+: ok$/);
});

test("every plugin configuration in envoy/plugins passes, through the CLI", async () => {
  const files = readdirSync(path.join(ROOT, "envoy/plugins"))
    .filter((f) => f.endsWith(".json"))
    .map((f) => `envoy/plugins/${f}`);
  const { code, stdout } = await cli(["config", "check", ...files]);
  assert.equal(code, 0, stdout);
  assert.equal(stdout, files.map((f) => `${f}: ok\n`).join(""));
});

test("a refused configuration prints the line the filter logs in Envoy and exits 1", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "kvm-config-check-"));
  try {
    const file = path.join(dir, "bad.json");
    writeFileSync(
      file,
      JSON.stringify({
        kvm_name: "a",
        operation_type: "get",
        key_source_type: "literal",
        key_source_name: "k",
        output_destination_type: "header",
        output_destination_name: "x",
        ttl: 60,
      }),
    );
    const { code, stdout } = await cli(["config", "check", file]);
    assert.equal(code, 1);
    assert.equal(
      stdout,
      `${file}: invalid configuration: ttl: only allowed when operation_type is put\n` +
        `${file}: schema: / must NOT be valid\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
