// The admin API: maps, JSON entries, keyset pagination, bulk import/export in the apigeecli shape.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  createTestDatabase,
  entryUrl,
  expireNow,
  startTestApp,
  type TestApp,
  type TestDatabase,
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

interface BulkEntry {
  name?: string;
  name_base64?: string;
  value?: string;
  value_base64?: string;
  expires_at?: number;
}

const admin = (method: "GET" | "PUT" | "POST" | "DELETE", url: string, payload?: object, headers = {}) =>
  t.app.inject({ method, url, payload, headers });

async function importBatch(kvm: string, entries: BulkEntry[], mode = "upsert") {
  const res = await admin("POST", `/admin/v1/kvms/${kvm}/import?mode=${mode}`, { keyValueEntries: entries });
  assert.equal(res.statusCode, 200, res.body);
  return res.json();
}

/** Follows next_page_token to the end; returns every page's keys. */
async function listAll(kvm: string, query: string): Promise<string[][]> {
  const pages: string[][] = [];
  let token: string | null = null;
  do {
    const suffix: string = token === null ? "" : `&page_token=${token}`;
    const res = await admin("GET", `/admin/v1/kvms/${kvm}/entries?${query}${suffix}`);
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    pages.push(body.entries.map((e: { key: string }) => e.key));
    token = body.next_page_token;
  } while (token !== null);
  return pages;
}

describe("maps", () => {
  test("lists maps holding live entries, with counts, paginated", async () => {
    await importBatch("maps-a", [{ name: "1", value: "x" }]);
    await importBatch("maps-b", [
      { name: "1", value: "x" },
      { name: "2", value: "x" },
    ]);
    await importBatch("maps-c", [{ name: "only", value: "x" }]);
    await expireNow(t.pool, "maps-c", Buffer.from("only"));
    const first = (await admin("GET", "/admin/v1/kvms?page_size=1")).json();
    const names: { name: string; entries: number }[] = [...first.kvms];
    let token = first.next_page_token;
    while (token !== null) {
      const next = (await admin("GET", `/admin/v1/kvms?page_size=1&page_token=${token}`)).json();
      assert.equal(next.kvms.length <= 1, true);
      names.push(...next.kvms);
      token = next.next_page_token;
    }
    const ours = names.filter((m) => m.name.startsWith("maps-"));
    assert.deepEqual(ours, [
      { name: "maps-a", entries: 1 },
      { name: "maps-b", entries: 2 },
    ]);
  });

  test("deleting a map removes all its entries and nothing else", async () => {
    await importBatch(
      "doomed",
      Array.from({ length: 120 }, (_, i) => ({ name: `k${i}`, value: "v" })),
    );
    await importBatch("survivor", [{ name: "k1", value: "v" }]);
    const res = await admin("DELETE", "/admin/v1/kvms/doomed");
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { deleted: 120 });
    assert.deepEqual((await admin("GET", "/admin/v1/kvms/doomed/entries")).json().entries, []);
    assert.equal((await t.app.inject({ method: "GET", url: entryUrl("survivor", "k1") })).statusCode, 200);
    assert.deepEqual((await admin("DELETE", "/admin/v1/kvms/doomed")).json(), { deleted: 0 });
  });
});

