// Shared test fixtures: every test file gets its own throwaway database (CREATE DATABASE kvm_test_<random> on
// the server DATABASE_URL points at, dropped at the end), or, without DATABASE_URL, its own embedded
// PostgreSQL in a temporary folder. Apps are built in-process with buildApp().
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import pg from "pg";
import type { FastifyInstance } from "fastify";
import { buildApp } from "../../service/app.ts";
import { loadConfig, type ServiceConfig } from "../../service/config.ts";
import { migrateUp } from "../../service/migrate.ts";
import { createPool } from "../../service/db.ts";
import { startEmbeddedPostgres } from "../../service/embedded-postgres.ts";

export interface TestDatabase {
  url: string;
  /** Another fresh database on the same server (dropped with this one). */
  createSibling(): Promise<string>;
  drop(): Promise<void>;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function onServer(serverUrl: string, fn: (client: pg.Client) => Promise<void>): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await fn(client);
  } finally {
    await client.end();
  }
}

export async function createTestDatabase(): Promise<TestDatabase> {
  let serverUrl = process.env.DATABASE_URL;
  let stopEmbedded: (() => Promise<void>) | null = null;
  if (serverUrl === undefined || serverUrl === "") {
    const dir = mkdtempSync(path.join(tmpdir(), "envoy-kvm-test-"));
    // As root, PostgreSQL runs as the `postgres` user, which must be able to enter the folder.
    chmodSync(dir, 0o755);
    const embedded = await startEmbeddedPostgres({ dataDir: path.join(dir, "pgdata"), port: null });
    serverUrl = embedded.url;
    stopEmbedded = async () => {
      await embedded.stop();
      rmSync(dir, { recursive: true, force: true });
    };
  }
  const server = serverUrl;
  const names: string[] = [];
  const create = async () => {
    const name = `kvm_test_${randomBytes(6).toString("hex")}`;
    await onServer(server, (c) => c.query(`CREATE DATABASE ${name}`).then(() => undefined));
    names.push(name);
    return withDatabase(server, name);
  };
  const url = await create();
  return {
    url,
    createSibling: create,
    drop: async () => {
      await onServer(server, async (c) => {
        for (const name of names) {
          // pg's pool.end() resolves before its sockets have closed; terminating those sessions (FORCE) would
          // raise an error in a client that has already left the pool. Let them go first.
          for (let i = 0; i < 100; i++) {
            const res = await c.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1", [
              name,
            ]);
            if (res.rows[0].n === 0) break;
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        }
      });
      await stopEmbedded?.();
    },
  };
}

/**
 * The apps built on each pool: a test that changes kvm_data behind the service's back (expireNow, plain SQL)
 * waits until their read caches have heard of it (the cache's own bound is KVM_CACHE_MAX_STALENESS_MS).
 */
const appsOfPool = new WeakMap<pg.Pool, FastifyInstance>();

/** Resolves once the read cache of the app on `pool` has caught up with every change committed so far. */
export async function cacheSynced(pool: pg.Pool): Promise<void> {
  await appsOfPool.get(pool)?.kvmCache.sync();
}

export interface TestApp {
  app: FastifyInstance;
  pool: pg.Pool;
  config: ServiceConfig;
  close(): Promise<void>;
}

/** A migrated database's app; `env` adds service environment variables (tokens, limits…). */
export async function startTestApp(
  databaseUrl: string,
  env: Record<string, string> = {},
  options: {
    migrate?: boolean;
    logger?: object | false;
    fastGet?: boolean;
    /** Called with the app before it is ready (hooks that must be added before then). */
    beforeReady?: (app: FastifyInstance) => void;
  } = {},
): Promise<TestApp> {
  if (options.migrate !== false) await migrateUp(databaseUrl);
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    KVM_INSECURE: "1",
    // The purge runs when a test calls app.purger.runOnce(), never on a timer.
    KVM_PURGE_INTERVAL_MS: "0",
    ...env,
  });
  // 12 connections unless the caller sizes the pool (the bench does).
  const pool = createPool(databaseUrl, {
    ...config,
    poolMax: env.KVM_PG_POOL_MAX === undefined ? 12 : config.poolMax,
  });
  const app = await buildApp({ config, pool, logger: options.logger ?? false, fastGet: options.fastGet });
  appsOfPool.set(pool, app);
  options.beforeReady?.(app);
  await app.ready();
  return {
    app,
    pool,
    config,
    close: async () => {
      await app.close();
      await pool.end();
    },
  };
}

/** The database's clock in Unix ms (expiry is decided by the database's now()). */
export async function dbNowMs(pool: pg.Pool): Promise<number> {
  const res = await pool.query<{ now: number }>(
    "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now",
  );
  return res.rows[0].now;
}

/** Makes an entry expired right now, as if its TTL had run out (a controllable clock for TTL tests). */
export async function expireNow(pool: pg.Pool, kvm: string, key: Buffer): Promise<void> {
  const res = await pool.query(
    "UPDATE kvm_data SET expires_at = now() - interval '1 millisecond' WHERE kvm_name = $1 AND key = $2",
    [kvm, key],
  );
  if (res.rowCount !== 1) throw new Error(`expireNow: no row for ${kvm}/${key.toString("hex")}`);
  await cacheSynced(pool);
}

export const entryUrl = (kvm: string, key: string | Buffer) =>
  `/v1/kvms/${kvm}/entries/${
    typeof key === "string"
      ? encodeURIComponent(key)
      : [...key].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("")
  }`;

/** Whether a process group (a server started in its own group, as a terminal would) still has a process. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Processes whose command line mentions `needle` (the postmaster has its data folder on its command line). */
export function processesMentioning(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(needle)) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** A stream for an app's `logger` option that appends each line written to `lines`. */
export function logCapture(lines: string[] = []): { lines: string[]; stream: Writable } {
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { lines, stream };
}
