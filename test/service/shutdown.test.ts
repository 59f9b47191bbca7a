// Shutdown faults (issue 10): Ctrl-C reaches the whole process group, the embedded PostgreSQL included, yet a
// request in flight still completes and its write is kept; and a request that never ends cannot hold the
// shutdown past KVM_SHUTDOWN_TIMEOUT_MS.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import {
  embeddedPostgresUnavailable,
  findRunningEmbedded,
  startEmbeddedPostgres,
} from "../../service/embedded-postgres.ts";
import { migrateUp } from "../../service/migrate.ts";
import { recordReliability } from "../reliability/record.ts";
import { createTestDatabase } from "./helpers.ts";

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../bin/envoy-kvm.js");

interface Started {
  child: ChildProcess;
  url: string;
  logs: () => string;
  exited: Promise<number | null>;
}

/** `envoy-kvm service` as the leader of its own process group (as a shell runs a foreground job). */
async function startInOwnGroup(env: NodeJS.ProcessEnv): Promise<Started> {
  const child = spawn(process.execPath, [BIN, "service"], {
    env: { ...env, PORT: "0", LOG_LEVEL: "info" },
    detached: true,
  });
  let logs = "";
  child.stdout!.on("data", (d) => (logs += d));
  child.stderr!.on("data", (d) => (logs += d));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", () => {
      const match = /"url":"(http:\/\/[^"]+)".*envoy-kvm service listening/.exec(logs);
      if (match !== null) resolve(match[1]);
    });
    void exited.then((code) => reject(new Error(`service exited (${code}):\n${logs}`)));
  });
  return { child, url, logs: () => logs, exited };
}

/** Holds the row lock of (kvm, key) in a transaction until `release`; resolves once a PUT waits on it. */
async function holdRowLock(databaseUrl: string, kvm: string) {
  const locker = new pg.Client({ connectionString: databaseUrl });
  await locker.connect();
  await locker.query("BEGIN");
  await locker.query("SELECT 1 FROM kvm_data WHERE kvm_name = $1 FOR UPDATE", [kvm]);
  return {
    client: locker,
    async someoneWaits() {
      for (;;) {
        const res = await locker.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
        );
        if (res.rows[0].n > 0) return;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async release() {
      await locker.query("COMMIT");
      // The service may finish and stop its PostgreSQL before this session has said goodbye.
      locker.on("error", () => undefined);
      await locker.end().catch(() => undefined);
    },
  };
}

const put = (url: string, value: string) =>
  fetch(`${url}/v1/kvms/shutdown/entries/k`, { method: "PUT", body: value });

test(
  "Ctrl-C to the whole process group: the embedded PostgreSQL outlives the in-flight request, whose write is kept",
  { skip: embeddedPostgresUnavailable() ?? false },
  async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kvm-ctrl-c-"));
    chmodSync(dir, 0o755);
    const dataDir = path.join(dir, "pg");
    const env: NodeJS.ProcessEnv = { ...process.env, KVM_DATA_DIR: dataDir };
    delete env.DATABASE_URL;
    const service = await startInOwnGroup(env);
    try {
      assert.equal((await put(service.url, "before")).status, 201);
      const running = findRunningEmbedded(dataDir);
      assert.ok(running !== null, "the service advertises its embedded PostgreSQL");
      const lock = await holdRowLock(running.url, "shutdown");
      const inflight = put(service.url, "during");
      await lock.someoneWaits();

      // What a terminal does on Ctrl-C: SIGINT to every process of the foreground group.
      process.kill(-service.child.pid!, "SIGINT");
      while (!service.logs().includes("shutting down: finishing in-flight requests")) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // PostgreSQL still serves: a fast shutdown would have ended this session (57P01).
      await lock.client
        .query("SELECT 1")
        .catch((err: Error) => assert.fail(`${err.message}\n${service.logs()}`));
      await lock.release();
      const res = await inflight;
      assert.equal(res.status, 200, await res.text());
      assert.equal(await service.exited, 0, service.logs());

      const again = await startEmbeddedPostgres({ dataDir, port: null });
      try {
        const check = new pg.Client({ connectionString: again.url });
        await check.connect();
        const row = await check.query<{ value: Buffer }>(
          "SELECT value FROM kvm_data WHERE kvm_name = 'shutdown' AND key = 'k'",
        );
        await check.end();
        assert.equal(row.rows[0]?.value.toString(), "during", "the in-flight write is kept");
      } finally {
        await again.stop();
      }
    } finally {
      if (service.child.exitCode === null) service.child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
    recordReliability({
      area: "faults",
      name: "Ctrl-C (SIGINT to the process group) with a request in flight, embedded PostgreSQL",
      cases: 1,
      result: "the request completes 200, its write is kept, exit 0",
    });
  },
);

test("a request that never ends holds the shutdown for KVM_SHUTDOWN_TIMEOUT_MS, no longer", async () => {
  const db = await createTestDatabase();
  await migrateUp(db.url);
  const service = await startInOwnGroup({
    ...process.env,
    DATABASE_URL: db.url,
    KVM_INSECURE: "1",
    KVM_SHUTDOWN_TIMEOUT_MS: "500",
    KVM_PG_STATEMENT_TIMEOUT_MS: "600000",
  });
  let lock: Awaited<ReturnType<typeof holdRowLock>> | null = null;
  try {
    assert.equal((await put(service.url, "before")).status, 201);
    lock = await holdRowLock(db.url, "shutdown");
    const inflight = put(service.url, "never").then(
      (res) => `answered ${res.status}`,
      () => "connection closed",
    );
    await lock.someoneWaits();
    const signalled = Date.now();
    service.child.kill("SIGTERM");
    const code = await Promise.race([
      service.exited,
      new Promise((resolve) => setTimeout(() => resolve("still running after 5 s"), 5000)),
    ]);
    assert.equal(code, 0, service.logs());
    assert.equal(await inflight, "connection closed");
    assert.match(
      service.logs(),
      /shutdown time limit \(500 ms\) reached: closing 1 connection with a request in flight/,
    );
    const took = Date.now() - signalled;
    assert.ok(took < 5000, `stopped after ${took} ms`);
  } finally {
    if (service.child.exitCode === null) service.child.kill("SIGKILL");
    await lock?.release();
    await service.exited;
    await db.drop();
  }
  recordReliability({
    area: "faults",
    name: "shutdown with a request that never ends",
    cases: 1,
    result: "exits 0 once KVM_SHUTDOWN_TIMEOUT_MS has passed; the request's connection is closed unanswered",
  });
});
