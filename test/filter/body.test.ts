// When the filter waits for the body, and when it does not.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { StreamStalledError } from "../../host/index.ts";
import { op, startKvm } from "./support.ts";

const Continue = 0;
const StopIteration = 1;
const StopAllIterationAndWatermark = 4;
const StopIterationAndBuffer = 1;

const putFromBody = op({
  operation_type: "put",
  key_source_type: "literal",
  key_source_name: "k",
  value_source_type: "body",
  value_source_name: "order.id",
});
const putFromHeader = op({
  operation_type: "put",
  key_source_type: "literal",
  key_source_name: "k",
  value_source_type: "header",
  value_source_name: "x-v",
});
const getToHeader = op({
  operation_type: "get",
  key_source_type: "literal",
  key_source_name: "k",
  output_destination_type: "header",
  output_destination_name: "x-out",
});
const headers: [string, string][] = [
  [":method", "POST"],
  [":path", "/"],
  [":authority", "a"],
  ["x-v", "from-header"],
];

describe("body handling", () => {
  it("operations that need no body run on the headers and let the body stream", async () => {
    const plugin = await startKvm({ operations: [putFromHeader, getToHeader] });
    const w = plugin.worker();
    const id = w.initializeHttpContext();
    assert.equal(w.callOnRequestHeaders(id, headers, false), Continue);
    // Both operations ran before any body arrived.
    assert.equal(plugin.getCounterMetric("envoy_kvm.local.put.ok.settings"), 1);
    assert.equal(plugin.getCounterMetric("envoy_kvm.local.get.hit.settings"), 1);
    assert.equal(w.callOnRequestBody(id, Buffer.from("chunk"), false), Continue);
    assert.equal(w.callOnRequestBody(id, Buffer.from("chunk"), true), Continue);
  });

  it("a body source holds the headers, buffers every chunk, and runs at end of stream", async () => {
    const plugin = await startKvm({ operations: [putFromBody, getToHeader] });
    const w = plugin.worker();
    const id = w.initializeHttpContext();
    assert.equal(w.callOnRequestHeaders(id, headers, false), StopIteration);
    assert.equal(w.callOnRequestBody(id, Buffer.from('{"order":{"i'), false), StopIterationAndBuffer);
    assert.equal(plugin.getCounterMetric("envoy_kvm.local.put.ok.settings"), undefined);
    assert.equal(w.callOnRequestBody(id, Buffer.from('d":"A-17"}}'), true), Continue);
    assert.equal(plugin.getCounterMetric("envoy_kvm.local.put.ok.settings"), 1);
    assert.equal(w.getCurrentRequestHeaders(id).find(([k]) => k === "x-out")?.[1], "A-17");
  });

  it("a value split across chunks reaches the store whole (http path)", async () => {
    const plugin = await startKvm({ operations: [putFromBody, getToHeader] });
    const body = Buffer.from(JSON.stringify({ order: { id: "x".repeat(3000) } }));
    const res = await plugin.worker().http(
      {
        method: "POST",
        path: "/",
        chunks: [body.subarray(0, 1000), body.subarray(1000, 2500), body.subarray(2500)],
      },
      () => ({ status: 200 }),
    );
    assert.equal(res.status, 200);
    assert.equal(res.upstreamRequest?.headers.find(([k]) => k === "x-out")?.[1], "x".repeat(3000));
    assert.equal(res.upstreamRequest?.body.toString(), body.toString());
  });

  it("a request whose headers end the stream runs at once; a body source is then missing", async () => {
    const plugin = await startKvm({ operations: [putFromBody] });
    const w = plugin.worker();
    const id = w.initializeHttpContext();
    w.callOnRequestHeaders(id, headers, true);
    assert.equal(w.getSentLocalResponse(id)?.statusCode, 400);
    assert.match(w.getSentLocalResponse(id)!.body.toString(), /"missing_value"/);
  });

  it("without allow_on_headers_stop_iteration Envoy stops the body too: the request stalls (why the flag is required)", async () => {
    const plugin = await startKvm({ operations: [putFromBody] }, { allowOnHeadersStopIteration: false });
    const w = plugin.worker();
    const id = w.initializeHttpContext();
    assert.equal(w.callOnRequestHeaders(id, headers, false), StopAllIterationAndWatermark);
    await assert.rejects(
      w.http({ method: "POST", path: "/", body: '{"order":{"id":"1"}}' }, () => ({ status: 200 })),
      StreamStalledError,
    );
  });
});

describe("requests with trailers", () => {
  it("the body is complete at the trailers: the operations run there and their body edits go upstream", async () => {
    const plugin = await startKvm({
      operations: [
        putFromBody,
        op({
          operation_type: "get",
          key_source_type: "literal",
          key_source_name: "k",
          output_destination_type: "body",
          output_destination_name: "order.copy",
        }),
      ],
    });
    const res = await plugin.worker().http(
      {
        method: "POST",
        path: "/",
        chunks: [Buffer.from('{"order":{"id":'), Buffer.from('"T-9"}}')],
        trailers: [["x-checksum", "abc"]],
      },
      () => ({ status: 200 }),
    );
    assert.equal(res.status, 200, res.body.toString());
    assert.deepEqual(JSON.parse(res.upstreamRequest!.body.toString()), { order: { id: "T-9", copy: "T-9" } });
    assert.deepEqual(res.upstreamRequest?.trailers, [["x-checksum", "abc"]]);
    assert.equal(plugin.getCounterMetric("envoy_kvm.local.get.hit.settings"), 1);
  });
});
