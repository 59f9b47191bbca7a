// The data plane's in-process read cache: hot entries (and "absent" answers) of this replica, bounded in
// bytes (evicting roughly the least recently used: second chance), never served past their expiry, and kept
// correct across replicas through a change log in PostgreSQL that one dedicated connection per replica reads.
//
// Why not NOTIFY per write: PostgreSQL serialises the commits of all transactions that NOTIFY (a database-wide
// lock held until after the commit's WAL flush, so queue entries appear in commit order; src/backend/commands/
// async.c, PreCommit_Notify), so concurrent writers lose group commit — measured here: an upsert with a NOTIFY
// trigger ran at 0.18x the rate of the same upsert without it (BENCHMARKS.md). Migration 0003 instead makes
// every change to kvm_data append (kvm_name, key, writing transaction id) to the UNLOGGED table kvm_changes:
// plain concurrent inserts, no WAL.
//
// Reading the log. Every `pollMs` the connection runs one statement that returns its snapshot's xmin and the
// log rows of transactions with xid >= the previous poll's xmin. Every transaction below a snapshot's xmin had
// finished when the snapshot was taken, so a change not yet visible to one poll has an xid >= that poll's xmin
// and is returned by the next one (rows seen twice are dropped twice: harmless). Once a poll returns, every
// change committed before it started has been applied here. The cache serves only while the newest successful
// poll started less than `maxStalenessMs` ago, so an answer from the cache reflects every write committed
// more than `maxStalenessMs` before it, whatever happened to the connection. When the connection fails (or a
// poll does) the cache stops serving at once, empties itself and reconnects; it serves again after a fresh
// start (a snapshot taken, the cache emptied again). kvm_changes is UNLOGGED: a server crash empties it, but a
// crash also drops every replica's connection, which resynchronises them. Rows are deleted once they are older
// than RETENTION_MS; a replica whose last poll is older than half that starts afresh.
//
// A read that fills the cache can race with a write: the read returns the old row, the change is polled, then
// the fill would store the old row. Each fill is registered before its read starts, and a polled change of its
// key (or a resynchronisation) marks it stale: a stale fill answers its callers but is not stored. Concurrent
// misses on one key share one read. Writes through this replica drop their key at once (read-your-writes).

import pg from "pg";

/** Log rows older than this are deleted (by any replica, every CLEANUP_EVERY_MS). */
export const RETENTION_MS = 60_000;
const CLEANUP_EVERY_MS = 10_000;

/**
 * One statement, one snapshot: its xmin, the database clock, and the changes of transactions that may not
 * have been finished at the previous poll. Keys travel hex-encoded in "<kvm>/<hex>" strings ("*": all).
 */
const POLL_SQL = `SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin,
  floor(extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now,
  CASE WHEN $1::xid8 IS NULL THEN '{}'::text[] ELSE ARRAY(
    SELECT CASE WHEN key IS NULL THEN '*' ELSE kvm_name || '/' || encode(key, 'hex') END
    FROM kvm_changes WHERE xid >= $1::xid8) END AS changes`;

export interface CachedValue {
  value: Buffer;
  version: number;
  /** Unix ms on the database's clock; null = never expires. */
  expiresAt: number | null;
}

/** What a read finds: the entry, or null when it is absent (or expired). */
export type Lookup = CachedValue | null;

export interface CacheOptions {
  /** Upper bound of the bytes held (keys, values and a fixed per-entry overhead); 0 disables the cache. */
  maxBytes: number;
  /** The oldest a served answer may be, relative to writes committed on any replica. */
  maxStalenessMs: number;
  /** How often the change log is read; well below maxStalenessMs. */
  pollMs: number;
  /** Bound on the connection's set-up and on each poll. */
  connectTimeoutMs: number;
}

