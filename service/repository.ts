// The only module that speaks SQL. Every statement is parameterized; map names and keys never reach the SQL
// text. Time is the database's now(), so every replica agrees on when an entry expires.
import pg from "pg";

export type Queryable = pg.Pool | pg.PoolClient | pg.Client;

export interface StoredEntry {
  key: Buffer;
  value: Buffer;
  version: number;
  /** Unix milliseconds, null = never expires. */
  expiresAt: number | null;
  createdAt: number;
  updatedAt: number;
}

/** If-None-Match: * → absent; If-Match: * → present; If-Match: <version> → version. */
export type Condition =
  { kind: "none" } | { kind: "absent" } | { kind: "present" } | { kind: "version"; version: bigint };

export type PutResult =
  | { outcome: "created" | "replaced"; version: number; expiresAt: number | null }
  | { outcome: "precondition_failed" };

export type DeleteOutcome = "deleted" | "absent" | "precondition_failed";

export interface ImportEntry {
  key: Buffer;
  value: Buffer;
  expiresAt: number | null;
}

export interface ImportCounts {
  created: number;
  replaced: number;
  /** insert mode only: keys that already held a live entry. */
  skipped: number;
}

const LIVE = "(expires_at IS NULL OR expires_at > now())";
const MS = (column: string) => `floor(extract(epoch FROM ${column}) * 1000)::float8`;
const ENTRY_COLUMNS = `key, value, version::float8 AS version, ${MS("expires_at")} AS expires_at_ms,
  ${MS("created_at")} AS created_at_ms, ${MS("updated_at")} AS updated_at_ms`;
const EXPIRY_FROM_TTL =
  "CASE WHEN $4::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $4::float8) END";

interface EntryRow {
  key: Buffer;
  value: Buffer;
  version: number;
  expires_at_ms: number | null;
  created_at_ms: number;
  updated_at_ms: number;
}

function toEntry(row: EntryRow): StoredEntry {
  return {
    key: row.key,
    value: row.value,
    version: row.version,
    expiresAt: row.expires_at_ms,
    createdAt: row.created_at_ms,
    updatedAt: row.updated_at_ms,
  };
}

/**
 * The smallest byte string greater than every string starting with `prefix`, or null when there is none
 * (empty prefix, or all 0xff). Turns a prefix filter into an index range scan: key >= prefix AND key < end.
 */
export function prefixUpperBound(prefix: Buffer): Buffer | null {
  let end = prefix.length;
  while (end > 0 && prefix[end - 1] === 0xff) end--;
  if (end === 0) return null;
  const bound = Buffer.from(prefix.subarray(0, end));
  bound[end - 1]++;
  return bound;
}

export async function appliedMigrationNames(db: Queryable, table: string): Promise<string[]> {
  const exists = await db.query<{ t: string | null }>("SELECT to_regclass($1)::text AS t", [table]);
  if (exists.rows[0].t === null) return [];
  const ident = pg.Client.prototype.escapeIdentifier(table);
  const rows = await db.query<{ name: string }>(`SELECT name FROM ${ident} ORDER BY run_on, id`);
  return rows.rows.map((r) => r.name);
}

export class KvmRepository {
  constructor(private readonly pool: pg.Pool) {}

  async getEntry(kvm: string, key: Buffer): Promise<StoredEntry | null> {
    const res = await this.pool.query<EntryRow>(
      `SELECT ${ENTRY_COLUMNS} FROM kvm_data WHERE kvm_name = $1 AND key = $2 AND ${LIVE}`,
      [kvm, key],
    );
    return res.rows.length === 0 ? null : toEntry(res.rows[0]);
  }

  /**
   * Each condition is one statement whose WHERE clause re-checks the row after any lock wait (PostgreSQL
   * re-evaluates UPDATE/ON CONFLICT predicates against the newest row version under READ COMMITTED), so
   * concurrent conditional writers can not both succeed: no lost update, one creator.
   * https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED
   */
  async putEntry(
    kvm: string,
    key: Buffer,
    value: Buffer,
    ttlSeconds: number | null,
    condition: Condition,
  ): Promise<PutResult> {
    switch (condition.kind) {
      case "absent":
        return this.insertIfAbsent(kvm, key, value, ttlSeconds);
      case "present":
        return this.replaceIf(kvm, key, value, ttlSeconds, null);
      case "version":
        return this.replaceIf(kvm, key, value, ttlSeconds, condition.version);
      case "none":
        // Upsert as "create if absent, else replace if present": two exact outcomes without relying on
        // system columns. The loop only repeats when a concurrent delete lands between the two statements.
        for (let attempt = 0; attempt < 10; attempt++) {
          const created = await this.insertIfAbsent(kvm, key, value, ttlSeconds);
          if (created.outcome === "created") return created;
          const replaced = await this.replaceIf(kvm, key, value, ttlSeconds, null);
          if (replaced.outcome === "replaced") return replaced;
        }
        throw new Error("put did not settle after 10 attempts under concurrent deletes");
    }
  }

