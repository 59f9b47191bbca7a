// Input an adversarial client sends: numbers that are not numbers, JSON of the wrong type, strings that are not
// Unicode, raw bytes HTTP does not allow, requests Node refuses before Fastify sees them. Every answer is a 4xx
// in the common {error, message} shape, nothing is written, and keys stay out of the logs.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { encodePageToken } from "../../service/keys.ts";
import {
  createTestDatabase,
  entryUrl,
  startTestApp,
  type TestApp,
  type TestDatabase,
  logCapture,
} from "./helpers.ts";

let db: TestDatabase;
let t: TestApp;
let base: { host: string; port: number };

before(async () => {
  db = await createTestDatabase();
  t = await startTestApp(db.url);
  await t.app.listen({ host: "127.0.0.1", port: 0 });
  const address = t.app.server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  base = { host: "127.0.0.1", port: address.port };
});
after(async () => {
  await t?.close();
  await db?.drop();
});

/** Sends bytes as they are (no client library to normalise them) and parses the one answer. */
function raw(request: string | Buffer): Promise<{ status: number; headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(base.port, base.host);
    const chunks: Buffer[] = [];
    socket.on("data", (d) => chunks.push(d));
    socket.on("error", reject);
    socket.on("close", () => {
      const text = Buffer.concat(chunks).toString("latin1");
      const [head, ...rest] = text.split("\r\n\r\n");
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      resolve({ status, headers: head, body: rest.join("\r\n\r\n") });
    });
    socket.end(request);
  });
}

function assertErrorShape(body: string, code: string) {
  const parsed = JSON.parse(body) as Record<string, unknown>;
  assert.deepEqual(Object.keys(parsed).sort(), ["error", "message"], body);
  assert.equal(parsed.error, code, body);
  assert.equal(typeof parsed.message, "string");
}

const inject = (method: "GET" | "PUT" | "POST" | "DELETE", url: string, payload?: string | object) =>
  t.app.inject({
    method,
    url,
    payload,
    headers: typeof payload === "string" ? { "content-type": "application/json" } : {},
  });

async function stored(kvm: string): Promise<number> {
  const res = await t.pool.query("SELECT count(*)::int AS n FROM kvm_data WHERE kvm_name = $1", [kvm]);
  return res.rows[0].n as number;
}

describe("page parameters that are not page parameters (issue 12 #6)", () => {
  for (const size of ["Infinity", "-Infinity", "1e309", "NaN", "1.5"]) {
    test(`page_size=${size} is a 400 on every listing`, async () => {
      for (const path of ["/admin/v1/kvms", "/admin/v1/kvms/m/entries", "/admin/v1/kvms/m/export"]) {
        const res = await inject("GET", `${path}?page_size=${size}`);
        assert.equal(res.statusCode, 400, `${path}: ${res.body}`);
        assertErrorShape(res.body, "bad_request");
      }
    });
  }

  test("a map page token holding a NUL byte (or any name no map can have) is a 400", async () => {
    for (const name of ["a\0b", "a/b", "x".repeat(129)]) {
      const token = encodePageToken("map", Buffer.from(name, "utf8"));
      const res = await inject("GET", `/admin/v1/kvms?page_token=${token}`);
      assert.equal(res.statusCode, 400, res.body);
      assertErrorShape(res.body, "invalid_page_token");
    }
  });
});

