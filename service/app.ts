// Builds the Fastify app around an already-migrated database pool. No listening, no process signals: the CLI
// (service/server.ts) does that, and tests call buildApp() in-process with app.inject().
import { createServer } from "node:http";
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply } from "fastify";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type pg from "pg";
import pino from "pino";
import type { ServiceConfig } from "./config.ts";
import { KvmRepository } from "./repository.ts";
import { BulkRepository } from "./bulk-repository.ts";
import { HttpError } from "./errors.ts";
import { rewriteEntryUrl } from "./keys.ts";
import { TokenSet, bearerCheck, bearerToken, requireBearer } from "./auth.ts";
import { createMetrics, registerCacheMetrics } from "./metrics.ts";
import { EntryCache } from "./cache.ts";
import { ExpiryPurger } from "./purge.ts";
import { clientErrorHandler, serializeRequest, validatorCompiler } from "./http-input.ts";
import { DatabaseUnavailableError } from "./db.ts";
import { checkReadiness } from "./readiness.ts";
import { UndecryptableError, ValueCipher } from "./encryption.ts";
import type { AppContext } from "./context.ts";
import { dataPlaneRoutes } from "./routes/data-plane.ts";
import { RequestLog, requestIds } from "./request-log.ts";
import { fastEntryGet } from "./fast-get.ts";
import { adminRoutes } from "./routes/admin.ts";
import { encryptionRoutes } from "./routes/encryption.ts";

export const SERVICE_VERSION = "0.1.0";

export interface BuildOptions {
  config: ServiceConfig;
  pool: pg.Pool;
  /** pino options or false (tests). Defaults to JSON logs at config.logLevel. */
  logger?: boolean | object;
  /** Whether the data plane's GET is answered before Fastify (fast-get.ts); default true. */
  fastGet?: boolean;
}

/** Fastify's own error codes → our stable codes. */
function fastifyErrorCode(err: FastifyError): string {
  switch (err.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return "body_too_large";
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return "unsupported_media_type";
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return "bad_request";
    default:
      return err.statusCode === 415 ? "unsupported_media_type" : "bad_request";
  }
}

/**
 * PostgreSQL errors can quote the data they failed on: `detail` ("Failing row contains (…)" for a constraint a
 * DBA added, "Key (kvm_name, key)=(…)"), `where` (bind parameter values, when the server's
 * log_parameter_max_length_on_error allows), `internalQuery`. pg-pool hangs the client on an idle client's
 * error (`client`): its internals, the backend's cancel key (`secretKey`) among them, are not logged either.
 * Logged errors keep everything else. https://www.postgresql.org/docs/current/protocol-error-fields.html
 */
export function serializeError(err: Error): pino.SerializedError {
  const out = pino.stdSerializers.err(err);
  for (const field of ["detail", "where", "internalQuery", "hint", "client"]) delete out[field];
  return out;
}

