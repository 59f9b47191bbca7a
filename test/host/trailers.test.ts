// Request and response trailers as Envoy's filter manager drives them (envoy
// source/common/http/filter_manager.cc decodeTrailers / commonHandleAfterTrailersCallback /
// commonContinue, and source/extensions/common/wasm/context.cc decodeTrailers, getMap, getBuffer).
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  FilterDataStatus,
  FilterTrailersStatus,
  StreamStalledError,
  WasmResult,
  type UpstreamRequest,
} from "../../host/index.ts";
import { infoLogs, okUpstream, results, startProbe } from "./helpers.ts";

const header = (headers: [string, string][] | undefined, name: string) =>
  headers?.find(([k]) => k === name)?.[1];

/**
 * The probe's callback lines (request_headers, request_body, request_trailers, response_…), in order;
 * the request header count is left out (it depends on the probe's own x-probe-* headers).
 */
const callbacks = (logs: string[]) =>
  logs
    .filter((l) => /^(request|response)_(headers|body|trailers) /.test(l))
    .map((l) => l.replace(/^request_headers \d+ /, "request_headers "));

test("trailers: the last body callback has no end_of_stream, on_request_trailers follows, the upstream gets them", async () => {
  const plugin = await startProbe();
  let upstreamSaw: UpstreamRequest | undefined;
  const res = await plugin.worker().http(
    {
      path: "/",
      method: "POST",
      chunks: [Buffer.from("ab"), Buffer.from("cd")],
      trailers: [
        ["X-Checksum", "abcd"],
        ["x-count", "2"],
      ],
    },
    (r) => {
      upstreamSaw = r;
      return { status: 200, body: "ok", trailers: [["grpc-status", "0"]] };
    },
  );
  assert.deepEqual(callbacks(infoLogs(plugin)), [
    "request_headers eos 0",
    "request_body 2 eos 0",
    "request_body 2 eos 0",
    "request_trailers 2",
    "response_headers 200 eos 0",
    "response_body 2 eos 0",
    "response_trailers 1",
  ]);
  assert.equal(upstreamSaw?.body.toString(), "abcd");
  assert.deepEqual(upstreamSaw?.trailers, [
    ["x-checksum", "abcd"],
    ["x-count", "2"],
  ]);
  assert.deepEqual(res.upstreamRequest?.trailers, upstreamSaw?.trailers);
  assert.deepEqual(res.trailers, [["grpc-status", "0"]]);
  assert.equal(res.body.toString(), "ok");
  assert.equal(
    header(res.headers, "content-length"),
    undefined,
    "a response with trailers is not framed by length",
  );
});

test("trailers without a body: headers without end_of_stream, then the trailers callback, no body callback", async () => {
  const plugin = await startProbe();
  const res = await plugin.worker().http({ path: "/", trailers: [["x-t", "1"]] }, okUpstream);
  assert.deepEqual(callbacks(infoLogs(plugin)).slice(0, 2), ["request_headers eos 0", "request_trailers 1"]);
  assert.equal(res.upstreamRequest?.body.length, 0);
  assert.deepEqual(res.upstreamRequest?.trailers, [["x-t", "1"]]);
});

test("no trailers: end_of_stream on the last body callback, no trailers callback, no trailers field", async () => {
  const plugin = await startProbe();
  const res = await plugin
    .worker()
    .http({ path: "/", method: "POST", chunks: [Buffer.from("ab"), Buffer.from("cd")] }, (r) => {
      assert.equal(r.trailers, undefined);
      return { status: 200, body: "ok" };
    });
  assert.deepEqual(callbacks(infoLogs(plugin)), [
    "request_headers eos 0",
    "request_body 2 eos 0",
    "request_body 2 eos 1",
    "response_headers 200 eos 0",
    "response_body 2 eos 1",
  ]);
  assert.equal(res.upstreamRequest?.body.toString(), "abcd");
  assert.equal(res.upstreamRequest?.trailers, undefined);
  assert.equal(res.trailers, undefined);
  assert.equal(header(res.headers, "content-length"), "2");
});

