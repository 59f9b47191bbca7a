// Losing the database: stopped (connections reset, new ones refused), black-holed (TCP accepted, nothing
// answered), silent in the middle of a query, dropped (3D000). Every route answers 503 `unavailable` within the
// bounds docs/service.md states, /readyz says no without leaking details, and the service recovers by itself.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { serializeError } from "../../service/app.ts";
import { loadConfig } from "../../service/config.ts";
import { createPool, isDatabaseUnavailable } from "../../service/db.ts";
import { createTestDatabase, entryUrl, startTestApp, type TestApp, type TestDatabase } from "./helpers.ts";
import { TcpProxy, blackHole } from "./tcp-proxy.ts";

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../bin/envoy-kvm.js");
const UNAVAILABLE = { error: "unavailable", message: "the database is unavailable" };

let db: TestDatabase;

before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await db?.drop();
});

interface RouteCall {
  method: "GET" | "HEAD" | "PUT" | "DELETE" | "POST";
  url: string;
  payload?: unknown;
}

/** One request per route that touches the database. */
const DATABASE_ROUTES: RouteCall[] = [
  { method: "GET", url: entryUrl("m", "k") },
  { method: "HEAD", url: entryUrl("m", "k") },
  { method: "PUT", url: entryUrl("m", "k"), payload: "v" },
  { method: "DELETE", url: entryUrl("m", "k") },
  { method: "GET", url: "/admin/v1/kvms" },
  { method: "DELETE", url: "/admin/v1/kvms/m" },
  { method: "GET", url: "/admin/v1/kvms/m/entries" },
  { method: "GET", url: "/admin/v1/kvms/m/entries/k" },
  { method: "PUT", url: "/admin/v1/kvms/m/entries/k", payload: { value: "v" } },
  { method: "DELETE", url: "/admin/v1/kvms/m/entries/k" },
  { method: "GET", url: "/admin/v1/kvms/m/export" },
  {
    method: "POST",
    url: "/admin/v1/kvms/m/import",
    payload: { keyValueEntries: [{ name: "a", value: "b" }] },
  },
];

/** Calls every database route at once; each must answer 503 unavailable within `boundMs`. */
async function expectEveryRoute503(t: TestApp, boundMs: number): Promise<number> {
  const answers = await Promise.all(
    [...DATABASE_ROUTES, { method: "GET" as const, url: "/readyz" }].map(async (call) => {
      const started = Date.now();
      const res = await t.app.inject({
        method: call.method,
        url: call.url,
        ...(call.payload === undefined ? {} : { payload: call.payload as string }),
      });
      return { call, res, ms: Date.now() - started };
    }),
  );
  for (const { call, res, ms } of answers) {
    const what = `${call.method} ${call.url}: ${res.statusCode} ${res.body} after ${ms} ms`;
    assert.equal(res.statusCode, 503, what);
    if (call.method !== "HEAD") assert.deepEqual(res.json(), UNAVAILABLE, what);
    assert.ok(ms < boundMs, what);
  }
  assert.equal((await t.app.inject({ method: "GET", url: "/healthz" })).statusCode, 200);
  return Math.max(...answers.map((a) => a.ms));
}

