// proxy_get_buffer_bytes / proxy_set_buffer_bytes on the request body, exactly as Envoy ≥ 1.35 answers.
import assert from "node:assert/strict";
import { test } from "node:test";
import { WasmResult } from "../../host/index.ts";
import { results, startProbe } from "./helpers.ts";

/** Runs `commands` in on_request_body (end_of_stream 1) of a request whose body is `body`. */
async function onBody(body: string, commands: string) {
  const plugin = await startProbe();
  let upstreamBody: string | undefined;
  await plugin
    .worker()
    .http({ path: "/", method: "POST", body, headers: [["x-probe-body", commands]] }, (r) => {
      upstreamBody = r.body.toString();
      return { status: 200 };
    });
  return { plugin, upstreamBody };
}

// Envoy source/extensions/common/wasm/context.cc, Buffer::copyFrom (the version that also reads
// allow_on_headers_stop_iteration, i.e. 1.35+): start 0 drains `length` bytes (OwnedImpl::drain
// stops at the end of the buffer) and prepends the data; otherwise start ≥ size appends and
// 0 < start < size is BadArgument.
test("set_buffer_bytes with start 0 and 0 < length < size replaces the first `length` bytes", async () => {
  const { plugin, upstreamBody } = await onBody("hello world", "body-set=0:0:5:HEY;body=0:0:100");
  assert.deepEqual(results(plugin, "body-set=0:0:5:HEY"), [String(WasmResult.Ok)]);
  assert.deepEqual(results(plugin, "body=0:0:100"), ["0 HEY world"]);
  assert.equal(upstreamBody, "HEY world");
});

test("set_buffer_bytes: every start/length case of Buffer::copyFrom", async () => {
  const { Ok, BadArgument } = WasmResult;
  const cases: [string, WasmResult, string][] = [
    // [command on "abcdef", result, body afterwards]
    ["body-set=0:0:0:X", Ok, "Xabcdef"], // start 0, length 0: prepend
    ["body-set=0:0:2:X", Ok, "Xcdef"], // start 0, length < size: drain 2, prepend
    ["body-set=0:0:6:X", Ok, "X"], // start 0, length = size: replace everything
    ["body-set=0:0:99:X", Ok, "X"], // start 0, length > size: the drain stops at the end
    ["body-set=0:6:0:X", Ok, "abcdefX"], // start = size: append
    ["body-set=0:6:3:X", Ok, "abcdefX"], // start = size: append, the length does not matter
    ["body-set=0:9:1:X", Ok, "abcdefX"], // start > size: append
    ["body-set=0:3:0:X", BadArgument, "abcdef"], // 0 < start < size: BadArgument, unchanged
    ["body-set=0:3:3:X", BadArgument, "abcdef"],
  ];
  for (const [command, result, after] of cases) {
    const { plugin, upstreamBody } = await onBody("abcdef", command);
    assert.deepEqual(results(plugin, command), [String(result)], command);
    assert.equal(upstreamBody, after, command);
  }
});

// proxy-wasm-cpp-host src/exports.cc get_buffer_bytes (since "Don't overread buffers", PR #303):
// start > size makes length 0, start + length > size clamps length to size - start, and a zero
// length writes pointer 0 and size 0 and returns Ok (InvalidMemoryAccess if a slot is outside
// memory) — nothing is allocated in the module.
test("get_buffer_bytes: start past the end is Ok with pointer 0 and size 0 written", async () => {
  const { plugin } = await onBody("hello", "body-raw=0:9:4");
  assert.deepEqual(results(plugin, "body-raw=0:9:4"), ["0 ptr 0 size 0"]);
});

test("get_buffer_bytes: a zero length writes pointer 0 and size 0", async () => {
  const { plugin } = await onBody("hello", "body-raw=0:5:3;body-raw=0:2:0;body-raw=0:0:0");
  assert.deepEqual(results(plugin, "body-raw=0:5:3"), ["0 ptr 0 size 0"], "start = size");
  assert.deepEqual(results(plugin, "body-raw=0:2:0"), ["0 ptr 0 size 0"], "length 0");
  assert.deepEqual(results(plugin, "body-raw=0:0:0"), ["0 ptr 0 size 0"]);
});

test("get_buffer_bytes: a zero length with the pointer slot outside memory is InvalidMemoryAccess", async () => {
  const { plugin } = await onBody("hello", "body-raw=0:9:4:bad;body-raw=0:1:0:bad");
  assert.deepEqual(results(plugin, "body-raw=0:9:4:bad"), [
    `${WasmResult.InvalidMemoryAccess} ptr unset size 4294967295`,
  ]);
  assert.deepEqual(results(plugin, "body-raw=0:1:0:bad"), [
    `${WasmResult.InvalidMemoryAccess} ptr unset size 4294967295`,
  ]);
});

test("get_buffer_bytes: a range running past the end is clamped", async () => {
  const { plugin } = await onBody("hello", "body-raw=0:3:100;body-raw=0:1:2");
  assert.deepEqual(results(plugin, "body-raw=0:3:100"), ["0 ptr set size 2 lo"]);
  assert.deepEqual(results(plugin, "body-raw=0:1:2"), ["0 ptr set size 2 el"]);
});
