// proxy_http_call as Envoy implements it (envoy context.cc Context::httpCall / onHttpCallSuccess /
// onHttpCallFailure; docs/envoy-behaviour.md §4): argument checks at call time, the answer on the root context,
// response headers/body readable only inside the callback, the stream paused meanwhile.
import assert from "node:assert/strict";
import { test } from "node:test";
import { WasmResult, type ClusterHandler } from "../../host/index.ts";
import { infoLogs, okUpstream, results, startProbe } from "./helpers.ts";

const header = (headers: [string, string][], name: string) => headers.find(([k]) => k === name)?.[1];

test("a callout pauses the stream; the answer arrives on the root context, then the stream continues", async () => {
  const seen: Parameters<ClusterHandler>[0][] = [];
  const plugin = await startProbe({
    clusters: {
      auth: async (req) => {
        seen.push(req);
        return {
          headers: [
            [":status", "200"],
            ["x-auth", "ok"],
          ],
          body: "granted",
        };
      },
    },
  });
  const res = await plugin.worker().http(
    {
      path: "/api",
      headers: [
        ["x-probe", "callout=auth:/check:500;return=1"],
        ["x-probe-callout", "header-get=6:x-auth;body=4:0:100;header-add=0:x-authz:done;continue"],
      ],
    },
    (r) => ({ status: 200, body: header(r.headers, "x-authz") ?? "missing" }),
  );
  assert.equal(res.status, 200);
  assert.equal(res.body.toString(), "done", "request headers stay editable while the stream is paused");
  assert.equal(seen.length, 1);
  assert.equal(header(seen[0].headers, ":path"), "/check");
  assert.equal(header(seen[0].headers, ":authority"), "auth");
  assert.equal(header(seen[0].headers, "content-length"), "12");
  assert.equal(seen[0].body.toString(), "callout-body");
  assert.equal(seen[0].timeoutMs, 500);
  const token = results(plugin, "callout=auth:/check:500")[0];
  assert.equal(token, "0 token 4", "the first http call id is 4 (kCalloutIncrement)");
  const response = infoLogs(plugin).find((l) => l.startsWith("callout-response"));
  assert.equal(response, "callout-response token 4 headers 2 body 7 status 200 get_status 0 body granted");
  assert.deepEqual(results(plugin, "header-get=6:x-auth"), ["0 ok"]);
  assert.deepEqual(results(plugin, "body=4:0:100"), ["0 granted"]);
  assert.deepEqual(
    infoLogs(plugin).filter((l) => l.startsWith("effective")),
    ["effective 0"],
  );
});

test("callout response headers and body are not readable outside the callback", async () => {
  const plugin = await startProbe({
    clusters: { auth: () => ({ headers: [[":status", "200"]], body: "b" }) },
  });
  await plugin.worker().http({ path: "/", headers: [["x-probe", "header-get=6:x;body=4:0:10"]] }, okUpstream);
  assert.deepEqual(results(plugin, "header-get=6:x"), [String(WasmResult.BadArgument)]);
  assert.deepEqual(results(plugin, "body=4:0:10"), [String(WasmResult.NotFound)]);
});

test("call-time errors: unknown cluster and missing :path are BadArgument, no healthy upstream InternalFailure", async () => {
  let calls = 0;
  const plugin = await startProbe({
    clusters: {
      auth: () => {
        calls++;
        return { headers: [[":status", "200"]] };
      },
      down: null,
    },
  });
  const res = await plugin.worker().http(
    {
      path: "/",
      headers: [
        ["x-probe", "callout=nowhere:/:100;callout-nopath=auth;callout=down:/:100;callout=auth:/:4294967295"],
      ],
    },
    okUpstream,
  );
  assert.equal(res.status, 200);
  assert.deepEqual(results(plugin, "callout=nowhere:/:100"), [`${WasmResult.BadArgument} token 0`]);
  assert.deepEqual(results(plugin, "callout-nopath=auth"), [`${WasmResult.BadArgument} token 0`]);
  assert.deepEqual(results(plugin, "callout=down:/:100"), [`${WasmResult.InternalFailure} token 0`]);
  assert.deepEqual(
    results(plugin, "callout=auth:/:4294967295"),
    [`${WasmResult.BadArgument} token 0`],
    "negative timeout",
  );
  assert.equal(calls, 0);
  assert.equal(
    infoLogs(plugin).some((l) => l.startsWith("callout-response")),
    false,
  );
});

for (const [answer, expected] of [
  ["timeout", "headers 3 body 24 status 504 get_status 0 body upstream request timeout"],
  ["reset", "status 503 get_status 0"],
  ["reset_after_headers", "headers 0 body 0 status  get_status 11 body "],
] as const) {
  test(`callout ${answer}: ${expected.includes("504") ? "504" : expected.includes("503") ? "503" : "BrokenConnection"}`, async () => {
    const plugin = await startProbe({ clusters: { auth: () => answer } });
    const res = await plugin.worker().http(
      {
        path: "/",
        headers: [
          ["x-probe", "callout=auth:/:100;return=1"],
          ["x-probe-callout", "continue"],
        ],
      },
      okUpstream,
    );
    assert.equal(res.status, 200);
    const line = infoLogs(plugin).find((l) => l.startsWith("callout-response"));
    assert.ok(line?.includes(expected), line);
  });
}

