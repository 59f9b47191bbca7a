// The `envoy-kvm` command line (bin/envoy-kvm.js registers tsx and calls main()).
import { createWriteStream, readFileSync, renameSync, rmSync } from "node:fs";
import { once } from "node:events";
import { Command, InvalidArgumentError, Option } from "commander";
import cliProgress from "cli-progress";
import { ConfigError, loadConfig } from "./config.ts";
import type { RunningService } from "./server.ts";
import { AdminClient, ServiceError, type BulkEntry, type ImportResult } from "./client.ts";

// The service, the migrator and the embedded PostgreSQL are imported by the commands that need them, so
// `envoy-kvm kvm …` (an HTTP client) starts without loading Fastify, pg or the migration tool.
const server = () => import("./server.ts");
const migrations = () => import("./migrate.ts");

const positiveInt = (raw: string) => {
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new InvalidArgumentError("must be a positive integer");
  return Number(raw);
};

/** Runs `fn` with a database URL: DATABASE_URL, or the embedded PostgreSQL started for the duration. */
async function withDatabase<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const config = loadConfig();
  if (config.databaseUrl !== null) return fn(config.databaseUrl);
  const { findRunningEmbedded, startEmbeddedPostgres } = await import("./embedded-postgres.ts");
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

function progressBar(label: string, total: number) {
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {value}/{total} entries`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return bar;
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function serviceCommand(): Command {
  return new Command("service")
    .description("run the KVM service (embedded PostgreSQL in ./.data/postgres when DATABASE_URL is unset)")
    .action(async () => {
      // Handlers go in before the (possibly slow) start: a signal during start-up still stops the embedded
      // PostgreSQL in order instead of killing the process and orphaning it.
      let service: RunningService | null = null;
      let signalled: NodeJS.Signals | null = null;
      let stopping = false;
      const shutdown = (running: RunningService, signal: NodeJS.Signals) => {
        stopping = true;
        running.app.log.info({ signal }, "shutting down: finishing in-flight requests");
        running.stop().then(
          () => {
            running.app.log.info("envoy-kvm service stopped");
            process.exit(0);
          },
          (err: unknown) => {
            running.app.log.error({ err }, "shutdown failed");
            process.exit(1);
          },
        );
      };
      for (const signal of ["SIGTERM", "SIGINT"] as const) {
        process.on(signal, () => {
          if (stopping || signalled !== null) {
            // A second signal means "now". Dying by the signal's default action would skip the 'exit'
            // listeners and orphan the embedded PostgreSQL (its data folder stays locked); process.exit runs
            // them, and they tell PostgreSQL to shut down.
            process.stderr.write(
              `envoy-kvm: ${signal} again: exiting without waiting for in-flight requests\n`,
            );
            process.exit(1);
          }
          if (service === null) signalled = signal;
          else shutdown(service, signal);
        });
      }
      service = await (await server()).startService();
      if (signalled !== null) shutdown(service, signalled);
    });
}

function migrateCommand(): Command {
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

/** Keeps each import request well under the service's default 64 MiB body limit, whatever the value sizes. */
const IMPORT_BATCH_BYTES = 16 * 1024 * 1024;

/** Splits entries into batches of at most `count` entries and about `bytes` of JSON (never an empty batch). */
export function* batches(entries: BulkEntry[], count: number, bytes: number): Generator<BulkEntry[]> {
  let batch: BulkEntry[] = [];
  let size = 0;
  for (const entry of entries) {
    const entrySize = JSON.stringify(entry).length;
    if (batch.length > 0 && (batch.length >= count || size + entrySize > bytes)) {
      yield batch;
      batch = [];
      size = 0;
    }
    batch.push(entry);
    size += entrySize;
  }
  if (batch.length > 0) yield batch;
}

interface PutOptions {
  file?: string;
  ttl?: number;
  ifAbsent?: boolean;
  ifVersion?: string;
}

function kvmCommand(): Command {
  const kvm = new Command("kvm")
    .description("talk to a running service's admin API")
    .addOption(new Option("--url <url>", "service base URL").env("KVM_URL").default("http://127.0.0.1:8081"))
    .addOption(new Option("--token <token>", "admin bearer token").env("KVM_ADMIN_TOKEN"));
  const client = () => {
    const opts = kvm.opts<{ url: string; token?: string }>();
    return new AdminClient(opts.url, opts.token);
  };

  kvm
    .command("get <kvm> <key>")
    .description("print an entry's raw value to stdout")
    .action(async (name: string, key: string) => {
      const entry = await client().json<{ value?: string; value_base64?: string }>(
        "GET",
        AdminClient.entryPath(name, Buffer.from(key, "utf8")),
      );
      process.stdout.write(
        entry.value !== undefined ? entry.value : Buffer.from(entry.value_base64 ?? "", "base64"),
      );
    });

  kvm
    .command("put <kvm> <key> [value]")
    .description("write an entry (value from the argument, --file, or stdin)")
    .option("--file <path>", "read the value from a file")
    .addOption(new Option("--ttl <seconds>", "time to live").argParser(positiveInt))
    .option("--if-absent", "only create (412 if present)")
    .option("--if-version <version>", "compare-and-set against this version")
    .action(async (name: string, key: string, value: string | undefined, opts: PutOptions) => {
      const bytes =
        value !== undefined
          ? Buffer.from(value, "utf8")
          : opts.file
            ? readFileSync(opts.file)
            : await readStdin();
      const headers: Record<string, string> = {};
      if (opts.ifAbsent) headers["if-none-match"] = "*";
      if (opts.ifVersion) headers["if-match"] = `"${opts.ifVersion}"`;
      const res = await client().request(
        "PUT",
        AdminClient.entryPath(name, Buffer.from(key, "utf8")),
        { value_base64: bytes.toString("base64"), ...(opts.ttl ? { ttl: opts.ttl } : {}) },
        headers,
      );
      const body = (await res.json()) as { version: number };
      console.log(`${res.status === 201 ? "created" : "replaced"} version ${body.version}`);
    });

  kvm
    .command("delete <kvm> [key]")
    .description("delete an entry, or with --all the whole map")
    .option("--all", "delete every entry of the map")
    .action(async (name: string, key: string | undefined, opts: { all?: boolean }) => {
      if (opts.all) {
        const res = await client().json<{ deleted: number }>(
          "DELETE",
          `/admin/v1/kvms/${encodeURIComponent(name)}`,
        );
        console.log(`deleted ${res.deleted} entries`);
        return;
      }
      if (key === undefined) throw new InvalidArgumentError("give a key, or --all for the whole map");
      await client().request("DELETE", AdminClient.entryPath(name, Buffer.from(key, "utf8")));
      console.log("deleted");
    });

  kvm
    .command("list [kvm]")
    .description("list maps (no argument) or a map's keys")
    .option("--prefix <prefix>", "only keys starting with this")
    .option("--json", "print whole entries as JSON lines")
    .action(async (name: string | undefined, opts: { prefix?: string; json?: boolean }) => {
      const c = client();
      let token = "";
      do {
        const query = new URLSearchParams({ page_size: "1000", ...(token ? { page_token: token } : {}) });
        if (name === undefined) {
          const page = await c.json<{
            kvms: { name: string; entries: number }[];
            next_page_token: string | null;
          }>("GET", `/admin/v1/kvms?${query}`);
          for (const m of page.kvms) console.log(opts.json ? JSON.stringify(m) : `${m.name}\t${m.entries}`);
          token = page.next_page_token ?? "";
        } else {
          if (opts.prefix !== undefined) query.set("prefix", opts.prefix);
          const page = await c.json<{ entries: Record<string, unknown>[]; next_page_token: string | null }>(
            "GET",
            `/admin/v1/kvms/${encodeURIComponent(name)}/entries?${query}`,
          );
          for (const e of page.entries)
            console.log(opts.json ? JSON.stringify(e) : (e.key ?? `base64:${e.key_base64}`));
          token = page.next_page_token ?? "";
        }
      } while (token !== "");
    });

  kvm
    .command("import <kvm> <file>")
    .description('import an apigeecli file {"keyValueEntries":[{"name","value"}]}, one transaction per batch')
    .addOption(new Option("--batch-size <n>", "entries per transaction").argParser(positiveInt).default(1000))
    .addOption(
      new Option("--mode <mode>", "upsert replaces, insert keeps existing")
        .choices(["upsert", "insert"])
        .default("upsert"),
    )
    .action(async (name: string, file: string, opts: { batchSize: number; mode: string }) => {
      const parsed = JSON.parse(readFileSync(file, "utf8")) as { keyValueEntries?: BulkEntry[] };
      if (!Array.isArray(parsed.keyValueEntries)) {
        throw new InvalidArgumentError(`${file} has no "keyValueEntries" array (apigeecli file shape)`);
      }
      const entries = parsed.keyValueEntries;
      const c = client();
      const totals = { created: 0, replaced: 0, skipped: 0, expired: 0 };
      const summary = () =>
        `${totals.created} created, ${totals.replaced} replaced, ${totals.skipped} skipped, ` +
        `${totals.expired} already expired`;
      const bar = progressBar("import", entries.length);
      let offset = 0;
      try {
        for (const batch of batches(entries, opts.batchSize, IMPORT_BATCH_BYTES)) {
          let result: ImportResult;
          try {
            result = await c.json<ImportResult>(
              "POST",
              `/admin/v1/kvms/${encodeURIComponent(name)}/import?mode=${opts.mode}`,
              { keyValueEntries: batch },
            );
          } catch (err) {
            // Each batch is its own transaction: say which entries landed, and number the failing entry as
            // in the file, not as in the batch the service saw.
            const cause =
              err instanceof ServiceError
                ? `${err.message.replace(/keyValueEntries\[(\d+)\]/g, (_all, i: string) => `keyValueEntries[${offset + Number(i)}]`)} (${err.status} ${err.code})`
                : (err as Error).message;
            throw new Error(
              `${cause}; entries ${offset}–${offset + batch.length - 1} were not imported, ` +
                `the ${offset} before them were (${summary()})`,
            );
          }
          for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += result[k];
          bar.increment(batch.length);
          offset += batch.length;
        }
      } finally {
        bar.stop();
      }
      console.log(`imported ${entries.length} entries: ${summary()}`);
    });

  kvm
    .command("export <kvm> [file]")
    .description("export a map as an apigeecli file (stdout without a file)")
    .option("--prefix <prefix>", "only keys starting with this")
    .action(async (name: string, file: string | undefined, opts: { prefix?: string }) => {
      const c = client();
      // A file is written under a temporary name and renamed when complete: a failed export leaves no
      // truncated file behind (nor replaces an earlier good one).
      const partial = file === undefined ? null : `${file}.partial`;
      const out = partial === null ? process.stdout : createWriteStream(partial);
      const write = async (text: string) => {
        if (!out.write(text)) await once(out, "drain");
      };
      try {
        // The map's entry count sizes the progress bar. The maps listing has its own page tokens, which the
        // entries export below must not start from.
        let total = 0;
        let mapsToken = "";
        do {
          const query = new URLSearchParams({
            page_size: "1000",
            ...(mapsToken ? { page_token: mapsToken } : {}),
          });
          const page = await c.json<{
            kvms: { name: string; entries: number }[];
            next_page_token: string | null;
          }>("GET", `/admin/v1/kvms?${query}`);
          total = page.kvms.find((m) => m.name === name)?.entries ?? total;
          mapsToken = page.next_page_token ?? "";
        } while (mapsToken !== "" && total === 0);
        const bar = file === undefined ? null : progressBar("export", total);
        let count = 0;
        let token = "";
        await write('{"keyValueEntries":[');
        try {
          do {
            const query = new URLSearchParams({ page_size: "1000", ...(token ? { page_token: token } : {}) });
            if (opts.prefix !== undefined) query.set("prefix", opts.prefix);
            const page = await c.json<{ keyValueEntries: BulkEntry[]; nextPageToken: string }>(
              "GET",
              `/admin/v1/kvms/${encodeURIComponent(name)}/export?${query}`,
            );
            for (const entry of page.keyValueEntries) {
              await write(`${count === 0 ? "\n" : ",\n"}${JSON.stringify(entry)}`);
              count++;
            }
            bar?.setTotal(Math.max(total, count));
            bar?.update(count);
            token = page.nextPageToken;
          } while (token !== "");
        } finally {
          bar?.stop();
        }
        await write('\n],"nextPageToken":""}\n');
        if (partial !== null && file !== undefined) {
          out.end();
          await once(out, "finish");
          renameSync(partial, file);
          console.log(`exported ${count} entries to ${file}`);
        }
      } catch (err) {
        if (partial !== null) {
          out.destroy();
          rmSync(partial, { force: true });
        }
        throw err;
      }
    });
  return kvm;
}

export const VERSION = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
).version;

export function buildProgram(): Command {
  return new Command("envoy-kvm")
    .description("envoy-kvm: the KVM service, its schema migrations, and an admin client")
    .version(VERSION, "-V, --version", "print the version")
    .addCommand(serviceCommand())
    .addCommand(migrateCommand())
    .addCommand(kvmCommand());
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`envoy-kvm: configuration error: ${err.message}`);
    } else if (err instanceof ServiceError && err.status !== 0) {
      console.error(`envoy-kvm: ${err.message} (${err.status} ${err.code})`);
    } else {
      console.error(`envoy-kvm: ${(err as Error).message}`);
    }
    process.exitCode = 1;
  }
}
