// Prometheus metrics on a registry per app instance (tests build several apps in one process).
import client from "prom-client";
import type pg from "pg";
import type { CacheStats, EntryCache } from "./cache.ts";

export interface ServiceMetrics {
  registry: client.Registry;
  httpRequests: client.Counter<"method" | "route" | "status">;
  httpDuration: client.Histogram<"method" | "route">;
  operations: client.Counter<"operation" | "result">;
  purged: client.Counter;
  importedEntries: client.Counter<"result">;
}

export function createMetrics(pool: pg.Pool): ServiceMetrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  new client.Gauge({
    name: "kvm_db_pool_connections",
    help: "PostgreSQL pool connections by state",
    labelNames: ["state"],
    registers: [registry],
    collect() {
      this.set({ state: "total" }, pool.totalCount);
      this.set({ state: "idle" }, pool.idleCount);
      this.set({ state: "waiting" }, pool.waitingCount);
    },
  });
  return {
    registry,
    httpRequests: new client.Counter({
      name: "kvm_http_requests_total",
      help: "HTTP requests by method, route pattern and status",
      labelNames: ["method", "route", "status"],
      registers: [registry],
    }),
    httpDuration: new client.Histogram({
      name: "kvm_http_request_duration_seconds",
      help: "HTTP request latency by method and route pattern",
      labelNames: ["method", "route"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    operations: new client.Counter({
      name: "kvm_operations_total",
      help: "Entry operations by kind and result (hit, miss, created, replaced, deleted, absent, precondition_failed)",
      labelNames: ["operation", "result"],
      registers: [registry],
    }),
    purged: new client.Counter({
      name: "kvm_purged_entries_total",
      help: "Expired entries deleted by the background purge",
      registers: [registry],
    }),
    importedEntries: new client.Counter({
      name: "kvm_imported_entries_total",
      help: "Entries written by bulk import, by result (created, replaced, skipped)",
      labelNames: ["result"],
      registers: [registry],
    }),
  };
}

/** The read cache's counters and size, read from the cache when scraped (nothing on the request path). */
export function registerCacheMetrics(registry: client.Registry, cache: EntryCache): void {
  new client.Counter({
    name: "kvm_cache_events_total",
    help: "Read cache events: hit, miss (read and kept), bypass (cache not serving), invalidation, eviction, resync",
    labelNames: ["event"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [event, n] of Object.entries(cache.stats) as [keyof CacheStats, number][]) {
        this.inc({ event }, n);
      }
    },
  });
  new client.Gauge({
    name: "kvm_cache_size",
    help: "Read cache size: entries, bytes (bounded by KVM_CACHE_MAX_BYTES), serving (1 = answers may come from it)",
    labelNames: ["measure"],
    registers: [registry],
    collect() {
      const { entries, bytes } = cache.size;
      this.set({ measure: "entries" }, entries);
      this.set({ measure: "bytes" }, bytes);
      this.set({ measure: "serving" }, cache.serving ? 1 : 0);
    },
  });
}
