// What counts as "the database is unavailable" (answered 503 `unavailable`, never 500). Kept apart from db.ts
// (pool, readiness, start-up wait) so that repository.ts can classify its errors without importing the
// readiness check, which needs migrate.ts, which needs repository.ts.
import pg from "pg";

/**
 * How much longer than the server's statement_timeout the client waits for an answer. A live server cancels
 * the statement itself (57014) and says so; a silent one (a dead host, a black-holed network) says nothing,
 * and the client gives up after this grace.
 */
export const CLIENT_GRACE_MS = 1000;

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

/** Passes `err` through, or wraps it as DatabaseUnavailableError when it says the database is unavailable. */
export function classifyDatabaseError(err: unknown): unknown {
  return isDatabaseUnavailable(err) ? new DatabaseUnavailableError(err) : err;
}
