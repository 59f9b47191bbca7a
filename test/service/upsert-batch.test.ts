// Group commit of unconditional PUTs (service/upsert-batcher.ts): the batcher's rules on a fake writer, then
// concurrent PUTs through the service on PostgreSQL, where batches form and every answer must match its row.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { UpsertBatcher, type UpsertedRow, type UpsertRow } from "../../service/upsert-batcher.ts";
import { createTestDatabase, entryUrl, startTestApp, type TestApp, type TestDatabase } from "./helpers.ts";

const row = (kvm: string, key: string): UpsertRow => ({
  kvm,
  key: Buffer.from(key),
  stored: Buffer.from(`v-${key}`),
  ttlSeconds: null,
  keyId: null,
});

describe("UpsertBatcher", () => {
  it("goes out at once when a slot is free; queued PUTs leave as one batch of distinct keys in (map, key) order", async () => {
    const batches: string[][] = [];
    let release: () => void = () => {};
    const batcher = new UpsertBatcher(async (rows) => {
      batches.push(rows.map((r) => `${r.kvm}/${r.key}`));
      if (batches.length === 1) await new Promise<void>((resolve) => (release = resolve));
      return rows.map((_, i) => ({ created: true, version: batches.length * 100 + i, expires_at_ms: null }));
    }, 1);
    const first = batcher.upsert(row("m", "a"));
    assert.deepEqual(batches, [["m/a"]], "the first PUT did not wait");
    const queued = [row("m", "c"), row("b", "z"), row("m", "a"), row("m", "b"), row("m", "c")].map((r) =>
      batcher.upsert(r),
    );
    release();
    const answers = await Promise.all([first, ...queued]);
    assert.deepEqual(batches, [["m/a"], ["b/z", "m/a", "m/b", "m/c"], ["m/c"]]);
    // Each PUT gets its own row's answer: m/c (queued first) from the second batch, its repeat from the third.
    assert.deepEqual(
      answers.map((a: UpsertedRow) => a.version),
      [100, 203, 200, 201, 202, 300],
    );
  });

  it("a failed batch fails each of its PUTs with the error, and the queue goes on", async () => {
    let calls = 0;
    const batcher = new UpsertBatcher(async (rows) => {
      calls++;
      if (calls === 1) throw new Error("database unavailable");
      return rows.map(() => ({ created: false, version: 7, expires_at_ms: null }));
    }, 1);
    const failed = batcher.upsert(row("m", "a"));
    const next = batcher.upsert(row("m", "b"));
    await assert.rejects(failed, /database unavailable/);
    assert.equal((await next).version, 7);
  });
});

describe("concurrent PUTs through the service are batched and each answer matches its row", () => {
  let db: TestDatabase;
  let t: TestApp;
  before(async () => {
    db = await createTestDatabase();
    t = await startTestApp(db.url, { KVM_PG_POOL_MAX: "2" }); // one upsert in flight: the rest queue
  });
  after(async () => {
    await t?.close();
    await db?.drop();
  });

  it("96 PUTs at once (64 keys, 32 of them twice, some with a TTL): 64 created, 32 replaced, values and versions as answered", async () => {
    const keys = Array.from({ length: 64 }, (_, i) => `k${i}`);
    const puts = [...keys, ...keys.slice(0, 32)].map((key, i) => ({
      key,
      value: `v${i}`,
      ttl: i % 3 === 0 ? 60 : null,
    }));
    const answers = await Promise.all(
      puts.map(async ({ key, value, ttl }) => {
        const res = await t.app.inject({
          method: "PUT",
          url: entryUrl("batch", key),
          payload: value,
          headers: {
            "content-type": "application/octet-stream",
            ...(ttl === null ? {} : { "x-kvm-ttl": String(ttl) }),
          },
        });
        return { key, value, ttl, status: res.statusCode, etag: res.headers.etag };
      }),
    );
    assert.equal(answers.filter((a) => a.status === 201).length, 64);
    assert.equal(answers.filter((a) => a.status === 200).length, 32);
    const statements = await t.pool.query<{ calls: string }>(
      "SELECT count(*) AS calls FROM kvm_data WHERE kvm_name = 'batch'",
    );
    assert.equal(Number(statements.rows[0].calls), 64);
    // The answer with the highest version of each key is the value stored, with its TTL.
    for (const key of keys) {
      const mine = answers.filter((a) => a.key === key);
      const last = mine.reduce((a, b) =>
        Number(String(a.etag).replace(/\D/g, "")) > Number(String(b.etag).replace(/\D/g, "")) ? a : b,
      );
      const stored = await t.pool.query<{ value: Buffer; expires: boolean; version: number }>(
        "SELECT value, expires_at IS NOT NULL AS expires, version::float8 AS version FROM kvm_data WHERE kvm_name = 'batch' AND key = $1",
        [Buffer.from(key)],
      );
      assert.equal(stored.rows[0].value.toString(), last.value, key);
      assert.equal(stored.rows[0].expires, last.ttl !== null, key);
      assert.equal(`"${stored.rows[0].version}"`, last.etag, key);
    }
    const versions = answers.map((a) => a.etag);
    assert.equal(new Set(versions).size, versions.length, "every PUT got a version of its own");
  });
});
