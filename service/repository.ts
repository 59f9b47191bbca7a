// The module that speaks SQL (with bulk-repository.ts, and upsert-batcher.ts for batched PUTs). Every statement
// is parameterized; map names and keys never reach the SQL text. Time is the database's now(), so every replica
// agrees on when an entry expires.
import pg from "pg";
import { CLIENT_GRACE_MS, DatabaseUnavailableError, classifyDatabaseError, connectClassified } from "./db.ts";
import type { CachedValue } from "./cache.ts";
import { ValueCipher } from "./encryption.ts";
import { EXPIRY_FROM_TTL, GET_ENTRY_SQL, LIVE, MS } from "./statements.ts";
import { UpsertBatcher, writeUpserts } from "./upsert-batcher.ts";

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
  /** Entries whose expires_at had passed by the database's clock: not written. */
  expired: number;
}

/** Attempts of a transaction aborted by a deadlock or serialization failure before the error is answered. */
const TRANSACTION_ATTEMPTS = 5;

/** Deadlock (40P01) and serialization failure (40001): the transaction can simply run again. */
export function retryable(err: unknown): boolean {
  const cause = err instanceof DatabaseUnavailableError ? err.cause : err;
  return cause instanceof pg.DatabaseError && (cause.code === "40P01" || cause.code === "40001");
}

/** Runs one autocommit statement again when PostgreSQL aborts it as a deadlock or serialization victim. */
async function retrying<T>(statement: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await statement();
    } catch (err) {
      if (!retryable(err) || attempt >= TRANSACTION_ATTEMPTS) throw err;
    }
    await backoff(attempt);
  }
}

/** Jittered, so the transactions that collided do not collide again in lockstep. */
const backoff = (attempt: number) =>
  new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * attempt));

export const ENTRY_COLUMNS = `key, value, key_id, version::float8 AS version, ${MS("expires_at")} AS expires_at_ms,
  ${MS("created_at")} AS created_at_ms, ${MS("updated_at")} AS updated_at_ms`;

/**
 * Unix milliseconds → timestamptz, exact up to Number.MAX_SAFE_INTEGER: to_timestamp() goes through a double
 * of seconds and loses the last milliseconds of large values. Whole days plus the milliseconds of the day, added
 * to a timestamp without time zone (no daylight-saving shifts), then read as UTC.
 */
const EXPIRY_FROM_MS = (ms: string) =>
  `CASE WHEN ${ms} IS NULL THEN NULL ELSE (timestamp '1970-01-01' + make_interval(days => div(${ms}, 86400000)::int,
     secs => mod(${ms}, 86400000)::float8 / 1000)) AT TIME ZONE 'UTC' END`;

export interface EntryRow {
  key: Buffer;
  value: Buffer;
  key_id: string | null;
  version: number;
  expires_at_ms: number | null;
  created_at_ms: number;
  updated_at_ms: number;
}

