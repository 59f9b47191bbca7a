// The bad-input campaign against the service's HTTP API over a plain socket: malformed JSON, huge bodies,
// odd encodings in keys and map names (percent-encoded slashes, NUL, invalid UTF-8, overlong), SQL
// metacharacters, path traversal, header injection (CR/LF), wrong content types — after the corpus in
// test/corpus/service/. A request the API must refuse gets a 4xx in the {error, message} shape and changes
// no row; a hostile but valid write (SQL metacharacters, CR/LF, NUL in a key or value) stores exactly the
// bytes sent and nothing else; nothing is ever a 5xx.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { MAX_KEY_BYTES } from "../../service/config.ts";
import { percentDecodeBytes, percentEncodeBytes } from "../../service/keys.ts";
import { CAMPAIGN_SEED, Gen, campaignSize, keepFailure, readCorpus } from "../corpus/generator.ts";
import { exchange, serialize, type RawRequest } from "../corpus/raw-http.ts";
import { recordReliability } from "../reliability/record.ts";
import { createTestDatabase, startTestApp, type TestApp, type TestDatabase } from "./helpers.ts";

const BOUND_MS = 10_000;
const REQUESTS = campaignSize(400, 6000);

let db: TestDatabase;
let t: TestApp;
let port: number;

before(async () => {
  db = await createTestDatabase();
  t = await startTestApp(db.url, { KVM_MAX_VALUE_BYTES: String(64 * 1024) });
  await t.app.listen({ host: "127.0.0.1", port: 0 });
  port = (t.app.server.address() as { port: number }).port;
  // Rows a stray write could change.
  await t.pool.query(
    "INSERT INTO kvm_data (kvm_name, key, value) SELECT 'm', convert_to('k' || i, 'UTF8'), '\\x76' FROM generate_series(1, 5) i",
  );
});
after(async () => {
  await t?.close();
  await db?.drop();
});

/** Every row, version and expiry: any write changes it. */
async function snapshot(): Promise<string> {
  const res = await t.pool.query(
    `SELECT count(*) || ':' || coalesce(md5(string_agg(kvm_name || encode(key, 'hex') || encode(value, 'hex')
       || version || coalesce(expires_at::text, '-'), ',' ORDER BY kvm_name, key)), '') AS s FROM kvm_data`,
  );
  return res.rows[0].s as string;
}

type Expect =
  | { kind: "refused" }
  | { kind: "read" }
  /** A valid write of hostile bytes: exactly this value under this key, nothing else. */
  | { kind: "written"; kvm: string; key: Buffer; value: Buffer };

interface Case {
  name: string;
  bytes: Buffer;
  expect: Expect;
}

const host: [string, string] = ["host", "kvm-service"];
const json: [string, string] = ["content-type", "application/json"];
const SQL = [
  "'",
  "''; DROP TABLE kvm_data; --",
  '" OR 1=1 --',
  "\\",
  "%",
  "_",
  "$1",
  "';SELECT pg_sleep(10);--",
];
const TRAVERSAL = ["..", "../..", "..%2F..%2Fadmin", "%2e%2e", "%2E%2E%2F", "./.", "..;", "%252e%252e"];

// Map names the pattern ^[A-Za-z0-9._-]{1,128}$ refuses, as they appear in a path.
function badMapName(g: Gen): string {
  return g.pick([
    "a%2Fb",
    "a%00b",
    "%C0%AF",
    "%FF",
    "%ED%A0%80",
    "x".repeat(129 + g.int(2000)),
    "a%20b",
    "a'b",
    encodeURIComponent(g.pick(SQL.filter((sql) => !/^[A-Za-z0-9._-]+$/.test(sql)))),
    "%",
    "%zz",
    "caf%C3%A9",
    "a%0D%0Ab",
  ]);
}

// Keys the API refuses: bad percent-encoding, empty, over MAX_KEY_BYTES, a raw '#'.
function badKey(g: Gen): string {
  return g.pick(["%", "%zz", "a%G1", "%F", "x".repeat(MAX_KEY_BYTES + 1 + g.int(100)), "a#b", "%2"]);
}

// Keys and values that are valid, however hostile: stored byte for byte.
function hostileBytes(g: Gen): Buffer {
  return g.pick<() => Buffer>([
    () => Buffer.from(g.pick(SQL)),
    () => Buffer.from(g.pick(TRAVERSAL.map(decodeURIComponent))),
    () => Buffer.from("a\r\nx-injected: 1"),
    () => Buffer.from([0x00, 0x61]),
    () => g.invalidUtf8(),
    () => Buffer.from("/"),
    () => g.bytes(1 + g.int(40)),
  ])();
}

function percentDecode(text: string): Buffer {
  const bytes = percentDecodeBytes(text);
  if (bytes === null) throw new Error(`not percent-encoding: ${text}`);
  return bytes;
}