test("a local reply from the callout callback answers the paused request", async () => {
  const plugin = await startProbe({ clusters: { auth: () => ({ headers: [[":status", "403"]] }) } });
  let called = false;
  const res = await plugin.worker().http(
    {
      path: "/",
      headers: [
        ["x-probe", "callout=auth:/:100;return=1"],
        ["x-probe-callout", "local=401:callout denied:no"],
      ],
    },
    () => {
      called = true;
      return { status: 200 };
    },
  );
  assert.equal(called, false);
  assert.equal(res.status, 401);
  assert.equal(res.localReply?.details, "callout_denied");
});

test("a stream that ended before the answer: the callback still comes, set_effective_context is BadArgument", async () => {
  const plugin = await startProbe({ clusters: { auth: () => ({ headers: [[":status", "200"]] }) } });
  const w = plugin.worker();
  const id = w.initializeHttpContext();
  w.callOnRequestHeaders(
    id,
    [
      [":path", "/"],
      ["x-probe", "callout=auth:/:100;return=1"],
    ],
    true,
  );
  assert.equal(w.pendingCallouts().length, 1);
  w.completeHttpContext(id);
  await w.flushCallouts();
  assert.deepEqual(
    infoLogs(plugin).filter((l) => l.startsWith("effective")),
    [`effective ${WasmResult.BadArgument}`],
  );
});

test("several callouts: http() waits for each answer before the stream goes on", async () => {
  let resolveSlow: (() => void) | undefined;
  const plugin = await startProbe({
    clusters: {
      slow: () =>
        new Promise((resolve) => {
          resolveSlow = () => resolve({ headers: [[":status", "200"]], body: "late" });
        }),
    },
  });
  const pending = plugin.worker().http(
    {
      path: "/",
      headers: [
        ["x-probe", "callout=slow:/:100;return=1"],
        ["x-probe-callout", "continue"],
      ],
    },
    okUpstream,
  );
  await new Promise((r) => setImmediate(r));
  assert.ok(resolveSlow, "the cluster handler was called");
  resolveSlow!();
  assert.equal((await pending).status, 200);
});

test("proxy_get_status keeps BrokenConnection after a failed callout (Envoy never resets it)", async () => {
  let n = 0;
  const plugin = await startProbe({
    clusters: {
      auth: () => (n++ === 0 ? "reset_after_headers" : { headers: [[":status", "200"]], body: "ok" }),
    },
  });
  for (let i = 0; i < 2; i++) {
    await plugin.worker().http(
      {
        path: "/",
        headers: [
          ["x-probe", "callout=auth:/:100;return=1"],
          ["x-probe-callout", "continue"],
        ],
      },
      okUpstream,
    );
  }
  const lines = infoLogs(plugin).filter((l) => l.startsWith("callout-response"));
  assert.equal(lines.length, 2);
  assert.match(lines[0], /headers 0 body 0 status  get_status 11/);
  assert.match(lines[1], /headers 1 body 2 status 200 get_status 11 body ok/);
});

test("on the root context (before set_effective_context) there is no request: request.* and set_property are NotFound", async () => {
  const plugin = await startProbe({ clusters: { auth: () => ({ headers: [[":status", "200"]] }) } });
  await plugin.worker().http(
    {
      path: "/r",
      headers: [
        ["x-probe", "callout=auth:/:100;return=1"],
        ["x-probe-callout-root", "prop=request.path;prop=plugin_root_id;setprop=x:y;header-get=0:x-probe"],
        ["x-probe-callout", "prop=request.path;continue"],
      ],
    },
    okUpstream,
  );
  assert.deepEqual(results(plugin, "prop=request.path"), [String(WasmResult.NotFound), "0 /r"]);
  assert.deepEqual(results(plugin, "prop=plugin_root_id"), ["0 probe"]);
  assert.deepEqual(results(plugin, "setprop=x:y"), [String(WasmResult.NotFound)]);
  assert.deepEqual(results(plugin, "header-get=0:x-probe"), [String(WasmResult.BadArgument)]);
});

test("low level: getCalloutAttributes and callOnHttpCallResponse answer a callout synchronously", async () => {
  const plugin = await startProbe({ clusters: { auth: () => new Promise(() => undefined) } });
  const w = plugin.worker();
  const id = w.initializeHttpContext();
  w.callOnRequestHeaders(
    id,
    [
      [":path", "/"],
      ["x-probe", "callout=auth:/verify:250;return=1"],
      ["x-probe-callout", "continue"],
    ],
    true,
  );
  const [attrs] = w.getCalloutAttributes();
  assert.equal(attrs.cluster, "auth");
  assert.equal(attrs.timeoutMs, 250);
  assert.equal(header(attrs.headers, ":path"), "/verify");
  w.callOnHttpCallResponse(attrs.token, { headers: [[":status", "204"]] });
  assert.deepEqual(w.pendingCallouts(), []);
  assert.equal(w.getStreamActions(id).continueRequest, true);
  assert.ok(infoLogs(plugin).some((l) => l.includes("status 204")));
  assert.throws(() => w.callOnHttpCallResponse(attrs.token, "timeout"), /no pending http callout/);
});
