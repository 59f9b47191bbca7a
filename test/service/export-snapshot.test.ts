// Export is one consistent snapshot (BulkRepository.snapshot: one REPEATABLE READ transaction), and import and
// reads judge "already expired" by the same clock, PostgreSQL's now() — whatever the service's own clock says.
import { after, before, describe, mock, test } from "node:test";
import assert from "node:assert/strict";
import { BulkRepository } from "../../service/bulk-repository.ts";
import { ValueCipher } from "../../service/encryption.ts";
import { KvmRepository } from "../../service/repository.ts";
import { recordReliability } from "../reliability/record.ts";
import {
  createTestDatabase,
  dbNowMs,
  entryUrl,
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

const ENTRIES = 60;
const key = (i: number) => `k${String(i).padStart(3, "0")}`;
/** 8 KiB values naming their generation: a 64 KiB read holds 8 of them, so an export takes several reads. */
const valueOf = (generation: number, i: number) => `g${generation}:${i}:`.padEnd(8 * 1024, ".");

/** Writes every entry of the map with this generation, in one transaction (an import batch). */
async function writeGeneration(kvm: string, generation: number): Promise<void> {
  const res = await t.app.inject({
    method: "POST",
    url: `/admin/v1/kvms/${kvm}/import`,
    payload: {
      keyValueEntries: Array.from({ length: ENTRIES }, (_, i) => ({
        name: key(i),
        value: valueOf(generation, i),
      })),
    },
  });
  assert.equal(res.statusCode, 200, res.body);
}

const generations = (values: string[]) => new Set(values.map((v) => v.slice(0, v.indexOf(":"))));

describe("export snapshot", () => {
  test("writes committed between an export's reads do not show in it: one generation, every key, nothing added", async () => {
    const bulk = new BulkRepository(t.pool, new KvmRepository(t.pool), new ValueCipher(null), 30_000);
    let cases = 0;
    for (const whole of [true, false]) {
      const before = whole ? 0 : 2;
      await writeGeneration("snap", before);
      const reads = bulk.snapshot({
        kvm: "snap",
        prefix: Buffer.alloc(0),
        after: null,
        maxEntries: whole ? Infinity : 1000,
        maxBytes: whole ? Infinity : 8 * 1024 * 1024,
        readBytes: 64 * 1024,
      });
      const values: string[] = [];
      const first = await reads.next();
      assert.equal(first.done, false);
      values.push(...(first.value as { value: Buffer }[]).map((e) => e.value.toString()));
      // Between the first read and the rest: a new generation of every entry, one deleted, one added.
      await writeGeneration("snap", before + 1);
      await t.pool.query("DELETE FROM kvm_data WHERE kvm_name = 'snap' AND key = $1", [
        Buffer.from(key(ENTRIES - 1)),
      ]);
      await t.app.inject({ method: "PUT", url: entryUrl("snap", "zzz"), payload: "added" });
      let reads_ = 1;
      for (let step = await reads.next(); step.done !== true; step = await reads.next()) {
        values.push(...step.value.map((e) => e.value.toString()));
        reads_++;
      }
      assert.ok(reads_ >= 4, `only ${reads_} reads: the test would not see a mix`);
      assert.equal(values.length, ENTRIES);
      assert.deepEqual(generations(values), new Set([`g${before}`]));
      await t.app.inject({ method: "DELETE", url: "/admin/v1/kvms/snap/entries/zzz" });
      cases++;
    }
    // Without the snapshot (a fresh read now), the later writes are there: the test can tell.
    const now = await t.app.inject({ method: "GET", url: "/admin/v1/kvms/snap/export?all=true" });
    assert.deepEqual(
      generations(now.json().keyValueEntries.map((e: { value: string }) => e.value)),
      new Set(["g3"]),
    );
    recordReliability({
      area: "security",
      name: "export during writes (whole-map and paged snapshot)",
      cases,
      result: "each export one generation, all keys, no later key: never a mix",
    });
  });

  test("exports through HTTP while whole-map writes commit: every export is one generation", async () => {
    await writeGeneration("busy", 0);
    let writing = true;
    let generation = 0;
    const writer = (async () => {
      while (writing) await writeGeneration("busy", ++generation);
    })();
    const seen = new Set<string>();
    try {
      for (let i = 0; i < 15; i++) {
        const res = await t.app.inject({ method: "GET", url: "/admin/v1/kvms/busy/export?all=true" });
        const entries = res.json().keyValueEntries as { name: string; value: string }[];
        assert.equal(entries.length, ENTRIES);
        const gens = generations(entries.map((e) => e.value));
        assert.equal(gens.size, 1, `export ${i} mixes ${[...gens].join(", ")}`);
        seen.add([...gens][0]);
      }
    } finally {
      writing = false;
      await writer;
    }
    assert.ok(generation > 0);
  });
});

describe("the clock that decides 'already expired'", () => {
  test("import and reads both use PostgreSQL's clock: a service clock hours off changes nothing", async () => {
    const dbNow = await dbNowMs(t.pool);
    // Expires 400 ms from now by the database's clock: imported while live, then past its expiry.
    const file = {
      keyValueEntries: [
        { name: "soon", value: "v", expires_at: dbNow + 400 },
        { name: "later", value: "v", expires_at: dbNow + 3_600_000 },
        { name: "never", value: "v" },
      ],
    };
    const cases: [string, number][] = [
      ["service clock 2 h behind", -7_200_000],
      ["service clock 2 h ahead", 7_200_000],
    ];
    const realNow = Date.now.bind(Date);
    const withServiceClock = async (skew: number, work: () => Promise<void>) => {
      mock.method(Date, "now", () => realNow() + skew);
      try {
        await work();
      } finally {
        mock.restoreAll();
      }
    };
    // While live: written, and read back, whatever the service's clock says.
    for (const [label, skew] of cases) {
      await withServiceClock(skew, async () => {
        const res = await t.app.inject({
          method: "POST",
          url: "/admin/v1/kvms/clock-live/import",
          payload: file,
        });
        assert.equal(res.json().expired, 0, label);
        assert.equal(
          (await t.app.inject({ method: "GET", url: entryUrl("clock-live", "later") })).statusCode,
          200,
        );
      });
    }
    // Wait (no timing asserted) until the database's clock is past the first expiry.
    while ((await dbNowMs(t.pool)) <= dbNow + 400) await new Promise((resolve) => setTimeout(resolve, 50));
    for (const [label, skew] of cases) {
      await withServiceClock(skew, async () => {
        const res = await t.app.inject({
          method: "POST",
          url: "/admin/v1/kvms/clock-late/import",
          payload: file,
        });
        assert.deepEqual(
          { expired: res.json().expired, written: res.json().created + res.json().replaced },
          { expired: 1, written: 2 },
          label,
        );
        // Reads agree: the entry the import called expired is absent, on the data plane and in listings.
        for (const kvm of ["clock-late", "clock-live"]) {
          assert.equal((await t.app.inject({ method: "GET", url: entryUrl(kvm, "soon") })).statusCode, 404);
          const listed = await t.app.inject({ method: "GET", url: `/admin/v1/kvms/${kvm}/entries` });
          assert.deepEqual(
            listed.json().entries.map((e: { key: string }) => e.key),
            ["later", "never"],
          );
        }
      });
    }
    recordReliability({
      area: "security",
      name: "import of entries expiring mid-way, service clock skewed ±2 h",
      cases: cases.length * 2,
      result: "import and reads agree (PostgreSQL's clock): expired entries counted, never written",
    });
  });
});
