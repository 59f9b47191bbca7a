// `envoy-kvm service`: runs the service until SIGTERM / SIGINT, then shuts it down in order.
import { Command } from "commander";
import type { RunningService } from "../server.ts";

export function serviceCommand(): Command {
  return new Command("service")
    .description("run the KVM service (embedded PostgreSQL in ./.data/postgres when DATABASE_URL is unset)")
    .action(async () => {
      // Handlers go in before the (possibly slow) start: a signal during start-up still stops the embedded
      // PostgreSQL in order instead of killing the process and orphaning it.
      let service: RunningService | null = null;
      let signalled: NodeJS.Signals | null = null;
      let stopping = false;
      const shutdown = (running: RunningService, signal: NodeJS.Signals) => {
        stopping = true;
        running.app.log.info({ signal }, "shutting down: finishing in-flight requests");
        running.stop().then(
          () => {
            running.app.log.info("envoy-kvm service stopped");
            process.exit(0);
          },
          (err: unknown) => {
            running.app.log.error({ err }, "shutdown failed");
            process.exit(1);
          },
        );
      };
      for (const signal of ["SIGTERM", "SIGINT"] as const) {
        process.on(signal, () => {
          if (stopping || signalled !== null) {
            // A second signal means "now". Dying by the signal's default action would skip the 'exit'
            // listeners and orphan the embedded PostgreSQL (its data folder stays locked); process.exit runs
            // them, and they tell PostgreSQL to shut down.
            process.stderr.write(
              `envoy-kvm: ${signal} again: exiting without waiting for in-flight requests\n`,
            );
            process.exit(1);
          }
          if (service === null) signalled = signal;
          else shutdown(service, signal);
        });
      }
      // Imported here, so `envoy-kvm kvm …` (an HTTP client) starts without loading Fastify or pg.
      const { startService } = await import("../server.ts");
      service = await startService();
      if (signalled !== null) shutdown(service, signalled);
    });
}
