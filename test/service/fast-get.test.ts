// The data plane's GET answered before Fastify (service/fast-get.ts) must be indistinguishable from the Fastify
// route: two services on one database, one with it and one without, get the same requests over real sockets
// (app.inject() bypasses the server, so only sockets reach fast-get.ts), and every answer — status, headers,
// body — every access-log line and every request, operation and cache counter must come out the same.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  cacheSynced,
  createTestDatabase,
  startTestApp,
  type TestApp,
  type TestDatabase,
  logCapture,
} from "./helpers.ts";
import { fastEntryGet } from "../../service/fast-get.ts";
import { createMetrics } from "../../service/metrics.ts";
import { RequestLog, requestIds } from "../../service/request-log.ts";
import { TokenSet, bearerCheck } from "../../service/auth.ts";

const TOKENS = { KVM_DATA_TOKENS: "data-token-1", KVM_ADMIN_TOKENS: "admin-token-1" };

interface Served {
  t: TestApp;
  port: number;
  lines: string[];
  /** Data-plane GETs that reached Fastify. */
  routed: number;
}

let db: TestDatabase;
let fast: Served;
let plain: Served;
/** The database of `plain`, written with the same entries as `fast`'s (db.url). */
let siblingUrl: string;

async function serve(
  url: string,
  fastGet: boolean,
  env: Record<string, string>,
  migrate = true,
  level = "debug",
): Promise<Served> {
  const { lines, stream } = logCapture();
  let served: Served | null = null;
  const t = await startTestApp(url, env, {
    logger: { level, stream },
    fastGet,
    migrate,
    beforeReady: (app) =>
      app.addHook("onRequest", async (request) => {
        if (request.method === "GET" && request.url.startsWith("/v1/") && served !== null) served.routed++;
      }),
  });
  await t.app.listen({ host: "127.0.0.1", port: 0 });
  const address = t.app.server.address();
  assert.ok(address !== null && typeof address === "object");
  served = { t, port: address.port, lines, routed: 0 };
  return served;
}

interface Answer {
  status: number;
  headers: string[];
  body: string;
}

/** Sends raw request bytes on a new connection and reads the whole answer (the request says Connection: close). */
function exchange(port: number, request: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", reject);
    socket.on("close", () => {
      const raw = Buffer.concat(chunks);
      const end = raw.indexOf("\r\n\r\n");
      const head = raw.subarray(0, end).toString("latin1").split("\r\n");
      resolve({
        status: Number(head[0].split(" ")[1]),
        // Date changes from second to second; everything else must match, in any order.
        headers: head
          .slice(1)
          .map((h) => h.toLowerCase())
          .filter((h) => !h.startsWith("date:"))
          .sort(),
        body: raw.subarray(end + 4).toString("hex"),
      });
    });
    socket.write(request, "latin1");
  });
}

/** The access-log lines a request left, without what differs from process to process and request to request. */
async function linesOf(served: Served, from: number): Promise<unknown[]> {
  // Fastify's onResponse hook runs when the answer has been handed to the socket: give it the turn it needs.
  for (let i = 0; i < 100 && served.lines.length === from; i++) await new Promise((r) => setTimeout(r, 5));
  return served.lines.slice(from).map((line) => {
    const { time: _t, pid: _p, hostname: _h, reqId, responseTime, req, ...rest } = JSON.parse(line);
    assert.match(String(reqId), /^req-[0-9a-z]+$/);
    assert.equal(typeof responseTime, "number");
    const { remotePort: _port, ...request } = req ?? {};
    return { ...rest, req: request };
  });
}

async function both(request: string): Promise<void> {
  const before = [fast.lines.length, plain.lines.length];
  const [a, b] = await Promise.all([exchange(fast.port, request), exchange(plain.port, request)]);
  const label = request.split("\r\n").slice(0, 3).join(" | ");
  assert.deepEqual(a, b, label);
  const [la, lb] = [await linesOf(fast, before[0]), await linesOf(plain, before[1])];
  assert.deepEqual(la, lb, `log lines of ${label}`);
}

const get = (path: string, headers: string[] = [], method = "GET") =>
  [`${method} ${path} HTTP/1.1`, "Host: kvm.test", "Connection: close", ...headers, "", ""].join("\r\n");

