// Stop/continue, bodies, headers and local replies as Envoy's filter manager drives them.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  FilterDataStatus,
  FilterHeadersStatus,
  StreamResetError,
  StreamStalledError,
  WasmResult,
} from "../../host/index.ts";
import { infoLogs, okUpstream, results, startProbe } from "./helpers.ts";

const header = (headers: [string, string][], name: string) => headers.find(([k]) => k === name)?.[1];

test("StopIteration from on_request_headers becomes StopAllIterationAndWatermark without the flag", async () => {
  const plugin = await startProbe();
  const w = plugin.worker();
  const id = w.initializeHttpContext();
  assert.equal(
    w.callOnRequestHeaders(
      id,
      [
        [":path", "/"],
        ["x-probe", "return=1"],
      ],
      false,
    ),
    FilterHeadersStatus.StopAllIterationAndWatermark,
  );
});

test("with allow_on_headers_stop_iteration StopIteration stays StopIteration", async () => {
  const plugin = await startProbe({ allowOnHeadersStopIteration: true });
  const w = plugin.worker();
  const id = w.initializeHttpContext();
  assert.equal(
    w.callOnRequestHeaders(
      id,
      [
        [":path", "/"],
        ["x-probe", "return=1"],
      ],
      false,
    ),
    FilterHeadersStatus.StopIteration,
  );
});

test("StopAll without the flag: no body callback, the request stalls with nothing to resume it", async () => {
  const plugin = await startProbe();
  await assert.rejects(
    plugin
      .worker()
      .http({ path: "/", method: "POST", body: "abc", headers: [["x-probe", "return=1"]] }, okUpstream),
    (err: unknown) =>
      err instanceof StreamStalledError &&
      /stream stalled: the request is paused \(headers stopAll\)/.test(err.message),
  );
  assert.equal(
    infoLogs(plugin).some((l) => l.startsWith("request_body")),
    false,
  );
});

test("with the flag, headers wait while body callbacks buffer; the total size grows; Continue sends both", async () => {
  const plugin = await startProbe({ allowOnHeadersStopIteration: true });
  let upstreamSaw: { headers: [string, string][]; body: Buffer } | undefined;
  const res = await plugin.worker().http(
    {
      path: "/p",
      method: "POST",
      chunks: [Buffer.from("ab"), Buffer.from("cd"), Buffer.from("ef")],
      headers: [
        ["x-probe", "return=1"],
        ["x-probe-body", "return=1"],
        ["x-probe-body-eos", "body=0:0:100;header-add=0:x-body-seen:yes;return=0"],
      ],
    },
    (r) => {
      upstreamSaw = r;
      return { status: 201 };
    },
  );
  assert.equal(res.status, 201);
  const bodyLogs = infoLogs(plugin).filter((l) => l.startsWith("request_body"));
  assert.deepEqual(bodyLogs, ["request_body 2 eos 0", "request_body 4 eos 0", "request_body 6 eos 1"]);
  assert.deepEqual(results(plugin, "body=0:0:100"), ["0 abcdef"]);
  assert.equal(upstreamSaw?.body.toString(), "abcdef");
  assert.equal(
    header(upstreamSaw!.headers, "x-body-seen"),
    "yes",
    "held headers are still editable in the body callback",
  );
});

test("set_buffer_bytes(0, 0, size) replaces the whole buffered body", async () => {
  const plugin = await startProbe({ allowOnHeadersStopIteration: true });
  const res = await plugin.worker().http(
    {
      path: "/",
      method: "POST",
      chunks: [Buffer.from("hello "), Buffer.from("world")],
      headers: [
        ["x-probe", "return=1"],
        ["x-probe-body", "return=1"],
        ["x-probe-body-eos", "body-replace=REPLACED;header-replace=0:content-length:8;return=0"],
      ],
    },
    (r) => ({ status: 200, body: `${r.body.toString()}|${header(r.headers, "content-length")}` }),
  );
  assert.equal(res.body.toString(), "REPLACED|8");
});

