// Each migration: up, down, up again, data kept, and safe to re-run. Plus the schema gate in front of serving.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import {
  MIGRATIONS_DIR,
  MIGRATIONS_TABLE,
  knownMigrations,
  migrateDown,
  migrateUp,
  migrationStatus,
  schemaProblem,
} from "../../service/migrate.ts";
import { startService } from "../../service/server.ts";
import { createTestDatabase, startTestApp, type TestDatabase } from "./helpers.ts";

let db: TestDatabase;

before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await db?.drop();
});

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const exists = (url: string, relation: string) =>
  withClient(url, async (c) => (await c.query("SELECT to_regclass($1) AS r", [relation])).rows[0].r !== null);

const rows = (url: string) =>
  withClient(url, async (c) =>
    (await c.query<{ key: Buffer; value: Buffer }>("SELECT key, value FROM kvm_data ORDER BY key")).rows.map(
      (r) => `${r.key.toString()}=${r.value.toString()}`,
    ),
  );

const insert = (url: string, key: string) =>
  withClient(url, (c) =>
    c.query("INSERT INTO kvm_data (kvm_name, key, value) VALUES ('m', $1, $2)", [
      Buffer.from(key),
      Buffer.from("v"),
    ]),
  );

/** The "-- Up Migration" part of a migration file, to run it a second time by hand. */
function upSql(name: string): string {
  const text = readFileSync(path.join(MIGRATIONS_DIR, `${name}.sql`), "utf8");
  return text.slice(0, text.indexOf("-- Down Migration"));
}

test("the migrations this build knows, in order", () => {
  assert.deepEqual(knownMigrations(), [
    "0001_create-kvm-data",
    "0002_kvm-data-expiry-index",
    "0003_kvm-data-change-log",
    "0004_kvm-data-key-id",
  ]);
});

describe("0001_create-kvm-data", () => {
  test("up creates kvm_data, re-running it keeps the data, down drops it, up again recreates it", async () => {
    const url = await db.createSibling();
    assert.deepEqual(await migrateUp(url, 1), ["0001_create-kvm-data"]);
    assert.equal(await exists(url, "kvm_data"), true);
    assert.equal(await exists(url, "kvm_data_version_seq"), true);
    await insert(url, "a");
    await withClient(url, (c) => c.query(upSql("0001_create-kvm-data")));
    assert.deepEqual(await rows(url), ["a=v"]);

    assert.deepEqual(await migrateDown(url, 1, undefined, { dropData: true }), ["0001_create-kvm-data"]);
    assert.equal(await exists(url, "kvm_data"), false);
    assert.equal(await exists(url, "kvm_data_version_seq"), false);

    assert.deepEqual(await migrateUp(url, 1), ["0001_create-kvm-data"]);
    await insert(url, "b");
    assert.deepEqual(await rows(url), ["b=v"]);
  });

  test("down refuses to delete live entries unless told to drop the data", async () => {
    const url = await db.createSibling();
    await migrateUp(url);
    await insert(url, "kept");
    await assert.rejects(
      migrateDown(url, 4),
      /kvm_data still holds entries .*envoy-kvm migrate down --drop-data/,
    );
    // Only 0004, 0003 and 0002 were reverted; 0001 and the entry are still there.
    assert.deepEqual(await rows(url), ["kept=v"]);
    assert.deepEqual((await withClient(url, (c) => migrationStatus(c))).applied, ["0001_create-kvm-data"]);

    // Expired entries are already invisible: they do not hold the revert up.
    await withClient(url, (c) => c.query("UPDATE kvm_data SET expires_at = now() - interval '1 second'"));
    assert.deepEqual(await migrateDown(url, 1), ["0001_create-kvm-data"]);
    assert.equal(await exists(url, "kvm_data"), false);
  });
});

describe("0002_kvm-data-expiry-index", () => {
  test("up, down, up again: the index comes and goes, the data stays", async () => {
    const url = await db.createSibling();
    await migrateUp(url, 1);
    await insert(url, "kept-1");
    assert.deepEqual(await migrateUp(url, 1), ["0002_kvm-data-expiry-index"]);
    assert.equal(await exists(url, "kvm_data_expires_at_idx"), true);
    await insert(url, "kept-2");

    assert.deepEqual(await migrateDown(url, 1), ["0002_kvm-data-expiry-index"]);
    assert.equal(await exists(url, "kvm_data_expires_at_idx"), false);
    assert.deepEqual(await rows(url), ["kept-1=v", "kept-2=v"]);

    assert.deepEqual(await migrateUp(url, 1), ["0002_kvm-data-expiry-index"]);
    assert.equal(await exists(url, "kvm_data_expires_at_idx"), true);
    await withClient(url, (c) => c.query(upSql("0002_kvm-data-expiry-index")));
    assert.deepEqual(await rows(url), ["kept-1=v", "kept-2=v"]);
  });
});