test("map 1 is the trailers during on_request_trailers: readable and editable; edits reach the upstream", async () => {
  const plugin = await startProbe();
  const res = await plugin.worker().http(
    {
      path: "/",
      method: "POST",
      body: "b",
      trailers: [
        ["x-t", "1"],
        ["x-drop", "x"],
      ],
      headers: [
        ["x-probe-body", "header-add=1:x-early:1"],
        [
          "x-probe-trailers",
          "header-get=1:x-t;header-add=1:x-added:yes;header-replace=1:x-t:2;header-remove=1:x-drop;header-pairs=1;header-add=0:x-late:1",
        ],
        ["x-probe-response", "header-get=1:x-t"],
      ],
    },
    okUpstream,
  );
  assert.deepEqual(
    results(plugin, "header-add=1:x-early:1"),
    [String(WasmResult.BadArgument)],
    "a body callback without end_of_stream cannot add trailers",
  );
  assert.deepEqual(results(plugin, "header-get=1:x-t"), ["0 1", String(WasmResult.BadArgument)]);
  assert.deepEqual(results(plugin, "header-add=1:x-added:yes"), ["0"]);
  assert.deepEqual(results(plugin, "header-pairs=1"), ["0 x-added=yes x-t=2"]);
  assert.deepEqual(
    results(plugin, "header-add=0:x-late:1"),
    [String(WasmResult.BadArgument)],
    "the request headers went on before the trailers",
  );
  assert.deepEqual(res.upstreamRequest?.trailers, [
    ["x-added", "yes"],
    ["x-t", "2"],
  ]);
});

test("after StopIterationAndBuffer the trailers callback reads the whole buffered body", async () => {
  const plugin = await startProbe();
  const res = await plugin.worker().http(
    {
      path: "/",
      method: "POST",
      chunks: [Buffer.from("abc"), Buffer.from("def")],
      trailers: [["x-t", "1"]],
      headers: [
        ["x-probe-body", "return=1"],
        ["x-probe-trailers", "body-status=0;body=0:0:100"],
      ],
    },
    okUpstream,
  );
  assert.deepEqual(
    callbacks(infoLogs(plugin)).filter((l) => l.startsWith("request_")),
    ["request_headers eos 0", "request_body 3 eos 0", "request_body 6 eos 0", "request_trailers 1"],
  );
  assert.deepEqual(results(plugin, "body-status=0"), ["0 6"]);
  assert.deepEqual(results(plugin, "body=0:0:100"), ["0 abcdef"]);
  assert.equal(
    res.upstreamRequest?.body.toString(),
    "abcdef",
    "Continue from the trailers releases the buffer",
  );
  assert.deepEqual(res.upstreamRequest?.trailers, [["x-t", "1"]]);
});

test("the body replaced in the trailers callback is what reaches the upstream", async () => {
  const plugin = await startProbe();
  const res = await plugin.worker().http(
    {
      path: "/",
      method: "POST",
      chunks: [Buffer.from("hello "), Buffer.from("world")],
      trailers: [["x-t", "1"]],
      headers: [
        ["x-probe-body", "return=1"],
        ["x-probe-trailers", "body-replace=REPLACED;body=0:0:100"],
      ],
    },
    okUpstream,
  );
  assert.deepEqual(results(plugin, "body-replace=REPLACED"), ["0"]);
  assert.deepEqual(results(plugin, "body=0:0:100"), ["0 REPLACED"]);
  assert.equal(res.upstreamRequest?.body.toString(), "REPLACED");
  assert.deepEqual(res.upstreamRequest?.trailers, [["x-t", "1"]]);
});