test("set_buffer_bytes: start 0 length 0 prepends, start ≥ size appends, a middle range is BadArgument", async () => {
  const plugin = await startProbe();
  await plugin.worker().http(
    {
      path: "/",
      method: "POST",
      body: "mid",
      headers: [["x-probe-body", "body-set=0:0:0:pre-;body-set=0:7:0:-post;body-set=0:1:2:x;body=0:0:100"]],
    },
    okUpstream,
  );
  assert.deepEqual(results(plugin, "body-set=0:0:0:pre-"), ["0"]);
  assert.deepEqual(results(plugin, "body-set=0:7:0:-post"), ["0"]);
  assert.deepEqual(results(plugin, "body-set=0:1:2:x"), [String(WasmResult.BadArgument)]);
  assert.deepEqual(results(plugin, "body=0:0:100"), ["0 pre-mid-post"]);
});

test("header edits after the headers went on are BadArgument, and request.* properties are gone", async () => {
  const plugin = await startProbe();
  const res = await plugin.worker().http(
    {
      path: "/x?q=1",
      method: "POST",
      body: "b",
      headers: [
        ["x-probe", "prop=request.path"],
        ["x-probe-body", "header-add=0:x-late:1;header-get=0:x-probe;prop=request.path;prop=plugin_root_id"],
      ],
    },
    (r) => ({ status: 200, body: header(r.headers, "x-late") ?? "none" }),
  );
  assert.deepEqual(results(plugin, "prop=request.path"), ["0 /x?q=1", String(WasmResult.NotFound)]);
  assert.deepEqual(results(plugin, "header-add=0:x-late:1"), [String(WasmResult.BadArgument)]);
  assert.deepEqual(results(plugin, "header-get=0:x-probe"), [String(WasmResult.BadArgument)]);
  assert.deepEqual(results(plugin, "prop=plugin_root_id"), ["0 probe"]);
  assert.equal(res.body.toString(), "none");
});

test("header maps: keys lower-cased, pseudo-headers first, replace drops every old value", async () => {
  const plugin = await startProbe();
  const w = plugin.worker();
  const id = w.initializeHttpContext();
  w.callOnRequestHeaders(
    id,
    [
      ["X-Multi", "a"],
      [":path", "/p"],
      ["x-multi", "b"],
      [":method", "GET"],
      ["x-probe", "header-add=0:X-New:1;header-replace=0:x-multi:c;header-get=0:X-MULTI;header-pairs=0"],
      [":authority", "h"],
    ],
    true,
  );
  assert.deepEqual(results(plugin, "header-get=0:X-MULTI"), ["0 c"]);
  const pairs = results(plugin, "header-pairs=0")[0].split(" ").slice(1);
  assert.deepEqual(pairs.slice(0, 3), [":path=/p", ":method=GET", ":authority=h"]);
  assert.ok(pairs.includes("x-new=1"));
  assert.equal(pairs.filter((p) => p.startsWith("x-multi=")).length, 1);
});

test("a local reply: status, details (spaces → _), body, extra headers, through on_response_headers", async () => {
  const plugin = await startProbe();
  let called = false;
  const res = await plugin
    .worker()
    .http({ path: "/", headers: [["x-probe", "local=403:denied by probe:nope"]] }, () => {
      called = true;
      return { status: 200 };
    });
  assert.equal(called, false);
  assert.equal(res.status, 403);
  assert.equal(res.body.toString(), "nope");
  assert.equal(res.localReply?.details, "denied_by_probe");
  assert.equal(header(res.headers, "x-local"), "yes");
  assert.equal(header(res.headers, "content-type"), "text/plain");
  assert.equal(header(res.headers, "content-length"), "4");
  assert.ok(infoLogs(plugin).includes("response_headers 403 eos 0"));
  assert.equal(res.upstreamRequest, undefined);
});