describe("0003_kvm-data-change-log", () => {
  /** The change-log rows `change` adds, as "<map>/<hex key>" ("*" for a TRUNCATE), in transaction order. */
  async function logged(url: string, change: (c: pg.Client) => Promise<unknown>): Promise<string[]> {
    await withClient(url, (c) => c.query("DELETE FROM kvm_changes"));
    await withClient(url, change);
    return withClient(url, async (c) =>
      (
        await c.query<{ change: string }>(
          `SELECT CASE WHEN key IS NULL THEN '*' ELSE kvm_name || '/' || encode(key, 'hex') END AS change
           FROM kvm_changes ORDER BY xid`,
        )
      ).rows.map((r) => r.change),
    );
  }

  test("every committed change of kvm_data is logged with its map, key and transaction; rolled-back ones are not", async () => {
    const url = await db.createSibling();
    await migrateUp(url);
    const key = Buffer.from("k\xff", "latin1");
    const k = key.toString("hex");
    assert.deepEqual(
      await logged(url, async (c) => {
        await c.query("INSERT INTO kvm_data (kvm_name, key, value) VALUES ('m', $1, 'v')", [key]);
        await c.query("UPDATE kvm_data SET value = 'w' WHERE kvm_name = 'm'");
        await c.query("BEGIN");
        await c.query("INSERT INTO kvm_data (kvm_name, key, value) VALUES ('m', 'rolled-back', 'v')");
        await c.query("ROLLBACK");
        await c.query("DELETE FROM kvm_data WHERE kvm_name = 'm'");
        await c.query("INSERT INTO kvm_data (kvm_name, key, value) VALUES ('t', 'x', 'v')");
        await c.query("TRUNCATE kvm_data");
      }),
      [`m/${k}`, `m/${k}`, `m/${k}`, "t/78", "*"],
    );
    // The log holds the writing transaction's id: what a reader compares with its snapshot's xmin.
    const xids = await withClient(url, async (c) => {
      await c.query("BEGIN");
      await c.query("INSERT INTO kvm_data (kvm_name, key, value) VALUES ('x', 'y', 'z')");
      const own = (await c.query<{ xid: string }>("SELECT pg_current_xact_id()::text AS xid")).rows[0].xid;
      await c.query("COMMIT");
      const row = (await c.query<{ xid: string }>("SELECT xid::text FROM kvm_changes WHERE kvm_name = 'x'"))
        .rows;
      return { own, logged: row.map((r) => r.xid) };
    });
    assert.deepEqual(xids.logged, [xids.own]);
  });

  test("up, re-run, down, up again: the log and its triggers come and go, the data stays", async () => {
    const url = await db.createSibling();
    await migrateUp(url, 2);
    await insert(url, "kept-1");
    assert.deepEqual(await migrateUp(url, 1), ["0003_kvm-data-change-log"]);
    await withClient(url, (c) => c.query(upSql("0003_kvm-data-change-log")));
    const triggers = () =>
      withClient(url, async (c) =>
        (
          await c.query<{ tgname: string }>(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'kvm_data'::regclass AND NOT tgisinternal ORDER BY 1",
          )
        ).rows.map((r) => r.tgname),
      );
    assert.deepEqual(await triggers(), ["kvm_data_log_change", "kvm_data_log_truncate"]);
    assert.deepEqual(await logged(url, (c) => c.query("DELETE FROM kvm_data")), ["m/6b6570742d31"]);
    await insert(url, "kept-2");

    assert.deepEqual(await migrateDown(url, 1), ["0003_kvm-data-change-log"]);
    assert.deepEqual(await triggers(), []);
    assert.equal(await exists(url, "kvm_changes"), false);
    await withClient(url, (c) => c.query("UPDATE kvm_data SET value = 'x'"));
    assert.deepEqual(await rows(url), ["kept-2=x"]);

    assert.deepEqual(await migrateUp(url, 1), ["0003_kvm-data-change-log"]);
    assert.deepEqual(await triggers(), ["kvm_data_log_change", "kvm_data_log_truncate"]);
    assert.deepEqual(await rows(url), ["kept-2=x"]);
  });
});

