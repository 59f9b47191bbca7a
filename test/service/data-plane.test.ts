// The API the filter calls: raw values, etag/TTL headers, conditional writes, limits, concurrency.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { buildApp } from "../../service/app.ts";
import { loadConfig } from "../../service/config.ts";
import { freePort } from "../../service/embedded-postgres.ts";
import {
  createTestDatabase,
  dbNowMs,
  entryUrl,
  cacheSynced,
  expireNow,
  startTestApp,
  type TestApp,
  type TestDatabase,
  logCapture,
} from "./helpers.ts";

let db: TestDatabase;
let t: TestApp;

before(async () => {
  db = await createTestDatabase();
  t = await startTestApp(db.url);
});
after(async () => {
  await t?.close();
  await db?.drop();
});

const put = (url: string, body: string | Buffer, headers: Record<string, string> = {}) =>
  t.app.inject({ method: "PUT", url, payload: body, headers });
const get = (url: string) => t.app.inject({ method: "GET", url });

describe("GET / PUT / DELETE", () => {
  test("PUT creates (201) then replaces (200) with a new etag; GET returns the raw value and the etag", async () => {
    const url = entryUrl("basics", "greeting");
    const created = await put(url, "hello", { "content-type": "text/plain" });
    assert.equal(created.statusCode, 201);
    assert.match(created.headers.etag as string, /^"\d+"$/);
    assert.equal(created.headers["x-kvm-expires-at"], undefined);

    const read = await get(url);
    assert.equal(read.statusCode, 200);
    assert.equal(read.body, "hello");
    assert.equal(read.headers.etag, created.headers.etag);
    assert.equal(read.headers["content-type"], "application/octet-stream");
    assert.equal(read.headers["x-kvm-expires-at"], undefined);

    const replaced = await put(url, "world");
    assert.equal(replaced.statusCode, 200);
    assert.notEqual(replaced.headers.etag, created.headers.etag);
    assert.equal((await get(url)).body, "world");
  });

  test("GET of a missing entry is 404 with a JSON error", async () => {
    const res = await get(entryUrl("basics", "nope"));
    assert.equal(res.statusCode, 404);
    assert.deepEqual(res.json(), { error: "not_found", message: "no such entry (absent or expired)" });
  });

  test("GET with If-None-Match naming the current version is 304 without the value", async () => {
    const url = entryUrl("basics", "revalidate");
    const etag = (await put(url, "cached", { "x-kvm-ttl": "60" })).headers.etag as string;
    for (const header of [etag, `W/${etag}`, etag.replaceAll('"', ""), `"1", ${etag}`, "*"]) {
      const res = await t.app.inject({ method: "GET", url, headers: { "if-none-match": header } });
      assert.equal(res.statusCode, 304, header);
      assert.equal(res.body, "");
      assert.equal(res.headers.etag, etag);
      assert.ok(res.headers["x-kvm-expires-at"]);
    }
    await put(url, "changed");
    const stale = await t.app.inject({ method: "GET", url, headers: { "if-none-match": etag } });
    assert.equal(stale.statusCode, 200);
    assert.equal(stale.body, "changed");
  });

  test("HEAD answers the headers of GET", async () => {
    const url = entryUrl("basics", "head");
    const created = await put(url, "x");
    const res = await t.app.inject({ method: "HEAD", url });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers.etag, created.headers.etag);
  });

  test("DELETE answers 204, also when the entry is absent", async () => {
    const url = entryUrl("basics", "doomed");
    await put(url, "x");
    assert.equal((await t.app.inject({ method: "DELETE", url })).statusCode, 204);
    assert.equal((await get(url)).statusCode, 404);
    assert.equal((await t.app.inject({ method: "DELETE", url })).statusCode, 204);
  });

  for (const [label, headers] of [
    ["no content type", {}],
    ["application/octet-stream", { "content-type": "application/octet-stream" }],
    ["application/json that is not JSON", { "content-type": "application/json" }],
    ["a form type", { "content-type": "application/x-www-form-urlencoded" }],
    ["an invalid media type", { "content-type": "not a media type" }],
  ] as const) {
    test(`the body is stored as raw bytes with ${label}`, async () => {
      const value = Buffer.from([0x7b, 0x00, 0xff, 0x3d, 0x26, 0x0a, 0x80]);
      const url = entryUrl("raw", label);
      const res = await put(url, value, headers);
      assert.equal(res.statusCode, 201, res.body);
      const read = await get(url);
      assert.deepEqual(read.rawPayload, value);
    });
  }

  test("an empty body stores an empty value", async () => {
    const url = entryUrl("raw", "empty");
    assert.equal((await t.app.inject({ method: "PUT", url })).statusCode, 201);
    const read = await get(url);
    assert.equal(read.statusCode, 200);
    assert.equal(read.rawPayload.length, 0);
  });
});