test("a body that went on is not readable from the trailers callback (Envoy points at the drained frame)", async () => {
  const plugin = await startProbe();
  const res = await plugin.worker().http(
    {
      path: "/",
      method: "POST",
      body: "abc",
      trailers: [["x-t", "1"]],
      headers: [["x-probe-trailers", "body-status=0;body=0:0:100"]],
    },
    okUpstream,
  );
  assert.deepEqual(results(plugin, "body-status=0"), ["0 0"]);
  assert.deepEqual(results(plugin, "body=0:0:100"), ["0 "]);
  assert.equal(res.upstreamRequest?.body.toString(), "abc");
});

test("after StopIterationNoBuffer the trailers callback sees an empty body; Continue sends only the trailers", async () => {
  const plugin = await startProbe();
  const res = await plugin.worker().http(
    {
      path: "/",
      method: "POST",
      body: "abc",
      trailers: [["x-t", "1"]],
      headers: [
        ["x-probe-body", "return=3"],
        ["x-probe-trailers", "body-status=0;body=0:0:100"],
      ],
    },
    okUpstream,
  );
  assert.deepEqual(
    results(plugin, "body-status=0"),
    ["0 0"],
    "the codec drained the frame the filter dropped",
  );
  assert.deepEqual(results(plugin, "body=0:0:100"), ["0 "]);
  assert.equal(res.upstreamRequest?.body.length, 0);
  assert.deepEqual(res.upstreamRequest?.trailers, [["x-t", "1"]]);
});

test("held headers: Continue from the trailers sends the held headers, the buffered body and the trailers", async () => {
  const plugin = await startProbe({ allowOnHeadersStopIteration: true });
  let upstreamSaw: UpstreamRequest | undefined;
  const res = await plugin.worker().http(
    {
      path: "/",
      method: "POST",
      chunks: [Buffer.from("abc"), Buffer.from("def")],
      trailers: [["x-t", "1"]],
      headers: [
        ["x-probe", "return=1"],
        ["x-probe-body", "return=1"],
        [
          "x-probe-trailers",
          "body-replace=xyz;header-replace=0:content-length:3;header-add=0:x-seen:trailers",
        ],
      ],
    },
    (r) => {
      upstreamSaw = r;
      return { status: 200 };
    },
  );
  assert.equal(res.status, 200);
  assert.deepEqual(results(plugin, "header-replace=0:content-length:3"), ["0"]);
  assert.equal(
    header(upstreamSaw?.headers, "x-seen"),
    "trailers",
    "the headers are still held in the trailers callback",
  );
  assert.equal(header(upstreamSaw?.headers, "content-length"), "3");
  assert.equal(upstreamSaw?.body.toString(), "xyz");
  assert.deepEqual(upstreamSaw?.trailers, [["x-t", "1"]]);
});

test("StopIteration from the trailers holds everything until proxy_continue_stream; the trailers stay editable", async () => {
  const order: string[] = [];
  const plugin = await startProbe({
    clusters: {
      auth: () => {
        order.push("callout");
        return { headers: [[":status", "200"]] };
      },
    },
  });
  const res = await plugin.worker().http(
    {
      path: "/",
      method: "POST",
      chunks: [Buffer.from("ab"), Buffer.from("cd")],
      trailers: [["x-t", "1"]],
      headers: [
        ["x-probe-body", "return=1"],
        ["x-probe-trailers", "callout=auth:/check:1000;return=1"],
        ["x-probe-callout", "body=0:0:100;header-add=1:x-authz:ok;continue"],
        ["x-probe-response", "header-get=1:x-t"],
      ],
    },
    (r) => {
      order.push("upstream");
      return { status: 200, body: r.body };
    },
  );
  assert.deepEqual(order, ["callout", "upstream"]);
  assert.deepEqual(results(plugin, "body=0:0:100"), ["0 abcd"], "the buffered body waits with the trailers");
  assert.deepEqual(results(plugin, "header-add=1:x-authz:ok"), ["0"]);
  assert.equal(res.upstreamRequest?.body.toString(), "abcd");
  assert.deepEqual(res.upstreamRequest?.trailers, [
    ["x-t", "1"],
    ["x-authz", "ok"],
  ]);
  assert.deepEqual(
    results(plugin, "header-get=1:x-t"),
    [String(WasmResult.BadArgument)],
    "proxy_continue_stream released the trailers",
  );
});