describe("entries as JSON", () => {
  test("put, get, replace and delete an entry", async () => {
    const url = "/admin/v1/kvms/json/entries/greeting";
    const created = await admin("PUT", url, { value: "hello", ttl: 3600 });
    assert.equal(created.statusCode, 201);
    const { version, expires_at } = created.json();
    assert.equal(typeof version, "number");
    assert.equal(typeof expires_at, "number");
    assert.equal(created.headers.etag, `"${version}"`);

    const read = await admin("GET", url);
    assert.equal(read.statusCode, 200);
    const entry = read.json();
    assert.equal(entry.key, "greeting");
    assert.equal(entry.value, "hello");
    assert.equal(entry.version, version);
    assert.equal(entry.expires_at, expires_at);
    assert.ok(entry.created_at <= entry.updated_at);

    // The same entry through the data plane.
    const raw = await t.app.inject({ method: "GET", url: entryUrl("json", "greeting") });
    assert.equal(raw.body, "hello");
    assert.equal(raw.headers.etag, `"${version}"`);

    assert.equal((await admin("PUT", url, { value: "again" }, { "if-none-match": "*" })).statusCode, 412);
    assert.equal((await admin("PUT", url, { value: "cas" }, { "if-match": `"${version}"` })).statusCode, 200);
    assert.equal((await admin("GET", url)).json().expires_at, null);
    assert.equal((await admin("DELETE", url)).statusCode, 204);
    assert.equal((await admin("GET", url)).statusCode, 404);
    assert.equal((await admin("DELETE", url)).statusCode, 204);
  });

  test("binary keys and values travel as *_base64", async () => {
    const key = Buffer.from([0xff, 0x00, 0x41]);
    const value = Buffer.from([0xc3, 0x28, 0x00]);
    const url = `/admin/v1/kvms/json/entries/%FF%00A`;
    assert.equal((await admin("PUT", url, { value_base64: value.toString("base64") })).statusCode, 201);
    const entry = (await admin("GET", url)).json();
    assert.equal(entry.key, undefined);
    assert.equal(entry.key_base64, key.toString("base64"));
    assert.equal(entry.value, undefined);
    assert.equal(entry.value_base64, value.toString("base64"));
    const raw = await t.app.inject({ method: "GET", url: entryUrl("json", key) });
    assert.deepEqual(raw.rawPayload, value);
  });

  test("a body needs exactly one of value and value_base64", async () => {
    const url = "/admin/v1/kvms/json/entries/bad";
    for (const body of [{}, { value: "a", value_base64: "YQ==" }, { value_base64: "not base64!" }]) {
      const res = await admin("PUT", url, body);
      assert.equal(res.statusCode, 400, JSON.stringify(body));
      assert.equal(res.json().error, "bad_request");
    }
    const tooBig = await startTestApp(db.url, { KVM_MAX_VALUE_BYTES: "4" }, { migrate: false });
    try {
      const res = await tooBig.app.inject({ method: "PUT", url, payload: { value: "12345" } });
      assert.equal(res.statusCode, 413);
      assert.equal(res.json().error, "value_too_large");
    } finally {
      await tooBig.close();
    }
  });
});

describe("listing entries", () => {
  const total = 2500;
  const keyOf = (i: number) => `item-${String(i).padStart(5, "0")}`;

  before(async () => {
    const all = Array.from({ length: total }, (_, i) => ({ name: keyOf(i), value: `v${i}` }));
    for (let i = 0; i < total; i += 1000) await importBatch("paged", all.slice(i, i + 1000));
    await importBatch("paged", [
      { name: "other-1", value: "x" },
      { name: "other-2", value: "x" },
    ]);
  });

  test(`pages over ${total} entries with no duplicate and no gap, in key order`, async () => {
    for (const size of [1000, 333, 7]) {
      const pages = await listAll("paged", `prefix=item-&page_size=${size}`);
      const keys = pages.flat();
      assert.equal(keys.length, total, `page_size ${size}`);
      assert.equal(new Set(keys).size, total);
      assert.deepEqual(
        keys,
        Array.from({ length: total }, (_, i) => keyOf(i)),
      );
      assert.ok(pages.slice(0, -1).every((p) => p.length === size));
    }
  });

  test("default page size is 100; the maximum is 1000", async () => {
    const res = (await admin("GET", "/admin/v1/kvms/paged/entries")).json();
    assert.equal(res.entries.length, 100);
    assert.equal(typeof res.next_page_token, "string");
    for (const size of ["0", "1001", "x"]) {
      const bad = await admin("GET", `/admin/v1/kvms/paged/entries?page_size=${size}`);
      assert.equal(bad.statusCode, 400, size);
      assert.equal(bad.json().error, "bad_request");
    }
  });

  test("pagination is keyset: deleting rows already seen does not shift the next page", async () => {
    await importBatch(
      "shifting",
      Array.from({ length: 30 }, (_, i) => ({ name: keyOf(i), value: "v" })),
    );
    const first = (await admin("GET", "/admin/v1/kvms/shifting/entries?page_size=10")).json();
    for (const e of first.entries) await admin("DELETE", `/admin/v1/kvms/shifting/entries/${e.key}`);
    const second = (
      await admin("GET", `/admin/v1/kvms/shifting/entries?page_size=10&page_token=${first.next_page_token}`)
    ).json();
    assert.deepEqual(
      second.entries.map((e: { key: string }) => e.key),
      Array.from({ length: 10 }, (_, i) => keyOf(10 + i)),
    );
  });

  test("prefixes select by bytes, including a prefix ending in 0xff", async () => {
    assert.deepEqual((await listAll("paged", "prefix=other-")).flat(), ["other-1", "other-2"]);
    assert.deepEqual((await listAll("paged", "prefix=nothing")).flat(), []);
    await t.app.inject({ method: "PUT", url: entryUrl("ff", Buffer.from([0x61, 0xff, 0x01])), payload: "1" });
    await t.app.inject({ method: "PUT", url: entryUrl("ff", Buffer.from([0x61, 0xff])), payload: "2" });
    await t.app.inject({ method: "PUT", url: entryUrl("ff", Buffer.from([0x62])), payload: "3" });
    const res = (
      await admin(
        "GET",
        `/admin/v1/kvms/ff/entries?prefix_base64=${encodeURIComponent(Buffer.from([0x61, 0xff]).toString("base64"))}`,
      )
    ).json();
    assert.deepEqual(
      res.entries.map((e: { key_base64: string }) => e.key_base64),
      [Buffer.from([0x61, 0xff]).toString("base64"), Buffer.from([0x61, 0xff, 0x01]).toString("base64")],
    );
  });

  test("a page token that this API did not issue is 400 invalid_page_token", async () => {
    for (const token of ["garbage!", "AA", Buffer.from([2, 65]).toString("base64url")]) {
      const res = await admin("GET", `/admin/v1/kvms/paged/entries?page_token=${token}`);
      assert.equal(res.statusCode, 400, token);
      assert.equal(res.json().error, "invalid_page_token");
    }
  });
});

