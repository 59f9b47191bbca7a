// The data plane's in-process read cache: hot entries (and "absent" answers) of this replica, bounded in
// bytes (least recently used go first), never served past their expiry, and kept correct across replicas by
// PostgreSQL LISTEN/NOTIFY. Migration 0003 makes every committed change to kvm_data send
// `kvm_data_changed` with "<kvm>/<hex key>"; one dedicated connection per replica listens and drops those keys.
//
// The staleness bound. PostgreSQL delivers notifications in commit order, and a session receives its own
// (https://www.postgresql.org/docs/current/sql-notify.html). Every `heartbeatMs` the listener sends a NOTIFY on a
// channel of its own; when it comes back, every change committed before it was sent has been delivered and
// applied. The cache serves only while the newest heartbeat that came back was sent less than
// `maxStalenessMs` ago, so an answer from the cache reflects every write committed more than `maxStalenessMs`
// before it — whatever happened to the connection. When the listener connection fails the cache stops serving
// at once, empties itself and reconnects; it serves again only once LISTEN is back and a heartbeat has made the
// round trip. Writes through this replica drop their key at once (read-your-writes on one replica).
//
// A read that fills the cache can race with a write: the read returns the old row, the write's notification
// arrives, then the fill would store the old row. Each fill is registered before its read starts, and a
// notification for its key (or a resynchronisation) marks it stale: a stale fill answers its callers but is
// not stored. Concurrent misses on one key share one read.
import { randomBytes } from "node:crypto";
import pg from "pg";

export const CHANGE_CHANNEL = "kvm_data_changed";

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
  /** How often the listener proves its notifications are current; well below maxStalenessMs. */
  heartbeatMs: number;
  /** Bound on the listener's connection set-up and on each heartbeat statement. */
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
  /** Read from the database because the cache was not serving (listener down, heartbeat late). */
  bypass: number;
  /** Entries dropped because they changed. */
  invalidation: number;
  /** Entries dropped to stay within the byte bound. */
  eviction: number;
  /** Listener connection lost or heartbeat failed: cache emptied, reconnecting. */
  resync: number;
}

/** Map key of an entry: map names never contain '/', keys are bytes (latin1 maps them 1:1 onto a string). */
const slotKey = (kvm: string, key: Buffer) => `${kvm}/${key.toString("latin1")}`;

/** Map overhead, the slot object and the value Buffer's header: a measured round figure per entry. */
const ENTRY_OVERHEAD_BYTES = 160;

interface Slot {
  found: Lookup;
  bytes: number;
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
  private listening = false;
  private stopped = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private reconnectDelayMs = 50;
  /** performance.now() when the newest heartbeat that came back was sent; -Infinity = none since (re)connecting. */
  private confirmedSentAt = -Infinity;
  private readonly heartbeatsSent = new Map<number, number>();
  private heartbeatSeq = 0;
  /** Upper bound of (database clock − Date.now()), from the newest heartbeat; expiry is judged with it. */
  private clockAheadMs = Infinity;
  private readonly channel = `kvm_cache_${randomBytes(8).toString("hex")}`;
  private readonly waiters: { sentAt: number; resolve: () => void }[] = [];
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

  /** True while answers may come from the cache (listening, heartbeat within the bound). */
  get serving(): boolean {
    return this.listening && performance.now() - this.confirmedSentAt <= this.options.maxStalenessMs;
  }

  get size(): { entries: number; bytes: number } {
    return { entries: this.slots.size, bytes: this.bytes };
  }

  /** The listener's backend process id (for operators and tests), null while disconnected. */
  get listenerPid(): number | null {
    return this.listening ? ((this.client as unknown as { processID?: number })?.processID ?? null) : null;
  }