test("StopIteration from the trailers with nothing to resume the stream stalls it", async () => {
  const plugin = await startProbe();
  await assert.rejects(
    plugin.worker().http(
      {
        path: "/",
        method: "POST",
        body: "ab",
        trailers: [["x-t", "1"]],
        headers: [["x-probe-trailers", "return=1"]],
      },
      okUpstream,
    ),
    (err: unknown) =>
      err instanceof StreamStalledError &&
      /the request is paused \(body or trailers stopped\)/.test(err.message),
  );
});

test("StopAll: body and trailers wait in the filter manager, then reach the body and trailers callbacks in order", async () => {
  const plugin = await startProbe({ clusters: { auth: () => ({ headers: [[":status", "200"]] }) } });
  const res = await plugin.worker().http(
    {
      path: "/",
      method: "POST",
      chunks: [Buffer.from("ab"), Buffer.from("cd")],
      trailers: [["x-t", "1"]],
      headers: [
        ["x-probe", "callout=auth:/check:1000;return=1"],
        ["x-probe-callout", "continue"],
        ["x-probe-trailers", "body=0:0:100;header-get=1:x-t"],
      ],
    },
    okUpstream,
  );
  assert.deepEqual(
    callbacks(infoLogs(plugin)).filter((l) => l.startsWith("request_")),
    ["request_headers eos 0", "request_body 4 eos 0", "request_trailers 1"],
  );
  assert.deepEqual(results(plugin, "header-get=1:x-t"), ["0 1"]);
  assert.equal(res.upstreamRequest?.body.toString(), "abcd");
  assert.deepEqual(res.upstreamRequest?.trailers, [["x-t", "1"]]);
});

test("a local reply from the trailers callback answers instead of the upstream", async () => {
  const plugin = await startProbe();
  let upstreamCalled = false;
  const res = await plugin.worker().http(
    {
      path: "/",
      method: "POST",
      body: "ab",
      trailers: [["x-t", "1"]],
      headers: [
        ["x-probe-body", "return=1"],
        ["x-probe-trailers", "local=403:bad trailers:no"],
      ],
    },
    () => {
      upstreamCalled = true;
      return { status: 200 };
    },
  );
  assert.equal(upstreamCalled, false);
  assert.equal(res.status, 403);
  assert.equal(res.localReply?.details, "bad_trailers");
  assert.equal(res.body.toString(), "no");
  assert.equal(res.upstreamRequest, undefined);
});

test("a trap in on_request_trailers fails the VM: 503 wasm_fail_stream (FAIL_CLOSED)", async () => {
  const plugin = await startProbe();
  const res = await plugin
    .worker()
    .http({ path: "/", trailers: [["x-t", "1"]], headers: [["x-probe-trailers", "trap"]] }, okUpstream);
  assert.equal(res.status, 503);
  assert.equal(res.localReply?.details, "wasm_fail_stream");
  assert.equal(res.upstreamRequest, undefined);
  assert.equal(plugin.worker().failed, true);
});

test("trailers added from the end_of_stream body callback follow the body; this filter's trailers callback does not run", async () => {
  const plugin = await startProbe();
  const res = await plugin.worker().http(
    {
      path: "/",
      method: "POST",
      body: "ab",
      headers: [["x-probe-body-eos", "header-add=1:x-added:yes"]],
    },
    okUpstream,
  );
  assert.deepEqual(results(plugin, "header-add=1:x-added:yes"), ["0"]);
  assert.equal(
    infoLogs(plugin).some((l) => l.startsWith("request_trailers")),
    false,
  );
  assert.equal(res.upstreamRequest?.body.toString(), "ab");
  assert.deepEqual(res.upstreamRequest?.trailers, [["x-added", "yes"]]);
});