/** The service answers again once the database is back, without a restart (retries for up to 10 s). */
async function expectRecovery(t: TestApp, url: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const res = await t.app.inject({ method: "GET", url });
    const ready = await t.app.inject({ method: "GET", url: "/readyz" });
    if (res.statusCode === 200 && ready.statusCode === 200) return;
    assert.ok(Date.now() < deadline, `still ${res.statusCode} / readyz ${ready.statusCode} after 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

describe("which failures mean the database is unavailable", () => {
  const sqlError = (code: string) => Object.assign(new pg.DatabaseError("x", 1, "error"), { code });
  const cases: [string, unknown, boolean][] = [
    ["08006 connection failure", sqlError("08006"), true],
    ["57P01 admin shutdown", sqlError("57P01"), true],
    ["57P03 cannot connect now", sqlError("57P03"), true],
    ["57014 statement timeout", sqlError("57014"), true],
    ["3D000 database does not exist", sqlError("3D000"), true],
    ["53300 too many connections", sqlError("53300"), true],
    ["40P01 deadlock (after the retries)", sqlError("40P01"), true],
    ["23505 unique violation", sqlError("23505"), false],
    ["22021 bad encoding", sqlError("22021"), false],
    ["42P01 undefined table", sqlError("42P01"), false],
    ["Connection terminated unexpectedly", new Error("Connection terminated unexpectedly"), true],
    ["timeout exceeded when trying to connect", new Error("timeout exceeded when trying to connect"), true],
    ["ECONNREFUSED", Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }), true],
    ["a TypeError (a bug)", new TypeError("x is not a function"), false],
    ["a RangeError (a bug)", new RangeError("Invalid string length"), false],
    ["not an Error", "boom", false],
  ];
  for (const [label, err, expected] of cases) {
    test(`${label} → ${expected ? "503 unavailable" : "not unavailable"}`, () => {
      assert.equal(isDatabaseUnavailable(err), expected);
    });
  }
});

describe("a black-holed database (TCP accepted, never answered) (issue 12 #1)", () => {
  test("with the default timeouts every route answers 503 unavailable within 3 s, twice in a row", async (ctx) => {
    const hole = await blackHole();
    const t = await startTestApp(hole.url, {}, { migrate: false });
    try {
      const first = await withDeadline(expectEveryRoute503(t, 3000), 10_000, "the routes");
      const second = await withDeadline(expectEveryRoute503(t, 3000), 10_000, "the routes, again");
      ctx.diagnostic(`slowest 503: ${first} ms, then ${second} ms`);
    } finally {
      await hole.close();
      await t.close();
    }
  });

  test("start-up logs what it waits for and gives up with one clear line", async () => {
    const hole = await blackHole();
    try {
      const child = spawn(process.execPath, [BIN, "service"], {
        env: {
          ...process.env,
          DATABASE_URL: hole.url,
          KVM_INSECURE: "1",
          PORT: "0",
          LOG_LEVEL: "info",
          KVM_PG_CONNECT_TIMEOUT_MS: "300",
          KVM_PG_STARTUP_TIMEOUT_MS: "1500",
        },
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => (stderr += d));
      const code = await withDeadline(
        new Promise<number | null>((resolve) => child.on("close", resolve)),
        15_000,
        "envoy-kvm service",
      ).finally(() => child.kill("SIGKILL"));
      const address = hole.url.replace("postgres://postgres@", "");
      assert.equal(code, 1, stdout + stderr);
      assert.ok(stdout.includes(`waiting for PostgreSQL at ${address}`), stdout);
      assert.match(
        stderr,
        new RegExp(`^envoy-kvm: gave up waiting for PostgreSQL at ${address} after 1500 ms: .+\\n$`),
      );
    } finally {
      await hole.close();
    }
  });
});

describe("a database that stops and comes back (issue 12 #1)", () => {
  test("an in-flight request and every later one answer 503 at once; then it recovers by itself", async () => {
    const { proxy, url } = await TcpProxy.start(db.url);
    const t = await startTestApp(url);
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    try {
      const key = entryUrl("outage", "held");
      assert.equal((await t.app.inject({ method: "PUT", url: key, payload: "v" })).statusCode, 201);
      // A PUT waiting on a row lock is on the wire when the connection drops: pg reports "Connection terminated
      // unexpectedly", an error without SQLSTATE.
      await locker.query("BEGIN");
      await locker.query("SELECT 1 FROM kvm_data WHERE kvm_name = 'outage' FOR UPDATE");
      const inflight = t.app.inject({ method: "PUT", url: key, payload: "w" });
      while (
        (
          await locker.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
          )
        ).rows[0].n === 0
      ) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await proxy.stop();
      const res = await withDeadline(inflight, 2000, "the in-flight PUT");
      assert.equal(res.statusCode, 503, res.body);
      assert.deepEqual(res.json(), UNAVAILABLE);
      await locker.query("ROLLBACK");
      await expectEveryRoute503(t, 1000);
      await proxy.restore();
      await expectRecovery(t, key);
    } finally {
      await locker.end();
      await proxy.close();
      await t.close();
    }
  });

  test("a database that goes silent mid-connection: 503 within the statement timeout + 1 s, then recovery", async () => {
    const { proxy, url } = await TcpProxy.start(db.url);
    const t = await startTestApp(url, {
      KVM_PG_CONNECT_TIMEOUT_MS: "500",
      KVM_PG_STATEMENT_TIMEOUT_MS: "500",
      KVM_PG_BULK_STATEMENT_TIMEOUT_MS: "500",
    });
    try {
      const key = entryUrl("silent", "k");
      // Open a few pooled connections, then cut the traffic on them without closing them.
      await Promise.all(
        Array.from({ length: 6 }, () => t.app.inject({ method: "PUT", url: key, payload: "v" })),
      );
      proxy.silence();
      await withDeadline(expectEveryRoute503(t, 2500), 10_000, "the routes");
      await proxy.restore();
      await expectRecovery(t, key);
    } finally {
      await proxy.close();
      await t.close();
    }
  });
});

describe("a dropped database (issue 12 #1)", () => {
  test("3D000 and terminated sessions answer 503 unavailable, not 500", async () => {
    const url = await db.createSibling();
    const t = await startTestApp(url);
    try {
      assert.equal(
        (await t.app.inject({ method: "PUT", url: entryUrl("m", "k"), payload: "v" })).statusCode,
        201,
      );
      const name = new URL(url).pathname.slice(1);
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      try {
        await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
      await expectEveryRoute503(t, 1000);
    } finally {
      await t.close();
    }
  });
});

describe("/readyz details (issue 12 #11)", () => {
  test("without an admin token /readyz says only the status; with one it says why", async () => {
    const hole = await blackHole();
    const refused = hole.url.replace(/:\d+\//, ":1/");
    await hole.close();
    const t = await startTestApp(
      refused,
      { KVM_DATA_TOKENS: "data-token", KVM_ADMIN_TOKENS: "admin-token" },
      { migrate: false },
    );
    try {
      for (const authorization of [undefined, "Bearer data-token", "Bearer wrong"]) {
        const res = await t.app.inject({
          method: "GET",
          url: "/readyz",
          headers: authorization === undefined ? {} : { authorization },
        });
        assert.equal(res.statusCode, 503);
        assert.deepEqual(res.json(), UNAVAILABLE, String(authorization));
      }
      const detailed = await t.app.inject({
        method: "GET",
        url: "/readyz",
        headers: { authorization: "Bearer admin-token" },
      });
      assert.equal(detailed.statusCode, 503);
      assert.equal(detailed.json().error, "unavailable");
      assert.match(detailed.json().message, /ECONNREFUSED/);
    } finally {
      await t.close();
    }
  });

  test("an outdated schema: the status without a token, the pending migrations with one", async () => {
    const url = await db.createSibling();
    const t = await startTestApp(url, { KVM_ADMIN_TOKENS: "admin-token" }, { migrate: false });
    try {
      const plain = await t.app.inject({ method: "GET", url: "/readyz" });
      assert.equal(plain.statusCode, 503);
      assert.deepEqual(plain.json(), {
        error: "schema_outdated",
        message: "the database schema is older than this envoy-kvm",
      });
      const detailed = await t.app.inject({
        method: "GET",
        url: "/readyz",
        headers: { authorization: "Bearer admin-token" },
      });
      assert.match(detailed.json().message, /pending migrations: 0001_create-kvm-data/);
    } finally {
      await t.close();
    }
  });
});

describe("an idle connection the server ends", () => {
  test("is logged without the data or the pg client's internals (its cancel key)", async () => {
    const errors: Error[] = [];
    const pool = createPool(db.url, loadConfig({ DATABASE_URL: db.url, KVM_INSECURE: "1" }), (err) =>
      errors.push(err),
    );
    try {
      const client = await pool.connect();
      const pid = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0].pid;
      client.release(); // idle in the pool
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      try {
        await admin.query("SELECT pg_terminate_backend($1)", [pid]);
      } finally {
        await admin.end();
      }
      for (let i = 0; i < 100 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(errors.length, 1);
      assert.ok("client" in errors[0], "pg-pool hangs the client on the error");
      const logged = serializeError(errors[0]);
      assert.equal(logged.code, "57P01");
      assert.equal(logged.client, undefined);
      assert.doesNotMatch(JSON.stringify(logged), /secretKey|connectionParameters/);
    } finally {
      await pool.end();
    }
  });
});
