// A filter that leaks a few bytes per request takes its worker's VM down eventually (linear memory
// never shrinks; Envoy caps it at 1 GiB). Replaying the same mix of requests, successes and every
// kind of failure, must leave the module's memory exactly where it was after the first rounds.
import { it } from "node:test";
import assert from "node:assert/strict";
import { FILTER_DEBUG_WASM, FILTER_WASM, op, startKvm, type Pairs } from "./support.ts";
import { everyPathConfiguration, everyPathRound } from "./every-path.ts";

const ROUNDS = 400;

for (const [build, wasm] of [
  ["release", FILTER_WASM],
  ["debug", FILTER_DEBUG_WASM],
]) {
  it(`${build} build: memory stays flat over ${ROUNDS} rounds of every request path`, async () => {
    const plugin = await startKvm(everyPathConfiguration, { wasm });
    const w = plugin.worker();
    const round = () => everyPathRound(w);
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
