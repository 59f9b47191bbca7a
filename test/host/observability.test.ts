// Metrics, logs, WASI output and the clock (envoy context.cc defineMetric/incrementMetric/…,
// proxy-wasm-cpp-host src/exports.cc writevImpl and clock_time_get).
import assert from "node:assert/strict";
import { test } from "node:test";
import { LogLevel, ManualClock, WasmResult, decodePairs, encodeStringPairs } from "../../host/index.ts";
import { PAIRS_MAX_COUNT } from "../../host/abi.ts";
import { okUpstream, results, startProbe } from "./helpers.ts";

test("metric ids are per VM, the stat is shared by name; counters only go up", async () => {
  const plugin = await startProbe({ workers: 2 });
  await plugin.worker(0).http({ path: "/", headers: [["x-probe", "metric=0:kvm.hits:2"]] }, okUpstream);
  await plugin
    .worker(1)
    .http({ path: "/", headers: [["x-probe", "metric=0:kvm.hits:3;metric=0:kvm.other:-1"]] }, okUpstream);
  assert.deepEqual(results(plugin, "metric=0:kvm.hits:2"), ["0 id 4 inc 0 get 0 2"]);
  assert.deepEqual(
    results(plugin, "metric=0:kvm.hits:3"),
    ["0 id 4 inc 0 get 0 5"],
    "same id on the other VM, same stat",
  );
  assert.deepEqual(results(plugin, "metric=0:kvm.other:-1"), [
    `0 id 8 inc ${WasmResult.BadArgument} get 0 0`,
  ]);
  assert.equal(plugin.getCounterMetric("kvm.hits"), 5);
  assert.equal(plugin.getCounterMetric("kvm.other"), 0);
  assert.equal(plugin.getCounterMetric("never.defined"), undefined);
});

test("gauges go both ways and record sets them; histograms cannot be read back", async () => {
  const plugin = await startProbe();
  await plugin.worker().http(
    {
      path: "/",
      headers: [["x-probe", "metric=1:kvm.size:5;metric=1:kvm.size:-2;record=42;metric=2:kvm.lat:1"]],
    },
    okUpstream,
  );
  assert.deepEqual(results(plugin, "metric=1:kvm.size:5"), ["0 id 5 inc 0 get 0 5"]);
  assert.deepEqual(results(plugin, "metric=1:kvm.size:-2"), ["0 id 9 inc 0 get 0 3"]);
  assert.equal(plugin.getGaugeMetric("kvm.size"), 42);
  // The value printed after get is whatever was in the out-param: nothing is written on BadArgument.
  assert.match(
    results(plugin, "metric=2:kvm.lat:1")[0],
    new RegExp(`^0 id 6 inc ${WasmResult.BadArgument} get ${WasmResult.BadArgument} `),
  );
});

test("fd_write: fd 1 is an info log, fd 2 an error log (trailing newline dropped), others EBADF", async () => {
  const plugin = await startProbe();
  await plugin
    .worker()
    .http({ path: "/", headers: [["x-probe", "fd=1:to stdout\n;fd=2:to stderr;fd=3:nowhere"]] }, okUpstream);
  assert.ok(plugin.getLogs(LogLevel.Info).includes("to stdout"));
  assert.ok(plugin.getLogs(LogLevel.Error).includes("to stderr"));
  assert.deepEqual(results(plugin, "fd=3:nowhere"), ["8"]);
});

test("proxy_get_current_time_nanoseconds reads the plugin's clock", async () => {
  const clock = new ManualClock(1_700_000_000_000);
  const plugin = await startProbe({ clock });
  await plugin.worker().http({ path: "/", headers: [["x-probe", "time"]] }, okUpstream);
  clock.advance(1500);
  await plugin.worker().http({ path: "/", headers: [["x-probe", "time"]] }, okUpstream);
  assert.deepEqual(results(plugin, "time"), ["0 1700000000000000000", "0 1700000001500000000"]);
});