export async function buildApp(options: BuildOptions): Promise<FastifyInstance> {
  const { config, pool } = options;
  // Set once the cache exists (below): requests reach the listener only after listen(), long after that.
  let fastGet: ReturnType<typeof fastEntryGet> | null = null;
  const nextRequestId = requestIds();
  const customLogger = typeof options.logger === "object" ? options.logger : {};
  // Lines to stdout are buffered and written 8 KiB at a time, or every 200 ms, instead of one write(2) each: 67–68
  // µs of CPU per PUT against 78–79 µs (BENCHMARKS.md). The buffer is written out when the app closes (onClose
  // below: the lines come before whatever the caller prints after the close) and, by pino, when the process exits,
  // an uncaught exception included; a SIGKILL loses at most the last 200 ms of lines.
  const logStream =
    options.logger === false || "stream" in customLogger
      ? null
      : pino.destination({ dest: 1, sync: false, minLength: 8192, periodicFlush: 200 });
  const app = Fastify({
    // The server Fastify would build (fastify lib/server.js: these http options, and the two timeouts it sets
    // itself), with the data plane's read in front of its handler (fast-get.ts). app.inject() bypasses the
    // server, so in-process tests exercise the Fastify route; test/service/fast-get.test.ts compares both.
    serverFactory: (handler) => {
      // Slow clients (slowloris) lose their socket: headers, then the whole request, must arrive in time (Node
      // answers 408 and closes), and idle keep-alive connections are closed. Node checks the first two every
      // connectionsCheckingInterval (30 s by default, which would stretch a 10 s bound to 40 s).
      const server = createServer(
        {
          headersTimeout: config.httpHeadersTimeoutMs,
          requestTimeout: config.httpRequestTimeoutMs,
          connectionsCheckingInterval: 1000,
        },
        (req, res) => {
          if (fastGet === null || !fastGet(req, res, handler)) handler(req, res);
        },
      );
      server.keepAliveTimeout = config.httpKeepAliveTimeoutMs;
      server.requestTimeout = config.httpRequestTimeoutMs;
      return server;
    },
    genReqId: nextRequestId,
    logger:
      options.logger === false
        ? false
        : {
            level: config.logLevel,
            // Values are never logged: Fastify does not log bodies, these paths are censored in case a future
            // log call passes a request or an entry object, and database errors lose the fields that quote data.
            redact: {
              paths: ["req.headers.authorization", "body", "value", "*.value"],
              censor: "[redacted]",
            },
            serializers: { err: serializeError, req: serializeRequest },
            ...(logStream === null ? {} : { stream: logStream }),
            // Tests pass a level and a stream; the protections above still apply.
            ...customLogger,
          },
    // Keys never reach the router (see rewriteEntryUrl). Map names are up to 128 characters, but a longer one
    // must still reach the schema (400 invalid_kvm_name): the router's limit only has to exceed any URL Node
    // accepts (its header limit is 16 KiB).
    routerOptions: { maxParamLength: 64 * 1024 },
    clientErrorHandler,
    rewriteUrl: (req) => rewriteEntryUrl(req.url ?? "/"),
    // Malformed URLs outside entry keys (bad percent-encoding in a map name, …) get the common error shape.
    frameworkErrors: (err, _request, reply) => {
      void (reply as FastifyReply).code(400).send({ error: "bad_request", message: err.message });
    },
    // Bodies are read per route (raw values on /v1, JSON on /admin); this is the JSON default.
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    // Requests are logged by the onResponse hook below, in one line.
    logController: new LogController({ disableRequestLogging: true }),
  });

  app.setValidatorCompiler(validatorCompiler());

  const cipher = new ValueCipher(config.encryption);
  const repository = new KvmRepository(pool, {
    bulkStatementTimeoutMs: config.pgBulkStatementTimeoutMs,
    cipher,
  });
  const bulk = new BulkRepository(pool, repository, cipher, config.pgBulkStatementTimeoutMs);
  const metrics = createMetrics(pool);
  const cache = new EntryCache(
    pool,
    {
      maxBytes: config.cacheMaxBytes,
      maxStalenessMs: config.cacheMaxStalenessMs,
      pollMs: Math.max(25, Math.floor(config.cacheMaxStalenessMs / 5)),
      connectTimeoutMs: config.pgConnectTimeoutMs,
    },
    app.log,
  );
  if (cache.enabled) registerCacheMetrics(metrics.registry, cache);
  const ctx: AppContext = { config, pool, repository, bulk, metrics, cache };
  const dataTokens = new TokenSet(config.dataTokens);
  const adminTokens = new TokenSet(config.adminTokens);
  const metricsTokens = new TokenSet(config.metricsTokens);

  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof HttpError) {
      return reply.code(err.statusCode).send({ error: err.code, message: err.message });
    }
    if (err.validation) {
      if (err.validationContext === "params" && err.validation.some((v) => v.instancePath === "/kvm")) {
        return reply.code(400).send({
          error: "invalid_kvm_name",
          message: "map name must be 1–128 of letters, digits, '.', '_', '-'",
        });
      }
      return reply.code(400).send({ error: "bad_request", message: err.message });
    }
    if (err.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      const isValue = request.routeOptions.url?.includes("/entries/") ?? false;
      return reply.code(413).send({
        error: isValue && request.method === "PUT" ? "value_too_large" : fastifyErrorCode(err),
        message: isValue
          ? `value is larger than the limit of ${config.maxValueBytes} bytes`
          : "request body is larger than the limit",
      });
    }
    if (typeof err.statusCode === "number" && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(err.statusCode).send({ error: fastifyErrorCode(err), message: err.message });
    }
    if (err instanceof DatabaseUnavailableError) {
      // The cause is what went wrong (logged without the fields that can quote data, see serializeError).
      request.log.error({ err: err.cause }, "database unavailable");
      return reply.code(503).send({ error: "unavailable", message: "the database is unavailable" });
    }
    if (err instanceof UndecryptableError) {
      // The message names the map and the key id, never the key material nor the value.
      request.log.error({ err }, "stored value can not be decrypted");
      return reply.code(500).send({ error: "undecryptable", message: err.message });
    }
    request.log.error({ err }, "request failed");
    return reply.code(500).send({ error: "internal", message: "internal error" });
  });

  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send({ error: "not_found", message: `no route for ${request.method} ${request.url.split("?")[0]}` }),
  );

  // During a graceful close, answers to requests still in flight carry Connection: close, so their keep-alive
  // sockets end with the response instead of holding the close up until the keep-alive timeout (72 s).
  let closing = false;
  app.addHook("preClose", async () => {
    closing = true;
  });
  app.addHook("onSend", async (_request, reply) => {
    if (closing) reply.header("connection", "close");
  });

  // One access-log line per request (Fastify's own request logging, turned off above, writes two: "incoming
  // request" and "request completed", each through the redaction) and the HTTP metrics (request-log.ts).
  const requestLog = new RequestLog(metrics, app.log, nextRequestId);
  app.addHook("onResponse", async (request, reply) => {
    const route = request.routeOptions.url ?? "unmatched";
    const status = reply.statusCode;
    const elapsed = reply.elapsedTime;
    requestLog.record(request.method, route, status, elapsed);
    requestLog.line(request.id, request, route, status, elapsed);
  });
  if (options.fastGet !== false) {
    fastGet = fastEntryGet({
      cache,
      repository,
      metrics,
      requestLog,
      accepts: bearerCheck(dataTokens, [adminTokens]),
      closing: () => closing,
      log: app.log,
    });
  }

  await app.register(swagger, {
    openapi: {
      info: {
        title: "envoy-kvm service",
        version: SERVICE_VERSION,
        description:
          "Key-value maps on PostgreSQL for the envoy-kvm proxy-wasm filter (data plane) and operators (admin).",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
    // The data plane carries raw bytes, which route schemas (JSON) can not express: describe the PUT body and
    // the GET answer as binary here.
    transformObject: (documentObject) => {
      const doc = (documentObject as { openapiObject: Record<string, unknown> }).openapiObject as {
        paths?: Record<string, Record<string, { requestBody?: unknown; responses?: Record<string, object> }>>;
      };
      const entry = doc.paths?.["/v1/kvms/{kvm}/entries/{key}"];
      const binary = { schema: { type: "string", format: "binary" } };
      if (entry?.put !== undefined) {
        entry.put.requestBody = {
          description: `The raw value, any content type, at most ${config.maxValueBytes} bytes`,
          required: false,
          content: { "*/*": binary },
        };
      }
      const ok = entry?.get?.responses?.["200"];
      if (ok !== undefined) Object.assign(ok, { content: { "application/octet-stream": binary } });
      return doc;
    },
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });

  app.get(
    "/healthz",
    { schema: { summary: "The process is up", tags: ["ops"], security: [] } },
    async () => ({
      status: "ok",
    }),
  );

  app.get(
    "/readyz",
    { schema: { summary: "The database is reachable and its schema current", tags: ["ops"], security: [] } },
    async (request, reply) => {
      // Bounded like a request's own wait for a connection, so a black-holed database is "not ready" quickly.
      const readiness = await checkReadiness(pool, config.pgConnectTimeoutMs);
      if (readiness.ready) return { status: "ready" };
      // Why it is not ready (addresses, database names, migration names) is for operators: the details need an
      // admin token; anyone else gets the status.
      const token = bearerToken(request.headers.authorization);
      const detailed = token !== null && adminTokens.size > 0 && adminTokens.matches(token);
      const status =
        readiness.error === "unavailable"
          ? "the database is unavailable"
          : "the database schema is older than this envoy-kvm";
      return reply.code(503).send({ error: readiness.error, message: detailed ? readiness.detail : status });
    },
  );

  app.get(
    "/metrics",
    {
      schema: {
        summary: "Prometheus metrics (open unless KVM_METRICS_TOKENS is set; then it or an admin token)",
        tags: ["ops"],
        security: config.metricsTokens.length === 0 ? [] : [{ bearer: [] }],
      },
      // Open by default, as before KVM_METRICS_TOKENS existed: Prometheus scrapers are often set up without one.
      onRequest: requireBearer(metricsTokens, [adminTokens]),
    },
    async (_request, reply) => {
      reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    },
  );

  await app.register(async (plane) => {
    plane.addHook("onRequest", requireBearer(dataTokens, [adminTokens]));
    await dataPlaneRoutes(plane, ctx);
  });
  await app.register(async (plane) => {
    plane.addHook("onRequest", requireBearer(adminTokens));
    // A successful admin write (import, map delete, entry delete or put) is answered once this replica's read
    // cache has caught up with it, so a data-plane read here right after the answer sees it (other replicas within
    // KVM_CACHE_MAX_STALENESS_MS).
    plane.addHook("onSend", async (request, reply) => {
      if (request.method !== "GET" && request.method !== "HEAD" && reply.statusCode < 400) await cache.sync();
    });
    await adminRoutes(plane, ctx);
    await encryptionRoutes(plane, ctx);
  });

  const purger = new ExpiryPurger(
    repository,
    { intervalMs: config.purgeIntervalMs, batchSize: config.purgeBatchSize },
    app.log,
    (n) => metrics.purged.inc(n),
  );
  app.decorate("purger", purger);
  app.addHook("onReady", async () => {
    purger.start();
    cache.start();
  });
  app.addHook("onClose", async () => {
    await purger.stop();
    await cache.stop();
    // The close is bounded by its caller (server.ts settlesWithin), so a blocked stdout can not hold it forever.
    if (logStream !== null) await new Promise<void>((resolve) => logStream.flush(() => resolve()));
  });
  app.decorate("kvmCache", cache);
  return app;
}

declare module "fastify" {
  interface FastifyInstance {
    purger: ExpiryPurger;
    kvmCache: EntryCache;
  }
}