describe("keys and map names", () => {
  test("every byte value round-trips in a key (percent-encoded)", async () => {
    const key = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const url = entryUrl("bytes", key);
    assert.equal((await put(url, "all bytes")).statusCode, 201);
    assert.equal((await get(url)).body, "all bytes");
    const listed = await t.app.inject({ method: "GET", url: "/admin/v1/kvms/bytes/entries" });
    assert.deepEqual(
      listed.json().entries.map((e: { key_base64: string }) => Buffer.from(e.key_base64, "base64")),
      [key],
    );
  });

  test("a raw '/' and %2F name the same key; UTF-8 keys work", async () => {
    assert.equal((await put("/v1/kvms/slash/entries/a/b", "1")).statusCode, 201);
    const viaEncoded = await get("/v1/kvms/slash/entries/a%2Fb");
    assert.equal(viaEncoded.body, "1");
    assert.equal((await put(entryUrl("slash", "ключ✓"), "utf8")).statusCode, 201);
    assert.equal((await get(entryUrl("slash", "ключ✓"))).body, "utf8");
  });

  test("a 512-byte key is accepted, 513 bytes is 400 key_too_long", async () => {
    assert.equal((await put(entryUrl("limits", "k".repeat(512)), "v")).statusCode, 201);
    const res = await put(entryUrl("limits", "k".repeat(513)), "v");
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error, "key_too_long");
    // The limit counts decoded bytes: 171 × "é" (2 bytes each) = 342 bytes, 257 × "é" = 514.
    assert.equal((await put(entryUrl("limits", "é".repeat(256)), "v")).statusCode, 201);
    assert.equal((await put(entryUrl("limits", "é".repeat(257)), "v")).json().error, "key_too_long");
  });

  test("an empty key and broken percent-encoding are 400 invalid_key", async () => {
    for (const url of [
      "/v1/kvms/limits/entries/",
      "/v1/kvms/limits/entries/a%Z1",
      "/v1/kvms/limits/entries/a%4",
    ]) {
      const res = await put(url, "v");
      assert.equal(res.statusCode, 400, url);
      assert.equal(res.json().error, "invalid_key", url);
    }
  });

  test("map names follow the filter's pattern (1–128 of [A-Za-z0-9._-])", async () => {
    assert.equal((await put(entryUrl("a".repeat(128), "k"), "v")).statusCode, 201);
    assert.equal((await put(entryUrl("Tenant_1.prod-eu", "k"), "v")).statusCode, 201);
    for (const name of ["a".repeat(129), "bad!name", "sp%20ace"]) {
      const res = await put(entryUrl(name, "k"), "v");
      assert.equal(res.statusCode, 400, name);
      assert.equal(res.json().error, "invalid_kvm_name", name);
    }
  });
});

describe("value size limit", () => {
  test("1 MiB is accepted, 1 MiB + 1 byte is 413 value_too_large", async () => {
    const max = Buffer.alloc(1024 * 1024, 7);
    assert.equal((await put(entryUrl("limits", "max"), max)).statusCode, 201);
    assert.deepEqual((await get(entryUrl("limits", "max"))).rawPayload, max);
    const res = await put(entryUrl("limits", "over"), Buffer.alloc(1024 * 1024 + 1));
    assert.equal(res.statusCode, 413);
    assert.equal(res.json().error, "value_too_large");
    assert.equal((await get(entryUrl("limits", "over"))).statusCode, 404);
  });

  test("KVM_MAX_VALUE_BYTES changes the limit", async () => {
    const small = await startTestApp(db.url, { KVM_MAX_VALUE_BYTES: "16" }, { migrate: false });
    try {
      const ok = await small.app.inject({
        method: "PUT",
        url: entryUrl("small", "k"),
        payload: "x".repeat(16),
      });
      assert.equal(ok.statusCode, 201);
      const over = await small.app.inject({
        method: "PUT",
        url: entryUrl("small", "k"),
        payload: "x".repeat(17),
      });
      assert.equal(over.statusCode, 413);
      assert.equal(over.json().error, "value_too_large");
    } finally {
      await small.close();
    }
  });
});