test("map 3 is the response trailers during on_response_trailers; edits reach the client, on_log reads them", async () => {
  const plugin = await startProbe();
  const res = await plugin.worker().http(
    {
      path: "/",
      headers: [
        ["x-probe-response-trailers", "header-get=3:grpc-status;header-add=3:x-filter:1;body=1:0:100"],
        ["x-probe-log", "header-pairs=3;header-get=1:x-none"],
      ],
    },
    () => ({ status: 200, body: "payload", trailers: [["grpc-status", "0"]] }),
  );
  assert.deepEqual(results(plugin, "header-get=3:grpc-status"), ["0 0"]);
  assert.deepEqual(results(plugin, "header-add=3:x-filter:1"), ["0"]);
  assert.deepEqual(results(plugin, "body=1:0:100"), ["0 "], "the response body went on before the trailers");
  assert.equal(res.body.toString(), "payload");
  assert.deepEqual(res.trailers, [
    ["grpc-status", "0"],
    ["x-filter", "1"],
  ]);
  assert.deepEqual(results(plugin, "header-pairs=3"), ["0 grpc-status=0 x-filter=1"]);
  assert.deepEqual(
    results(plugin, "header-get=1:x-none"),
    [String(WasmResult.NotFound)],
    "on_log has no request trailers (Envoy's access log passes none)",
  );
});

test("response: StopIterationAndBuffer, then the trailers callback replaces the body", async () => {
  const plugin = await startProbe();
  const res = await plugin.worker().http(
    {
      path: "/",
      headers: [
        ["x-probe-response-body", "return=1"],
        ["x-probe-response-trailers", "body=1:0:100;body-set=1:0:100:NEW"],
      ],
    },
    () => ({ status: 200, body: "old", trailers: [["x-t", "1"]] }),
  );
  assert.deepEqual(results(plugin, "body=1:0:100"), ["0 old"]);
  assert.deepEqual(results(plugin, "body-set=1:0:100:NEW"), ["0"]);
  assert.equal(res.body.toString(), "NEW");
  assert.deepEqual(res.trailers, [["x-t", "1"]]);
});

test("low level: callOnRequestTrailers returns the FilterTrailersStatus after Envoy's translation", async () => {
  const plugin = await startProbe();
  const w = plugin.worker();
  const statusFor = (commands: string) => {
    const id = w.initializeHttpContext();
    w.callOnRequestHeaders(
      id,
      [
        [":path", "/"],
        ["x-probe-trailers", commands],
      ],
      false,
    );
    return w.callOnRequestTrailers(id, [["x-t", "1"]]);
  };
  assert.equal(statusFor("return=0"), FilterTrailersStatus.Continue);
  assert.equal(statusFor("return=1"), FilterTrailersStatus.StopIteration);
  assert.equal(statusFor("return=7"), FilterTrailersStatus.StopIteration, "above StopIteration stops");
  assert.equal(statusFor("local=403:no;return=0"), FilterTrailersStatus.StopIteration, "a local reply stops");
});

test("low level: buffered body and map 1 in the trailers callback; Continue releases the body", async () => {
  const plugin = await startProbe();
  const w = plugin.worker();
  const id = w.initializeHttpContext();
  w.callOnRequestHeaders(
    id,
    [
      [":path", "/"],
      ["x-probe-body", "return=1"],
      ["x-probe-trailers", "body=0:0:100;header-replace=1:x-t:2"],
    ],
    false,
  );
  assert.equal(w.callOnRequestBody(id, Buffer.from("ab"), false), FilterDataStatus.StopIterationAndBuffer);
  assert.equal(w.callOnRequestBody(id, Buffer.from("cd"), false), FilterDataStatus.StopIterationAndBuffer);
  assert.equal(w.callOnRequestTrailers(id, [["x-t", "1"]]), FilterTrailersStatus.Continue);
  assert.deepEqual(results(plugin, "body=0:0:100"), ["0 abcd"]);
  assert.deepEqual(w.getCurrentRequestTrailers(id), [["x-t", "2"]]);
  assert.equal(w.getCurrentRequestBody(id).toString(), "abcd");
});
