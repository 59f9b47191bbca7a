// PostgreSQL connections: a pool whose every wait is bounded, what counts as "the database is unavailable"
// (answered 503, never 500), the readiness check, and the start-up wait. docs/service.md states the bounds.
import pg from "pg";
import type { ServiceConfig } from "./config.ts";
import { migrationStatus, schemaProblem } from "./migrate.ts";
import { CLIENT_GRACE_MS, isDatabaseUnavailable } from "./db-errors.ts";

export {
  CLIENT_GRACE_MS,
  DatabaseUnavailableError,
  classifyDatabaseError,
  isDatabaseUnavailable,
} from "./db-errors.ts";

export type DatabaseTimeouts = Pick<
  ServiceConfig,
  "pgConnectTimeoutMs" | "pgStatementTimeoutMs" | "pgBulkStatementTimeoutMs"
>;

/** The service's pool: bounded connection set-up, bounded statements, TCP keepalive on idle connections. */
export function createPool(
  databaseUrl: string,
  config: DatabaseTimeouts & Pick<ServiceConfig, "poolMax">,
  onIdleError: (err: Error) => void = () => {},
): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: config.poolMax,
    application_name: "envoy-kvm",
    // Opening a connection, and waiting for a free one when all are busy, both give up after this.
    connectionTimeoutMillis: config.pgConnectTimeoutMs,
    // The server cancels longer statements (57014); the client stops waiting for a silent server a little
    // later and discards that connection (pg-pool drops a client released with an error).
    statement_timeout: config.pgStatementTimeoutMs,
    query_timeout: config.pgStatementTimeoutMs + CLIENT_GRACE_MS,
    // A transaction left open by a client that vanished must not hold its row locks for long.
    idle_in_transaction_session_timeout: config.pgBulkStatementTimeoutMs + CLIENT_GRACE_MS,
    // Idle pooled connections through NATs and firewalls stay known-alive (or are found dead).
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  });
  // An idle connection that fails (the server restarted, the database was dropped) is removed by the pool;
  // without a listener its 'error' event would crash the process.
  pool.on("error", onIdleError);
  return pool;
}

/** host:port/database of a connection string, never its password (for log lines and error messages). */
export function describeDatabase(databaseUrl: string): string {
  try {
    const u = new URL(databaseUrl);
    return `${u.hostname}:${u.port || "5432"}${u.pathname}`;
  } catch {
    return "DATABASE_URL";
  }
}

export type Readiness =
  { ready: true } | { ready: false; error: "unavailable" | "schema_outdated"; detail: string };

/** /readyz: the database answers within `timeoutMs` and its schema is current (or newer). */
export async function checkReadiness(pool: pg.Pool, timeoutMs: number): Promise<Readiness> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the database did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    const problem = schemaProblem(await Promise.race([migrationStatus(pool), timeout]));
    if (problem !== null) return { ready: false, error: "schema_outdated", detail: problem };
    return { ready: true };
  } catch (err) {
    return { ready: false, error: "unavailable", detail: `database unreachable: ${(err as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
}

interface StartupLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/**
 * Start-up: waits until the database answers (retrying while it is unavailable, once a second) and returns its
 * migration status; gives up after `timeoutMs` with one line naming the database and the last error. Any
 * other failure (a wrong password, a missing privilege) ends the wait at once.
 */
export async function waitForDatabase(
  pool: pg.Pool,
  databaseUrl: string,
  timeoutMs: number,
  log: StartupLog,
): ReturnType<typeof migrationStatus> {
  const where = describeDatabase(databaseUrl);
  const started = Date.now();
  log.info(
    { database: where, timeoutMs },
    `connecting to PostgreSQL at ${where} (giving up after ${timeoutMs} ms)`,
  );
  for (let attempt = 1; ; attempt++) {
    try {
      return await migrationStatus(pool);
    } catch (err) {
      if (!isDatabaseUnavailable(err)) throw err;
      const waited = Date.now() - started;
      if (waited + 1000 > timeoutMs) {
        throw new Error(
          `gave up waiting for PostgreSQL at ${where} after ${timeoutMs} ms: ${(err as Error).message}`,
        );
      }
      log.warn(
        { database: where, attempt, err: (err as Error).message },
        `waiting for PostgreSQL at ${where}: ${(err as Error).message}; retrying in 1 s`,
      );
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}
