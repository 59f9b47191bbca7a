// Is the database ready to serve: /readyz's check and the start-up wait, both bounded in time.
// docs/service.md states the bounds.
import type pg from "pg";
import { describeDatabase, isDatabaseUnavailable } from "./db.ts";
import { migrationStatus, schemaProblem } from "./migrate.ts";

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