test("a local reply forces a stop whatever the callback returns; the low-level API records it", async () => {
  const plugin = await startProbe();
  const w = plugin.worker();
  const id = w.initializeHttpContext();
  const status = w.callOnRequestHeaders(
    id,
    [
      [":path", "/"],
      ["x-probe", "local=429:slow down:;return=0"],
    ],
    true,
  );
  assert.equal(status, FilterHeadersStatus.StopAllIterationAndWatermark);
  const reply = w.getSentLocalResponse(id);
  assert.equal(reply?.statusCode, 429);
  assert.equal(reply?.details, "slow_down");
  assert.deepEqual(reply?.headers, [["x-local", "yes"]]);
  assert.equal(reply?.grpcStatus, -1);
});

test("a local reply while encoding the upstream response replaces it without a second on_response_headers", async () => {
  const plugin = await startProbe();
  const res = await plugin
    .worker()
    .http({ path: "/", headers: [["x-probe-response", "local=502:bad upstream:oops"]] }, () => ({
      status: 200,
      body: "fine",
    }));
  assert.equal(res.status, 502);
  assert.equal(res.body.toString(), "oops");
  assert.equal(res.localReply?.details, "bad_upstream");
  assert.ok(res.upstreamRequest, "the request did reach the upstream");
  assert.equal(infoLogs(plugin).filter((l) => l.startsWith("response_headers")).length, 1);
});

test("body above the buffer limit while buffering → 413 request_payload_too_large", async () => {
  const plugin = await startProbe({ bufferLimitBytes: 10 });
  let called = false;
  const res = await plugin.worker().http(
    {
      path: "/",
      method: "POST",
      chunks: [Buffer.alloc(6, 1), Buffer.alloc(6, 2)],
      headers: [["x-probe-body", "return=1"]],
    },
    () => {
      called = true;
      return { status: 200 };
    },
  );
  assert.equal(called, false);
  assert.equal(res.status, 413);
  assert.equal(res.localReply?.details, "request_payload_too_large");
  assert.equal(res.body.toString(), "Payload Too Large");
  // The second chunk crossed the limit before the VM saw it.
  assert.deepEqual(
    infoLogs(plugin).filter((l) => l.startsWith("request_body")),
    ["request_body 6 eos 0"],
  );
});

test("proxy_continue_stream(0) in the same callback resumes a stopped stream", async () => {
  const plugin = await startProbe();
  const res = await plugin
    .worker()
    .http({ path: "/", method: "POST", body: "data", headers: [["x-probe", "continue;return=1"]] }, (r) => ({
      status: 200,
      body: r.body,
    }));
  assert.equal(res.body.toString(), "data");
  assert.deepEqual(results(plugin, "continue"), ["0"]);
});

test("after StopAll + continue the buffered body reaches on_request_body in one piece", async () => {
  const plugin = await startProbe();
  const w = plugin.worker();
  // Stop on headers, continue from a callout's answer (below) would be the usual way; here the
  // low-level API shows the deferred continue request.
  const id = w.initializeHttpContext();
  w.callOnRequestHeaders(
    id,
    [
      [":path", "/"],
      ["x-probe", "return=1"],
    ],
    false,
  );
  assert.equal(w.getStreamActions(id).continueRequest, false);
  const res = await w.http(
    {
      path: "/",
      method: "POST",
      chunks: [Buffer.from("12"), Buffer.from("345")],
      headers: [["x-probe", "continue;return=1"]],
    },
    (r) => ({ status: 200, body: r.body }),
  );
  assert.equal(res.body.toString(), "12345");
});

