// The data plane's read cache (service/cache.ts) across replicas: two apps on one database. A replica never
// answers with a value older than KVM_CACHE_MAX_STALENESS_MS after a write committed through the other one (or
// through plain SQL), also while writes and reads race, when the connection it reads the change log on is killed,
// and when that connection goes silent; entries never outlive their expiry; the cache stays within its byte bound.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import {
  createTestDatabase,
  dbNowMs,
  entryUrl,
  startTestApp,
  type TestApp,
  type TestDatabase,
} from "./helpers.ts";
import { TcpProxy } from "./tcp-proxy.ts";
import { recordReliability } from "../reliability/record.ts";

const BOUND_MS = 400;

let db: TestDatabase;
let a: TestApp;
let b: TestApp;
let admin: pg.Pool;

before(async () => {
  db = await createTestDatabase();
  const env = { KVM_CACHE_MAX_STALENESS_MS: String(BOUND_MS) };
  a = await startTestApp(db.url, env);
  b = await startTestApp(db.url, env, { migrate: false });
  admin = new pg.Pool({ connectionString: db.url, max: 2 });
  await Promise.all([untilServing(a), untilServing(b)]);
});
after(async () => {
  await a?.close();
  await b?.close();
  await admin?.end();
  await db?.drop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function untilServing(t: TestApp, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!t.app.kvmCache.serving) {
    if (Date.now() > deadline) throw new Error("the cache did not start serving");
    await sleep(10);
  }
}

const put = (t: TestApp, url: string, body: string, headers: Record<string, string> = {}) =>
  t.app.inject({ method: "PUT", url, payload: body, headers });
const read = async (t: TestApp, url: string) => {
  const res = await t.app.inject({ method: "GET", url });
  return res.statusCode === 200 ? res.body : `(${res.statusCode})`;
};

/** Reads `url` on replica `t` twice: both answer `expected`, the second from its cache. */
async function answersFromCache(t: TestApp, url: string, expected: string, why: string): Promise<void> {
  assert.equal(await read(t, url), expected);
  const hits = t.app.kvmCache.stats.hit;
  assert.equal(await read(t, url), expected);
  assert.equal(t.app.kvmCache.stats.hit, hits + 1, why);
}

/**
 * Reads `url` on replica `t` until it answers `expected`, for at most 3 × BOUND_MS; fails when a different
 * answer comes later than BOUND_MS after `writtenAt` (the moment the write was acknowledged). Returns how long
 * the old answer was still seen.
 */
async function converges(t: TestApp, url: string, expected: string, writtenAt: number): Promise<number> {
  let lastStale = 0;
  for (;;) {
    const startedAt = performance.now();
    const got = await read(t, url);
    if (got === expected) return lastStale;
    lastStale = startedAt - writtenAt;
    assert.ok(
      lastStale <= BOUND_MS,
      `replica answered ${got} instead of ${expected} ${lastStale.toFixed(0)} ms after the write (bound ${BOUND_MS} ms)`,
    );
    await sleep(5);
  }
}

describe("two replicas on one database", () => {
  test("the other replica serves from its cache, and a write through one replica reaches the other within the bound", async () => {
    const url = entryUrl("replicas", "k");
    await put(a, url, "v0");
    // B reads the write's own change-log row after the PUT's answer; once it has, B's fill stays.
    await b.app.kvmCache.sync();
    await answersFromCache(b, url, "v0", "the second read is a cache hit");

    for (let i = 1; i <= 20; i++) {
      // Both replicas hold the old value when it changes.
      assert.equal(await read(b, url), `v${i - 1}`);
      assert.equal(await read(a, url), `v${i - 1}`);
      const writer = i % 2 === 0 ? a : b;
      const other = writer === a ? b : a;
      assert.equal((await put(writer, url, `v${i}`)).statusCode, 200);
      const writtenAt = performance.now();
      // The writer reads its own write at once.
      assert.equal(await read(writer, url), `v${i}`);
      await converges(other, url, `v${i}`, writtenAt);
    }
  });

  test("a delete and a create through one replica reach the other one's cached answers (absent ones too)", async () => {
    const url = entryUrl("replicas", "gone");
    await put(a, url, "here");
    assert.equal(await read(b, url), "here");
    assert.equal((await a.app.inject({ method: "DELETE", url })).statusCode, 204);
    await converges(b, url, "(404)", performance.now());
    // The absence is cached now; a create must replace it.
    assert.equal(await read(b, url), "(404)");
    await put(a, url, "back");
    await converges(b, url, "back", performance.now());
  });

  test("a change made with plain SQL (no service involved) reaches both caches within the bound", async () => {
    const url = entryUrl("replicas", "sql");
    await put(a, url, "before");
    assert.equal(await read(a, url), "before");
    assert.equal(await read(b, url), "before");
    await admin.query("UPDATE kvm_data SET value = 'after' WHERE kvm_name = 'replicas' AND key = 'sql'");
    const writtenAt = performance.now();
    await Promise.all([converges(a, url, "after", writtenAt), converges(b, url, "after", writtenAt)]);
    await admin.query("TRUNCATE kvm_data");
    await Promise.all([
      converges(a, url, "(404)", performance.now()),
      converges(b, url, "(404)", performance.now()),
    ]);
  });

  test("killing the connection a replica follows the change log on: it stops serving from cache, resynchronises, and never serves a value older than the bound", async () => {
    const url = entryUrl("replicas", "dropped");
    for (let round = 1; round <= 3; round++) {
      await put(a, url, `old${round}`);
      await converges(b, url, `old${round}`, performance.now());
      await b.app.kvmCache.sync();
      await read(b, url);
      const hits = b.app.kvmCache.stats.hit;
      assert.equal(await read(b, url), `old${round}`);
      assert.equal(b.app.kvmCache.stats.hit, hits + 1, "cached before the connection is killed");

      const pid = b.app.kvmCache.connectionPid;
      assert.notEqual(pid, null);
      const resyncs = b.app.kvmCache.stats.resync;
      const killed = await admin.query<{ ok: boolean }>("SELECT pg_terminate_backend($1) AS ok", [pid]);
      assert.equal(killed.rows[0].ok, true);
      // Written while B's listener is gone: B never hears of this change.
      assert.equal((await put(a, url, `new${round}`)).statusCode, 200);
      const writtenAt = performance.now();
      await converges(b, url, `new${round}`, writtenAt);
      // Keep reading through the outage and the resynchronisation: the old value never comes back.
      const until = performance.now() + 3 * BOUND_MS;
      while (performance.now() < until) {
        assert.equal(await read(b, url), `new${round}`);
        await sleep(10);
      }
      assert.ok(b.app.kvmCache.stats.resync > resyncs, "the lost connection was noticed");
      await untilServing(b);
      assert.notEqual(b.app.kvmCache.connectionPid, pid, "a new listener connection");
      // Serving from the cache again, with the new value.
      assert.equal(await read(b, url), `new${round}`);
      const after = b.app.kvmCache.stats.hit;
      assert.equal(await read(b, url), `new${round}`);
      assert.equal(b.app.kvmCache.stats.hit, after + 1);
    }
  });

  test("while that connection is down the cache answers nothing", async () => {
    const url = entryUrl("replicas", "down");
    await put(a, url, "x");
    assert.equal(await read(b, url), "x");
    const pid = b.app.kvmCache.connectionPid;
    await admin.query("SELECT pg_terminate_backend($1)", [pid]);
    const deadline = performance.now() + 5000;
    while (b.app.kvmCache.serving && performance.now() < deadline) await sleep(2);
    assert.equal(b.app.kvmCache.serving, false);
    assert.equal(b.app.kvmCache.size.entries, 0, "emptied when the connection was lost");
    const hits = b.app.kvmCache.stats.hit;
    if (!b.app.kvmCache.serving) {
      assert.equal(await read(b, url), "x");
      // Read from the database (unless the listener already came back in between).
      if (!b.app.kvmCache.serving) assert.equal(b.app.kvmCache.stats.hit, hits);
    }
    await untilServing(b);
  });
});

describe("the staleness bound under concurrent writes and a lost change feed", () => {
  test("reads on one replica racing a stream of writes (through the other replica and plain SQL) with its change-log connection killed twice: no read answers a value older than the bound", async () => {
    const url = entryUrl("stream", "counter");
    const WRITES = 120;
    // ackedAt[n]: when the write of value n was acknowledged (its commit is earlier).
    const ackedAt: number[] = [];
    assert.equal((await put(a, url, "0")).statusCode, 201);
    ackedAt[0] = performance.now();
    await b.app.kvmCache.sync();
    let writing = true;
    let reads = 0;
    let fromCache = 0;
    const reader = (async () => {
      while (writing) {
        const startedAt = performance.now();
        const hits = b.app.kvmCache.stats.hit;
        const got = Number(await read(b, url));
        if (b.app.kvmCache.stats.hit > hits) fromCache++;
        reads++;
        // Every write acknowledged more than BOUND_MS before this read started must be visible to it.
        let required = 0;
        for (let n = ackedAt.length - 1; n >= 0; n--) {
          if (ackedAt[n] !== undefined && ackedAt[n] <= startedAt - BOUND_MS) {
            required = n;
            break;
          }
        }
        assert.ok(got >= required, `read ${got} although ${required} was acknowledged ${BOUND_MS} ms before`);
        await sleep(1);
      }
    })();
    const resyncs = b.app.kvmCache.stats.resync;
    for (let n = 1; n <= WRITES; n++) {
      if (n % 3 === 0) {
        await admin.query("UPDATE kvm_data SET value = $1 WHERE kvm_name = 'stream' AND key = 'counter'", [
          Buffer.from(String(n)),
        ]);
      } else {
        assert.equal((await put(a, url, String(n))).statusCode, 200);
      }
      ackedAt[n] = performance.now();
      if (n === 40 || n === 80) {
        const pid = b.app.kvmCache.connectionPid;
        if (pid !== null) await admin.query("SELECT pg_terminate_backend($1)", [pid]);
      }
      await sleep(10);
    }
    // Reads go on until the last write is past the bound.
    await sleep(BOUND_MS + 50);
    writing = false;
    await reader;
    assert.equal(await read(b, url), String(WRITES));
    assert.ok(b.app.kvmCache.stats.resync >= resyncs + 1, "the killed connections were noticed");
    assert.ok(fromCache > 0, "some reads were answered from the cache");
    recordReliability({
      area: "concurrency",
      name: "read cache: replica reads racing writes and change-log connection kills",
      cases: WRITES,
      result: `0 reads older than the ${BOUND_MS} ms bound`,
    });
    assert.ok(reads > 0);
  });

  test("a change-log connection that goes silent (black-holed, not closed): the replica stops answering from its cache within the bound, never the old value, and resynchronises when the database is back", async () => {
    const { proxy, url: proxied } = await TcpProxy.start(db.url);
    const c = await startTestApp(
      proxied,
      {
        KVM_CACHE_MAX_STALENESS_MS: String(BOUND_MS),
        // The log's poll gives up only after 2 s, well past the bound: what stops the cache from serving is
        // the bound itself, not the poll's failure.
        KVM_PG_CONNECT_TIMEOUT_MS: "2000",
        KVM_PG_STATEMENT_TIMEOUT_MS: "300",
      },
      { migrate: false },
    );
    try {
      await untilServing(c);
      const url = entryUrl("silent-feed", "k");
      await put(a, url, "old");
      await c.app.kvmCache.sync();
      await answersFromCache(c, url, "old", "cached before the feed goes silent");

      proxy.silence();
      assert.equal((await put(a, url, "new")).statusCode, 200);
      const writtenAt = performance.now();
      // The database is unreachable for this replica: it may answer 503, or "old" within the bound, nothing else.
      const answers = new Map<string, number>();
      while (performance.now() < writtenAt + 3 * BOUND_MS) {
        const startedAt = performance.now();
        const got = await read(c, url);
        answers.set(got, (answers.get(got) ?? 0) + 1);
        if (got === "old") {
          assert.ok(
            startedAt - writtenAt <= BOUND_MS,
            `old value served ${startedAt - writtenAt} ms after the write`,
          );
        } else {
          assert.ok(got === "(503)" || got === "new", `answered ${got}`);
        }
        await sleep(10);
      }
      assert.equal(c.app.kvmCache.serving, false, "not serving from the cache while the feed is silent");
      assert.ok((answers.get("(503)") ?? 0) > 0, "the silent database was reached and answered 503");

      await proxy.restore();
      await untilServing(c);
      await converges(c, url, "new", writtenAt);
      const after = c.app.kvmCache.stats.hit;
      assert.equal(await read(c, url), "new");
      assert.equal(c.app.kvmCache.stats.hit, after + 1, "serving from the cache again");
      recordReliability({
        area: "faults",
        name: "read cache: change-log connection black-holed",
        cases: 1,
        result: "stops serving from cache within the bound; no stale answer",
      });
    } finally {
      await c.close();
      await proxy.close();
    }
  });
});

describe("expiry and bounds", () => {
  test("a cached entry is not served past its expiry, without any change", async () => {
    const url = entryUrl("ttl-cache", "short");
    const written = await put(a, url, "brief", { "x-kvm-ttl": "1" });
    const expiresAt = Number(written.headers["x-kvm-expires-at"]);
    await b.app.kvmCache.sync();
    assert.equal(await read(b, url), "brief");
    const hits = b.app.kvmCache.stats.hit;
    assert.equal(await read(b, url), "brief");
    assert.equal(b.app.kvmCache.stats.hit, hits + 1, "the expiring entry is cached");
    for (;;) {
      const before = await dbNowMs(admin);
      const got = await read(b, url);
      if (got === "(404)") break;
      assert.ok(before < expiresAt, `served ${got} at database time ${before}, expiry ${expiresAt}`);
      await sleep(20);
    }
    assert.ok((await dbNowMs(admin)) >= expiresAt);
  });

  test("the cache holds at most KVM_CACHE_MAX_BYTES, evicting roughly the least recently used (second chance)", async () => {
    const small = await startTestApp(db.url, { KVM_CACHE_MAX_BYTES: String(64 * 1024) }, { migrate: false });
    try {
      await untilServing(small);
      const value = "v".repeat(200);
      for (let i = 0; i < 600; i++) await put(a, entryUrl("bounded", `k${i}`), value);
      await small.app.kvmCache.sync();
      for (let i = 0; i < 600; i++) assert.equal(await read(small, entryUrl("bounded", `k${i}`)), value);
      const { entries, bytes } = small.app.kvmCache.size;
      assert.ok(bytes <= 64 * 1024, `${bytes} bytes held`);
      assert.ok(entries > 50 && entries < 600, `${entries} entries held`);
      assert.ok(small.app.kvmCache.stats.eviction >= 600 - entries);
      // The most recent ones are still there, the first ones went.
      const hits = small.app.kvmCache.stats.hit;
      await read(small, entryUrl("bounded", "k599"));
      assert.equal(small.app.kvmCache.stats.hit, hits + 1);
      await read(small, entryUrl("bounded", "k0"));
      assert.equal(small.app.kvmCache.stats.hit, hits + 1);
      // Second chance: k599, read just now, outlives as many new entries as the cache holds; k0, stored after it
      // but never read again, does not. Without the mark on a hit, k599 would go as well.
      const held = small.app.kvmCache.size.entries;
      for (let i = 600; i < 600 + held; i++) await put(a, entryUrl("bounded", `k${i}`), value);
      await small.app.kvmCache.sync();
      for (let i = 600; i < 600 + held; i++) await read(small, entryUrl("bounded", `k${i}`));
      const before = small.app.kvmCache.stats.hit;
      await read(small, entryUrl("bounded", "k599"));
      assert.equal(small.app.kvmCache.stats.hit, before + 1, "k599 (read) is still held");
      await read(small, entryUrl("bounded", "k0"));
      assert.equal(small.app.kvmCache.stats.hit, before + 1, "k0 (not read again) went");
    } finally {
      await small.close();
    }
  });

  test("KVM_CACHE_MAX_BYTES=0 turns the cache off: every read goes to the database", async () => {
    const off = await startTestApp(db.url, { KVM_CACHE_MAX_BYTES: "0" }, { migrate: false });
    try {
      const url = entryUrl("off", "k");
      await put(a, url, "1");
      assert.equal(await read(off, url), "1");
      await admin.query("UPDATE kvm_data SET value = '2' WHERE kvm_name = 'off'");
      assert.equal(await read(off, url), "2");
      assert.equal(off.app.kvmCache.serving, false);
      assert.equal(off.app.kvmCache.stats.hit, 0);
    } finally {
      await off.close();
    }
  });
});
