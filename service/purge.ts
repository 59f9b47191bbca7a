// Background deletion of expired rows. Reads already hide them (every SELECT filters on expires_at), so the
// purge only reclaims space: small batches, one short transaction each, so it never holds long locks.
import type { FastifyBaseLogger } from "fastify";
import type { KvmRepository } from "./repository.ts";

export class ExpiryPurger {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly repository: KvmRepository,
    private readonly options: { intervalMs: number; batchSize: number },
    private readonly log: FastifyBaseLogger,
    private readonly onPurged: (count: number) => void,
  ) {}

  start(): void {
    if (this.options.intervalMs > 0) this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.runOnce()
        .then(() => undefined)
        .catch((err: unknown) => this.log.warn({ err }, "expiry purge failed; retrying next interval"))
        .finally(() => {
          this.running = null;
          this.schedule();
        });
    }, this.options.intervalMs);
    // The purge alone never keeps the process alive.
    this.timer.unref();
  }

  /** Purges until a batch comes back short; returns how many rows went. */
  async runOnce(): Promise<number> {
    let total = 0;
    while (!this.stopped) {
      const n = await this.repository.purgeExpired(this.options.batchSize);
      total += n;
      if (n > 0) this.onPurged(n);
      if (n < this.options.batchSize) break;
    }
    if (total > 0) this.log.info({ purged: total }, "purged expired entries");
    return total;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    await this.running;
  }
}
