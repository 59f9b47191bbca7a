// `envoy-kvm kvm import | export`: apigeecli files, in batches, with a progress bar on stderr.
import { createWriteStream, readFileSync, renameSync, rmSync } from "node:fs";
import { once } from "node:events";
import { Command, InvalidArgumentError, Option } from "commander";
import cliProgress from "cli-progress";
import { ServiceError, type AdminClient, type BulkEntry, type ImportResult } from "../client.ts";
import { entryOffset, positiveInt } from "./args.ts";

interface ImportOptions {
  batchSize: number;
  mode: "upsert" | "insert";
  from: number;
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

export function progressBar(label: string, total: number, unit = "entries") {
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {value}/{total} ${unit}`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return bar;
}

/** The entries of an apigeecli file; errors name the file. */
export function readBulkFile(file: string): BulkEntry[] {
  const text = readFileSync(file, "utf8");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    // V8's message quotes the file's text (it could be anything, secrets included): only its position is kept.
    const position = /at position (\d+)/.exec((err as Error).message);
    throw new InvalidArgumentError(
      `${file} is not JSON${position === null ? "" : ` (at character ${position[1]})`}; ` +
        'an import file is {"keyValueEntries":[{"name":…,"value":…}]}',
    );
  }
  const entries = (parsed as { keyValueEntries?: unknown } | null)?.keyValueEntries;
  if (!Array.isArray(entries)) {
    throw new InvalidArgumentError(`${file} has no "keyValueEntries" array (apigeecli file shape)`);
  }
  return entries as BulkEntry[];
}

export function importCommand(client: () => AdminClient): Command {
  return new Command("import")
    .argument("<kvm>")
    .argument("<file>")
    .description('import an apigeecli file {"keyValueEntries":[{"name","value"}]}, one transaction per batch')
    .addOption(new Option("--batch-size <n>", "entries per transaction").argParser(positiveInt).default(1000))
    .addOption(
      new Option("--mode <mode>", "upsert replaces, insert keeps existing")
        .choices(["upsert", "insert"])
        .default("upsert"),
    )
    .addOption(
      new Option("--from <n>", "resume: skip the file's first n entries (the failure message says n)")
        .argParser(entryOffset)
        .default(0),
    )
    .action(async (name: string, file: string, opts: ImportOptions) => {
      const all = readBulkFile(file);
      if (opts.from > all.length) {
        throw new InvalidArgumentError(`--from ${opts.from}: ${file} has only ${all.length} entries`);
      }
      const entries = all.slice(opts.from);
      const c = client();
      const totals = { created: 0, replaced: 0, skipped: 0, expired: 0 };
      const summary = () =>
        `${totals.created} created, ${totals.replaced} replaced, ${totals.skipped} skipped, ` +
        `${totals.expired} already expired`;
      const bar = progressBar("import", entries.length);
      // Offsets are the file's, whatever --from says.
      let offset = opts.from;
      try {
        for (const batch of batches(entries, opts.batchSize, IMPORT_BATCH_BYTES)) {
          let result: ImportResult;
          try {
            result = await c.importBatch(name, batch, opts.mode);
          } catch (err) {
            // Each batch is its own transaction: say which entries landed, and number the failing entry as
            // in the file, not as in the batch the service saw. A service that answered an error rolled the batch
            // back; one that did not answer (killed, restarted, network cut) may have committed it just before.
            const answered = err instanceof ServiceError && err.status !== 0;
            const cause = answered
              ? `${err.message.replace(/keyValueEntries\[(\d+)\]/g, (_all, i: string) => `keyValueEntries[${offset + Number(i)}]`)} (${err.status} ${err.code})`
              : (err as Error).message;
            const range = `entries ${offset}–${offset + batch.length - 1}`;
            // A 503 may come from a connection to PostgreSQL lost during COMMIT: the batch is in doubt too.
            const fate = !answered
              ? `${range} may or may not have been imported (no answer came)`
              : err.status === 503
                ? `${range} may or may not have been imported (the database became unavailable)`
                : `${range} were not imported`;
            const before =
              opts.from === 0
                ? `the ${offset} before them were`
                : `the ${offset - opts.from} from ${opts.from} on were`;
            throw new Error(
              `${cause}; ${fate}, ${before} (${summary()}); ` +
                `to resume: --from ${offset} (entries imported twice keep the file's value: upsert writes it again, insert skips it)`,
            );
          }
          for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += result[k];
          bar.increment(batch.length);
          offset += batch.length;
        }
      } finally {
        bar.stop();
      }
      const from = opts.from === 0 ? "" : ` (entries ${opts.from}–${all.length - 1} of ${all.length})`;
      console.log(`imported ${entries.length} entries${from}: ${summary()}`);
    });
}

export function exportCommand(client: () => AdminClient): Command {
  return new Command("export")
    .argument("<kvm>")
    .argument("[file]")
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
        // The map's entry count sizes the progress bar.
        let total = 0;
        for await (const m of c.listMaps()) {
          if (m.name === name) {
            total = m.entries;
            break;
          }
        }
        const bar = file === undefined ? null : progressBar("export", total);
        let count = 0;
        await write('{"keyValueEntries":[');
        try {
          for await (const entry of c.exportSnapshot(name, opts.prefix)) {
            await write(`${count === 0 ? "\n" : ",\n"}${JSON.stringify(entry)}`);
            count++;
            bar?.setTotal(Math.max(total, count));
            bar?.update(count);
          }
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
}