describe("JSON of the wrong type is refused, not converted (issue 12 #7)", () => {
  test("admin PUT: value and ttl must be what the schema says", async () => {
    const url = "/admin/v1/kvms/types/entries/k";
    assert.equal((await inject("PUT", url, { value: "original" })).statusCode, 201);
    for (const body of [
      '{"value":null}',
      '{"value":123}',
      '{"value":true}',
      '{"value":["a"]}',
      '{"value_base64":7}',
      '{"value":"v","ttl":true}',
      '{"value":"v","ttl":"60"}',
      '{"value":"v","ttl":null}',
      '{"value":"v","ttl":1.5}',
    ]) {
      const res = await inject("PUT", url, body);
      assert.equal(res.statusCode, 400, `${body}: ${res.body}`);
      assertErrorShape(res.body, "bad_request");
    }
    const entry = (await inject("GET", url)).json();
    assert.equal(entry.value, "original");
    assert.equal(entry.expires_at, null);
  });

  test("import: a name, value or expires_at of another type rejects the batch", async () => {
    for (const entry of [
      '{"name":5,"value":"v"}',
      '{"name":"k","value":5}',
      '{"name":"k","value":null}',
      '{"name":true,"value":"v"}',
      '{"name":"k","value":"v","expires_at":"99999999999999"}',
    ]) {
      const res = await inject(
        "POST",
        "/admin/v1/kvms/types-import/import",
        `{"keyValueEntries":[${entry}]}`,
      );
      assert.equal(res.statusCode, 400, `${entry}: ${res.body}`);
      assertErrorShape(res.body, "bad_request");
    }
    assert.equal(await stored("types-import"), 0);
  });
});

describe("strings that are not Unicode text (issue 12 #8)", () => {
  test("a lone surrogate in a value or a name is a 400, not a silent U+FFFD", async () => {
    const put = await inject("PUT", "/admin/v1/kvms/surrogates/entries/k", '{"value":"a\\ud800b"}');
    assert.equal(put.statusCode, 400, put.body);
    assertErrorShape(put.body, "bad_request");
    assert.match(put.json().message, /value.*lone surrogate.*value_base64/);
    // Two names that would both become "\uFFFD" must not collide: both are refused.
    const imported = await inject(
      "POST",
      "/admin/v1/kvms/surrogates/import",
      '{"keyValueEntries":[{"name":"\\ud800","value":"a"},{"name":"\\udfff","value":"b"}]}',
    );
    assert.equal(imported.statusCode, 400, imported.body);
    assert.match(imported.json().message, /^keyValueEntries\[0\]: "name" holds a lone surrogate/);
    assert.equal(await stored("surrogates"), 0);
  });
});

describe("a raw '#' in a request path (issue 12 #9)", () => {
  test("is refused, not taken as the end of the key", async () => {
    const res = await raw(
      "PUT /v1/kvms/fragments/entries/frag#ment HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv",
    );
    assert.equal(res.status, 400, res.body);
    assertErrorShape(res.body, "invalid_key");
    assert.match(JSON.parse(res.body).message, /%23/);
    assert.equal(await stored("fragments"), 0);
    // Percent-encoded, '#' is an ordinary key byte.
    assert.equal((await inject("PUT", entryUrl("fragments", "frag#ment"), "v")).statusCode, 201);
  });
});

describe("query strings stay out of the logs (issue 12 #10)", () => {
  test("prefix, prefix_base64 and page_token values are not logged", async () => {
    const { lines, stream: sink } = logCapture();
    const logged = await startTestApp(
      db.url,
      {},
      { migrate: false, logger: { level: "trace", stream: sink } },
    );
    const key = Buffer.from("secret-key-4711");
    const token = encodePageToken("entry", key);
    try {
      for (const query of [
        `prefix=${key}`,
        `prefix_base64=${key.toString("base64")}`,
        `page_token=${token}`,
        `page_size=5&page_token=${token}`,
      ]) {
        await logged.app.inject({ method: "GET", url: `/admin/v1/kvms/logs/entries?${query}` });
        await logged.app.inject({ method: "GET", url: `/admin/v1/kvms/logs/export?${query}` });
      }
    } finally {
      await logged.close();
    }
    const all = lines.join("");
    assert.ok(all.includes("/admin/v1/kvms/logs/entries?"), "requests are logged");
    for (const secret of [key.toString(), key.toString("base64"), token]) {
      assert.ok(!all.includes(secret), secret);
    }
  });
});