describe("0004_kvm-data-key-id", () => {
  const column = (url: string) =>
    withClient(
      url,
      async (c) =>
        (
          await c.query(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'kvm_data' AND column_name = 'key_id'",
          )
        ).rows.length === 1,
    );

  test("up adds key_id (plaintext rows stay NULL), re-runs, down refuses while rows are encrypted, then goes", async () => {
    const url = await db.createSibling();
    await migrateUp(url, 3);
    await insert(url, "plain");
    assert.deepEqual(await migrateUp(url), ["0004_kvm-data-key-id"]);
    await withClient(url, (c) => c.query(upSql("0004_kvm-data-key-id")));
    assert.equal(await column(url), true);
    const keyIds = () =>
      withClient(url, async (c) =>
        (await c.query("SELECT key_id FROM kvm_data ORDER BY key")).rows.map((r) => r.key_id),
      );
    assert.deepEqual(await keyIds(), [null]);

    await withClient(url, (c) => c.query("UPDATE kvm_data SET key_id = 'k1'"));
    await assert.rejects(
      migrateDown(url, 1),
      /holds encrypted values .*KVM_ENCRYPTION_ACTIVE_KEY=plaintext, then envoy-kvm kvm reencrypt/,
    );
    assert.equal(await column(url), true);
    await withClient(url, (c) => c.query("UPDATE kvm_data SET key_id = NULL"));
    assert.deepEqual(await migrateDown(url, 1), ["0004_kvm-data-key-id"]);
    assert.equal(await column(url), false);
    assert.deepEqual(await rows(url), ["plain=v"]);
    assert.deepEqual(await migrateUp(url), ["0004_kvm-data-key-id"]);
    assert.deepEqual(await keyIds(), [null]);
  });
});

describe("schema gate", () => {
  test("migrate up on a current schema applies nothing", async () => {
    const url = await db.createSibling();
    assert.equal((await migrateUp(url)).length, 4);
    assert.deepEqual(await migrateUp(url), []);
  });

  test("status lists applied, pending and unknown (newer) migrations", async () => {
    const url = await db.createSibling();
    await migrateUp(url, 1);
    let status = await withClient(url, (c) => migrationStatus(c));
    assert.deepEqual(status, {
      applied: ["0001_create-kvm-data"],
      pending: ["0002_kvm-data-expiry-index", "0003_kvm-data-change-log", "0004_kvm-data-key-id"],
      unknown: [],
    });
    assert.match(
      schemaProblem(status) ?? "",
      /pending migrations: 0002_kvm-data-expiry-index.*run `envoy-kvm migrate up`/,
    );

    await migrateUp(url);
    await withClient(url, (c) =>
      c.query(`INSERT INTO ${MIGRATIONS_TABLE} (name, run_on) VALUES ('9999_from-a-newer-version', now())`),
    );
    status = await withClient(url, (c) => migrationStatus(c));
    assert.deepEqual(status.unknown, ["9999_from-a-newer-version"]);
    assert.equal(schemaProblem(status), null);
  });

  test("the service refuses to serve an older schema and names the command to run", async () => {
    const url = await db.createSibling();
    await migrateUp(url, 1);
    await assert.rejects(
      startService({ DATABASE_URL: url, KVM_INSECURE: "1", PORT: "0", LOG_LEVEL: "silent" }),
      /database schema is older than this envoy-kvm.*envoy-kvm migrate up/,
    );
  });

  test("/readyz is 503 schema_outdated while a migration is missing, 200 once applied", async () => {
    const url = await db.createSibling();
    await migrateUp(url, 1);
    const t = await startTestApp(url, {}, { migrate: false });
    try {
      const res = await t.app.inject({ method: "GET", url: "/readyz" });
      assert.equal(res.statusCode, 503);
      assert.equal(res.json().error, "schema_outdated");
      await migrateUp(url);
      assert.equal((await t.app.inject({ method: "GET", url: "/readyz" })).statusCode, 200);
    } finally {
      await t.close();
    }
  });
});