function request(g: Gen, i: number): Case {
  const raw = (req: RawRequest) => serialize({ ...req, headers: [host, ...req.headers] });
  switch (g.int(12)) {
    case 0: {
      // Admin JSON that is not the JSON the schema wants.
      const body = g.oneIn(4)
        ? Buffer.from(`{"value":${g.pick(["null", "1", "[]", '"\\ud800"', "{}"])}}`)
        : g.jsonish();
      const url = g.oneIn(2) ? `/admin/v1/kvms/c${i}/entries/k` : `/admin/v1/kvms/c${i}/import`;
      const bad = !/^\{"value":"/.test(body.toString("latin1")) || body.includes("\\ud800");
      return {
        name: "admin JSON",
        bytes: raw({ method: url.endsWith("import") ? "POST" : "PUT", target: url, headers: [json], body }),
        expect: bad ? { kind: "refused" } : { kind: "read" },
      };
    }
    case 1: // a value over the limit, through either API
      return {
        name: "huge body",
        bytes: raw({
          method: "PUT",
          target: g.oneIn(2) ? `/v1/kvms/c${i}/entries/k` : `/admin/v1/kvms/c${i}/entries/k`,
          headers: g.oneIn(2) ? [json] : [],
          body: Buffer.alloc(g.pick([2, 7, 20]) * 64 * 1024 + 1, "a"),
          chunked: g.oneIn(2),
        }),
        expect: { kind: "refused" },
      };
    case 2:
      return {
        name: "odd map name",
        bytes: raw({
          method: g.pick(["PUT", "DELETE"]),
          target: `/v1/kvms/${badMapName(g)}/entries/k`,
          headers: [],
          body: Buffer.from("v"),
        }),
        expect: { kind: "refused" },
      };
    case 3:
      return {
        name: "odd admin map name",
        bytes: raw({
          method: g.pick(["PUT", "DELETE", "POST"]),
          target: `/admin/v1/kvms/${badMapName(g)}${g.pick(["", "/entries/k", "/import"])}`,
          headers: [json],
          body: Buffer.from('{"value":"v","keyValueEntries":[]}'),
        }),
        expect: { kind: "refused" },
      };
    case 4:
      return {
        name: "bad key",
        bytes: raw({
          method: g.pick(["PUT", "DELETE"]),
          target: `/v1/kvms/m/entries/${badKey(g)}`,
          headers: [],
          body: Buffer.from("v"),
        }),
        expect: { kind: "refused" },
      };
    case 5: {
      // Path traversal: never another route, never another map. Everything after /entries/ is the key,
      // dots and slashes included: stored as such in the map the path names.
      if (g.oneIn(3)) {
        const kvm = `t${i}`;
        const key = `k/${g.pick(TRAVERSAL)}/${g.pick(TRAVERSAL)}/admin/v1/kvms/m`;
        return {
          name: "path traversal in a key",
          bytes: raw({
            method: "PUT",
            target: `/v1/kvms/${kvm}/entries/${key}`,
            headers: [],
            body: Buffer.from("v"),
          }),
          expect: { kind: "written", kvm, key: percentDecode(key), value: Buffer.from("v") },
        };
      }
      return {
        name: "path traversal",
        bytes: raw({
          method: g.pick(["PUT", "DELETE"]),
          target: g.pick([
            `/v1/kvms/${g.pick(TRAVERSAL)}/${g.pick(TRAVERSAL)}/admin/v1/kvms/m/entries/k`,
            `/v1/kvms/m/../m/entries/k`,
            `/v1/kvms//entries/k`,
            `/v1/kvms/m/entries/`,
            `/admin/v1/kvms/m/entries/k/..`,
          ]),
          headers: [],
          body: Buffer.from("v"),
        }),
        expect: { kind: "refused" },
      };
    }
    case 6: // CR, LF or NUL in a header: the parser refuses the request
      return {
        name: "header injection",
        bytes: raw({
          method: "PUT",
          target: `/v1/kvms/c${i}/entries/k`,
          headers: [
            [
              g.pick(["x-kvm-ttl", "if-none-match", "content-type", "x-a"]),
              Buffer.from(`60${g.pick(["\r", "\n", "\0", "\r\nx-kvm-ttl: 1\r"])}1`),
            ],
          ],
          body: Buffer.from("v"),
        }),
        expect: { kind: "refused" },
      };
    case 7: // a TTL that is not a whole number of seconds
      return {
        name: "bad x-kvm-ttl",
        bytes: raw({
          method: "PUT",
          target: `/v1/kvms/c${i}/entries/k`,
          headers: [
            ["x-kvm-ttl", g.pick(["-1", "1.5", "1e3", "abc", "", "99999999999999999999", "0x10", "60, 60"])],
          ],
          body: Buffer.from("v"),
        }),
        expect: { kind: "refused" },
      };
    case 8: // wrong content types on the admin API
      return {
        name: "wrong content-type",
        bytes: raw({
          method: g.pick(["PUT", "POST"]),
          target: g.oneIn(2) ? `/admin/v1/kvms/c${i}/entries/k` : `/admin/v1/kvms/c${i}/import`,
          headers: [
            [
              "content-type",
              g.pick([
                "text/plain",
                "multipart/form-data; boundary=x",
                "application/x-www-form-urlencoded",
                "application/xml",
                "application/json; charset=utf-16",
                "\u00e9/\u00e9",
              ]),
            ],
          ],
          body: Buffer.from('{"value":"v","keyValueEntries":[{"name":"k","value":"v"}]}'),
        }),
        expect: { kind: "refused" },
      };
    case 9: // reads with hostile query strings
      return {
        name: "hostile query",
        bytes: raw({
          method: "GET",
          target: `/admin/v1/kvms/m/${g.pick(["entries", "export"])}?${g.pick(["prefix", "page_size", "page_token", "prefix_base64", "mode"])}=${encodeURIComponent(g.pick(SQL))}${g.badPercent()}`,
          headers: [],
        }),
        expect: { kind: "read" },
      };
    default: {
      // A valid write of hostile bytes, through the data plane (raw value) or the admin API (JSON, base64).
      const kvm = `w${i}`;
      const key = hostileBytes(g);
      const value = hostileBytes(g);
      const admin = g.oneIn(2);
      return {
        name: "hostile but valid write",
        bytes: raw({
          method: "PUT",
          target: `${admin ? "/admin" : ""}/v1/kvms/${kvm}/entries/${percentEncodeBytes(key)}`,
          headers: admin
            ? [json]
            : [
                [
                  "content-type",
                  g.pick(["text/plain", "application/json", "x/y", "text/plain; charset=latin1"]),
                ],
              ],
          body: admin ? Buffer.from(JSON.stringify({ value_base64: value.toString("base64") })) : value,
        }),
        expect: { kind: "written", kvm, key, value },
      };
    }
  }
}

async function problem(c: Case): Promise<string | null> {
  const before = await snapshot();
  const answer = await exchange(port, c.bytes, BOUND_MS);
  if (answer.status === -1) return `no answer within ${BOUND_MS} ms`;
  if (answer.status === 0) return "the connection closed without an answer";
  if (answer.status >= 500) return `a ${answer.status}: ${answer.body.toString().slice(0, 200)}`;
  const text = answer.body.toString("utf8");
  const after = await snapshot();
  if (c.expect.kind === "written") {
    if (answer.status !== 201)
      return `a hostile but valid write answered ${answer.status}: ${text.slice(0, 200)}`;
    const rows = await t.pool.query("SELECT key, value FROM kvm_data WHERE kvm_name = $1", [c.expect.kvm]);
    if (
      rows.rows.length !== 1 ||
      !rows.rows[0].key.equals(c.expect.key) ||
      !rows.rows[0].value.equals(c.expect.value)
    )
      return `stored something else than sent: ${JSON.stringify(rows.rows)}`;
    return null;
  }
  if (after !== before && c.expect.kind === "refused")
    return `answered ${answer.status} and changed the data`;
  if (c.expect.kind === "read" && answer.status < 400)
    return after === before ? null : "a read changed the data";
  if (answer.status < 400) return `accepted (${answer.status}) what must be refused: ${text.slice(0, 200)}`;
  if (after !== before) return "a refused request changed the data";
  let shape: { error?: unknown; message?: unknown };
  try {
    shape = JSON.parse(text) as typeof shape;
  } catch {
    return `a ${answer.status} whose body is not JSON: ${text.slice(0, 200)}`;
  }
  if (typeof shape.error !== "string" || typeof shape.message !== "string" || shape.message === "")
    return `a ${answer.status} not in the {error, message} shape: ${text.slice(0, 200)}`;
  return null;
}

async function campaign(cases: Case[]): Promise<void> {
  for (const c of cases) {
    const why = await problem(c);
    if (why !== null) assert.fail(`${c.name}: ${why} (input in ${keepFailure("service", c.name, c.bytes)})`);
  }
}

// A corpus file's name says what it expects: *.refused.http, *.read.http (written cases are generated).
function corpusCases(): Case[] {
  return readCorpus("service").map(({ name, bytes }) => ({
    name,
    bytes,
    expect: { kind: name.endsWith(".read.http") ? "read" : "refused" },
  }));
}

describe("bad input against the service's HTTP API", () => {
  it("replays test/corpus/service/", async () => {
    const cases = corpusCases();
    await campaign(cases);
    recordReliability({
      area: "bad input",
      name: "service API: corpus of requests that once broke something",
      cases: cases.length,
      result: "0 5xx, every refusal a 4xx {error, message}, 0 rows changed",
    });
  });

  it(`${REQUESTS} generated requests (seed ${CAMPAIGN_SEED}): 4xx and nothing written, or exactly the bytes sent`, async () => {
    const g = new Gen(CAMPAIGN_SEED);
    const cases = Array.from({ length: REQUESTS }, (_, i) => {
      const c = request(g, i);
      return { ...c, name: `request ${i} (${c.name})` };
    });
    await campaign(cases);
    assert.ok(cases.filter((c) => c.expect.kind === "written").length > REQUESTS / 10);
    recordReliability({
      area: "bad input",
      name: "service API: malformed JSON, huge bodies, odd keys and map names, SQL metacharacters, traversal, CR/LF, content types",
      cases: REQUESTS,
      result:
        "0 5xx, every refusal a 4xx {error, message}, 0 rows changed; hostile valid writes stored byte for byte",
    });
  });
});