  /** Inserts, or takes over an expired row that the purge has not deleted yet (that counts as created). */
  private async insertIfAbsent(
    kvm: string,
    key: Buffer,
    value: Buffer,
    ttlSeconds: number | null,
  ): Promise<PutResult> {
    const res = await this.pool.query<{ version: number; expires_at_ms: number | null }>(
      `INSERT INTO kvm_data AS d (kvm_name, key, value, expires_at)
       VALUES ($1, $2, $3, ${EXPIRY_FROM_TTL})
       ON CONFLICT (kvm_name, key) DO UPDATE
         SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at,
             version = nextval('kvm_data_version_seq'), created_at = now(), updated_at = now()
         WHERE d.expires_at IS NOT NULL AND d.expires_at <= now()
       RETURNING version::float8 AS version, ${MS("expires_at")} AS expires_at_ms`,
      [kvm, key, value, ttlSeconds],
    );
    if (res.rows.length === 0) return { outcome: "precondition_failed" };
    return { outcome: "created", version: res.rows[0].version, expiresAt: res.rows[0].expires_at_ms };
  }

  private async replaceIf(
    kvm: string,
    key: Buffer,
    value: Buffer,
    ttlSeconds: number | null,
    version: bigint | null,
  ): Promise<PutResult> {
    const res = await this.pool.query<{ version: number; expires_at_ms: number | null }>(
      `UPDATE kvm_data
         SET value = $3, expires_at = ${EXPIRY_FROM_TTL},
             version = nextval('kvm_data_version_seq'), updated_at = now()
       WHERE kvm_name = $1 AND key = $2 AND ${LIVE} AND ($5::bigint IS NULL OR version = $5::bigint)
       RETURNING version::float8 AS version, ${MS("expires_at")} AS expires_at_ms`,
      [kvm, key, value, ttlSeconds, version === null ? null : version.toString()],
    );
    if (res.rows.length === 0) return { outcome: "precondition_failed" };
    return { outcome: "replaced", version: res.rows[0].version, expiresAt: res.rows[0].expires_at_ms };
  }

  async deleteEntry(kvm: string, key: Buffer, condition: Condition): Promise<DeleteOutcome> {
    if (condition.kind === "absent") {
      throw new Error("If-None-Match does not apply to delete");
    }
    const version = condition.kind === "version" ? condition.version.toString() : null;
    const res = await this.pool.query<{ live: boolean }>(
      `DELETE FROM kvm_data WHERE kvm_name = $1 AND key = $2
         AND ($3::boolean IS FALSE OR ${LIVE}) AND ($4::bigint IS NULL OR version = $4::bigint)
       RETURNING ${LIVE} AS live`,
      [kvm, key, condition.kind !== "none", version],
    );
    const deletedLive = res.rows.some((r) => r.live);
    if (deletedLive) return "deleted";
    return condition.kind === "none" ? "absent" : "precondition_failed";
  }

  /** Live entries in key order: prefix as an index range, `after` = the last key of the previous page. */
  async listEntries(
    kvm: string,
    prefix: Buffer,
    after: Buffer | null,
    limit: number,
  ): Promise<StoredEntry[]> {
    const upper = prefixUpperBound(prefix);
    const lower = after !== null && Buffer.compare(after, prefix) >= 0 ? after : null;
    const res = await this.pool.query<EntryRow>(
      `SELECT ${ENTRY_COLUMNS} FROM kvm_data
       WHERE kvm_name = $1 AND key >= $2 AND ($3::bytea IS NULL OR key > $3) AND ($4::bytea IS NULL OR key < $4)
         AND ${LIVE}
       ORDER BY key LIMIT $5`,
      [kvm, prefix, lower, upper, limit],
    );
    return res.rows.map(toEntry);
  }

