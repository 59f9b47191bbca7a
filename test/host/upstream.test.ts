// Clusters backed by a real address (PluginOptions.clusters `{ address }`): the callout reaches a
// real HTTP server, and each way the upstream fails reaches the module the way Envoy delivers it
// (docs/envoy-behaviour.md §4; host/upstream.ts, host/callouts.ts).
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { infoLogs, okUpstream, results, startProbe } from "./helpers.ts";
import { WasmResult } from "../../host/index.ts";

type Handler = (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => void;
let handle: Handler = (_req, _body, res) => res.end();
const seen: { method?: string; url?: string; headers: http.IncomingHttpHeaders; body: Buffer }[] = [];
const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    seen.push({ method: req.method, url: req.url, headers: req.headers, body });
    handle(req, body, res);
  });
});
let address = "";

before(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function callout(cluster: string, clusters: Record<string, { address: string }>, timeoutMs = 500) {
  const plugin = await startProbe({ clusters });
  const res = await plugin.worker().http(
    {
      path: "/",
      headers: [
        ["x-probe", `callout=${cluster}:/kvm/entries/a%2Fb:${timeoutMs};return=1`],
        ["x-probe-callout", "continue"],
      ],
    },
    okUpstream,
  );
  assert.equal(res.status, 200, "the callback continued the stream");
  return { plugin, line: infoLogs(plugin).find((l) => l.startsWith("callout-response")) ?? "" };
}

test("the callout reaches the cluster's address with the module's headers and body, plus what Envoy's AsyncClient adds", async () => {
  seen.length = 0;
  handle = (_req, _body, res) => {
    res.setHeader("etag", '"7"');
    res.end("stored");
  };
  const { line } = await callout("kvm", { kvm: { address } });
  assert.match(line, /^callout-response token 4 headers \d+ body 6 status 200 get_status 0 body stored$/);
  assert.equal(seen.length, 1);
  assert.equal(seen[0].method, "GET");
  assert.equal(seen[0].url, "/kvm/entries/a%2Fb", "the path goes out as the module wrote it");
  assert.equal(seen[0].headers.host, "kvm", ":authority becomes Host");
  assert.equal(seen[0].headers["x-probe"], "1");
  assert.equal(seen[0].headers["x-envoy-internal"], "true");
  assert.equal(seen[0].headers["x-forwarded-for"], undefined, "Context::httpCall sets send_xff false");
  assert.equal(seen[0].headers["x-envoy-expected-rq-timeout-ms"], "500");
  assert.equal(seen[0].body.toString(), "callout-body");
  assert.equal(seen[0].headers["content-length"], "12");
});

test("the answer's status, headers and body are readable in the callback", async () => {
  handle = (_req, _body, res) => {
    res.statusCode = 404;
    res.setHeader("x-kvm", "absent");
    res.end();
  };
  const plugin = await startProbe({ clusters: { kvm: { address } } });
  await plugin.worker().http(
    {
      path: "/",
      headers: [
        ["x-probe", "callout=kvm:/x:500;return=1"],
        ["x-probe-callout-root", "header-get=6:x-kvm"],
        ["x-probe-callout", "continue"],
      ],
    },
    okUpstream,
  );
  assert.deepEqual(results(plugin, "header-get=6:x-kvm"), ["0 absent"]);
  assert.match(infoLogs(plugin).find((l) => l.startsWith("callout-response")) ?? "", / status 404 /);
});

test("no answer within the timeout: the callback gets Envoy's 504", async () => {
  handle = () => undefined; // never answers
  const { line } = await callout("kvm", { kvm: { address } }, 100);
  assert.equal(
    line,
    "callout-response token 4 headers 3 body 24 status 504 get_status 0 body upstream request timeout",
  );
});

test("nothing listening: the callback gets Envoy's 503 connection failure", async () => {
  const { line } = await callout("kvm", { kvm: { address: `127.0.0.1:${await closedPort()}` } });
  assert.match(
    line,
    /^callout-response token 4 headers 3 body \d+ status 503 get_status 0 body upstream connect error or disconnect\/reset before headers\. reset reason: remote connection failure/,
  );
});

test("the connection closes before response headers: the callback gets Envoy's 503 connection termination", async () => {
  handle = (req) => req.socket.destroy();
  const { line } = await callout("kvm", { kvm: { address } });
  assert.match(line, /status 503 get_status 0 body .*reset reason: connection termination$/);
});

test("an answer that is not HTTP: the callback gets Envoy's 503 protocol error", async () => {
  const garbage = net.createServer((socket) => {
    socket.on("data", () => socket.end("SSH-2.0-not-http\r\n\r\n"));
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => garbage.listen(0, "127.0.0.1", resolve));
  try {
    const { line } = await callout("kvm", {
      kvm: { address: `127.0.0.1:${(garbage.address() as AddressInfo).port}` },
    });
    assert.match(line, /status 503 get_status 0 body .*reset reason: protocol error$/);
  } finally {
    await new Promise<void>((resolve) => garbage.close(() => resolve()));
  }
});

test("the connection closes after response headers: a callback with no headers and BrokenConnection", async () => {
  handle = (req, _body, res) => {
    res.writeHead(200, { "content-length": "100" });
    res.write("part", () => req.socket.destroy());
  };
  const { line } = await callout("kvm", { kvm: { address } });
  assert.equal(
    line,
    `callout-response token 4 headers 0 body 0 status  get_status ${WasmResult.BrokenConnection} body `,
  );
});

test("an unknown cluster name is BadArgument at dispatch: nothing is sent, no callback comes", async () => {
  seen.length = 0;
  const plugin = await startProbe({ clusters: { kvm: { address } } });
  await plugin.worker().http({ path: "/", headers: [["x-probe", "callout=other:/:100"]] }, okUpstream);
  assert.deepEqual(results(plugin, "callout=other:/:100"), [`${WasmResult.BadArgument} token 0`]);
  assert.equal(seen.length, 0);
  assert.equal(
    infoLogs(plugin).some((l) => l.startsWith("callout-response")),
    false,
  );
});

test("a local reply from the callback answers the request instead of the upstream", async () => {
  handle = (_req, _body, res) => {
    res.statusCode = 403;
    res.end();
  };
  const plugin = await startProbe({ clusters: { kvm: { address } } });
  let upstreamCalled = false;
  const res = await plugin.worker().http(
    {
      path: "/",
      headers: [
        ["x-probe", "callout=kvm:/x:500;return=1"],
        ["x-probe-callout", "local=401:denied by kvm:no"],
      ],
    },
    () => {
      upstreamCalled = true;
      return { status: 200 };
    },
  );
  assert.equal(upstreamCalled, false);
  assert.equal(res.status, 401);
  assert.equal(res.localReply?.details, "denied_by_kvm");
});
