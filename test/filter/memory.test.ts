// A filter that leaks a few bytes per request takes its worker's VM down eventually (linear memory
// never shrinks; Envoy caps it at 1 GiB). Replaying the same mix of requests, successes and every
// kind of failure, must leave the module's memory exactly where it was after the first rounds.
import { it } from "node:test";
import assert from "node:assert/strict";
import { FILTER_DEBUG_WASM, FILTER_WASM, op, startKvm, type Pairs } from "./support.ts";

const ROUNDS = 400;

for (const [build, wasm] of [
  ["release", FILTER_WASM],
  ["debug", FILTER_DEBUG_WASM],
]) {
  it(`${build} build: memory stays flat over ${ROUNDS} rounds of every request path`, async () => {
    const plugin = await startKvm(
      {
        operations: [
          op({
            operation_type: "put",
            key: [
              { source_type: "header", source_name: "x-k" },
              { source_type: "query", source_name: "q" },
            ],
            value_source_type: "body",
            value_source_name: "user.name",
            ttl: 60,
            on_error_continue: true,
          }),
          op({
            operation_type: "put",
            key_source_type: "header",
            key_source_name: "x-k",
            value_source_type: "header",
            value_source_name: "x-v",
            override: false,
            on_error_continue: true,
          }),
          op({
            operation_type: "get",
            key_source_type: "header",
            key_source_name: "x-k",
            output_destination_type: "body",
            output_destination_name: "meta.v",
            on_error_continue: true,
          }),
          op({
            operation_type: "get",
            key_source_type: "header",
            key_source_name: "x-k",
            output_destination_type: "query",
            output_destination_name: "v",
            on_error_continue: true,
          }),
          op({
            operation_type: "get",
            key_source_type: "header",
            key_source_name: "x-k",
            output_destination_type: "shared_context",
            output_destination_name: "c",
            on_error_continue: true,
          }),
          op({
            operation_type: "get",
            key_source_type: "shared_context",
            key_source_name: "c",
            output_destination_type: "response_header",
            output_destination_name: "x-r",
            default_value: "d",
            on_error_continue: true,
          }),
          op({
            operation_type: "delete",
            key_source_type: "body",
            key_source_name: "user.gone",
            on_error_continue: true,
          }),
          op({
            operation_type: "get",
            key_source_type: "header",
            key_source_name: "x-k",
            output_destination_type: "header",
            output_destination_name: "x-out",
          }),
        ],
      },
      { wasm },
    );
    const w = plugin.worker();
    const mix: { path: string; headers: Pairs; body?: string }[] = [
      {
        path: "/?q=1",
        headers: [
          ["x-k", "a"],
          ["x-v", "v"],
        ],
        body: '{"user":{"name":"n","gone":"a"}}',
      },
      { path: "/?q=%zz", headers: [["x-k", "b"]], body: "not json" },
      { path: "/", headers: [["x-v", "v"]] }, // missing key: 400 from the last operation
      { path: "/?q=2", headers: [["x-k", "c".repeat(600)]], body: "{}" }, // key too large
      {
        path: "/?q=3",
        headers: [
          ["x-k", "d"],
          ["x-v", "line\nbreak"],
        ],
        body: '{"user":{"name":"\\u00e9"}}',
      },
    ];
    const round = async () => {
      for (const r of mix) await w.http({ method: r.body ? "POST" : "GET", ...r }, () => ({ status: 200 }));
    };
    for (let i = 0; i < 50; i++) await round();
    const settled = w.vm.memory.byteLength;
    for (let i = 0; i < ROUNDS; i++) await round();
    assert.equal(w.failed, false);
    assert.equal(w.vm.memory.byteLength, settled, `grew by ${w.vm.memory.byteLength - settled} bytes`);
  });
}

it("large JSON bodies in flight on one worker stay within a small memory bound", async () => {
  // A 1 MiB body of small numbers used to parse into ~300 MiB of tree per request, and a few such
  // requests in flight failed the VM at Envoy's 1 GiB cap.
  const plugin = await startKvm(
    {
      operations: [
        op({
          operation_type: "put",
          key_source_type: "literal",
          key_source_name: "k",
          value_source_type: "body",
          value_source_name: "a.b",
        }),
        op({
          operation_type: "get",
          key_source_type: "literal",
          key_source_name: "k",
          output_destination_type: "body",
          output_destination_name: "a.copy",
        }),
      ],
    },
    { bufferLimitBytes: 2 * 1024 * 1024 },
  );
  const w = plugin.worker();
  const numbers = Buffer.from(`{"a":{"b":"x","n":[${Array(500_000).fill("0").join(",")}]}}`);
  const headers: Pairs = [
    [":method", "POST"],
    [":path", "/"],
    [":authority", "a"],
  ];
  for (let i = 0; i < 12; i++) {
    // Each stream stays open (awaiting its upstream) after its body was processed.
    const id = w.initializeHttpContext();
    w.callOnRequestHeaders(id, headers, false);
    w.callOnRequestBody(id, numbers, true);
    assert.equal(w.getSentLocalResponse(id), undefined);
    assert.equal(w.failed, false);
  }
  assert.equal(plugin.getCounterMetric("envoy_kvm.local.get.hit.settings"), 12);
  const mib = w.vm.memory.byteLength / 1024 / 1024;
  assert.ok(mib < 32, `module memory ${mib} MiB`);
});