export interface CacheLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Counts since start, read by the metrics (kvm_cache_events_total). */
export interface CacheStats {
  /** Answered from the cache (an entry, or a known absence). */
  hit: number;
  /** Read from the database and kept. */
  miss: number;
  /** Read from the database because the cache was not serving (connection down, poll late). */
  bypass: number;
  /** Entries dropped because they changed. */
  invalidation: number;
  /** Entries dropped to stay within the byte bound. */
  eviction: number;
  /** Connection lost or a poll failed: cache emptied, reconnecting. */
  resync: number;
}

/** Map key of an entry: map names never contain '/', keys are bytes (latin1 maps them 1:1 onto a string). */
const slotKey = (kvm: string, key: Buffer) => `${kvm}/${key.toString("latin1")}`;

/** Map overhead, the slot object and the value Buffer's header: a measured round figure per entry. */
const ENTRY_OVERHEAD_BYTES = 160;

interface Slot {
  found: Lookup;
  bytes: number;
  /** Read since it last reached the head of the eviction order (second chance, see store()). */
  used: boolean;
}

interface Fill {
  stale: boolean;
  promise: Promise<Lookup>;
}

export class EntryCache {
  private readonly slots = new Map<string, Slot>();
  private readonly fills = new Map<string, Fill>();
  private bytes = 0;
  private readonly maxEntryBytes: number;

  private client: pg.Client | null = null;
  /** The connection is up and a first snapshot has been taken (the log is being followed). */
  private following = false;
  private stopped = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private polling = false;
  private pollAgain = false;
  private reconnectDelayMs = 50;
  /** xmin of the newest poll's snapshot: the next poll reads changes of transactions from here on. */
  private xmin: string | null = null;
  /** performance.now() when the newest successful poll started; -Infinity = none since (re)connecting. */
  private confirmedAt = -Infinity;
  private lastCleanup = performance.now();
  /** (time, xmin) of a poll every CLEANUP_EVERY_MS: the cleanup deletes below an xmin RETENTION_MS old. */
  private readonly xminHistory: { at: number; xmin: string }[] = [];
  /** Upper bound of (database clock − Date.now()), from the newest poll; expiry is judged with it. */
  private clockAheadMs = Infinity;
  private readonly waiters: { since: number; resolve: () => void }[] = [];
  readonly stats: CacheStats = { hit: 0, miss: 0, bypass: 0, invalidation: 0, eviction: 0, resync: 0 };

  constructor(
    private readonly pool: pg.Pool,
    private readonly options: CacheOptions,
    private readonly log: CacheLog,
  ) {
    // A single value may take at most 1/64 of the cache: big values are read from the database every time.
    this.maxEntryBytes = Math.floor(options.maxBytes / 64);
  }

  get enabled(): boolean {
    return this.options.maxBytes > 0;
  }

  /** True while answers may come from the cache (following the log, newest poll within the bound). */
  get serving(): boolean {
    return this.following && performance.now() - this.confirmedAt <= this.options.maxStalenessMs;
  }

  get size(): { entries: number; bytes: number } {
    return { entries: this.slots.size, bytes: this.bytes };
  }

  /** The backend process id of the connection that reads the change log (for tests), null while down. */
  get connectionPid(): number | null {
    return this.following ? ((this.client as unknown as { processID?: number })?.processID ?? null) : null;
  }

  start(): void {
    if (!this.enabled) return;
    this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    if (this.pollTimer !== null) clearTimeout(this.pollTimer);
    const ended = this.goDown();
    for (const w of this.waiters.splice(0)) w.resolve();
    // The connection is closed before the pool is (a test then drops its database); bounded for a silent server.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ended, new Promise((resolve) => (timer = setTimeout(resolve, 1000)))]);
    clearTimeout(timer);
  }

  /**
   * The entry as the cache holds it: a CachedValue, null (known absent), or undefined (not cached, or the cache
   * is not serving now — ask the database).
   */
  lookup(kvm: string, key: Buffer): Lookup | undefined {
    if (!this.enabled) return undefined;
    if (!this.serving) {
      this.stats.bypass++;
      return undefined;
    }
    const id = slotKey(kvm, key);
    const slot = this.slots.get(id);
    if (slot === undefined) return undefined;
    const found = slot.found;
    if (found !== null && found.expiresAt !== null && found.expiresAt <= Date.now() + this.clockAheadMs) {
      // Expired (or possibly so, given what is known of the database's clock): the database decides.
      this.remove(id, slot);
      return undefined;
    }
    slot.used = true; // a hit only marks the slot: no Map delete and re-insert on the read path
    this.stats.hit++;
    return found;
  }

