// Load over HTTP, everything at once: PUT/DELETE storms on one key, concurrent imports of the same names in
// opposite orders, whole-map deletes while writers add keys. The service must answer every request without a
// 5xx. A few seconds by default; KVM_LOAD_SECONDS=60 (for example) runs the long version.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type net from "node:net";
import { createTestDatabase, startTestApp, type TestApp, type TestDatabase } from "./helpers.ts";

const SECONDS = Number(process.env.KVM_LOAD_SECONDS ?? "3");

let db: TestDatabase;
let t: TestApp;
let base: string;

before(async () => {
  db = await createTestDatabase();
  t = await startTestApp(db.url);
  await t.app.listen({ host: "127.0.0.1", port: 0 });
  base = `http://127.0.0.1:${(t.app.server.address() as net.AddressInfo).port}`;
});
after(async () => {
  await t?.close();
  await db?.drop();
});

class Tally {
  readonly counts = new Map<string, number>();
  readonly failures: string[] = [];

  /** Records one answer; `expected` are the statuses this request may get. */
  async record(what: string, res: Response, expected: number[]): Promise<Response> {
    const key = `${what} ${res.status}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    if (!expected.includes(res.status) && this.failures.length < 20) {
      this.failures.push(`${key}: ${await res.clone().text()}`);
    }
    return res;
  }

  total(): number {
    return [...this.counts.values()].reduce((a, b) => a + b, 0);
  }

  fivexx(): number {
    return [...this.counts].filter(([k]) => / 5\d\d$/.test(k)).reduce((sum, [, n]) => sum + n, 0);
  }
}

test(`${SECONDS} s of PUT/DELETE storms, concurrent imports and map deletes under writes: no 5xx`, async (ctx) => {
  const end = Date.now() + SECONDS * 1000;
  const tally = new Tally();
  const running = () => Date.now() < end;
  const json = { "content-type": "application/json" };

  // 24 PUT loops and 24 DELETE loops on one key.
  const hot = `${base}/v1/kvms/storm/entries/hot`;
  const storm = Array.from({ length: 48 }, async (_, i) => {
    while (running()) {
      if (i % 2 === 0) {
        await tally.record("PUT hot", await fetch(hot, { method: "PUT", body: `v${i}` }), [200, 201]);
      } else {
        await tally.record("DELETE hot", await fetch(hot, { method: "DELETE" }), [204]);
      }
    }
  });

  // 4 imports of the same 3,000 names at once, two in each order, round after round.
  const entries = Array.from({ length: 3000 }, (_, i) => ({
    name: `n${String(i).padStart(4, "0")}`,
    value: "v",
  }));
  const forward = JSON.stringify({ keyValueEntries: entries });
  const backward = JSON.stringify({ keyValueEntries: [...entries].reverse() });
  const imports = (async () => {
    while (running()) {
      await Promise.all(
        [forward, backward, forward, backward].map(async (body) =>
          tally.record(
            "POST import",
            await fetch(`${base}/admin/v1/kvms/imported/import`, { method: "POST", body, headers: json }),
            [200],
          ),
        ),
      );
    }
  })();

  // A map deleted again and again while 8 writers keep adding keys to it.
  let n = 0;
  const churnWriters = Array.from({ length: 8 }, async (_, w) => {
    while (running()) {
      const url = `${base}/v1/kvms/churn/entries/w${w}-${n++}`;
      await tally.record("PUT churn", await fetch(url, { method: "PUT", body: "x" }), [201]);
    }
  });
  const mapDeletes = (async () => {
    while (running()) {
      const started = Date.now();
      const res = await tally.record(
        "DELETE map",
        await fetch(`${base}/admin/v1/kvms/churn`, { method: "DELETE" }),
        [200],
      );
      assert.ok(Date.now() - started < 10_000, `a map delete took ${Date.now() - started} ms`);
      if (res.status === 200) assert.equal(typeof (await res.json()).deleted, "number");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();

  await Promise.all([...storm, imports, ...churnWriters, mapDeletes]);
  const summary = JSON.stringify(Object.fromEntries(tally.counts));
  ctx.diagnostic(`${tally.total()} requests in ${SECONDS} s: ${summary}`);
  assert.deepEqual(tally.failures, [], summary);
  assert.equal(tally.fivexx(), 0, summary);
  for (const what of ["PUT hot", "DELETE hot", "POST import", "PUT churn", "DELETE map"]) {
    assert.ok(
      [...tally.counts.keys()].some((k) => k.startsWith(what)),
      `no ${what} ran: ${summary}`,
    );
  }
  assert.ok(tally.total() > 100, summary);
  // The imports left their names in place.
  const check = await fetch(`${base}/admin/v1/kvms/imported/entries?page_size=1000`);
  assert.equal(check.status, 200);
  assert.equal((await check.json()).entries.length, 1000);
});