test("StopIterationNoBuffer drops the data; StopIterationAndBuffer status codes come back unchanged", async () => {
  const plugin = await startProbe();
  const w = plugin.worker();
  const id = w.initializeHttpContext();
  w.callOnRequestHeaders(id, [[":path", "/"]], false);
  assert.equal(w.callOnRequestBody(id, Buffer.from("a"), false), FilterDataStatus.Continue);
  const id2 = w.initializeHttpContext();
  w.callOnRequestHeaders(
    id2,
    [
      [":path", "/"],
      ["x-probe-body", "return=1"],
    ],
    false,
  );
  assert.equal(w.callOnRequestBody(id2, Buffer.from("ab"), false), FilterDataStatus.StopIterationAndBuffer);
  assert.equal(w.callOnRequestBody(id2, Buffer.from("cd"), false), FilterDataStatus.StopIterationAndBuffer);
  assert.equal(w.getCurrentRequestBody(id2).toString(), "abcd");
  assert.ok(infoLogs(plugin).includes("request_body 4 eos 0"));
});

test("properties: route name, plugin identity, filter state under the wasm. prefix, NotFound cases", async () => {
  const plugin = await startProbe({ pluginName: "my-plugin", vmId: "vm-props" });
  const w = plugin.worker();
  const res = await w.http(
    {
      path: "/a/b?x=%20y+z#frag",
      authority: "api.test",
      routeName: "route-1",
      filterState: { upstream_set: "from-earlier-filter" },
      headers: [
        ["x-request-id", "rid-1"],
        [
          "x-probe",
          [
            "prop=xds.route_name",
            "prop=plugin_name",
            "prop=plugin_vm_id",
            "prop=request.url_path",
            "prop=request.query",
            "prop=request.host",
            "prop=request.method",
            "prop=request.scheme",
            "prop=request.id",
            "prop=request.headers.x-request-id",
            "prop=request.headers.absent",
            "propraw=request.path",
            "prop=upstream_set",
            "setprop=kvm_out:v1",
            "prop=kvm_out",
            "prop=filter_state.wasm\\.kvm_out",
            "prop=nosuch",
          ].join(";"),
        ],
      ],
    },
    okUpstream,
  );
  assert.equal(res.status, 200);
  assert.deepEqual(results(plugin, "prop=xds.route_name"), ["0 route-1"]);
  assert.deepEqual(results(plugin, "prop=plugin_name"), ["0 my-plugin"]);
  assert.deepEqual(results(plugin, "prop=plugin_vm_id"), ["0 vm-props"]);
  assert.deepEqual(results(plugin, "prop=request.url_path"), ["0 /a/b"]);
  assert.deepEqual(results(plugin, "prop=request.query"), ["0 x=%20y+z"]);
  assert.deepEqual(results(plugin, "prop=request.host"), ["0 api.test"]);
  assert.deepEqual(results(plugin, "prop=request.method"), ["0 GET"]);
  assert.deepEqual(results(plugin, "prop=request.scheme"), ["0 http"]);
  assert.deepEqual(results(plugin, "prop=request.id"), ["0 rid-1"]);
  assert.deepEqual(results(plugin, "prop=request.headers.x-request-id"), ["0 rid-1"]);
  assert.deepEqual(results(plugin, "prop=request.headers.absent"), ["1"]);
  assert.deepEqual(results(plugin, "propraw=request.path"), ["1"], "a dotted path is one unknown name");
  assert.deepEqual(results(plugin, "prop=upstream_set"), ["0 from-earlier-filter"]);
  assert.deepEqual(results(plugin, "setprop=kvm_out:v1"), ["0"]);
  assert.deepEqual(results(plugin, "prop=kvm_out"), ["0 v1"]);
  assert.deepEqual(results(plugin, "prop=nosuch"), ["1"]);
  assert.equal(w.getFilterState(res.streamId).get("wasm.kvm_out")?.toString(), "v1");
});

test("on_log, on_done, on_delete run at stream end in Envoy's order", async () => {
  const plugin = await startProbe();
  const res = await plugin.worker().http({ path: "/end" }, okUpstream);
  const tail = infoLogs(plugin).slice(-3);
  assert.deepEqual(tail, [
    `on_log ${res.streamId} /end`,
    `on_done ${res.streamId}`,
    `on_delete ${res.streamId}`,
  ]);
});

