// The repository's whole-table work, apart from repository.ts for size but under the same rules (every
// statement parameterised, map names and keys never in the SQL text): the export snapshot and the
// re-encryption of values under the active key (key rotation).
import pg from "pg";
import { CLIENT_GRACE_MS, classifyDatabaseError, connectClassified } from "./db.ts";
import type { ValueCipher } from "./encryption.ts";
import {
  ENTRY_COLUMNS,
  prefixUpperBound,
  toEntry,
  type EntryRow,
  type KvmRepository,
  type StoredEntry,
} from "./repository.ts";
import { LIVE } from "./statements.ts";

export interface SnapshotRange {
  kvm: string;
  prefix: Buffer;
  /** The last key of the previous page (exclusive), or null. */
  after: Buffer | null;
  /** The page ends after this many entries, or once its key and value bytes would pass maxBytes (never empty). */
  maxEntries: number;
  maxBytes: number;
  /** Key and value bytes read from the database at a time (the service holds one read's entries). */
  readBytes: number;
}

/** Where a snapshot read stopped: the last key read, and whether live entries follow it in the snapshot. */
export interface SnapshotEnd {
  last: Buffer | null;
  more: boolean;
}

/** Where a re-encryption pass is: the last row it looked at (map, key), in primary-key order. */
export interface RowPosition {
  kvm: string;
  key: Buffer;
}

export interface ReencryptResult {
  /** Rows now under the active key (or plaintext, with KVM_ENCRYPTION_ACTIVE_KEY=plaintext). */
  rewritten: number;
  /** Rows whose value this service can not decrypt (unknown key id, wrong key, altered row): left as they are. */
  failed: number;
  /** Maps holding the failed rows (at most 10 named). */
  failedMaps: string[];
  /** Rows a writer replaced between the read and the rewrite (the writer used the active key). */
  changed: number;
  next: RowPosition | null;
}

export class BulkRepository {
  constructor(
    private readonly pool: pg.Pool,
    private readonly repository: KvmRepository,
    private readonly cipher: ValueCipher,
    private readonly statementTimeoutMs: number,
  ) {}

  /**
   * A map's live entries in key order, read in one REPEATABLE READ READ ONLY transaction: every batch sees the
   * same snapshot, so writes committed while the export runs are either wholly absent from it or, if committed
   * before it began, wholly present — never a mix. "Live" is judged by the transaction's now(), its start.
   * https://www.postgresql.org/docs/current/transaction-iso.html#XACT-REPEATABLE-READ
   * The connection is held until the generator finishes (or is returned early, as a closed response does).
   */
  async *snapshot(range: SnapshotRange): AsyncGenerator<StoredEntry[], SnapshotEnd> {
    const client = await connectClassified(this.pool);
    let broken: Error | undefined = undefined;
    let open = false;
    const run = async <R extends pg.QueryResultRow>(text: string, values: unknown[]) => {
      try {
        return await client.query<R>({
          text,
          values,
          query_timeout: this.statementTimeoutMs + CLIENT_GRACE_MS,
        } as pg.QueryConfig);
      } catch (err) {
        if (!(err instanceof pg.DatabaseError)) broken = err as Error;
        throw classifyDatabaseError(err);
      }
    };
    const upper = prefixUpperBound(range.prefix);
    const where = `kvm_name = $1 AND key >= $2 AND ($3::bytea IS NULL OR key > $3) AND ($4::bytea IS NULL OR key < $4)
      AND ${LIVE} ORDER BY key LIMIT $5`;
    try {
      await run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", []);
      open = true;
      await run("SELECT set_config('statement_timeout', $1, true)", [`${this.statementTimeoutMs}ms`]);
      let after = range.after !== null && Buffer.compare(range.after, range.prefix) >= 0 ? range.after : null;
      let entries = 0;
      let bytes = 0;
      for (;;) {
        // The sizes of the next entries decide how many to read (values are not read for this).
        const sizes = await run<{ bytes: number }>(
          `SELECT (octet_length(key) + octet_length(value))::float8 AS bytes FROM kvm_data WHERE ${where}`,
          [range.kvm, range.prefix, after, upper, Math.min(1000, range.maxEntries - entries + 1)],
        );
        let n = 0;
        let read = 0;
        for (const { bytes: size } of sizes.rows) {
          const pageFull =
            entries + n >= range.maxEntries || (entries + n > 0 && bytes + read + size > range.maxBytes);
          if (pageFull || (n > 0 && read + size > range.readBytes)) break;
          read += size;
          n++;
        }
        if (n === 0) {
          await run("COMMIT", []);
          open = false;
          return { last: after, more: sizes.rows.length > 0 };
        }
        const rows = await run<EntryRow>(`SELECT ${ENTRY_COLUMNS} FROM kvm_data WHERE ${where}`, [
          range.kvm,
          range.prefix,
          after,
          upper,
          n,
        ]);
        entries += rows.rows.length;
        bytes += read;
        after = rows.rows[rows.rows.length - 1].key;
        yield rows.rows.map((row) => toEntry(this.cipher, range.kvm, row));
      }
    } finally {
      // Ended early (an error, a closed response): the transaction only read, so a rollback loses nothing.
      if (open && broken === undefined) await client.query("ROLLBACK").catch((err: Error) => (broken = err));
      client.release(broken);
    }
  }

