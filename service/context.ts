// What the route plugins share, built once by buildApp() (app.ts) and handed to each of them. A module of its
// own so that routes/* depend on it and not on app.ts, which registers them.
import type pg from "pg";
import type { ServiceConfig } from "./config.ts";
import type { KvmRepository } from "./repository.ts";
import type { BulkRepository } from "./bulk-repository.ts";
import type { ServiceMetrics } from "./metrics.ts";
import type { EntryCache } from "./cache.ts";

export interface AppContext {
  config: ServiceConfig;
  pool: pg.Pool;
  repository: KvmRepository;
  /** The export snapshot and the re-encryption (bulk-repository.ts). */
  bulk: BulkRepository;
  metrics: ServiceMetrics;
  /** The data plane's read cache (disabled when KVM_CACHE_MAX_BYTES=0). */
  cache: EntryCache;
}
