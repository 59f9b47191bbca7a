// PostgreSQL connections: a pool whose every wait is bounded, and what counts as "the database is unavailable"
// (answered 503, never 500). The readiness check and the start-up wait are in readiness.ts (they read the
// migration status, and migrate.ts depends on the repository, which depends on this module). docs/service.md
// states the bounds.
import pg from "pg";
import type { ServiceConfig } from "./config.ts";

/**
 * How much longer than the server's statement_timeout the client waits for an answer. A live server cancels
 * the statement itself (57014) and says so; a silent one (a dead host, a black-holed network) says nothing,
 * and the client gives up after this grace.
 */
export const CLIENT_GRACE_MS = 1000;

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

/**
 * SQLSTATEs that say "the database can not serve now" rather than "this request is wrong": connection
 * exceptions (08), insufficient resources (53: too many connections, out of memory, disk full), operator
 * intervention (57: shutdown, crash recovery, database dropped, statement timeout 57014), a database that does
 * not exist (3D000: dropped, or not created yet), lock timeouts (55P03) and deadlock or serialization failures
 * (40P01, 40001) still failing after the retries. https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
const UNAVAILABLE_SQLSTATE = /^(08|53|57|3D000$|55P03$|40001$|40P01$)/;

/** Socket errors node reports for an unreachable server. */
const UNREACHABLE_ERRNO = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
]);

/**
 * True when a failure of a database call means the database is unavailable: a server error with one of the
 * SQLSTATEs above, a socket error, or an error the driver raises itself without any SQLSTATE ("Connection
 * terminated unexpectedly", "timeout exceeded when trying to connect", "Query read timeout", …): every one of
 * those is a lost, refused or silent connection. Programming errors (TypeError, RangeError) are not.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (err instanceof pg.DatabaseError) return UNAVAILABLE_SQLSTATE.test(err.code ?? "");
  if (!(err instanceof Error) || err instanceof TypeError || err instanceof RangeError) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string") return UNREACHABLE_ERRNO.has(code);
  // Errors raised by the driver (pg, pg-pool) carry no code at all.
  return err.constructor === Error;
}

/** The error a repository call fails with when the database is unavailable; answered 503 `unavailable`. */
export class DatabaseUnavailableError extends Error {
  constructor(cause: unknown) {
    super("the database is unavailable", { cause });
  }
}

/** A pooled connection, or the classified error (unavailable, timeout) when none can be had. */
export async function connectClassified(pool: pg.Pool): Promise<pg.PoolClient> {
  try {
    return await pool.connect();
  } catch (err) {
    throw classifyDatabaseError(err);
  }
}

/** Passes `err` through, or wraps it as DatabaseUnavailableError when it says the database is unavailable. */
export function classifyDatabaseError(err: unknown): unknown {
  return isDatabaseUnavailable(err) ? new DatabaseUnavailableError(err) : err;
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
