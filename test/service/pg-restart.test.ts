// PostgreSQL stopped and restarted under load (issue 10, faults): writers keep writing while the database goes
// away and comes back, several times. While it is down every write answers 503 within a bound and /readyz says
// 503 on every sample; once it is back the service recovers without a restart; every write it acknowledged
// (2xx) is in the database afterwards with the value it was given.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { LONG_CAMPAIGN, recordReliability } from "../reliability/record.ts";
import { createTestDatabase, entryUrl, startTestApp, type TestDatabase } from "./helpers.ts";
import { TcpProxy } from "./tcp-proxy.ts";

const CYCLES = LONG_CAMPAIGN ? 20 : 3;
const WRITERS = 8;
/** Acknowledged writes wanted between two outages. */
const WRITES_PER_UP = 40;
/** 503s wanted (from writers and /readyz samples) before the database comes back. */
const DOWN_SAMPLES = 20;
/** The bound on a 503 while the database is stopped (refused connections: no timeout to wait for). */
const DOWN_BOUND_MS = 1000;

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await db?.drop();
});

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test(`PostgreSQL stopped and restarted ${CYCLES} times under ${WRITERS} writers: 503 while down, recovery, no acknowledged write lost`, async (ctx) => {
  const { proxy, url } = await TcpProxy.start(db.url);
  const t = await startTestApp(url, { KVM_PG_CONNECT_TIMEOUT_MS: "500" });
  const acknowledged = new Map<string, string>();
  const unexpected: string[] = [];
  let phase: "up" | "down" | "recovering" = "up";
  let downAnswers = 0;
  let slowestDown = 0;
  let stop = false;
  const writer = async (w: number) => {
    for (let seq = 0; !stop; seq++) {
      const key = `w${w}-${seq}`;
      const value = `v-${w}-${seq}`;
      const phaseAtStart = phase;
      const started = Date.now();
      const res = await t.app.inject({ method: "PUT", url: entryUrl("restart", key), payload: value });
      const ms = Date.now() - started;
      if (res.statusCode === 201) acknowledged.set(key, value);
      else if (res.statusCode !== 503) unexpected.push(`${key}: ${res.statusCode} ${res.body}`);
      if (phaseAtStart === "down" && phase === "down") {
        // Collected, not thrown: a writer's rejection would only surface after the loop.
        if (res.statusCode !== 503) unexpected.push(`${key}: ${res.statusCode} while the database was down`);
        if (ms >= DOWN_BOUND_MS) unexpected.push(`${key}: a 503 took ${ms} ms`);
        slowestDown = Math.max(slowestDown, ms);
        downAnswers++;
      }
      // While the database is down the writers would spin on instant 503s.
      if (res.statusCode === 503) await pause(5);
    }
  };
  const until = async (condition: () => boolean, what: string) => {
    const deadline = Date.now() + 15_000;
    while (!condition()) {
      assert.ok(Date.now() < deadline, `${what}: not within 15 s`);
      await pause(5);
    }
  };
  const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
  let readySamples = 0;
  try {
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const before = acknowledged.size;
      await until(() => acknowledged.size >= before + WRITES_PER_UP, "writes while up");
      const ready = await t.app.inject({ method: "GET", url: "/readyz" });
      assert.equal(ready.statusCode, 200, `readyz while up: ${ready.body}`);
      readySamples++;

      await proxy.stop();
      phase = "down";
      const downAt = downAnswers;
      // /readyz sampled throughout the outage: every sample says 503, quickly.
      for (let i = 0; i < DOWN_SAMPLES; i++) {
        const started = Date.now();
        const res = await t.app.inject({ method: "GET", url: "/readyz" });
        const ms = Date.now() - started;
        assert.equal(res.statusCode, 503, `readyz sample ${i} during outage ${cycle}: ${res.body}`);
        assert.ok(ms < DOWN_BOUND_MS, `readyz took ${ms} ms`);
        readySamples++;
      }
      await until(() => downAnswers >= downAt + DOWN_SAMPLES, "503s while down");

      phase = "recovering";
      await proxy.restore();
      // Recovers by itself: /readyz turns 200 and writes are acknowledged again.
      const deadline = Date.now() + 10_000;
      while ((await t.app.inject({ method: "GET", url: "/readyz" })).statusCode !== 200) {
        assert.ok(Date.now() < deadline, "readyz still 503 10 s after the database came back");
        await pause(20);
      }
      phase = "up";
    }
    const last = acknowledged.size;
    await until(() => acknowledged.size >= last + WRITES_PER_UP, "writes after the last outage");
  } finally {
    stop = true;
    await Promise.allSettled(writers);
    await proxy.close();
    await t.close();
  }
  assert.deepEqual(unexpected, [], "201 or 503 while up, a quick 503 while down");

  const check = new pg.Client({ connectionString: db.url });
  await check.connect();
  try {
    const rows = await check.query<{ key: Buffer; value: Buffer }>(
      "SELECT key, value FROM kvm_data WHERE kvm_name = 'restart'",
    );
    const stored = new Map(rows.rows.map((r) => [r.key.toString(), r.value.toString()]));
    const lost = [...acknowledged].filter(([key, value]) => stored.get(key) !== value);
    assert.deepEqual(lost, [], "acknowledged writes missing after the outages");
  } finally {
    await check.end();
  }
  ctx.diagnostic(
    `${acknowledged.size} acknowledged writes kept, ${downAnswers} write 503s while down (slowest ${slowestDown} ms), ${readySamples} readyz samples`,
  );
  recordReliability({
    area: "faults",
    name: "PostgreSQL stopped and restarted under load (8 writers)",
    cases: CYCLES,
    result: `503 within ${DOWN_BOUND_MS} ms while down, /readyz 503 on every sample, recovers, 0 acknowledged writes lost`,
  });
});
