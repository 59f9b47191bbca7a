// `envoy-kvm service`: config → database (given, or embedded) → schema check → app → listen → graceful stop.
import pino from "pino";
import type { FastifyInstance } from "fastify";
import { assertAuthConfigured, insecureWarning, loadConfig, type ServiceConfig } from "./config.ts";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "./embedded-postgres.ts";
import { migrateUp, schemaProblem } from "./migrate.ts";
import { buildApp, serializeError } from "./app.ts";
import { createPool } from "./db.ts";
import { waitForDatabase } from "./readiness.ts";
import { encryptionNotice } from "./encryption.ts";

export interface RunningService {
  app: FastifyInstance;
  config: ServiceConfig;
  url: string;
  databaseUrl: string;
  embedded: EmbeddedDatabase | null;
  stop(): Promise<void>;
}

export async function startService(env: NodeJS.ProcessEnv = process.env): Promise<RunningService> {
  const config = loadConfig(env);
  assertAuthConfigured(config);
  const log = pino({ level: config.logLevel });
  let embedded: EmbeddedDatabase | null = null;
  let databaseUrl = config.databaseUrl;
  if (databaseUrl === null) {
    log.info(
      { dataDir: config.embeddedDataDir },
      "DATABASE_URL is not set: starting the embedded PostgreSQL",
    );
    embedded = await startEmbeddedPostgres({
      dataDir: config.embeddedDataDir,
      port: config.embeddedPort,
      // CLI commands (migrate status, …) then use this database instead of failing on the locked folder.
      advertise: true,
      onLog: (line) => log.debug({ postgres: line }),
    });
    databaseUrl = embedded.url;
    log.info(
      { dataDir: embedded.dataDir, port: embedded.port, fresh: embedded.created },
      `embedded PostgreSQL ready; data persists in ${embedded.dataDir}`,
    );
    // The embedded database belongs to this process: migrate it without asking.
    const applied = await migrateUp(databaseUrl);
    if (applied.length > 0) log.info({ applied }, "applied migrations");
  }

  // An idle client losing its connection must not crash the process; the next query reconnects.
  const pool = createPool(databaseUrl, config, (err) =>
    log.warn({ err: serializeError(err) }, "idle PostgreSQL connection failed"),
  );
  try {
    const status = await waitForDatabase(pool, databaseUrl, config.pgStartupTimeoutMs, log);
    const problem = schemaProblem(status);
    if (problem !== null) throw new Error(problem);
    if (status.unknown.length > 0) {
      log.warn(
        { unknown: status.unknown },
        "the database has migrations this envoy-kvm does not know (newer schema)",
      );
    }
  } catch (err) {
    await pool.end();
    await embedded?.stop();
    throw err;
  }

  const app = await buildApp({ config, pool });
  const warning = insecureWarning(config);
  if (warning !== null) app.log.warn(warning);
  // How values are stored, every start (key ids only, never a key).
  app.log.info(
    { encryption: config.encryption?.activeKeyId ?? "plaintext" },
    encryptionNotice(config.encryption),
  );
  let stopping: Promise<void> | null = null;
  const stop = () => {
    // Fastify's close stops accepting, lets in-flight requests finish, then runs onClose (purge stop).
    stopping ??= (async () => {
      const closed = app.close();
      if (!(await settlesWithin(closed, config.shutdownTimeoutMs))) {
        // The time limit: a request still waiting (a row lock, a slow client) loses its connection unanswered;
        // its queries are abandoned (the pool is not waited for) and the embedded PostgreSQL's fast shutdown
        // ends them. A write not acknowledged may or may not have landed, as after any lost connection.
        const inFlight = await connectionCount(app);
        app.log.warn(
          { shutdownTimeoutMs: config.shutdownTimeoutMs, inFlight },
          `shutdown time limit (${config.shutdownTimeoutMs} ms) reached: closing ${inFlight} connection${inFlight === 1 ? "" : "s"} with a request in flight`,
        );
        app.server.closeAllConnections();
        await closed;
        void pool.end().catch(() => {});
      } else {
        await pool.end();
      }
      await embedded?.stop();
    })();
    return stopping;
  };
  try {
    const url = await app.listen({ host: config.host, port: config.port });
    app.log.info(
      { url, database: embedded === null ? "DATABASE_URL" : `embedded (${embedded.dataDir})` },
      `envoy-kvm service listening on ${url}`,
    );
    return { app, config, url, databaseUrl, embedded, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Whether `promise` settles within `ms` (it keeps running either way). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

function connectionCount(app: FastifyInstance): Promise<number> {
  return new Promise((resolve) => app.server.getConnections((err, count) => resolve(err ? 0 : count)));
}
