// Schema migrations with node-pg-migrate: it keeps the applied list in a table (MIGRATIONS_TABLE), takes an
// advisory lock so two replicas starting together do not migrate twice, and runs plain SQL files from
// service/migrations/ ("-- Up Migration" / "-- Down Migration" sections).
import { readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { runner } from "node-pg-migrate";
import { appliedMigrationNames } from "./repository.ts";

export const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "migrations");
export const MIGRATIONS_TABLE = "kvm_schema_migrations";

interface MigrationLogger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/** Migration names this build knows, in order (file names without extension, as node-pg-migrate records them). */
export function knownMigrations(): string[] {
  return readdirSync(MIGRATIONS_DIR)
    .filter((f) => f.endsWith(".sql"))
    .sort()
    .map((f) => f.slice(0, -".sql".length));
}

const quiet: MigrationLogger = { info: () => {}, warn: () => {}, error: () => {} };

async function run(
  databaseUrl: string,
  direction: "up" | "down",
  count: number,
  logger: MigrationLogger,
  dropData = false,
): Promise<string[]> {
  // A silent database host fails the command instead of hanging it.
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    // Read by down migrations that would delete entries (0001 refuses without it).
    if (dropData) await client.query("SET envoy_kvm.drop_data = 'on'");
    const ran = await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      migrationsTable: MIGRATIONS_TABLE,
      direction,
      count,
      checkOrder: true,
      // Wait for a concurrent migrator (another replica) instead of failing.
      advisoryLockMode: "wait",
      logger: { ...logger, debug: () => {} },
    });
    return ran.map((m) => m.name);
  } finally {
    await client.end();
  }
}

/** Applies pending migrations (all, or the next `count`); returns the names applied (empty when current). */
export function migrateUp(
  databaseUrl: string,
  count = Infinity,
  logger: MigrationLogger = quiet,
): Promise<string[]> {
  return run(databaseUrl, "up", count, logger);
}

/**
 * Reverts the last `count` applied migrations. A migration whose revert would delete entries refuses while
 * live entries exist, unless `dropData` is set.
 */
export function migrateDown(
  databaseUrl: string,
  count = 1,
  logger: MigrationLogger = quiet,
  options: { dropData?: boolean } = {},
): Promise<string[]> {
  return run(databaseUrl, "down", count, logger, options.dropData ?? false);
}

export interface MigrationStatus {
  applied: string[];
  pending: string[];
  /** Applied in the database but unknown to this build (a newer envoy-kvm migrated it). */
  unknown: string[];
}

export async function migrationStatus(db: pg.Pool | pg.Client): Promise<MigrationStatus> {
  const known = knownMigrations();
  const applied = await appliedMigrationNames(db, MIGRATIONS_TABLE);
  return {
    applied,
    pending: known.filter((name) => !applied.includes(name)),
    unknown: applied.filter((name) => !known.includes(name)),
  };
}

/** The message the service refuses to start with, or null when the schema is current (or newer). */
export function schemaProblem(status: MigrationStatus): string | null {
  if (status.pending.length === 0) return null;
  return (
    `database schema is older than this envoy-kvm (pending migrations: ${status.pending.join(", ")}); ` +
    "run `envoy-kvm migrate up` with the same DATABASE_URL, then start the service again"
  );
}
