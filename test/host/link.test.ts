// Linking: the module may import only what Envoy registers for its ABI version, with the exact
// signatures (proxy-wasm-cpp-host src/wasm.cc registerCallbacks, src/v8/v8.cc V8::link).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { LogLevel, PluginStartError, checkLink, parseModule, startPlugin } from "../../host/index.ts";
import { capMemoryPages } from "../../host/link.ts";
import { PROBE, assemble, type ImportSpec } from "./helpers.ts";

const i32x = (n: number) => Array<"i32">(n).fill("i32");
const log: ImportSpec = { module: "env", name: "proxy_log", params: i32x(3), results: ["i32"] };

async function startError(wasm: Uint8Array): Promise<PluginStartError> {
  try {
    await startPlugin({ wasm, rootId: "x" });
  } catch (err) {
    assert.ok(err instanceof PluginStartError, `expected PluginStartError, got ${err}`);
    return err;
  }
  assert.fail("startPlugin resolved");
}

test("a module with only Envoy's ABI 0.2.0 imports links, the probe fixture included", () => {
  assert.equal(checkLink(parseModule(assemble({ imports: [log] }))).error, undefined);
  const probe = checkLink(parseModule(readFileSync(PROBE)));
  assert.equal(probe.error, undefined);
  assert.equal(probe.abi, "0_2_0");
});

for (const forbidden of [
  "proxy_clear_route_cache",
  "proxy_get_configuration",
  "proxy_continue_request",
  "proxy_get_log_level",
]) {
  test(`importing env.${forbidden} is refused for ABI 0.2.0`, async () => {
    const params =
      forbidden === "proxy_get_configuration" ? i32x(2) : forbidden === "proxy_get_log_level" ? i32x(1) : [];
    const err = await startError(
      assemble({ imports: [log, { module: "env", name: forbidden, params, results: ["i32"] }] }),
    );
    assert.match(err.message, new RegExp(`missing import: env\\.${forbidden}$`, "m"));
  });
}

test("AssemblyScript's env.abort, env.trace and env.seed are not provided", async () => {
  // Signatures do not matter: the name alone is unknown to Envoy.
  for (const nm of ["abort", "trace", "seed"]) {
    const err = await startError(
      assemble({ imports: [{ module: "env", name: nm, params: i32x(4), results: [] }] }),
    );
    assert.match(err.message, new RegExp(`missing import: env\\.${nm}$`, "m"));
  }
});

test("a wrong signature fails with an import type mismatch", async () => {
  const err = await startError(
    assemble({ imports: [{ module: "env", name: "proxy_log", params: i32x(2), results: ["i32"] }] }),
  );
  assert.match(
    err.message,
    /import type mismatch: env\.proxy_log, want: i32 i32 -> i32, but host exports: i32 i32 i32 -> i32/,
  );
  const i64 = await startError(
    assemble({
      imports: [{ module: "env", name: "proxy_increment_metric", params: ["i32", "i32"], results: ["i32"] }],
    }),
  );
  assert.match(i64.message, /proxy_increment_metric, want: i32 i32 -> i32, but host exports: i32 i64 -> i32/);
});

test("WASI is provided under wasi_unstable and wasi_snapshot_preview1, nothing else", async () => {
  for (const module of ["wasi_unstable", "wasi_snapshot_preview1"]) {
    const wasm = assemble({
      imports: [
        { module, name: "fd_write", params: i32x(4), results: ["i32"] },
        { module, name: "clock_time_get", params: ["i32", "i64", "i32"], results: ["i32"] },
        { module, name: "proc_exit", params: ["i32"], results: [] },
      ],
    });
    assert.equal(checkLink(parseModule(wasm)).error, undefined, module);
  }
  const err = await startError(
    assemble({ imports: [{ module: "wasi_preview2", name: "fd_write", params: i32x(4), results: ["i32"] }] }),
  );
  assert.match(err.message, /missing import: wasi_preview2\.fd_write/);
});

test("no ABI marker → Missing or unknown Proxy-Wasm ABI version; no malloc → refused", async () => {
  assert.match(
    (await startError(assemble({ imports: [log], abiMarker: null }))).message,
    /Missing or unknown Proxy-Wasm ABI version/,
  );
  assert.match(
    (await startError(assemble({ imports: [log], malloc: false }))).message,
    /missing malloc function/,
  );
});

test("ABI 0.2.1 may import proxy_get_log_level, 0.1.0 may import proxy_clear_route_cache", () => {
  const lvl: ImportSpec = { module: "env", name: "proxy_get_log_level", params: ["i32"], results: ["i32"] };
  assert.equal(
    checkLink(parseModule(assemble({ imports: [lvl], abiMarker: "proxy_abi_version_0_2_1" }))).error,
    undefined,
  );
  const crc: ImportSpec = { module: "env", name: "proxy_clear_route_cache", params: [], results: ["i32"] };
  assert.equal(
    checkLink(parseModule(assemble({ imports: [crc], abiMarker: "proxy_abi_version_0_1_0" }))).error,
    undefined,
  );
});

for (const entry of ["_start", "_initialize"]) {
  test(`${entry} runs once per VM before the root context exists`, async () => {
    const plugin = await startPlugin({
      wasm: assemble({ imports: [log], logHiFrom: entry }),
      rootId: "x",
      workers: 2,
    });
    // canary + 2 workers
    assert.deepEqual(plugin.getLogs(LogLevel.Info), ["hi", "hi", "hi"]);
  });
}

test("a precompiled WebAssembly.Module is checked by import name", async () => {
  const bad = new WebAssembly.Module(
    assemble({ imports: [{ module: "env", name: "proxy_clear_route_cache", params: [], results: ["i32"] }] }),
  );
  await assert.rejects(
    startPlugin({ wasm: bad, rootId: "x" }),
    /missing import: env\.proxy_clear_route_cache/,
  );
  const good = new WebAssembly.Module(assemble({ imports: [log] }));
  assert.equal((await startPlugin({ wasm: good, rootId: "x" })).workers.length, 1);
});

test("memory is capped like Envoy's V8 (1 GiB): growing past the cap fails inside the module", () => {
  const capped = new WebAssembly.Instance(
    new WebAssembly.Module(capMemoryPages(assemble({ imports: [] }), 2)),
  );
  const memory = capped.exports.memory as WebAssembly.Memory;
  memory.grow(1);
  assert.throws(() => memory.grow(1), RangeError);
  assert.equal(memory.buffer.byteLength, 2 * 65536);
});