describe("conditional writes", () => {
  test("If-None-Match: * creates only when absent", async () => {
    const url = entryUrl("cond", "once");
    assert.equal((await put(url, "first", { "if-none-match": "*" })).statusCode, 201);
    const again = await put(url, "second", { "if-none-match": "*" });
    assert.equal(again.statusCode, 412);
    assert.equal(again.json().error, "precondition_failed");
    assert.equal((await get(url)).body, "first");
  });

  test("If-Match: <version> is compare-and-set (quoted or bare)", async () => {
    const url = entryUrl("cond", "cas");
    const v1 = (await put(url, "1")).headers.etag as string;
    const v2res = await put(url, "2", { "if-match": v1 });
    assert.equal(v2res.statusCode, 200);
    const stale = await put(url, "stale", { "if-match": v1 });
    assert.equal(stale.statusCode, 412);
    const bare = (v2res.headers.etag as string).replaceAll('"', "");
    assert.equal((await put(url, "3", { "if-match": bare })).statusCode, 200);
    assert.equal((await get(url)).body, "3");
  });

  test("a weak If-Match tag never matches (strong comparison): 412, the entry unchanged", async () => {
    const url = entryUrl("cond", "weak");
    const etag = (await put(url, "1")).headers.etag as string;
    assert.equal((await put(url, "2", { "if-match": `W/${etag}` })).statusCode, 412);
    const del = await t.app.inject({ method: "DELETE", url, headers: { "if-match": `W/${etag}` } });
    assert.equal(del.statusCode, 412);
    assert.equal((await get(url)).body, "1");
  });

  test("If-Match compares the tag character by character: a zero-padded version is 412 (issue 12 #12)", async () => {
    // RFC 9110 §8.8.3.2: "0426978" and "426978" are different strong tags, although the numbers are equal.
    const url = entryUrl("cond", "padded");
    const etag = (await put(url, "1")).headers.etag as string;
    const digits = etag.replaceAll('"', "");
    for (const tag of [`"0${digits}"`, `0${digits}`, `"${digits.padStart(19, "0")}"`, '"0"']) {
      const res = await put(url, "2", { "if-match": tag });
      assert.equal(res.statusCode, 412, tag);
      const del = await t.app.inject({ method: "DELETE", url, headers: { "if-match": tag } });
      assert.equal(del.statusCode, 412, tag);
    }
    assert.equal((await get(url)).body, "1");
    assert.equal((await put(url, "3", { "if-match": etag })).statusCode, 200);
  });

  test("If-Match on an absent entry is 412; If-Match: * replaces only a present entry", async () => {
    assert.equal((await put(entryUrl("cond", "ghost"), "x", { "if-match": '"1"' })).statusCode, 412);
    assert.equal((await put(entryUrl("cond", "ghost"), "x", { "if-match": "*" })).statusCode, 412);
    assert.equal((await get(entryUrl("cond", "ghost"))).statusCode, 404);
    await put(entryUrl("cond", "here"), "x");
    assert.equal((await put(entryUrl("cond", "here"), "y", { "if-match": "*" })).statusCode, 200);
  });

  test("a version never repeats, even after delete and re-create (no ABA)", async () => {
    const url = entryUrl("cond", "aba");
    const old = (await put(url, "a")).headers.etag as string;
    await t.app.inject({ method: "DELETE", url });
    const fresh = (await put(url, "b")).headers.etag as string;
    assert.notEqual(fresh, old);
    assert.equal((await put(url, "c", { "if-match": old })).statusCode, 412);
  });

  test("DELETE with a stale If-Match is 412 and keeps the entry", async () => {
    const url = entryUrl("cond", "keep");
    const v1 = (await put(url, "1")).headers.etag as string;
    await put(url, "2");
    const res = await t.app.inject({ method: "DELETE", url, headers: { "if-match": v1 } });
    assert.equal(res.statusCode, 412);
    assert.equal((await get(url)).body, "2");
    const current = (await get(url)).headers.etag as string;
    assert.equal(
      (await t.app.inject({ method: "DELETE", url, headers: { "if-match": current } })).statusCode,
      204,
    );
  });

  test("malformed preconditions are 400 invalid_precondition", async () => {
    const url = entryUrl("cond", "bad");
    const cases: Record<string, string>[] = [
      { "if-match": "abc" },
      { "if-match": '"1", "2"' },
      { "if-none-match": '"5"' },
      { "if-match": "*", "if-none-match": "*" },
    ];
    for (const headers of cases) {
      const res = await put(url, "x", headers);
      assert.equal(res.statusCode, 400, JSON.stringify(headers));
      assert.equal(res.json().error, "invalid_precondition");
    }
  });

  test("32 concurrent If-None-Match: * puts of one key → exactly one 201", async () => {
    const url = entryUrl("race", "create");
    const results = await Promise.all(
      Array.from({ length: 32 }, (_, i) => put(url, `writer-${i}`, { "if-none-match": "*" })),
    );
    const winners = results.flatMap((r, i) => (r.statusCode === 201 ? [i] : []));
    assert.equal(winners.length, 1);
    assert.deepEqual(
      results.filter((r) => r.statusCode !== 201).map((r) => r.statusCode),
      Array(31).fill(412),
    );
    assert.equal((await get(url)).body, `writer-${winners[0]}`);
  });

  test("32 concurrent compare-and-set increments → no lost update", async () => {
    const url = entryUrl("race", "counter");
    await put(url, "0");
    let conflicts = 0;
    const worker = async () => {
      for (;;) {
        const read = await get(url);
        const next = String(Number(read.body) + 1);
        const res = await put(url, next, { "if-match": read.headers.etag as string });
        if (res.statusCode === 200) return;
        assert.equal(res.statusCode, 412);
        conflicts++;
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    assert.equal((await get(url)).body, "32");
    // The workers really raced (otherwise this test would prove nothing about concurrency).
    assert.ok(conflicts > 0);
  });

  test("32 concurrent puts with the same If-Match → exactly one 200", async () => {
    const url = entryUrl("race", "same-version");
    const etag = (await put(url, "start")).headers.etag as string;
    const results = await Promise.all(
      Array.from({ length: 32 }, (_, i) => put(url, `w${i}`, { "if-match": etag })),
    );
    assert.equal(results.filter((r) => r.statusCode === 200).length, 1);
    assert.equal(results.filter((r) => r.statusCode === 412).length, 31);
  });
});

describe("TTL", () => {
  test("x-kvm-ttl sets x-kvm-expires-at from the database clock", async () => {
    const url = entryUrl("ttl", "minute");
    const before = await dbNowMs(t.pool);
    const res = await put(url, "v", { "x-kvm-ttl": "60" });
    const afterMs = await dbNowMs(t.pool);
    assert.equal(res.statusCode, 201);
    const expiresAt = Number(res.headers["x-kvm-expires-at"]);
    assert.ok(expiresAt >= before + 60_000 - 1 && expiresAt <= afterMs + 60_000, String(expiresAt));
    const read = await get(url);
    assert.equal(read.headers["x-kvm-expires-at"], String(expiresAt));
  });

  test("ttl 0 means no expiry, and a put without ttl clears an earlier one", async () => {
    const url = entryUrl("ttl", "cleared");
    await put(url, "v", { "x-kvm-ttl": "60" });
    await put(url, "v", { "x-kvm-ttl": "0" });
    assert.equal((await get(url)).headers["x-kvm-expires-at"], undefined);
  });

  test("an expired entry is invisible to every read and counts as absent for writes", async () => {
    const key = "gone";
    const url = entryUrl("ttl", key);
    const old = (await put(url, "v", { "x-kvm-ttl": "3600" })).headers.etag as string;
    await put(entryUrl("ttl", "stays"), "v");
    await expireNow(t.pool, "ttl", Buffer.from(key));

    assert.equal((await get(url)).statusCode, 404);
    const listed = await t.app.inject({ method: "GET", url: "/admin/v1/kvms/ttl/entries?prefix=gone" });
    assert.deepEqual(listed.json().entries, []);
    assert.equal(
      (await t.app.inject({ method: "GET", url: `/admin/v1/kvms/ttl/entries/${key}` })).statusCode,
      404,
    );
    assert.equal((await put(url, "x", { "if-match": old })).statusCode, 412);
    assert.equal(
      (await t.app.inject({ method: "DELETE", url, headers: { "if-match": old } })).statusCode,
      412,
    );
    // Taking over the expired row is a creation.
    assert.equal((await put(url, "new", { "if-none-match": "*" })).statusCode, 201);
    assert.equal((await get(url)).body, "new");
  });

  test("an entry with a 1 s TTL disappears once the database clock passes its expiry", async () => {
    const url = entryUrl("ttl", "short");
    const res = await put(url, "v", { "x-kvm-ttl": "1" });
    const expiresAt = Number(res.headers["x-kvm-expires-at"]);
    assert.equal((await get(url)).statusCode, 200);
    // Wait on the database clock (the one that decides), not on a timer.
    while ((await dbNowMs(t.pool)) <= expiresAt) await new Promise((r) => setTimeout(r, 50));
    assert.equal((await get(url)).statusCode, 404);
  });

  test("invalid TTLs are 400 invalid_ttl", async () => {
    for (const ttl of ["-1", "abc", "1.5", "", "315360001"]) {
      const res = await put(entryUrl("ttl", "bad"), "v", { "x-kvm-ttl": ttl });
      assert.equal(res.statusCode, 400, ttl);
      assert.equal(res.json().error, "invalid_ttl", ttl);
    }
  });

  test("the purge deletes expired rows and leaves live ones", async () => {
    for (let i = 0; i < 5; i++) await put(entryUrl("purge", `dead${i}`), "v", { "x-kvm-ttl": "60" });
    await put(entryUrl("purge", "alive"), "v", { "x-kvm-ttl": "60" });
    await put(entryUrl("purge", "forever"), "v");
    for (let i = 0; i < 5; i++) await expireNow(t.pool, "purge", Buffer.from(`dead${i}`));
    const purged = await t.app.purger.runOnce();
    assert.ok(purged >= 5);
    const rows = await t.pool.query<{ key: Buffer }>(
      "SELECT key FROM kvm_data WHERE kvm_name = 'purge' ORDER BY key",
    );
    assert.deepEqual(
      rows.rows.map((r) => r.key.toString()),
      ["alive", "forever"],
    );
  });
});

describe("purge under concurrent writes", () => {
  test("an expired row refreshed by a transaction still open while the purge runs is kept", async () => {
    const url = entryUrl("purge-race", "refreshed");
    await put(url, "v", { "x-kvm-ttl": "60" });
    await expireNow(t.pool, "purge-race", Buffer.from("refreshed"));
    // A writer has made the row live again but not committed yet: the purge must neither delete the new
    // version after the commit nor wait for it.
    const writer = await t.pool.connect();
    try {
      await writer.query("BEGIN");
      await writer.query(
        "UPDATE kvm_data SET expires_at = NULL, value = 'refreshed' WHERE kvm_name = 'purge-race' AND key = $1",
        [Buffer.from("refreshed")],
      );
      let settled = false;
      const purge = t.app.purger.runOnce().finally(() => (settled = true));
      // Proceed once the purge has finished or is blocked on the writer's row lock.
      const blocked = async () =>
        (
          await t.pool.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
          )
        ).rows[0].n > 0;
      while (!settled && !(await blocked())) await new Promise((r) => setTimeout(r, 10));
      await writer.query("COMMIT");
      await purge;
    } finally {
      writer.release();
    }
    await cacheSynced(t.pool);
    const read = await get(url);
    assert.equal(read.statusCode, 200);
    assert.equal(read.body, "refreshed");
  });
});

describe("database outage", () => {
  test("requests answer 503 unavailable and /readyz fails while /healthz stays up", async () => {
    // A port nobody listens on: every connection attempt is refused.
    const url = `postgres://postgres@127.0.0.1:${await freePort()}/nowhere`;
    const pool = new pg.Pool({ connectionString: url });
    const app = await buildApp({
      config: loadConfig({ DATABASE_URL: url, KVM_INSECURE: "1", KVM_PURGE_INTERVAL_MS: "0" }),
      pool,
      logger: false,
    });
    try {
      const res = await app.inject({ method: "GET", url: entryUrl("down", "k") });
      assert.equal(res.statusCode, 503);
      assert.deepEqual(res.json(), { error: "unavailable", message: "the database is unavailable" });
      const ready = await app.inject({ method: "GET", url: "/readyz" });
      assert.equal(ready.statusCode, 503);
      assert.equal(ready.json().error, "unavailable");
      assert.equal((await app.inject({ method: "GET", url: "/healthz" })).statusCode, 200);
    } finally {
      await app.close();
      await pool.end();
    }
  });
});

describe("observability", () => {
  test("/metrics counts operations by result", async () => {
    await put(entryUrl("metrics", "k"), "v");
    await get(entryUrl("metrics", "k"));
    await get(entryUrl("metrics", "missing"));
    const text = (await t.app.inject({ method: "GET", url: "/metrics" })).body;
    const count = (labels: string) => {
      const line = text.split("\n").find((l) => l.startsWith(`kvm_operations_total{${labels}}`));
      return line === undefined ? 0 : Number(line.split(" ").pop());
    };
    assert.ok(count('operation="get",result="hit"') >= 1);
    assert.ok(count('operation="get",result="miss"') >= 1);
    assert.ok(count('operation="put",result="created"') >= 1);
    assert.match(
      text,
      /kvm_http_request_duration_seconds_bucket\{le="0.001",method="GET",route="\/v1\/kvms\/:kvm\/entries\/:key"\}/,
    );
  });

  test("values and keys never reach the logs", async () => {
    const { lines, stream: sink } = logCapture();
    const logged = await startTestApp(
      db.url,
      {},
      { migrate: false, logger: { level: "trace", stream: sink } },
    );
    try {
      const url = entryUrl("logs", "secret-key-4711");
      await logged.app.inject({ method: "PUT", url, payload: "secret-value-0815" });
      await logged.app.inject({ method: "GET", url });
      await logged.app.inject({
        method: "PUT",
        url: "/admin/v1/kvms/logs/entries/secret-key-4711",
        payload: { value: "secret-value-0815" },
      });
    } finally {
      await logged.close();
    }
    const all = lines.join("");
    assert.ok(all.includes("/v1/kvms/logs/entries/"), "requests are logged");
    assert.ok(!all.includes("secret-value-0815"));
    assert.ok(!all.includes("secret-key-4711"));
  });

  test("a database error that quotes the failing row is logged without it", async () => {
    // A constraint a DBA added: PostgreSQL's error detail then quotes the whole row, value included.
    const url = await db.createSibling();
    const { lines, stream: sink } = logCapture();
    const logged = await startTestApp(url, {}, { logger: { level: "info", stream: sink } });
    try {
      await logged.pool.query(
        "ALTER TABLE kvm_data ADD CONSTRAINT tiny_values CHECK (octet_length(value) < 4)",
      );
      const res = await logged.app.inject({
        method: "PUT",
        url: entryUrl("logs", "secret-key-4711"),
        payload: "secret-value-0815",
      });
      assert.equal(res.statusCode, 500);
      assert.deepEqual(res.json(), { error: "internal", message: "internal error" });
    } finally {
      await logged.close();
    }
    const all = lines.join("");
    assert.match(all, /"code":"23514".*"constraint":"tiny_values".*"msg":"request failed"/);
    for (const secret of ["secret-value-0815", "secret-key-4711"]) {
      assert.ok(!all.includes(secret), secret);
      assert.ok(!all.includes(Buffer.from(secret).toString("hex")), `${secret} in hex`);
    }
  });
});
