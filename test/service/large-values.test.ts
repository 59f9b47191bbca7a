// Maps of values at the 1 MiB limit: listings and exports page by bytes as well as by entries, so a page stays
// far below what a JavaScript string (or a client) can hold, and the export page streams.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { PAGE_MAX_BYTES } from "../../service/routes/pages.ts";
import { createTestDatabase, startTestApp, type TestApp, type TestDatabase } from "./helpers.ts";

let db: TestDatabase;
let t: TestApp;
const MiB = 1024 * 1024;

before(async () => {
  db = await createTestDatabase();
  t = await startTestApp(db.url);
  // 100 values of 1 MiB of control bytes: as JSON text each is 6 MiB (\u0001 per byte), so one page of all of
  // them would be 600 MiB of JSON, past V8's string limit ("RangeError: Invalid string length").
  await t.pool.query(
    `INSERT INTO kvm_data (kvm_name, key, value)
     SELECT 'big', convert_to('k' || lpad(i::text, 3, '0'), 'UTF8'), decode(repeat('01', $1), 'hex')
     FROM generate_series(1, 100) i`,
    [MiB],
  );
});
after(async () => {
  await t?.close();
  await db?.drop();
});

const perPage = Math.floor(PAGE_MAX_BYTES / (MiB + 4));

test("a listing of 1 MiB values pages by bytes: bounded pages that continue where they stopped", async () => {
  const first = await t.app.inject({ method: "GET", url: "/admin/v1/kvms/big/entries" });
  assert.equal(first.statusCode, 200, first.body.slice(0, 200));
  assert.ok(first.body.length < perPage * 6 * MiB + 64 * 1024, `${first.body.length} bytes`);
  const page = first.json() as { entries: { key: string; value: string }[]; next_page_token: string };
  assert.deepEqual(
    page.entries.map((e) => e.key),
    Array.from({ length: perPage }, (_, i) => `k${String(i + 1).padStart(3, "0")}`),
  );
  assert.ok(page.entries.every((e) => e.value.length === MiB));
  const second = await t.app.inject({
    method: "GET",
    url: `/admin/v1/kvms/big/entries?page_size=2&page_token=${page.next_page_token}`,
  });
  assert.equal(second.statusCode, 200);
  assert.deepEqual(
    (second.json() as { entries: { key: string }[] }).entries.map((e) => e.key),
    [`k${String(perPage + 1).padStart(3, "0")}`, `k${String(perPage + 2).padStart(3, "0")}`],
  );
});

test("an export page of 1 MiB values (page_size=1000) is bounded and streamed", async () => {
  const res = await t.app.inject({ method: "GET", url: "/admin/v1/kvms/big/export?page_size=1000" });
  assert.equal(res.statusCode, 200, res.body.slice(0, 200));
  assert.equal(res.headers["content-type"], "application/json; charset=utf-8");
  // Streamed: no content-length, the body is sent as it is read from the database.
  assert.equal(res.headers["content-length"], undefined);
  const page = res.json() as { keyValueEntries: { name: string; value: string }[]; nextPageToken: string };
  assert.equal(page.keyValueEntries.length, perPage);
  assert.ok(page.keyValueEntries.every((e) => e.value === "\u0001".repeat(MiB)));
  assert.notEqual(page.nextPageToken, "");
});

test("a single entry larger than the page budget still makes a page", async () => {
  const url = await db.createSibling();
  const big = await startTestApp(url, { KVM_MAX_VALUE_BYTES: String(PAGE_MAX_BYTES + MiB) });
  try {
    await big.pool.query(
      `INSERT INTO kvm_data (kvm_name, key, value) VALUES ('huge', '\\x61', decode(repeat('62', $1), 'hex')),
       ('huge', '\\x62', '\\x63')`,
      [PAGE_MAX_BYTES + 10],
    );
    const names: string[] = [];
    let token = "";
    do {
      const res = await big.app.inject({
        method: "GET",
        url: `/admin/v1/kvms/huge/export${token === "" ? "" : `?page_token=${token}`}`,
      });
      assert.equal(res.statusCode, 200);
      const page = res.json() as { keyValueEntries: { name: string }[]; nextPageToken: string };
      names.push(page.keyValueEntries.map((e) => e.name).join(","));
      token = page.nextPageToken;
    } while (token !== "");
    assert.deepEqual(names, ["a", "b"]);
  } finally {
    await big.close();
  }
});