test("proxy_close_stream(0) resets the stream", async () => {
  const plugin = await startProbe();
  await assert.rejects(
    plugin.worker().http({ path: "/", headers: [["x-probe", "close"]] }, okUpstream),
    (err: unknown) => err instanceof StreamResetError && /wasm_close_stream/.test(err.message),
  );
});

test("request headers over max_request_headers_kb or max_headers_count get 431 before the filter exists", async () => {
  const plugin = await startProbe();
  const logsBefore = infoLogs(plugin).length;
  const big = await plugin
    .worker()
    .http({ path: "/", headers: [["x-big", "a".repeat(61 * 1024)]] }, okUpstream);
  assert.equal(big.status, 431);
  const many = await plugin
    .worker()
    .http(
      { path: "/", headers: Array.from({ length: 100 }, (_, i) => [`x-h${i}`, "v"] as [string, string]) },
      okUpstream,
    );
  assert.equal(many.status, 431);
  assert.equal(infoLogs(plugin).length, logsBefore, "the module never ran");
  const fits = await plugin
    .worker()
    .http({ path: "/", headers: [["x-big", "a".repeat(59 * 1024)]] }, okUpstream);
  assert.equal(fits.status, 200);
});

test("StopIterationNoBuffer at end of stream: the data is gone, a later continue ends the request", async () => {
  const plugin = await startProbe({ clusters: { c: () => ({ headers: [[":status", "200"]] }) } });
  const res = await plugin.worker().http(
    {
      path: "/",
      method: "POST",
      body: "dropped",
      headers: [
        ["x-probe-body", "callout=c:/:100;return=3"],
        ["x-probe-callout", "continue"],
      ],
    },
    (r) => ({ status: 200, body: `[${r.body.toString()}]` }),
  );
  assert.equal(res.body.toString(), "[]");
});

test("ContinueAndEndStream from on_request_headers is plain Continue in Envoy: the body still goes up", async () => {
  const plugin = await startProbe();
  const w = plugin.worker();
  const id = w.initializeHttpContext();
  assert.equal(
    w.callOnRequestHeaders(
      id,
      [
        [":path", "/"],
        ["x-probe", "return=2"],
      ],
      false,
    ),
    FilterHeadersStatus.Continue,
  );
  const res = await w.http(
    { path: "/", method: "POST", body: "kept", headers: [["x-probe", "return=2"]] },
    (r) => ({
      status: 200,
      body: r.body,
    }),
  );
  assert.equal(res.body.toString(), "kept");
});

test("response body: the module can rewrite it; buffering above the limit → 500 or, headers sent, a reset", async () => {
  const plugin = await startProbe({ bufferLimitBytes: 16, allowOnHeadersStopIteration: true });
  const rewritten = await plugin
    .worker()
    .http({ path: "/", headers: [["x-probe-response-body", "body-set=1:0:100:rewritten"]] }, () => ({
      status: 200,
      body: "original",
    }));
  assert.equal(rewritten.body.toString(), "rewritten");
  // Response headers held (StopIteration with the flag): the 500 replaces the response.
  const tooBig = await plugin.worker().http(
    {
      path: "/",
      headers: [
        ["x-probe-response", "return=1"],
        ["x-probe-response-body", "return=1"],
      ],
    },
    () => ({ status: 200, body: "x".repeat(17) }),
  );
  assert.equal(tooBig.status, 500);
  assert.equal(tooBig.localReply?.details, "response_payload_too_large");
  // Response headers already sent downstream: Envoy can only reset the stream.
  await assert.rejects(
    plugin.worker().http({ path: "/", headers: [["x-probe-response-body", "return=1"]] }, () => ({
      status: 200,
      body: "x".repeat(17),
    })),
    StreamResetError,
  );
});
