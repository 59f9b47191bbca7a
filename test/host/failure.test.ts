// VM failure the way Envoy handles it: a trap fails the worker's VM; with FAIL_CLOSED the current
// and every later stream on it get 503 wasm_fail_stream (proxy-wasm-cpp-host src/context.cc
// CHECK_FAIL, envoy context.cc Context::failStream); start-up failures refuse the configuration.
import assert from "node:assert/strict";
import { test } from "node:test";
import { LogLevel, PluginStartError } from "../../host/index.ts";
import { infoLogs, okUpstream, startProbe } from "./helpers.ts";

test("a trap answers 503 wasm_fail_stream, logs the trap, and fails only that worker's VM", async () => {
  const plugin = await startProbe({ workers: 2 });
  let upstreamCalls = 0;
  const upstream = () => {
    upstreamCalls++;
    return { status: 200 };
  };
  const res = await plugin.worker(0).http({ path: "/", headers: [["x-probe", "trap"]] }, upstream);
  assert.equal(res.status, 503);
  assert.equal(res.localReply?.details, "wasm_fail_stream");
  assert.equal(res.body.length, 0);
  assert.equal(plugin.worker(0).failed, true);
  assert.equal(plugin.worker(1).failed, false);
  assert.ok(
    plugin
      .getLogs(LogLevel.Error)
      .some((l) => /^Function: proxy_on_request_headers failed: Uncaught RuntimeError: unreachable/.test(l)),
    plugin.getLogs(LogLevel.Error).join("\n"),
  );
  // Later streams on the failed VM get the same answer without reaching the module.
  const before = infoLogs(plugin).length;
  const later = await plugin.worker(0).http({ path: "/later" }, upstream);
  assert.equal(later.status, 503);
  assert.equal(later.localReply?.details, "wasm_fail_stream");
  assert.equal(infoLogs(plugin).length, before, "the failed VM is not called again");
  // The other worker still serves.
  assert.equal((await plugin.worker(1).http({ path: "/" }, upstream)).status, 200);
  assert.equal(upstreamCalls, 1);
});

test("throw: abort logs the message critically, proc_exit returns, the following trap fails the VM", async () => {
  const plugin = await startProbe();
  const res = await plugin.worker().http({ path: "/", headers: [["x-probe", "throw"]] }, okUpstream);
  assert.equal(res.status, 503);
  const critical = plugin.getLogs(LogLevel.Critical);
  assert.equal(critical.length, 1);
  assert.match(critical[0], /^probe throw at: test\/host\/fixtures\/probe\.ts\(\d+:\d+\)$/);
  assert.ok(plugin.getLogs(LogLevel.Trace).includes("wasi_unstable proc_exit"));
});

test("a trap in a response callback turns the response into 503 wasm_fail_stream", async () => {
  const plugin = await startProbe();
  const res = await plugin
    .worker()
    .http({ path: "/", headers: [["x-probe-response", "trap"]] }, () => ({ status: 200, body: "x" }));
  assert.equal(res.status, 503);
  assert.equal(res.localReply?.details, "wasm_fail_stream");
});

test("FAIL_OPEN: the trapping stream and later ones pass through without the filter", async () => {
  const plugin = await startProbe({ failOpen: true });
  const first = await plugin
    .worker()
    .http({ path: "/", headers: [["x-probe", "trap"]] }, () => ({ status: 204 }));
  assert.equal(first.status, 204);
  const later = await plugin
    .worker()
    .http({ path: "/", headers: [["x-probe", "local=403:no:"]] }, () => ({ status: 204 }));
  assert.equal(later.status, 204);
});

test("on_configure returning false rejects the plugin with the module's logs (canary only)", async () => {
  await assert.rejects(startProbe({ configuration: "fail", workers: 3 }), (err: unknown) => {
    assert.ok(err instanceof PluginStartError);
    assert.match(err.message, /Failed to configure base Wasm plugin/);
    assert.deepEqual(
      err.logs.filter((l) => l.includes("configuration rejected")),
      ["probe: configuration rejected"],
    );
    return true;
  });
});

test("a trap in on_configure rejects the plugin", async () => {
  await assert.rejects(startProbe({ configuration: "trap" }), (err: unknown) => {
    assert.ok(err instanceof PluginStartError);
    assert.match(err.message, /Function: proxy_on_configure failed: Uncaught RuntimeError: unreachable/);
    return true;
  });
});

test("the plugin and VM configurations reach on_configure and on_vm_start on every VM", async () => {
  const plugin = await startProbe({ configuration: "cfg-1", vmConfiguration: "vm-1", workers: 2 });
  // canary + 2 workers
  assert.deepEqual(
    infoLogs(plugin).filter((l) => l.startsWith("configure")),
    ["configure 0 cfg-1", "configure 0 cfg-1", "configure 0 cfg-1"],
  );
  assert.equal(infoLogs(plugin).filter((l) => l === "vm_start 0 vm-1").length, 3);
  // The plugin configuration is only readable during on_configure.
  await plugin.worker().http({ path: "/", headers: [["x-probe", "body=7:0:100;body=6:0:100"]] }, okUpstream);
  assert.deepEqual(
    infoLogs(plugin).filter((l) => l.startsWith("body=")),
    ["body=7:0:100 -> 1", "body=6:0:100 -> 0 vm-1"],
  );
});