/** Metrics that must match: requests by route and status, operations, the cache's events. */
async function counters(served: Served): Promise<string[]> {
  const res = await served.t.app.inject({ method: "GET", url: "/metrics", headers: auth("admin-token-1") });
  return res.body
    .split("\n")
    .filter((l) => /^kvm_(http_requests_total|operations_total|cache_events_total)\{/.test(l))
    .filter((l) => !l.includes('route="/metrics"'))
    .sort();
}

const auth = (token: string) => ({ authorization: `Bearer ${token}` });

before(async () => {
  db = await createTestDatabase();
  siblingUrl = await db.createSibling();
  fast = await serve(db.url, true, TOKENS);
  plain = await serve(siblingUrl, false, TOKENS);
  // The same entries in both databases, written through the admin-free data plane.
  for (const s of [fast, plain]) {
    const put = (url: string, payload: Buffer | string, headers: Record<string, string> = {}) =>
      s.t.app.inject({ method: "PUT", url, payload, headers: { ...auth("data-token-1"), ...headers } });
    assert.equal((await put("/v1/kvms/m/entries/k1", "value-1")).statusCode, 201);
    assert.equal(
      (await put("/v1/kvms/m/entries/%FF%00%2F", Buffer.from([0, 1, 0xfe, 0xff]))).statusCode,
      201,
    );
    assert.equal((await put("/v1/kvms/m/entries/a%2Fb", "slash")).statusCode, 201);
    assert.equal((await put("/v1/kvms/m/entries/ttl", "expiring", { "x-kvm-ttl": "3600" })).statusCode, 201);
    assert.equal((await put("/v1/kvms/m/entries/empty", "")).statusCode, 201);
    assert.equal((await put("/v1/kvms/m/entries/big", Buffer.alloc(200_000, 7))).statusCode, 201);
    await cacheSynced(s.t.pool);
  }
  // The expiry instant and versions must be the same on both sides for the answers to compare.
  await plain.t.pool.query("UPDATE kvm_data SET expires_at = $1 WHERE key = $2", [
    (await fast.t.pool.query("SELECT expires_at FROM kvm_data WHERE key = $1", [Buffer.from("ttl")])).rows[0]
      .expires_at,
    Buffer.from("ttl"),
  ]);
  await cacheSynced(plain.t.pool);
});

after(async () => {
  await fast?.t.close();
  await plain?.t.close();
  await db?.drop();
});

describe("the data plane's GET before Fastify answers as the Fastify route does", () => {
  const paths = [
    "/v1/kvms/m/entries/k1",
    "/v1/kvms/m/entries/%FF%00%2F",
    "/v1/kvms/m/entries/%ff%00%2f",
    "/v1/kvms/m/entries/a%2Fb",
    "/v1/kvms/m/entries/a/b",
    "/v1/kvms/m/entries/ttl",
    "/v1/kvms/m/entries/empty",
    "/v1/kvms/m/entries/big",
    "/v1/kvms/m/entries/absent",
    "/v1/kvms/m/entries/k1?x=1&y",
    "/v1/kvms/m/entries/k1?",
    "/v1/kvms/m/entries/",
    "/v1/kvms/m/entries/%ZZ",
    "/v1/kvms/m/entries/k1#fragment",
    `/v1/kvms/m/entries/${"k".repeat(513)}`,
    `/v1/kvms/m/entries/${"k".repeat(512)}`,
    "/v1/kvms/m/entries",
    "/v1/kvms//entries/k1",
    "/v1/kvms/../entries/k1",
    "/v1/kvms/./entries/k1",
    "/v1/kvms/bad%20name/entries/k1",
    "/v1/kvms/%6D/entries/k1",
    `/v1/kvms/${"m".repeat(129)}/entries/k1`,
    "/v1/kvms/m/entrie/k1",
    "/v1/kvms/m/entries//k1",
    "/admin/v1/kvms/m/entries/%6B",
    "/v1/kvms/m/entries/k1/",
  ];
  const authorizations = [
    "Authorization: Bearer data-token-1",
    "Authorization: Bearer admin-token-1",
    "Authorization: bearer   data-token-1  ",
    "Authorization: Bearer wrong",
    "Authorization: Basic ZGF0YS10b2tlbi0x",
    null,
  ];

  test("every path, with every kind of credential, twice (the database's answer, then the cache's)", async () => {
    for (const path of paths) {
      for (const authorization of authorizations) {
        const headers = authorization === null ? [] : [authorization];
        await both(get(path, headers));
        await both(get(path, headers));
      }
    }
  });

  test("revalidation: If-None-Match with the current version, a weak one, *, a list, another version", async () => {
    const version = (
      await fast.t.pool.query("SELECT version FROM kvm_data WHERE key = $1", [Buffer.from("k1")])
    ).rows[0].version as string;
    assert.equal(
      (await plain.t.pool.query("SELECT version FROM kvm_data WHERE key = $1", [Buffer.from("k1")])).rows[0]
        .version,
      version,
    );
    for (const tag of [
      `"${version}"`,
      `W/"${version}"`,
      "*",
      `"999", "${version}"`,
      '"999"',
      "garbage",
      "",
    ]) {
      for (const path of ["/v1/kvms/m/entries/k1", "/v1/kvms/m/entries/ttl", "/v1/kvms/m/entries/absent"]) {
        await both(get(path, ["Authorization: Bearer data-token-1", `If-None-Match: ${tag}`]));
      }
    }
  });

  test("HEAD, a GET with a body, a chunked GET, other methods", async () => {
    const token = "Authorization: Bearer data-token-1";
    await both(get("/v1/kvms/m/entries/k1", [token], "HEAD"));
    await both(
      get("/v1/kvms/m/entries/k1", [token, "Content-Length: 5"]).replace(/\r\n\r\n$/, "\r\n\r\nhello"),
    );
    await both(
      get("/v1/kvms/m/entries/k1", [token, "Transfer-Encoding: chunked"]).replace(
        /\r\n\r\n$/,
        "\r\n\r\n0\r\n\r\n",
      ),
    );
    await both(get("/v1/kvms/m/entries/k1", [token, "Content-Type: text/plain"]));
    await both(get("/v1/kvms/m/entries/k1", [token], "OPTIONS"));
    await both(get("/v1/kvms/m/entries/absent", [token], "DELETE"));
    await both(get("/v1/kvms/m/entries/k1", [token, "Connection: keep-alive"]));
  });

  test("a write through the service is read back at once on both", async () => {
    for (const s of [fast, plain]) {
      const res = await s.t.app.inject({
        method: "PUT",
        url: "/v1/kvms/m/entries/k1",
        payload: "value-2",
        headers: auth("data-token-1"),
      });
      assert.equal(res.statusCode, 200);
    }
    await both(get("/v1/kvms/m/entries/k1", ["Authorization: Bearer data-token-1"]));
    for (const s of [fast, plain]) {
      const res = await exchange(
        s.port,
        get("/v1/kvms/m/entries/k1", ["Authorization: Bearer data-token-1"]),
      );
      assert.equal(Buffer.from(res.body, "hex").toString(), "value-2");
    }
  });

  test("the GET before Fastify answered the reads (the comparison above compared something)", () => {
    // Every well-formed, authorised read: answered from the cache or after the database read, never routed.
    assert.ok(plain.routed - fast.routed >= 100, `${plain.routed} routed without it, ${fast.routed} with it`);
  });

  test("both count the same requests, operations and cache events", async () => {
    const [a, b] = [await counters(fast), await counters(plain)];
    assert.ok(
      a.some((l) => l.includes('operation="get",result="hit"')),
      a.join("\n"),
    );
    assert.deepEqual(a, b);
  });
});

describe("with the read cache turned off (KVM_CACHE_MAX_BYTES=0)", () => {
  test("every read goes to the database, and the answers are the same", async () => {
    const env = { ...TOKENS, KVM_CACHE_MAX_BYTES: "0" };
    const saved = [fast, plain];
    fast = await serve(db.url, true, env, false);
    plain = await serve(siblingUrl, false, env, false);
    try {
      for (const path of ["/v1/kvms/m/entries/k1", "/v1/kvms/m/entries/ttl", "/v1/kvms/m/entries/absent"]) {
        for (const authorization of ["Authorization: Bearer data-token-1", "Authorization: Bearer wrong"]) {
          await both(get(path, [authorization]));
          await both(get(path, [authorization, 'If-None-Match: "1"']));
        }
      }
      assert.ok(plain.routed - fast.routed >= 6, `${plain.routed} routed without it, ${fast.routed} with it`);
    } finally {
      await fast.t.close();
      await plain.t.close();
      [fast, plain] = saved;
    }
  });
});

describe("access lines", () => {
  test("at info, data-plane reads leave none; writes, admin requests and errors one each", async () => {
    const served = await serve(db.url, true, TOKENS, false, "info");
    try {
      const token = "Authorization: Bearer data-token-1";
      const messages = async (request: string) => {
        const from = served.lines.length;
        await exchange(served.port, request);
        await new Promise((r) => setTimeout(r, 50));
        return served.lines
          .slice(from)
          .map((l) => JSON.parse(l) as { level: number; res: { statusCode: number } });
      };
      // Reads answered as reads: the cached value, the database's, 304, 404, HEAD.
      assert.deepEqual(await messages(get("/v1/kvms/m/entries/empty", [token])), []);
      assert.deepEqual(await messages(get("/v1/kvms/m/entries/empty", [token])), []);
      assert.deepEqual(await messages(get("/v1/kvms/m/entries/nothing", [token])), []);
      assert.deepEqual(await messages(get("/v1/kvms/m/entries/empty", [token], "HEAD")), []);
      for (const [request, status] of [
        [get("/v1/kvms/m/entries/empty", ["Authorization: Bearer wrong"]), 401],
        [get("/v1/kvms/m/entries/%ZZ", [token]), 400],
        [get("/v1/kvms/m/entries/empty", [token], "DELETE"), 204],
        [get("/admin/v1/kvms/m/entries/nothing", ["Authorization: Bearer admin-token-1"]), 404],
        [get("/v1/nowhere", [token]), 404],
      ] as const) {
        const lines = await messages(request);
        assert.deepEqual(
          lines.map((l) => [l.level, l.res.statusCode]),
          [[30, status]],
          request,
        );
      }
    } finally {
      await served.t.close();
    }
  });
});

describe("what the GET before Fastify leaves to Fastify", () => {
  test("a database that can not be reached: Fastify reads again and answers 503", async () => {
    const dead = "postgres://postgres@127.0.0.1:1/none";
    const env = { ...TOKENS, KVM_PG_CONNECT_TIMEOUT_MS: "200" };
    const [a, b] = [await serve(dead, true, env, false), await serve(dead, false, env, false)];
    try {
      const request = get("/v1/kvms/m/entries/k1", ["Authorization: Bearer data-token-1"]);
      const [ra, rb] = [await exchange(a.port, request), await exchange(b.port, request)];
      assert.equal(ra.status, 503);
      assert.deepEqual(ra, rb);
    } finally {
      await a.t.close();
      await b.t.close();
    }
  });

  /** The handler on stand-ins: an open data plane, a cache that answers `lookup`, a log that keeps errors. */
  function standIn(lookup: () => unknown, closing = false) {
    const errors: string[] = [];
    const metrics = createMetrics(fast.t.pool);
    const handler = fastEntryGet({
      cache: { lookup, load: () => Promise.reject(new Error("not here")) } as never,
      repository: null as never,
      metrics,
      requestLog: new RequestLog(metrics, fast.t.app.log, requestIds()),
      accepts: bearerCheck(new TokenSet([])),
      closing: () => closing,
      log: { error: (_obj: unknown, message?: string) => errors.push(String(message)) } as never,
    });
    const req = {
      method: "GET",
      url: "/v1/kvms/m/entries/k1",
      headers: {},
      socket: { remoteAddress: "127.0.0.1" },
    } as unknown as IncomingMessage;
    return { handler, req, errors };
  }

  test("nothing once the server is closing: the request is not touched", () => {
    const { handler, req } = standIn(() => assert.fail("looked up"), true);
    const res = {} as ServerResponse; // any use of it would throw
    assert.equal(
      handler(req, res, () => assert.fail("handed on")),
      false,
    );
  });

  test("a throw of its own before anything is written: logged, and the request goes to Fastify", () => {
    const { handler, req, errors } = standIn(() => {
      throw new Error("broken");
    });
    let handedOn = 0;
    const res = { headersSent: false } as ServerResponse;
    assert.equal(
      handler(req, res, () => handedOn++),
      true,
    );
    assert.equal(handedOn, 1);
    assert.deepEqual(errors, ["data-plane read failed before Fastify"]);
  });

  test("a throw of its own after the answer has started: logged, and the connection closed", () => {
    const { handler, req, errors } = standIn(() => ({
      version: 1,
      expiresAt: null,
      value: Buffer.from("v"),
    }));
    let destroyed = 0;
    const res: { headersSent: boolean; [k: string]: unknown } = {
      headersSent: false,
      writeHead() {
        res.headersSent = true;
        return res;
      },
      end() {
        throw new Error("socket gone wrong");
      },
      destroy() {
        destroyed++;
      },
    };
    assert.equal(
      handler(req, res as unknown as ServerResponse, () => assert.fail("handed on")),
      true,
    );
    assert.equal(destroyed, 1);
    assert.deepEqual(errors, ["data-plane read failed before Fastify"]);
  });
});
