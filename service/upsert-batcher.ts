// Group commit for unconditional PUTs. While `maxInFlight` upsert statements are out, further PUTs queue; when one
// returns, the queue goes out as ONE multi-row INSERT … ON CONFLICT (statements.ts UPSERT_ENTRIES_SQL): one
// round trip and one commit for many writes, where one statement each would spend a commit per row. An upsert
// that finds a free slot goes out at once, alone, as before, so an idle service adds no latency.
// - Each row of a batch has the semantics of a single upsert (created vs replaced, its own version): the batch
//   statement is the single statement's, fed from unnest().
// - A key appears once per batch (ON CONFLICT DO UPDATE may not touch a row twice in one statement); a second
//   PUT of the same key waits for the next batch, so PUTs of one key keep their order.
// - Rows are sorted by (map, key) so concurrent batches lock rows in one order and can not deadlock each other.
// - A batch that fails fails each of its PUTs with the same error, as each would have failed alone (the only
//   failures left after validation are the database's: unavailable, timeout); no PUT is acknowledged unless its
//   row was committed.

import type pg from "pg";
import { UPSERT_ENTRIES_SQL, UPSERT_ENTRY_SQL } from "./statements.ts";

export interface UpsertRow {
  kvm: string;
  key: Buffer;
  stored: Buffer;
  ttlSeconds: number | null;
  keyId: string | null;
}

export interface UpsertedRow {
  created: boolean;
  version: number;
  expires_at_ms: number | null;
}

interface Pending {
  row: UpsertRow;
  id: string;
  resolve: (result: UpsertedRow) => void;
  reject: (err: unknown) => void;
}

export class UpsertBatcher {
  private queue: Pending[] = [];
  private inFlight = 0;

  constructor(
    /** Writes the rows (distinct keys, sorted) and answers in the same order. */
    private readonly write: (rows: UpsertRow[]) => Promise<UpsertedRow[]>,
    private readonly maxInFlight: number,
    private readonly maxBatch: number = 256,
  ) {}

  upsert(row: UpsertRow): Promise<UpsertedRow> {
    return new Promise((resolve, reject) => {
      this.queue.push({ row, id: rowId(row.kvm, row.key), resolve, reject });
      this.flush();
    });
  }

  private flush(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const batch: Pending[] = [];
      const later: Pending[] = [];
      const ids = new Set<string>();
      for (const pending of this.queue) {
        if (batch.length < this.maxBatch && !ids.has(pending.id)) {
          ids.add(pending.id);
          batch.push(pending);
        } else later.push(pending);
      }
      this.queue = later;
      batch.sort((a, b) =>
        a.row.kvm === b.row.kvm ? Buffer.compare(a.row.key, b.row.key) : a.row.kvm < b.row.kvm ? -1 : 1,
      );
      this.inFlight++;
      this.write(batch.map((p) => p.row))
        .then(
          (results) => batch.forEach((p, i) => p.resolve(results[i])),
          (err: unknown) => batch.forEach((p) => p.reject(err)),
        )
        .finally(() => {
          this.inFlight--;
          this.flush();
        });
    }
  }
}

const rowId = (kvm: string, key: Buffer) => `${kvm}\0${key.toString("hex")}`;

/** The repository's query (prepared when named; database errors classified). */
export type Query = (
  text: string,
  values: unknown[],
  name?: string,
) => Promise<pg.QueryResult<pg.QueryResultRow>>;

/** One row: the prepared one-row statement; several: one UPSERT_ENTRIES_SQL, answers matched by map and key. */
export async function writeUpserts(query: Query, rows: UpsertRow[]): Promise<UpsertedRow[]> {
  if (rows.length === 1) {
    const { kvm, key, stored, ttlSeconds, keyId } = rows[0];
    const res = await query(UPSERT_ENTRY_SQL, [kvm, key, stored, ttlSeconds, keyId], "kvm_upsert_entry");
    return res.rows as UpsertedRow[];
  }
  const res = await query(UPSERT_ENTRIES_SQL, [
    rows.map((r) => r.kvm),
    rows.map((r) => r.key),
    rows.map((r) => r.stored),
    rows.map((r) => r.ttlSeconds),
    rows.map((r) => r.keyId),
  ]);
  const answered = res.rows as (UpsertedRow & { kvm_name: string; key: Buffer })[];
  const byId = new Map(answered.map((row) => [rowId(row.kvm_name, row.key), row]));
  return rows.map((r) => {
    const row = byId.get(rowId(r.kvm, r.key));
    if (row === undefined) throw new Error("a batched upsert returned no row for one of its keys");
    return row;
  });
}
