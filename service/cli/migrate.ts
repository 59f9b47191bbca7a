// `envoy-kvm migrate up | down | status`: the schema, against DATABASE_URL or the embedded PostgreSQL.
import { Command, Option } from "commander";
import { loadConfig } from "../config.ts";
import { positiveInt } from "./args.ts";

// The migrator and the embedded PostgreSQL are loaded by the commands that need them.
const migrations = () => import("../migrate.ts");

/** Runs `fn` with a database URL: DATABASE_URL, or the embedded PostgreSQL started for the duration. */
async function withDatabase<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const config = loadConfig();
  if (config.databaseUrl !== null) return fn(config.databaseUrl);
  const { findRunningEmbedded, startEmbeddedPostgres } = await import("../embedded-postgres.ts");
  // While `envoy-kvm service` (npm start) runs on this data folder, its PostgreSQL holds the folder: use it.
  const running = findRunningEmbedded(config.embeddedDataDir);
  if (running !== null) {
    process.stderr.write(
      `DATABASE_URL is not set: using the embedded PostgreSQL of the running envoy-kvm service (pid ${running.pid}) in ${running.dataDir}\n`,
    );
    return fn(running.url);
  }
  process.stderr.write(
    `DATABASE_URL is not set: using the embedded PostgreSQL in ${config.embeddedDataDir}\n`,
  );
  const embedded = await startEmbeddedPostgres({
    dataDir: config.embeddedDataDir,
    port: config.embeddedPort,
  });
  try {
    return await fn(embedded.url);
  } finally {
    await embedded.stop();
  }
}

export function migrateCommand(): Command {
  const migrate = new Command("migrate").description("manage the database schema (uses DATABASE_URL)");
  migrate
    .command("up")
    .description("apply every pending migration")
    .action(async () => {
      const { migrateUp } = await migrations();
      const applied = await withDatabase((url) => migrateUp(url));
      console.log(applied.length === 0 ? "schema is current" : `applied: ${applied.join(", ")}`);
    });
  migrate
    .command("down")
    .description("revert the last migration(s)")
    .addOption(new Option("--count <n>", "how many migrations to revert").argParser(positiveInt).default(1))
    .option("--drop-data", "allow reverting the migration that creates kvm_data while it holds entries")
    .action(async (opts: { count: number; dropData?: boolean }) => {
      const { migrateDown } = await migrations();
      // One migration at a time, each in its own transaction: when one refuses (or fails), the ones already
      // reverted are still reported before the error.
      const reverted: string[] = [];
      try {
        await withDatabase(async (url) => {
          for (let i = 0; i < opts.count; i++) {
            const one = await migrateDown(url, 1, undefined, { dropData: opts.dropData === true });
            if (one.length === 0) break;
            reverted.push(...one);
          }
        });
      } finally {
        if (reverted.length > 0) console.log(`reverted: ${reverted.join(", ")}`);
      }
      if (reverted.length === 0) console.log("nothing to revert");
    });
  migrate
    .command("status")
    .description("list applied and pending migrations")
    .action(async () => {
      const { migrationStatus } = await migrations();
      const { default: pg } = await import("pg");
      const status = await withDatabase(async (url) => {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          return await migrationStatus(client);
        } finally {
          await client.end();
        }
      });
      for (const name of status.applied)
        console.log(`applied  ${name}${status.unknown.includes(name) ? " (unknown to this version)" : ""}`);
      for (const name of status.pending) console.log(`pending  ${name}`);
      if (status.pending.length > 0) process.exitCode = 3;
    });
  return migrate;
}