  /** Reads through `read` (the database), sharing the read with concurrent misses, and keeps the answer. */
  load(kvm: string, key: Buffer, read: () => Promise<Lookup>): Promise<Lookup> {
    if (!this.enabled || !this.serving) return read();
    this.stats.miss++;
    const id = slotKey(kvm, key);
    const pending = this.fills.get(id);
    if (pending !== undefined && !pending.stale) return pending.promise;
    const fill: Fill = { stale: false, promise: Promise.resolve(null) };
    fill.promise = read().then(
      (found) => {
        if (this.fills.get(id) === fill) this.fills.delete(id);
        if (!fill.stale && this.serving) this.store(id, found);
        return found;
      },
      (err: unknown) => {
        if (this.fills.get(id) === fill) this.fills.delete(id);
        throw err;
      },
    );
    this.fills.set(id, fill);
    return fill.promise;
  }

  /** Drops one entry (a write through this replica, or a notification). */
  invalidate(kvm: string, key: Buffer): void {
    this.invalidateId(slotKey(kvm, key));
  }

  /**
   * Resolves once every change committed before the call has reached this cache (a poll started after the
   * call has returned), at once when the cache is not following the log, or after maxStalenessMs when a poll
   * does not come back: after a write made outside this replica's data plane, the next read here sees it.
   */
  sync(): Promise<void> {
    // Not following the log: nothing is served, and the next fresh start empties the cache anyway.
    if (!this.enabled || this.stopped || !this.following) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.options.maxStalenessMs);
      timer.unref();
      this.waiters.push({
        since: performance.now(),
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
      this.pollNow();
    });
  }

  private invalidateId(id: string): void {
    const fill = this.fills.get(id);
    if (fill !== undefined) {
      fill.stale = true;
      this.fills.delete(id);
    }
    const slot = this.slots.get(id);
    if (slot !== undefined) {
      this.remove(id, slot);
      this.stats.invalidation++;
    }
  }

  private store(id: string, found: Lookup): void {
    const bytes = ENTRY_OVERHEAD_BYTES + id.length * 2 + (found === null ? 0 : found.value.length);
    if (bytes > this.maxEntryBytes) return;
    const old = this.slots.get(id);
    if (old !== undefined) this.remove(id, old);
    this.slots.set(id, { found, bytes, used: false });
    this.bytes += bytes;
    // Eviction by second chance (CLOCK), an approximation of least recently used: Map iteration order is
    // insertion order, so the head is the oldest; a head read since it got there moves to the tail with its mark
    // cleared, the first unmarked head goes. Each pass clears marks, so the loop ends.
    while (this.bytes > this.options.maxBytes) {
      const [victim, slot] = this.slots.entries().next().value as [string, Slot];
      if (slot.used) {
        slot.used = false;
        this.slots.delete(victim);
        this.slots.set(victim, slot);
        continue;
      }
      this.remove(victim, slot);
      this.stats.eviction++;
    }
  }

  private remove(id: string, slot: Slot): void {
    this.slots.delete(id);
    this.bytes -= slot.bytes;
  }

  /** Everything goes: entries, and fills in flight (their reads may predate a change this cache missed). */
  private clear(): void {
    this.slots.clear();
    this.bytes = 0;
    for (const fill of this.fills.values()) fill.stale = true;
    this.fills.clear();
  }

  /** Stops serving and following the log; resolves when the connection has closed. */
  private goDown(): Promise<void> {
    this.following = false;
    this.confirmedAt = -Infinity;
    this.xmin = null;
    this.clear();
    const client = this.client;
    this.client = null;
    return client === null ? Promise.resolve() : client.end().catch(() => {});
  }

  private resync(err: Error | undefined, what: string): void {
    this.log.warn(
      { err: err?.message ?? "connection ended" },
      `cache ${what}: the cache stops serving until it has resynchronised`,
    );
    this.stats.resync++;
    void this.goDown();
    this.scheduleReconnect();
  }

  private connect(): void {
    if (this.stopped) return;
    const client = new pg.Client({
      ...this.pool.options,
      application_name: "envoy-kvm cache",
      connectionTimeoutMillis: this.options.connectTimeoutMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    } as pg.ClientConfig);
    this.client = client;
    const fail = (err: Error | undefined) => {
      if (this.client === client) this.resync(err, "connection lost");
    };
    client.on("error", fail);
    client.on("end", () => fail(undefined));
    client.connect().then(
      () => {
        if (this.client !== client) return;
        this.reconnectDelayMs = 50;
        this.pollNow();
      },
      (err: Error) => fail(err),
    );
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer !== null) return;
    const delay = this.reconnectDelayMs;
    this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, 5000);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
    this.reconnectTimer.unref();
  }

  /** Polls at once (or right after the poll in flight). */
  private pollNow(): void {
    if (this.polling) {
      this.pollAgain = true;
      return;
    }
    if (this.pollTimer !== null) clearTimeout(this.pollTimer);
    this.pollTimer = null;
    void this.poll();
  }

  private async poll(): Promise<void> {
    const client = this.client;
    if (client === null || this.stopped) return;
    this.polling = true;
    const startedAt = performance.now();
    const startedDate = Date.now();
    // A replica that has not read the log for half the retention may have missed deleted rows: start afresh.
    const from = startedAt - this.confirmedAt > RETENTION_MS / 2 ? null : this.xmin;
    try {
      const query: pg.QueryConfig & { query_timeout?: number } = {
        text: POLL_SQL,
        values: [from],
        query_timeout: this.options.connectTimeoutMs,
      };
      const res = await client.query<{ xmin: string; now: number; changes: string[] }>(query);
      if (this.client !== client) return;
      const row = res.rows[0];
      if (from === null) {
        // A fresh start: whatever was cached (or being read) before this snapshot may have missed a change.
        this.clear();
        this.following = true;
      } else {
        for (const change of row.changes) this.applyChange(change);
      }
      this.xmin = row.xmin;
      // The database's clock is at most this far ahead of ours (it was read after startedDate).
      this.clockAheadMs = row.now - startedDate;
      if (startedAt > this.confirmedAt) this.confirmedAt = startedAt;
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        if (this.waiters[i].since <= startedAt) this.waiters.splice(i, 1)[0].resolve();
      }
      if (startedAt - this.lastCleanup > CLEANUP_EVERY_MS) {
        this.lastCleanup = startedAt;
        this.xminHistory.push({ at: startedAt, xmin: row.xmin });
        // Transactions below an xmin taken RETENTION_MS ago had finished by then: every replica that has
        // polled since has read their rows (and one that has not starts afresh). Best effort.
        if (this.xminHistory[0].at < startedAt - RETENTION_MS) {
          const bound = this.xminHistory.shift()!.xmin;
          client.query("DELETE FROM kvm_changes WHERE xid < $1::xid8", [bound]).catch(() => {});
        }
      }
    } catch (err) {
      if (this.client === client) this.resync(err as Error, "poll failed");
      return;
    } finally {
      this.polling = false;
    }
    if (this.stopped || this.client !== client) return;
    if (this.pollAgain) {
      this.pollAgain = false;
      void this.poll();
      return;
    }
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      void this.poll();
    }, this.options.pollMs);
    this.pollTimer.unref();
  }

  private applyChange(change: string): void {
    if (change === "*") {
      this.clear();
      this.stats.invalidation++;
      return;
    }
    const slash = change.lastIndexOf("/");
    if (slash < 0) return;
    this.invalidateId(
      `${change.slice(0, slash)}/${Buffer.from(change.slice(slash + 1), "hex").toString("latin1")}`,
    );
  }
}