export function toEntry(cipher: ValueCipher, kvm: string, row: EntryRow): StoredEntry {
  return {
    key: row.key,
    value: cipher.open(kvm, row.key, row.value, row.key_id),
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

/** A value as stored: the bytes and the id of the key they are encrypted with (null = plaintext). */
type Sealed = { stored: Buffer; keyId: string | null };

/** One statement in a transaction (see KvmRepository.transaction). */
export type Run = <R extends pg.QueryResultRow>(
  text: string,
  values: unknown[],
) => Promise<pg.QueryResult<R>>;

/** A statement with its own client-side read timeout (pg's per-query `query_timeout`). */
type TimedQuery = pg.QueryConfig & { query_timeout?: number };

export interface RepositoryOptions {
  /** statement_timeout of bulk statements (an import batch, the map listing); the pool's applies otherwise. */
  bulkStatementTimeoutMs?: number;
  /** How values are stored (service/encryption.ts); plaintext when absent. */
  cipher?: ValueCipher;
}

/**
 * Every failure that means "the database is unavailable" (a lost, refused or silent connection, a dropped
 * database, a statement timeout; see db.ts) leaves this class as DatabaseUnavailableError, answered 503.
 */
export class KvmRepository {
  private readonly bulkStatementTimeoutMs: number;
  readonly cipher: ValueCipher;

  constructor(
    private readonly pool: pg.Pool,
    options: RepositoryOptions = {},
  ) {
    this.bulkStatementTimeoutMs = options.bulkStatementTimeoutMs ?? 30_000;
    this.cipher = options.cipher ?? new ValueCipher(null);
    // At most 2 upserts out at once (1 when the pool is tiny, so reads keep a connection); the PUTs queued behind
    // them leave together (see upsert-batcher.ts). Measured in bench/service.ts: 2 beat 4 and 16 (BENCHMARKS.md).
    this.upserts = new UpsertBatcher(
      (rows) => writeUpserts((text, values, name) => this.query(text, values, name), rows),
      Math.max(1, Math.min(2, Math.floor(pool.options.max / 2))),
    );
  }

  private readonly upserts: UpsertBatcher;

  /** `name`: a prepared statement (parsed and planned once per connection), for the data plane's hot path. */
  private async query<R extends pg.QueryResultRow>(
    text: string,
    values: unknown[],
    name?: string,
  ): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(name === undefined ? { text, values } : { name, text, values });
    } catch (err) {
      throw classifyDatabaseError(err);
    }
  }

  async ping(): Promise<void> {
    await this.query("SELECT 1", []);
  }

  async getEntry(kvm: string, key: Buffer): Promise<StoredEntry | null> {
    const res = await this.query<EntryRow>(
      `SELECT ${ENTRY_COLUMNS} FROM kvm_data WHERE kvm_name = $1 AND key = $2 AND ${LIVE}`,
      [kvm, key],
    );
    return res.rows.length === 0 ? null : toEntry(this.cipher, kvm, res.rows[0]);
  }

  /** The data plane's read: value, version and expiry of a live entry, or null. */
  async readEntry(kvm: string, key: Buffer): Promise<CachedValue | null> {
    const res = await this.query<{
      value: Buffer;
      key_id: string | null;
      version: number;
      expires_at_ms: number | null;
    }>(GET_ENTRY_SQL, [kvm, key], "kvm_get_entry");
    if (res.rows.length === 0) return null;
    const row = res.rows[0];
    return {
      value: this.cipher.open(kvm, key, row.value, row.key_id),
      version: row.version,
      expiresAt: row.expires_at_ms,
    };
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
    const sealed = this.cipher.seal(kvm, key, value);
    switch (condition.kind) {
      case "absent":
        return this.insertIfAbsent(kvm, key, sealed, ttlSeconds);
      case "present":
        return this.replaceIf(kvm, key, sealed, ttlSeconds, null);
      case "version":
        return this.replaceIf(kvm, key, sealed, ttlSeconds, condition.version);
      case "none":
        return this.upsert(kvm, key, sealed, ttlSeconds);
    }
  }

  /**
   * An unconditional PUT is one INSERT … ON CONFLICT DO UPDATE: PostgreSQL either inserts or, after waiting for
   * any writer holding the row, updates the newest version of it — a DELETE landing at any moment can not make
   * it fail, as two statements (insert-if-absent, then replace-if-present) could.
   * https://www.postgresql.org/docs/current/sql-insert.html#SQL-ON-CONFLICT
   * created vs replaced: a freshly inserted row has xmax = 0 (ON CONFLICT DO UPDATE leaves our transaction id in
   * xmax); taking over an expired row that the purge has not deleted yet also counts as created, marked by
   * resetting created_at to this transaction's now() (a live row created in the very same microsecond by
   * another transaction would be reported as created too: only the status code, never the data, is affected).
   * https://www.postgresql.org/docs/current/ddl-system-columns.html
   */
  private async upsert(
    kvm: string,
    key: Buffer,
    value: Sealed,
    ttlSeconds: number | null,
  ): Promise<PutResult> {
    const row = await this.upserts.upsert({ kvm, key, stored: value.stored, ttlSeconds, keyId: value.keyId });
    return {
      outcome: row.created ? "created" : "replaced",
      version: row.version,
      expiresAt: row.expires_at_ms,
    };
  }

  /** Inserts, or takes over an expired row that the purge has not deleted yet (that counts as created). */
  private async insertIfAbsent(
    kvm: string,
    key: Buffer,
    value: Sealed,
    ttlSeconds: number | null,
  ): Promise<PutResult> {
    const res = await this.query<{ version: number; expires_at_ms: number | null }>(
      `INSERT INTO kvm_data AS d (kvm_name, key, value, expires_at, key_id)
       VALUES ($1, $2, $3, ${EXPIRY_FROM_TTL}, $5)
       ON CONFLICT (kvm_name, key) DO UPDATE
         SET value = EXCLUDED.value, key_id = EXCLUDED.key_id, expires_at = EXCLUDED.expires_at,
             version = nextval('kvm_data_version_seq'), created_at = now(), updated_at = now()
         WHERE d.expires_at IS NOT NULL AND d.expires_at <= now()
       RETURNING version::float8 AS version, ${MS("expires_at")} AS expires_at_ms`,
      [kvm, key, value.stored, ttlSeconds, value.keyId],
    );
    if (res.rows.length === 0) return { outcome: "precondition_failed" };
    return { outcome: "created", version: res.rows[0].version, expiresAt: res.rows[0].expires_at_ms };
  }

  private async replaceIf(
    kvm: string,
    key: Buffer,
    value: Sealed,
    ttlSeconds: number | null,
    version: bigint | null,
  ): Promise<PutResult> {
    const res = await this.query<{ version: number; expires_at_ms: number | null }>(
      `UPDATE kvm_data
         SET value = $3, key_id = $6, expires_at = ${EXPIRY_FROM_TTL},
             version = nextval('kvm_data_version_seq'), updated_at = now()
       WHERE kvm_name = $1 AND key = $2 AND ${LIVE} AND ($5::bigint IS NULL OR version = $5::bigint)
       RETURNING version::float8 AS version, ${MS("expires_at")} AS expires_at_ms`,
      [kvm, key, value.stored, ttlSeconds, version === null ? null : version.toString(), value.keyId],
    );
    if (res.rows.length === 0) return { outcome: "precondition_failed" };
    return { outcome: "replaced", version: res.rows[0].version, expiresAt: res.rows[0].expires_at_ms };
  }

  async deleteEntry(kvm: string, key: Buffer, condition: Condition): Promise<DeleteOutcome> {
    if (condition.kind === "absent") {
      throw new Error("If-None-Match does not apply to delete");
    }
    const version = condition.kind === "version" ? condition.version.toString() : null;
    const res = await this.query<{ live: boolean }>(
      `DELETE FROM kvm_data WHERE kvm_name = $1 AND key = $2
         AND ($3::boolean IS FALSE OR ${LIVE}) AND ($4::bigint IS NULL OR version = $4::bigint)
       RETURNING ${LIVE} AS live`,
      [kvm, key, condition.kind !== "none", version],
    );
    const deletedLive = res.rows.some((r) => r.live);
    if (deletedLive) return "deleted";
    return condition.kind === "none" ? "absent" : "precondition_failed";
  }

  /** Maps holding at least one live entry, by name, after `after`. */
  async listMaps(after: string | null, limit: number): Promise<{ name: string; entries: number }[]> {
    // Counting every map's entries reads the whole table: a bulk statement.
    const res = await this.transaction(
      (run) =>
        run<{ kvm_name: string; entries: string }>(
          `SELECT kvm_name, count(*) AS entries FROM kvm_data
           WHERE ($1::text IS NULL OR kvm_name > $1) AND ${LIVE}
           GROUP BY kvm_name ORDER BY kvm_name LIMIT $2`,
          [after, limit],
        ),
      this.bulkStatementTimeoutMs,
    );
    return res.rows.map((r) => ({ name: r.kvm_name, entries: Number(r.entries) }));
  }

  /**
   * Deletes a whole map as it was when the call began, in key-ordered batches (short statements, short locks);
   * returns how many live entries went. Bounded: the work is the rows that existed at the start, whatever
   * clients write meanwhile. A row written after the start carries a newer version than the bound taken here,
   * so it is kept — also a row replaced while a batch waited for its lock, since PostgreSQL re-checks the
   * WHERE clause against the newest row version after the wait.
   * https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED
   */
  async deleteMap(kvm: string, batchSize = 5000): Promise<number> {
    const start = await this.query<{ bound: string }>(
      "SELECT nextval('kvm_data_version_seq')::text AS bound",
      [],
    );
    const bound = start.rows[0].bound;
    let after: Buffer | null = null;
    let live = 0;
    for (;;) {
      // The last key of this batch: the batch is the range (after, last].
      const edge: pg.QueryResult<{ key: Buffer }> = await this.query(
        `SELECT key FROM kvm_data
         WHERE kvm_name = $1 AND ($2::bytea IS NULL OR key > $2) AND version < $3::bigint
         ORDER BY key OFFSET $4 LIMIT 1`,
        [kvm, after, bound, batchSize - 1],
      );
      const last: Buffer | null = edge.rows.length === 0 ? null : edge.rows[0].key;
      const res = await retrying(() =>
        this.query<{ live: boolean }>(
          `DELETE FROM kvm_data
           WHERE kvm_name = $1 AND ($2::bytea IS NULL OR key > $2) AND ($3::bytea IS NULL OR key <= $3)
             AND version < $4::bigint
           RETURNING ${LIVE} AS live`,
          [kvm, after, last, bound],
        ),
      );
      live += res.rows.filter((r) => r.live).length;
      if (last === null) return live;
      after = last;
    }
  }

  /**
   * One transaction for the whole batch: either every entry lands or none. Duplicate keys in a batch must be
   * removed by the caller (ON CONFLICT can not touch one row twice in a statement).
   * Lock order: rows are written in key order, so two imports of overlapping names (in any order in their
   * files) lock them in the same order and can not deadlock each other; a deadlock or serialization failure
   * with some other writer is retried (see retryable()).
   * created vs replaced: a row inserted by this statement has xmax = 0; taking over an expired row the purge
   * has not deleted yet resets created_at to now() and counts as created too (as in upsert()).
   */
  async importEntries(kvm: string, entries: ImportEntry[], mode: "upsert" | "insert"): Promise<ImportCounts> {
    if (entries.length === 0) return { created: 0, replaced: 0, skipped: 0, expired: 0 };
    // Buffer.compare is bytea's order (memcmp, then length), the order of the primary key index.
    const sorted = [...entries].sort((a, b) => Buffer.compare(a.key, b.key));
    const keys = sorted.map((e) => e.key);
    const sealed = sorted.map((e) => this.cipher.seal(kvm, e.key, e.value));
    const values = sealed.map((e) => e.stored);
    const keyIds = sealed.map((e) => e.keyId);
    const expiries = sorted.map((e) => (e.expiresAt === null ? null : String(e.expiresAt)));
    const takeOver = `value = EXCLUDED.value, key_id = EXCLUDED.key_id, expires_at = EXCLUDED.expires_at,
      version = nextval('kvm_data_version_seq'), updated_at = now(),
      created_at = CASE WHEN d.expires_at <= now() THEN now() ELSE d.created_at END`;
    // insert mode writes only over absent or expired entries; live ones are skipped (not returned).
    const onConflict =
      mode === "insert"
        ? `DO UPDATE SET ${takeOver} WHERE d.expires_at <= now()`
        : `DO UPDATE SET ${takeOver}`;
    // "Already expired" is judged by the database's now(), the clock every read uses (statements.ts LIVE), and
    // both statements see the same now(): the transaction's start.
    const { expired, res } = await this.transaction(async (run) => {
      const past = await run<{ n: number }>(
        `SELECT count(*)::float8 AS n FROM unnest($1::bigint[]) AS t(e)
         WHERE e IS NOT NULL AND ${EXPIRY_FROM_MS("e")} <= now()`,
        [expiries],
      );
      const written = await run<{ created: boolean }>(
        `INSERT INTO kvm_data AS d (kvm_name, key, value, expires_at, key_id)
         SELECT $1, k, v, ${EXPIRY_FROM_MS("e")}, kid
         FROM unnest($2::bytea[], $3::bytea[], $4::bigint[], $5::text[]) WITH ORDINALITY AS t(k, v, e, kid, i)
         WHERE e IS NULL OR ${EXPIRY_FROM_MS("e")} > now()
         ORDER BY i
         ON CONFLICT (kvm_name, key) ${onConflict}
         RETURNING (xmax = 0 OR created_at = now()) AS created`,
        [kvm, keys, values, expiries, keyIds],
      );
      return { expired: past.rows[0].n, res: written };
    }, this.bulkStatementTimeoutMs);
    const created = res.rows.filter((r) => r.created).length;
    return {
      created,
      replaced: res.rows.length - created,
      skipped: entries.length - expired - res.rows.length,
      expired,
    };
  }

  /**
   * Runs `work` in a transaction, again from the start when PostgreSQL aborts it as a deadlock victim (40P01)
   * or a serialization failure (40001): both say "retry", and the second attempt normally finds the way clear.
   * https://www.postgresql.org/docs/current/mvcc-serialization-failure-handling.html
   * Also used by bulk-repository.ts.
   */
  async transaction<T>(work: (run: Run) => Promise<T>, statementTimeoutMs: number): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await connectClassified(this.pool);
      // A connection that failed (lost, silent, timed out) is discarded rather than handed to the next request.
      let broken: Error | undefined = undefined;
      try {
        await client.query("BEGIN");
        await client.query("SELECT set_config('statement_timeout', $1, true)", [`${statementTimeoutMs}ms`]);
        const run: Run = (text, values) => {
          const query: TimedQuery = { text, values, query_timeout: statementTimeoutMs + CLIENT_GRACE_MS };
          return client.query(query);
        };
        const result = await work(run);
        await client.query("COMMIT");
        return result;
      } catch (err) {
        if (err instanceof pg.DatabaseError) {
          await client.query("ROLLBACK").catch((rollbackFailed: Error) => (broken = rollbackFailed));
        } else {
          broken = err as Error;
        }
        if (!retryable(err) || attempt >= TRANSACTION_ATTEMPTS) throw classifyDatabaseError(err);
      } finally {
        client.release(broken);
      }
      await backoff(attempt);
    }
  }

  /**
   * Deletes up to `batchSize` expired rows, oldest first. SKIP LOCKED: rows a writer holds are left for the
   * next round rather than waited on, so the purge never queues behind (or blocks) the data plane for long.
   */
  async purgeExpired(batchSize: number): Promise<number> {
    const res = await this.query(
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