describe("bulk import and export", () => {
  test("accepts the apigeecli file shape as is", async () => {
    const res = await importBatch("apigee", [
      { name: "k1", value: "v1" },
      { name: "k2", value: "v2" },
    ]);
    assert.deepEqual(res, { received: 2, created: 2, replaced: 0, skipped: 0, expired: 0, duplicates: 0 });
    const file = { keyValueEntries: [{ name: "k3", value: "v3" }], nextPageToken: "" };
    assert.equal((await admin("POST", "/admin/v1/kvms/apigee/import", file)).statusCode, 200);
    const exported = (await admin("GET", "/admin/v1/kvms/apigee/export")).json();
    assert.deepEqual(exported, {
      keyValueEntries: [
        { name: "k1", value: "v1" },
        { name: "k2", value: "v2" },
        { name: "k3", value: "v3" },
      ],
      nextPageToken: "",
    });
  });

  test("reports created, replaced, skipped, expired and duplicates", async () => {
    await importBatch("counts", [{ name: "old", value: "1" }]);
    const res = await importBatch("counts", [
      { name: "old", value: "2" },
      { name: "new", value: "1" },
      { name: "dup", value: "first" },
      { name: "dup", value: "last" },
      { name: "past", value: "x", expires_at: Date.now() - 1000 },
    ]);
    assert.deepEqual(res, { received: 5, created: 2, replaced: 1, skipped: 0, expired: 1, duplicates: 1 });
    assert.equal((await t.app.inject({ method: "GET", url: entryUrl("counts", "dup") })).body, "last");
    assert.equal((await t.app.inject({ method: "GET", url: entryUrl("counts", "past") })).statusCode, 404);
    const insert = await importBatch(
      "counts",
      [
        { name: "old", value: "3" },
        { name: "fresh", value: "1" },
      ],
      "insert",
    );
    assert.deepEqual(insert, { received: 2, created: 1, replaced: 0, skipped: 1, expired: 0, duplicates: 0 });
    assert.equal((await t.app.inject({ method: "GET", url: entryUrl("counts", "old") })).body, "2");
  });

  test("a batch the database rejects part-way leaves every entry as it was", async () => {
    // The previous test's bad entry is caught before any SQL runs; this one fails inside the database, after
    // earlier rows of the batch were already written (a trigger rejects the last key).
    await importBatch("atomic-db", [{ name: "a", value: "old" }]);
    await t.pool.query(`CREATE FUNCTION reject_poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.key = convert_to('poison', 'UTF8') THEN RAISE EXCEPTION 'poisoned batch'; END IF;
        RETURN NEW;
      END $$`);
    await t.pool.query(
      "CREATE TRIGGER reject_poison BEFORE INSERT ON kvm_data FOR EACH ROW EXECUTE FUNCTION reject_poison()",
    );
    try {
      const res = await admin("POST", "/admin/v1/kvms/atomic-db/import", {
        keyValueEntries: [
          { name: "a", value: "new" },
          { name: "b", value: "new" },
          { name: "poison", value: "x" },
        ],
      });
      assert.equal(res.statusCode, 500);
    } finally {
      await t.pool.query("DROP TRIGGER reject_poison ON kvm_data");
      await t.pool.query("DROP FUNCTION reject_poison()");
    }
    assert.equal((await t.app.inject({ method: "GET", url: entryUrl("atomic-db", "a") })).body, "old");
    assert.equal((await t.app.inject({ method: "GET", url: entryUrl("atomic-db", "b") })).statusCode, 404);
  });

  test("a body that is not JSON is 415 unsupported_media_type", async () => {
    const res = await t.app.inject({
      method: "POST",
      url: "/admin/v1/kvms/xml/import",
      payload: "<keyValueEntries/>",
      headers: { "content-type": "application/xml" },
    });
    assert.equal(res.statusCode, 415);
    assert.equal(res.json().error, "unsupported_media_type");
  });

  test("a batch is all or nothing: one bad entry rejects the whole batch", async () => {
    const res = await admin("POST", "/admin/v1/kvms/atomic/import", {
      keyValueEntries: [
        { name: "fine", value: "1" },
        { name: "x".repeat(513), value: "2" },
      ],
    });
    assert.equal(res.statusCode, 400);
    assert.deepEqual(res.json(), {
      error: "key_too_long",
      message: "keyValueEntries[1].name is 513 bytes; the limit is 512 bytes",
    });
    assert.equal((await t.app.inject({ method: "GET", url: entryUrl("atomic", "fine") })).statusCode, 404);
  });

  test("an expires_at that is not whole Unix milliseconds is 400, not a database error", async () => {
    for (const expires_at of [1e20, 1.5, -1]) {
      const res = await admin("POST", "/admin/v1/kvms/bad-expiry/import", {
        keyValueEntries: [{ name: "k", value: "v", expires_at }],
      });
      assert.equal(res.statusCode, 400, `${expires_at}: ${res.body}`);
      assert.equal(res.json().error, "bad_request");
    }
    assert.equal((await t.app.inject({ method: "GET", url: entryUrl("bad-expiry", "k") })).statusCode, 404);
  });

  test("round trip of 10,000 entries (text, binary, expiring) through export and import", async () => {
    const now = Date.now();
    const source: BulkEntry[] = Array.from({ length: 10_000 }, (_, i) => {
      if (i % 10 === 0) {
        return {
          name_base64: Buffer.from([0xff, i & 0xff, i >> 8]).toString("base64"),
          value_base64: Buffer.from([0x00, 0xfe, i & 0xff]).toString("base64"),
        };
      }
      const entry: BulkEntry = { name: `entry/${i}/ключ`, value: `value ${i} ✓` };
      if (i % 7 === 0) entry.expires_at = now + 3_600_000 + i;
      return entry;
    });
    let created = 0;
    for (let i = 0; i < source.length; i += 1000) {
      created += (await importBatch("round-src", source.slice(i, i + 1000))).created;
    }
    assert.equal(created, 10_000);

    const exported: BulkEntry[] = [];
    let token = "";
    do {
      const res = await admin("GET", `/admin/v1/kvms/round-src/export?page_size=1000&page_token=${token}`);
      assert.equal(res.statusCode, 200);
      const page = res.json();
      exported.push(...page.keyValueEntries);
      token = page.nextPageToken;
    } while (token !== "");
    assert.equal(exported.length, 10_000);

    const canonical = (entries: BulkEntry[]) =>
      entries
        .map((e) =>
          JSON.stringify([
            e.name === undefined
              ? Buffer.from(e.name_base64!, "base64").toString("hex")
              : Buffer.from(e.name).toString("hex"),
            e.value ?? `b64:${e.value_base64}`,
            // Expiry is stored with millisecond precision.
            e.expires_at ?? null,
          ]),
        )
        .sort();
    assert.deepEqual(canonical(exported), canonical(source));

    let reimported = 0;
    for (let i = 0; i < exported.length; i += 1000) {
      reimported += (await importBatch("round-dst", exported.slice(i, i + 1000))).created;
    }
    assert.equal(reimported, 10_000);
    const maps = (await admin("GET", "/admin/v1/kvms?page_size=1000")).json().kvms;
    assert.deepEqual(
      maps.filter((m: { name: string }) => m.name.startsWith("round-")),
      [
        { name: "round-dst", entries: 10_000 },
        { name: "round-src", entries: 10_000 },
      ],
    );
    const again = await importBatch("round-dst", exported.slice(0, 1000));
    assert.deepEqual([again.created, again.replaced], [0, 1000]);
  });
});