test("WASI clock_time_get: realtime and monotonic from the clock, other clocks ENOTSUP; environ from the options", async () => {
  const clock = new ManualClock(1_000);
  const plugin = await startProbe({ clock, environment: { A: "1", BB: "22" } });
  await plugin
    .worker()
    .http(
      { path: "/", headers: [["x-probe", "wasi-clock=0;wasi-clock=1;wasi-clock=2;wasi-env"]] },
      okUpstream,
    );
  assert.deepEqual(results(plugin, "wasi-clock=0"), ["0 1000000000"]);
  assert.deepEqual(results(plugin, "wasi-clock=1"), ["0 1000000000"]);
  assert.deepEqual(results(plugin, "wasi-clock=2"), ["58 0"]);
  assert.deepEqual(results(plugin, "wasi-env"), ["0 2 10"], "A=1\\0 and BB=22\\0");
});

test("logs keep their level; getLogs(level) filters; logSink sees every line", async () => {
  const seen: [number, string][] = [];
  const plugin = await startProbe({ logSink: (level, message) => seen.push([level, message]) });
  await plugin.worker().http({ path: "/", headers: [["x-probe", "log=hello"]] }, okUpstream);
  assert.ok(plugin.getLogs(LogLevel.Info).includes("log=hello -> hello"));
  assert.equal(plugin.getLogs(LogLevel.Error).includes("log=hello -> hello"), false);
  assert.ok(seen.some(([l, m]) => l === LogLevel.Info && m === "log=hello -> hello"));
  assert.equal(seen.length, plugin.getLogs().length);
});

test("proxy_done is NotFound for a live plugin; set_effective_context to an unknown id is BadArgument", async () => {
  const plugin = await startProbe();
  await plugin.worker().http({ path: "/", headers: [["x-probe", "done;effective=999"]] }, okUpstream);
  assert.deepEqual(results(plugin, "done"), [String(WasmResult.NotFound)]);
  assert.deepEqual(results(plugin, "effective=999"), [String(WasmResult.BadArgument)]);
});

test("header pairs: round trip, and malformed or oversized buffers decode as no pairs", () => {
  const encoded = encodeStringPairs([
    ["a", "1"],
    ["", ""],
    ["key", "value"],
  ]);
  assert.deepEqual(
    decodePairs(encoded).map(([k, v]) => [k.toString(), v.toString()]),
    [
      ["a", "1"],
      ["", ""],
      ["key", "value"],
    ],
  );
  assert.deepEqual(decodePairs(encoded.subarray(0, encoded.length - 1)), [], "truncated");
  assert.deepEqual(decodePairs(Buffer.concat([encoded, Buffer.from([0])])), [], "trailing bytes");
  const bad = Buffer.from(encoded);
  bad[4 + 3 * 8 + 1] = 0x41; // the NUL after "a" is not a NUL
  assert.deepEqual(decodePairs(bad), []);
  const many = encodeStringPairs(
    Array.from({ length: PAIRS_MAX_COUNT + 1 }, (_, i) => [`k${i}`, "v"] as [string, string]),
  );
  assert.deepEqual(decodePairs(many), []);
  const atLimit = encodeStringPairs(
    Array.from({ length: PAIRS_MAX_COUNT }, (_, i) => [`k${i}`, "v"] as [string, string]),
  );
  assert.equal(decodePairs(atLimit).length, PAIRS_MAX_COUNT);
});

test("set_header_map_pairs replaces the whole map and lower-cases keys", async () => {
  const plugin = await startProbe();
  const res = await plugin
    .worker()
    .http({ path: "/old", headers: [["x-probe", "set-pairs=0:a:1:B:2"]] }, (r) => ({
      status: 200,
      body: JSON.stringify(r.headers),
    }));
  assert.deepEqual(JSON.parse(res.body.toString()), [
    ["a", "1"],
    ["b", "2"],
  ]);
});
