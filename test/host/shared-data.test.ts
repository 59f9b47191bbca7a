// Envoy's shared-data rules (proxy-wasm-cpp-host src/shared_data.cc, docs/envoy-behaviour.md §3), directly
// and through the module's host calls on several workers.
import assert from "node:assert/strict";
import { test } from "node:test";
import { SharedData, WasmResult, sharedDataFor } from "../../host/index.ts";
import { setNextCasForTest } from "../../host/shared-data.ts";
import { okUpstream, results, startProbe } from "./helpers.ts";

test("one process-wide CAS counter: every successful set takes the next value, across keys and stores", () => {
  const a = new SharedData();
  const b = new SharedData();
  assert.equal(a.set("k1", Buffer.from("x"), 0), WasmResult.Ok);
  const c1 = a.get("k1")!.cas;
  assert.equal(b.set("k2", Buffer.from("y"), 0), WasmResult.Ok);
  assert.equal(b.get("k2")!.cas, c1 + 1);
  assert.equal(a.set("k1", Buffer.from("z"), 0), WasmResult.Ok);
  assert.equal(a.get("k1")!.cas, c1 + 2);
});

test("cas 0 is unconditional; a stale cas on a present key is CasMismatch and changes nothing", () => {
  const s = new SharedData();
  s.set("k", Buffer.from("one"), 0);
  const first = s.get("k")!;
  assert.equal(s.set("k", Buffer.from("two"), first.cas), WasmResult.Ok);
  assert.equal(s.set("k", Buffer.from("three"), first.cas), WasmResult.CasMismatch);
  assert.equal(s.get("k")!.value.toString(), "two");
  assert.equal(s.set("k", Buffer.from("four"), 0), WasmResult.Ok);
  assert.equal(s.get("k")!.value.toString(), "four");
});

test("an absent key is written whatever the cas (no create-if-absent)", () => {
  const s = new SharedData();
  assert.equal(s.set("new", Buffer.from("v"), 12345), WasmResult.Ok);
  assert.equal(s.get("new")!.value.toString(), "v");
});

test("there is no delete: an empty value keeps the key", () => {
  const s = new SharedData();
  s.set("k", Buffer.from("v"), 0);
  s.set("k", Buffer.alloc(0), 0);
  assert.equal(s.size, 1);
  assert.equal(s.get("k")!.value.length, 0);
  assert.deepEqual(
    s.keys().map((k) => k.toString()),
    ["k"],
  );
});

test("the CAS counter skips 0 when it wraps", () => {
  const s = new SharedData();
  setNextCasForTest(0xffffffff);
  s.set("a", Buffer.from("1"), 0);
  assert.equal(s.get("a")!.cas, 0xffffffff);
  s.set("b", Buffer.from("2"), 0);
  assert.equal(s.get("b")!.cas, 1);
});

test("sharedDataFor returns one store per vm_id", () => {
  assert.equal(sharedDataFor("vm-a"), sharedDataFor("vm-a"));
  assert.notEqual(sharedDataFor("vm-a"), sharedDataFor("vm-b"));
});

test("workers share one store: a write on worker 0 is read with the same cas on worker 1", async () => {
  const plugin = await startProbe({ workers: 2 });
  await plugin.worker(0).http({ path: "/", headers: [["x-probe", "shared-set=key:value:0"]] }, okUpstream);
  await plugin
    .worker(1)
    .http({ path: "/", headers: [["x-probe", "shared-get=key;shared-get=missing"]] }, okUpstream);
  const cas = plugin.sharedData.get("key")!.cas;
  assert.deepEqual(results(plugin, "shared-get=key"), [`${WasmResult.Ok} value cas ${cas}`]);
  assert.deepEqual(results(plugin, "shared-get=missing"), [String(WasmResult.NotFound)]);
});

test("proxy_set_shared_data with a stale cas from the module is CasMismatch", async () => {
  const plugin = await startProbe();
  plugin.sharedData.set("k", Buffer.from("v1"), 0);
  const stale = plugin.sharedData.get("k")!.cas;
  plugin.sharedData.set("k", Buffer.from("v2"), 0);
  await plugin
    .worker()
    .http({ path: "/", headers: [["x-probe", `shared-set=k:v3:${stale};shared-get=k`]] }, okUpstream);
  assert.deepEqual(results(plugin, `shared-set=k:v3:${stale}`), [String(WasmResult.CasMismatch)]);
  assert.match(results(plugin, "shared-get=k")[0], /^0 v2 cas /);
});