  /** How many rows each key id holds (null = plaintext), expired rows included: they still hold a value. */
  async rowsByKeyId(): Promise<{ key_id: string | null; rows: number }[]> {
    const res = await this.repository.transaction(
      (run) =>
        run<{ key_id: string | null; rows: number }>(
          "SELECT key_id, count(*)::float8 AS rows FROM kvm_data GROUP BY key_id ORDER BY key_id NULLS FIRST",
          [],
        ),
      this.statementTimeoutMs,
    );
    return res.rows;
  }

  /**
   * Rewrites up to `limit` rows not under the active key, after `after` in primary-key order: decrypted with
   * their own key, sealed with the active one. The version and updated_at stay (the value did not change). A
   * row replaced between the read and the rewrite is left to its writer (the version check). Resumable: rows
   * already rewritten no longer match, so a new pass from the start finds only what is left.
   */
  async reencrypt(after: RowPosition | null, limit: number): Promise<ReencryptResult> {
    const active = this.cipher.activeKeyId;
    return this.repository.transaction(async (run) => {
      const res = await run<{
        kvm_name: string;
        key: Buffer;
        value: Buffer;
        key_id: string | null;
        version: string;
      }>(
        `SELECT kvm_name, key, value, key_id, version::text AS version FROM kvm_data
         WHERE key_id IS DISTINCT FROM $1 AND ($2::text IS NULL OR (kvm_name, key) > ($2::text COLLATE "C", $3::bytea))
         ORDER BY kvm_name, key LIMIT $4`,
        [active, after?.kvm ?? null, after?.key ?? null, limit],
      );
      const update = {
        kvms: [] as string[],
        keys: [] as Buffer[],
        values: [] as Buffer[],
        ids: [] as (string | null)[],
        versions: [] as string[],
      };
      const failedMaps = new Set<string>();
      let failed = 0;
      for (const row of res.rows) {
        let plain: Buffer;
        try {
          plain = this.cipher.open(row.kvm_name, row.key, row.value, row.key_id);
        } catch {
          failed++;
          if (failedMaps.size < 10) failedMaps.add(row.kvm_name);
          continue;
        }
        const sealed = this.cipher.seal(row.kvm_name, row.key, plain);
        update.kvms.push(row.kvm_name);
        update.keys.push(row.key);
        update.values.push(sealed.stored);
        update.ids.push(sealed.keyId);
        update.versions.push(row.version);
      }
      const written =
        update.kvms.length === 0
          ? 0
          : ((
              await run(
                `UPDATE kvm_data d SET value = u.v, key_id = u.kid
                 FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::text[], $5::bigint[]) AS u(n, k, v, kid, ver)
                 WHERE d.kvm_name = u.n AND d.key = u.k AND d.version = u.ver`,
                [update.kvms, update.keys, update.values, update.ids, update.versions],
              )
            ).rowCount ?? 0);
      const last = res.rows[res.rows.length - 1];
      return {
        rewritten: written,
        failed,
        failedMaps: [...failedMaps],
        changed: update.kvms.length - written,
        next: res.rows.length < limit ? null : { kvm: last.kvm_name, key: last.key },
      };
    }, this.statementTimeoutMs);
  }
}
