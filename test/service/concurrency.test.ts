// Writers racing each other on the same rows: unconditional PUTs against DELETEs, imports of the same names in
// opposite orders, a whole-map delete while clients keep adding keys. None of them may answer 5xx or hang.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import { KvmRepository } from "../../service/repository.ts";
import { createTestDatabase, entryUrl, startTestApp, type TestApp, type TestDatabase } from "./helpers.ts";

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

/** Runs `loop` in `n` parallel workers until `ms` have passed; returns every status code seen. */
async function storm(n: number, ms: number, loop: (worker: number) => Promise<number>): Promise<number[]> {
  const end = Date.now() + ms;
  const statuses: number[] = [];
  await Promise.all(
    Array.from({ length: n }, async (_, worker) => {
      while (Date.now() < end) statuses.push(await loop(worker));
    }),
  );
  return statuses;
}

const histogram = (statuses: number[]) =>
  statuses.reduce<Record<number, number>>((h, s) => ({ ...h, [s]: (h[s] ?? 0) + 1 }), {});

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

describe("unconditional PUT against DELETE (issue 12 #2)", () => {
  test("a PUT without preconditions succeeds even when a DELETE lands between any two of its statements", async () => {
    // Deterministic worst case of the race: a pool that lets a concurrent writer re-create the row before each
    // INSERT the repository sends and a concurrent DELETE remove it before each UPDATE. A PUT that needs two
    // statements (insert-if-absent, then replace-if-present) loses every round; one upsert statement can not.
    const kvm = "race";
    const key = Buffer.from("interleaved");
    const racing = new Proxy(t.pool, {
      get(pool, prop, receiver) {
        if (prop !== "query") return Reflect.get(pool, prop, receiver);
        // The repository sends (text, values) or a prepared statement's config ({ name, text, values }).
        return async (query: string | pg.QueryConfig, values?: unknown[]) => {
          const text = typeof query === "string" ? query : query.text;
          if (/^\s*INSERT/i.test(text)) {
            await pool.query(
              "INSERT INTO kvm_data (kvm_name, key, value) VALUES ($1, $2, 'other') ON CONFLICT DO NOTHING",
              [kvm, key],
            );
          } else if (/^\s*UPDATE/i.test(text)) {
            await pool.query("DELETE FROM kvm_data WHERE kvm_name = $1 AND key = $2", [kvm, key]);
          }
          return typeof query === "string" ? pool.query(query, values) : pool.query(query);
        };
      },
    });
    const repository = new KvmRepository(racing);
    const result = await repository.putEntry(kvm, key, Buffer.from("mine"), null, { kind: "none" });
    assert.equal(result.outcome, "replaced");
    const stored = await new KvmRepository(t.pool).getEntry(kvm, key);
    assert.equal(stored?.value.toString(), "mine");
  });

  test("24 PUT loops and 24 DELETE loops on one key: every PUT is 200 or 201, every DELETE 204", async () => {
    const url = entryUrl("race", "hot");
    const [puts, deletes] = await Promise.all([
      storm(24, 2000, async (w) => (await t.app.inject({ method: "PUT", url, payload: `w${w}` })).statusCode),
      storm(24, 2000, async () => (await t.app.inject({ method: "DELETE", url })).statusCode),
    ]);
    assert.ok(puts.length > 100, `only ${puts.length} PUTs ran`);
    assert.deepEqual(
      Object.keys(histogram(puts)).filter((s) => s !== "200" && s !== "201"),
      [],
      JSON.stringify(histogram(puts)),
    );
    assert.deepEqual(Object.keys(histogram(deletes)), ["204"], JSON.stringify(histogram(deletes)));
  });
});

describe("concurrent imports (issue 12 #3)", () => {
  test("4 imports of the same 3,000 names, two in each order, at once: all 200, no deadlock", async () => {
    const names = Array.from({ length: 3000 }, (_, i) => `name-${String(i).padStart(5, "0")}`);
    const forward = names.map((name) => ({ name, value: `v-${name}` }));
    const backward = [...forward].reverse();
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all(
        [forward, backward, forward, backward].map((keyValueEntries) =>
          t.app.inject({
            method: "POST",
            url: "/admin/v1/kvms/imports/import",
            payload: { keyValueEntries },
          }),
        ),
      );
      for (const res of answers) assert.equal(res.statusCode, 200, res.body);
      if (round === 0) {
        const created = answers.reduce((sum, res) => sum + (res.json().created as number), 0);
        assert.equal(created, 3000);
      }
    }
  });
});