  /** Maps holding at least one live entry, by name, after `after`. */
  async listMaps(after: string | null, limit: number): Promise<{ name: string; entries: number }[]> {
    const res = await this.pool.query<{ kvm_name: string; entries: string }>(
      `SELECT kvm_name, count(*) AS entries FROM kvm_data
       WHERE ($1::text IS NULL OR kvm_name > $1) AND ${LIVE}
       GROUP BY kvm_name ORDER BY kvm_name LIMIT $2`,
      [after, limit],
    );
    return res.rows.map((r) => ({ name: r.kvm_name, entries: Number(r.entries) }));
  }

  /** Deletes a whole map in batches (short transactions, short locks); returns how many live entries went. */
  async deleteMap(kvm: string, batchSize = 5000): Promise<number> {
    let live = 0;
    for (;;) {
      const res = await this.pool.query<{ live: boolean }>(
        `DELETE FROM kvm_data d USING (
           SELECT key FROM kvm_data WHERE kvm_name = $1 LIMIT $2 FOR UPDATE SKIP LOCKED
         ) batch
         WHERE d.kvm_name = $1 AND d.key = batch.key
         RETURNING (d.expires_at IS NULL OR d.expires_at > now()) AS live`,
        [kvm, batchSize],
      );
      live += res.rows.filter((r) => r.live).length;
      if (res.rows.length === 0) {
        // Rows locked by concurrent writers were skipped; make sure none is left behind.
        const rest = await this.pool.query("SELECT 1 FROM kvm_data WHERE kvm_name = $1 LIMIT 1", [kvm]);
        if (rest.rows.length === 0) return live;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  }

  /**
   * One transaction for the whole batch: either every entry lands or none. Duplicate keys in a batch must be
   * removed by the caller (ON CONFLICT can not touch one row twice in a statement).
   * created vs replaced: a row inserted by this statement has xmax = 0, a row taken over by
   * ON CONFLICT DO UPDATE carries our transaction id in xmax; expired rows are deleted first so that taking
   * one over counts as created. https://www.postgresql.org/docs/current/ddl-system-columns.html
   */
  async importEntries(kvm: string, entries: ImportEntry[], mode: "upsert" | "insert"): Promise<ImportCounts> {
    if (entries.length === 0) return { created: 0, replaced: 0, skipped: 0 };
    const keys = entries.map((e) => e.key);
    const values = entries.map((e) => e.value);
    const expiries = entries.map((e) => (e.expiresAt === null ? null : String(e.expiresAt)));
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      await client.query(
        "DELETE FROM kvm_data WHERE kvm_name = $1 AND key = ANY($2::bytea[]) AND expires_at <= now()",
        [kvm, keys],
      );
      const onConflict =
        mode === "insert"
          ? "DO NOTHING"
          : `DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at,
               version = nextval('kvm_data_version_seq'), updated_at = now()`;
      const res = await client.query<{ created: boolean }>(
        `INSERT INTO kvm_data (kvm_name, key, value, expires_at)
         SELECT $1, k, v, CASE WHEN e IS NULL THEN NULL ELSE to_timestamp(e / 1000.0) END
         FROM unnest($2::bytea[], $3::bytea[], $4::bigint[]) AS t(k, v, e)
         ON CONFLICT (kvm_name, key) ${onConflict}
         RETURNING (xmax = 0) AS created`,
        [kvm, keys, values, expiries],
      );
      await client.query("COMMIT");
      const created = res.rows.filter((r) => r.created).length;
      return { created, replaced: res.rows.length - created, skipped: entries.length - res.rows.length };
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  /**
   * Deletes up to `batchSize` expired rows, oldest first. SKIP LOCKED: rows a writer holds are left for the
   * next round rather than waited on, so the purge never queues behind (or blocks) the data plane for long.
   */
  async purgeExpired(batchSize: number): Promise<number> {
    const res = await this.pool.query(
      `DELETE FROM kvm_data d USING (
         SELECT kvm_name, key FROM kvm_data WHERE expires_at <= now()
         ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
       ) expired
       WHERE d.kvm_name = expired.kvm_name AND d.key = expired.key`,
      [batchSize],
    );
    return res.rowCount ?? 0;
  }
}