  start(): void {
    if (!this.enabled) return;
    this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer);
    this.goDown();
    for (const w of this.waiters.splice(0)) w.resolve();
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
    // Most recently used last: Map iteration order is insertion order, so the first key is the eviction victim.
    this.slots.delete(id);
    this.slots.set(id, slot);
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
   * Resolves once every change committed before the call has reached this cache (a heartbeat sent after the
   * call has come back), or after maxStalenessMs when the listener is down: after a write made outside this
   * replica's data plane, the next read here sees it.
   */
  sync(): Promise<void> {
    if (!this.enabled || this.stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.options.maxStalenessMs);
      timer.unref();
      this.waiters.push({
        sentAt: performance.now(),
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
      this.heartbeat();
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
    this.slots.set(id, { found, bytes });
    this.bytes += bytes;
    while (this.bytes > this.options.maxBytes) {
      const [victim, slot] = this.slots.entries().next().value as [string, Slot];
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

  private goDown(): void {
    this.listening = false;
    this.confirmedSentAt = -Infinity;
    this.heartbeatsSent.clear();
    this.clear();
    const client = this.client;
    this.client = null;
    if (client !== null) {
      client.removeAllListeners("notification");
      client.end().catch(() => {});
    }
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
    let failed = false;
    const fail = (err: Error | undefined) => {
      if (failed || this.client !== client) return;
      failed = true;
      this.log.warn(
        { err: err?.message ?? "connection ended" },
        "cache listener connection lost: the cache stops serving until it has resynchronised",
      );
      this.stats.resync++;
      this.goDown();
      this.scheduleReconnect();
    };
    client.on("error", fail);
    client.on("end", () => fail(undefined));
    client.on("notification", (msg) => this.onNotification(msg));
    (async () => {
      await client.connect();
      await client.query(`LISTEN ${CHANGE_CHANNEL}`);
      await client.query(`LISTEN ${this.channel}`);
      if (this.client !== client) return;
      // Whatever was cached (or being read) before LISTEN took effect may have missed a change.
      this.clear();
      this.listening = true;
      this.reconnectDelayMs = 50;
      this.log.info({}, "cache listener connected: serving from cache once a heartbeat has come back");
      if (this.heartbeatTimer === null) {
        this.heartbeatTimer = setInterval(() => this.heartbeat(), this.options.heartbeatMs);
        this.heartbeatTimer.unref();
      }
      this.heartbeat();
    })().catch((err: Error) => {
      if (this.client !== client) return;
      if (!failed) {
        failed = true;
        this.goDown();
        this.scheduleReconnect();
        this.log.warn({ err: err.message }, "cache listener could not connect; retrying");
      }
    });
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

  private heartbeat(): void {
    const client = this.client;
    if (!this.listening || client === null) return;
    const seq = ++this.heartbeatSeq;
    const sentAt = performance.now();
    const sentDate = Date.now();
    this.heartbeatsSent.set(seq, sentAt);
    const query: pg.QueryConfig & { query_timeout?: number } = {
      text: "SELECT pg_notify($1, $2), floor(extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now",
      values: [this.channel, String(seq)],
      query_timeout: this.options.connectTimeoutMs,
    };
    client.query<{ now: number }>(query).then(
      (res) => {
        // The database's clock is at most this far ahead of ours (it was read after sentDate).
        if (this.client === client) this.clockAheadMs = res.rows[0].now - sentDate;
      },
      (err: Error) => {
        if (this.client !== client) return;
        // A heartbeat that fails or times out means the notifications may not be flowing: resynchronise.
        this.log.warn({ err: err.message }, "cache heartbeat failed: resynchronising");
        this.stats.resync++;
        this.goDown();
        this.scheduleReconnect();
      },
    );
  }

  private onNotification(msg: pg.Notification): void {
    if (msg.channel === this.channel) {
      const sentAt = this.heartbeatsSent.get(Number(msg.payload));
      if (sentAt === undefined) return;
      for (const [seq] of this.heartbeatsSent) {
        if (seq > Number(msg.payload)) break;
        this.heartbeatsSent.delete(seq);
      }
      if (sentAt > this.confirmedSentAt) this.confirmedSentAt = sentAt;
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        if (this.waiters[i].sentAt <= sentAt) this.waiters.splice(i, 1)[0].resolve();
      }
      return;
    }
    const payload = msg.payload ?? "";
    if (payload === "*") {
      this.clear();
      this.stats.invalidation++;
      return;
    }
    const slash = payload.lastIndexOf("/");
    if (slash < 0) return;
    this.invalidateId(
      `${payload.slice(0, slash)}/${Buffer.from(payload.slice(slash + 1), "hex").toString("latin1")}`,
    );
  }
}