describe("an import chosen as a deadlock victim (issue 12 #3)", () => {
  test("is retried from the start and succeeds once the other transaction is done", async () => {
    await t.app.inject({
      method: "POST",
      url: "/admin/v1/kvms/victim/import",
      payload: {
        keyValueEntries: [
          { name: "a", value: "0" },
          { name: "z", value: "0" },
        ],
      },
    });
    // Another writer holds z and will ask for a, which the import (locking in key order) already holds.
    const other = await t.pool.connect();
    try {
      await other.query("BEGIN");
      await other.query("UPDATE kvm_data SET value = 'other' WHERE kvm_name = 'victim' AND key = 'z'");
      const imported = t.app.inject({
        method: "POST",
        url: "/admin/v1/kvms/victim/import",
        payload: {
          keyValueEntries: [
            { name: "z", value: "import" },
            { name: "a", value: "import" },
          ],
        },
      });
      const waiting = async () =>
        (
          await t.pool.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
          )
        ).rows[0].n;
      while ((await waiting()) === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      // The import has waited longest, so its deadlock check (deadlock_timeout, 1 s) runs first and aborts it;
      // this statement then goes through.
      await other.query("UPDATE kvm_data SET value = 'other' WHERE kvm_name = 'victim' AND key = 'a'");
      await other.query("COMMIT");
      const res = await imported;
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().replaced, 2);
    } finally {
      other.release();
    }
    const values = await t.pool.query<{ value: Buffer }>(
      "SELECT value FROM kvm_data WHERE kvm_name = 'victim' ORDER BY key",
    );
    assert.deepEqual(
      values.rows.map((r) => r.value.toString()),
      ["import", "import"],
    );
  });
});

describe("whole-map delete under writes (issue 12 #5)", () => {
  test("DELETE /admin/v1/kvms/{kvm} finishes while 16 clients keep adding keys, and says what it deleted", async () => {
    const seed = Array.from({ length: 2000 }, (_, i) => ({ name: `seed-${i}`, value: "x" }));
    const imported = await t.app.inject({
      method: "POST",
      url: "/admin/v1/kvms/doomed/import",
      payload: { keyValueEntries: seed },
    });
    assert.equal(imported.statusCode, 200);
    let writing = true;
    let n = 0;
    const writerStatuses: number[] = [];
    const writers = Array.from({ length: 16 }, async (_, w) => {
      while (writing) {
        const url = entryUrl("doomed", `new-${w}-${n++}`);
        writerStatuses.push((await t.app.inject({ method: "PUT", url, payload: "y" })).statusCode);
      }
    });
    try {
      // Let the writers get going first.
      while (writerStatuses.length < 50) await new Promise((resolve) => setTimeout(resolve, 5));
      const res = await withDeadline(
        t.app.inject({ method: "DELETE", url: "/admin/v1/kvms/doomed" }),
        10_000,
        "the map delete",
      );
      assert.equal(res.statusCode, 200, res.body);
      assert.ok(res.json().deleted >= 2000, res.body);
      // Everything that existed when the delete began is gone; keys written meanwhile may remain.
      const seeds = await t.pool.query(
        "SELECT count(*)::int AS n FROM kvm_data WHERE kvm_name = 'doomed' AND key < 'seed.'::bytea AND key >= 'seed-'::bytea",
      );
      assert.equal(seeds.rows[0].n, 0);
    } finally {
      writing = false;
      await Promise.all(writers);
    }
    assert.deepEqual(Object.keys(histogram(writerStatuses)), ["201"]);
  });

  test("the map delete walks the map in batches: expired rows go too, only live ones are counted", async () => {
    const repository = new KvmRepository(t.pool);
    for (let i = 0; i < 50; i++) {
      await repository.putEntry("batched", Buffer.from(`k${i}`), Buffer.from("v"), null, { kind: "none" });
    }
    await t.pool.query(
      "UPDATE kvm_data SET expires_at = now() - interval '1 second' WHERE kvm_name = 'batched' AND key < 'k2'::bytea",
    );
    await repository.putEntry("kept", Buffer.from("k"), Buffer.from("v"), null, { kind: "none" });
    // 50 rows, 12 of them expired (k0, k1, k10–k19), in batches of 7.
    assert.equal(await repository.deleteMap("batched", 7), 38);
    const left = await t.pool.query<{ kvm_name: string }>(
      "SELECT kvm_name FROM kvm_data WHERE kvm_name IN ('batched', 'kept')",
    );
    assert.deepEqual(
      left.rows.map((r) => r.kvm_name),
      ["kept"],
    );
  });
});