describe("every error answer has the common shape (issue 12 #13)", () => {
  const refusedByNode: [string, string | Buffer, number, string][] = [
    [
      "raw non-ASCII in the path",
      Buffer.concat([
        Buffer.from("GET /v1/kvms/m/entries/"),
        Buffer.from([0xff]),
        Buffer.from(" HTTP/1.1\r\n\r\n"),
      ]),
      400,
      "bad_request",
    ],
    ["a bad header name", "GET /healthz HTTP/1.1\r\nBad Header: x\r\n\r\n", 400, "bad_request"],
    ["an unknown method", "FROB /healthz HTTP/1.1\r\n\r\n", 400, "bad_request"],
    [
      "headers over 16 KiB",
      `GET /healthz HTTP/1.1\r\nx-big: ${"a".repeat(17 * 1024)}\r\n\r\n`,
      431,
      "headers_too_large",
    ],
  ];
  for (const [what, request, status, code] of refusedByNode) {
    test(`a request Node refuses itself: ${what}`, async () => {
      const res = await raw(request);
      assert.equal(res.status, status, res.headers);
      assert.match(res.headers, /content-type: application\/json/i);
      assertErrorShape(res.body, code);
    });
  }

  test("a map name over 256 characters is invalid_kvm_name like any other bad name", async () => {
    for (const [method, url] of [
      ["GET", `/admin/v1/kvms/${"a".repeat(300)}/entries`],
      ["GET", `/v1/kvms/${"a".repeat(300)}/entries/k`],
      ["DELETE", `/admin/v1/kvms/${"a".repeat(2000)}`],
    ] as const) {
      const res = await inject(method, url);
      assert.equal(res.statusCode, 400, `${url.slice(0, 30)}: ${res.body}`);
      assertErrorShape(res.body, "invalid_kvm_name");
    }
  });

  test("admin JSON sent as text/plain is a 415", async () => {
    const res = await t.app.inject({
      method: "PUT",
      url: "/admin/v1/kvms/plain/entries/k",
      payload: '{"value":"v"}',
      headers: { "content-type": "text/plain" },
    });
    assert.equal(res.statusCode, 415, res.body);
    assertErrorShape(res.body, "unsupported_media_type");
  });

  test("a value at the limit read through the admin API can be written back through it", async () => {
    // Control bytes are valid UTF-8, so the value travels as JSON text: six characters (\u0001) per byte.
    const value = Buffer.alloc(t.config.maxValueBytes, 0x01);
    assert.equal((await inject("PUT", entryUrl("roundtrip", "k"), value.toString("latin1"))).statusCode, 201);
    const read = await inject("GET", "/admin/v1/kvms/roundtrip/entries/k");
    assert.equal(read.statusCode, 200);
    assert.ok(read.body.length > 6 * t.config.maxValueBytes);
    const { value: text } = read.json() as { value: string };
    const written = await inject(
      "PUT",
      "/admin/v1/kvms/roundtrip/entries/k",
      JSON.stringify({ value: text }),
    );
    assert.equal(written.statusCode, 200, written.body);
    assert.ok(
      (await t.pool.query("SELECT value FROM kvm_data WHERE kvm_name = 'roundtrip'")).rows[0].value.equals(
        value,
      ),
    );
  });
});

describe("expiry times at the edge of the schema (issue 12 #15)", () => {
  test("an import's expires_at reads back to the millisecond, up to Number.MAX_SAFE_INTEGER", async () => {
    const times = [
      Number.MAX_SAFE_INTEGER,
      Number.MAX_SAFE_INTEGER - 1,
      4_102_444_800_123,
      8_640_000_000_000_001,
    ];
    const res = await inject("POST", "/admin/v1/kvms/far-future/import", {
      keyValueEntries: times.map((expires_at, i) => ({ name: `k${i}`, value: "v", expires_at })),
    });
    assert.equal(res.statusCode, 200, res.body);
    const page = (await inject("GET", "/admin/v1/kvms/far-future/export")).json() as {
      keyValueEntries: { name: string; expires_at: number }[];
    };
    assert.deepEqual(
      page.keyValueEntries.map((e) => e.expires_at),
      times,
    );
  });
});
