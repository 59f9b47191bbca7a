// Service configuration, read from the environment once at boot and validated before anything listens
// (fastify/demo style): a bad value stops the process with one message naming the variable.
import { readFileSync } from "node:fs";
import path from "node:path";
import { loadEncryptionConfig, type EncryptionConfig } from "./encryption.ts";

export const DEFAULT_PORT = 8081;
export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024;
export const MAX_KEY_BYTES = 512;
/** Same rule as the filter's `kvm_name`: 1–128 of letters, digits, '.', '_', '-'. */
export const KVM_NAME_PATTERN = "^[A-Za-z0-9._-]{1,128}$";

export interface ServiceConfig {
  /** null = start the embedded PostgreSQL in `embeddedDataDir`. */
  databaseUrl: string | null;
  host: string;
  port: number;
  /** Bearer tokens accepted on /v1 (the filter). Empty + insecure = no auth on that plane. */
  dataTokens: string[];
  /** Bearer tokens accepted on /admin/v1 (and on /v1: admin is a superset). */
  adminTokens: string[];
  /** Bearer tokens /metrics requires; empty = /metrics is open (the default). Admin tokens are accepted too. */
  metricsTokens: string[];
  /** Keys for values at rest (service/encryption.ts); null = plaintext (the default). */
  encryption: EncryptionConfig | null;
  insecure: boolean;
  /** KVM_INSECURE=1 was given (rather than implied by the embedded-database default). */
  insecureExplicit: boolean;
  maxValueBytes: number;
  /** Body limit of the bulk import route. */
  maxImportBytes: number;
  purgeIntervalMs: number;
  purgeBatchSize: number;
  poolMax: number;
  /** Opening a PostgreSQL connection, or waiting for a free pooled one, gives up after this (503). */
  pgConnectTimeoutMs: number;
  /** statement_timeout of single-entry and data-plane statements; the client waits 1 s longer. */
  pgStatementTimeoutMs: number;
  /** statement_timeout of bulk statements (an import batch, the map listing). */
  pgBulkStatementTimeoutMs: number;
  /** How long `envoy-kvm service` waits for PostgreSQL at start-up before giving up. */
  pgStartupTimeoutMs: number;
  /** Graceful shutdown waits this long for in-flight requests, then closes their connections. */
  shutdownTimeoutMs: number;
  /** A request's headers must arrive within this (slowloris). */
  httpHeadersTimeoutMs: number;
  /** A whole request (headers and body) must arrive within this. */
  httpRequestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  httpKeepAliveTimeoutMs: number;
  /** Bytes the data plane's read cache may hold (service/cache.ts); 0 = no cache. */
  cacheMaxBytes: number;
  /** The oldest answer the cache may give, relative to writes committed through any replica. */
  cacheMaxStalenessMs: number;
  logLevel: string;
  embeddedDataDir: string;
  /** null = pick a free port at start. */
  embeddedPort: number | null;
}

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(`${name} must be an integer, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max)
    throw new ConfigError(`${name} must be between ${min} and ${max}, got ${raw}`);
  return value;
}

/** Comma- or newline-separated list; blanks dropped so "a,,b," is two tokens. */
export function splitTokens(raw: string): string[] {
  return raw
    .split(/[,\n\r]/)
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
}

function tokens(env: Env, name: string): string[] {
  const list = splitTokens(env[name] ?? "");
  const file = env[`${name}_FILE`];
  if (file !== undefined && file !== "") {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new ConfigError(`${name}_FILE: cannot read ${file}: ${(err as Error).message}`);
    }
    list.push(...splitTokens(text));
  }
  return list;
}

function flag(env: Env, name: string): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "" || raw === "0" || raw === "false") return false;
  if (raw === "1" || raw === "true") return true;
  throw new ConfigError(`${name} must be 1 or 0, got "${raw}"`);
}

/**
 * The service refuses to start without tokens for both planes unless it runs in insecure local mode:
 * KVM_INSECURE=1, or the embedded-database default (no DATABASE_URL), which is a local development setup.
 * Tokens that are configured are enforced in every mode.
 */
export function assertAuthConfigured(config: ServiceConfig): void {
  if (config.insecure) {
    // The embedded default is insecure because it is local: listening beyond loopback with an open plane
    // takes the explicit KVM_INSECURE=1.
    const open = config.dataTokens.length === 0 || config.adminTokens.length === 0;
    if (open && !config.insecureExplicit && !isLoopback(config.host)) {
      throw new ConfigError(
        `HOST=${config.host} would expose planes without tokens beyond this machine: set KVM_DATA_TOKENS and ` +
          "KVM_ADMIN_TOKENS, or set KVM_INSECURE=1 to allow it explicitly",
      );
    }
    return;
  }
  for (const [name, list] of [
    ["KVM_DATA_TOKENS", config.dataTokens],
    ["KVM_ADMIN_TOKENS", config.adminTokens],
  ] as const) {
    if (list.length === 0) {
      throw new ConfigError(
        `${name} is not set: set it (or ${name}_FILE) to comma-separated bearer tokens, ` +
          "or set KVM_INSECURE=1 to run without authentication on a trusted local machine",
      );
    }
  }
}

/** The start-up warning of insecure local mode, naming the open planes; null when nothing is open or said. */
export function insecureWarning(config: ServiceConfig): string | null {
  if (!config.insecure) return null;
  const open = [
    ...(config.dataTokens.length === 0 ? ["/v1 (data plane)"] : []),
    ...(config.adminTokens.length === 0 ? ["/admin/v1"] : []),
  ];
  if (open.length > 0) {
    return `INSECURE local mode: ${open.join(" and ")} accept${open.length === 1 ? "s" : ""} requests without a token`;
  }
  // Tokens for both planes: the embedded default has nothing to warn about; an explicit KVM_INSECURE=1 is moot.
  return config.insecureExplicit
    ? "KVM_INSECURE=1 is set but both planes have tokens: they are enforced"
    : null;
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * node-postgres reads anything else relative to a dummy URL, so a typo such as "notaurl" would surface later as
 * "getaddrinfo ENOTFOUND base". The value is not quoted back: it may hold a password.
 */
function databaseUrlOf(env: Env): string | null {
  const raw = env.DATABASE_URL;
  if (raw === undefined || raw === "") return null;
  // A socket folder ("/var/run/postgresql dbname") or a URL with one of the schemes node-postgres reads.
  if (raw.startsWith("/")) return raw;
  // As pg-connection-string reads it: spaces and stray '%' encoded, an empty host ("user@/db?host=…") allowed.
  const encoded = / |%[^a-f0-9]|%[a-f0-9][^a-f0-9]/i.test(raw)
    ? encodeURI(raw).replace(/%25(\d\d)/g, "%$1")
    : raw;
  const parses = URL.canParse(encoded) || URL.canParse(encoded.replace("@/", "@___DUMMY___/"));
  if (/^(postgres|postgresql|socket):\/\/\S/i.test(raw) && parses) return raw;
  throw new ConfigError(
    "DATABASE_URL is not a valid PostgreSQL URL: write it as postgres://user:password@host:5432/database",
  );
}

function httpTimeouts(env: Env) {
  const timeouts = {
    httpHeadersTimeoutMs: integer(env, "KVM_HTTP_HEADERS_TIMEOUT_MS", 10_000, 100, 3_600_000),
    httpRequestTimeoutMs: integer(env, "KVM_HTTP_REQUEST_TIMEOUT_MS", 30_000, 100, 3_600_000),
    // Above the 60 s idle timeout of common load balancers, so they close first (no request lost to a race).
    httpKeepAliveTimeoutMs: integer(env, "KVM_HTTP_KEEP_ALIVE_TIMEOUT_MS", 72_000, 100, 3_600_000),
  };
  // Node refuses a headers timeout above the request timeout.
  if (timeouts.httpHeadersTimeoutMs > timeouts.httpRequestTimeoutMs) {
    throw new ConfigError(
      `KVM_HTTP_HEADERS_TIMEOUT_MS (${timeouts.httpHeadersTimeoutMs}) must not exceed ` +
        `KVM_HTTP_REQUEST_TIMEOUT_MS (${timeouts.httpRequestTimeoutMs})`,
    );
  }
  return timeouts;
}

export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): ServiceConfig {
  const databaseUrl = databaseUrlOf(env);
  const dataTokens = tokens(env, "KVM_DATA_TOKENS");
  const adminTokens = tokens(env, "KVM_ADMIN_TOKENS");
  const insecureExplicit = flag(env, "KVM_INSECURE");
  const insecure = insecureExplicit || databaseUrl === null;
  const embeddedPortRaw = env.KVM_EMBEDDED_PG_PORT;
  return {
    databaseUrl,
    // Insecure mode listens on loopback only unless HOST says otherwise.
    host: env.HOST && env.HOST !== "" ? env.HOST : insecure ? "127.0.0.1" : "0.0.0.0",
    port: integer(env, "PORT", DEFAULT_PORT, 0, 65535),
    dataTokens,
    adminTokens,
    metricsTokens: tokens(env, "KVM_METRICS_TOKENS"),
    encryption: loadEncryptionConfig(env, (message) => new ConfigError(message)),
    insecure,
    insecureExplicit,
    maxValueBytes: integer(env, "KVM_MAX_VALUE_BYTES", DEFAULT_MAX_VALUE_BYTES, 1, 64 * 1024 * 1024),
    maxImportBytes: integer(env, "KVM_MAX_IMPORT_BYTES", 64 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    purgeIntervalMs: integer(env, "KVM_PURGE_INTERVAL_MS", 60_000, 0, 24 * 3600 * 1000),
    purgeBatchSize: integer(env, "KVM_PURGE_BATCH_SIZE", 1000, 1, 100_000),
    poolMax: integer(env, "KVM_PG_POOL_MAX", 10, 1, 1000),
    pgConnectTimeoutMs: integer(env, "KVM_PG_CONNECT_TIMEOUT_MS", 2000, 100, 600_000),
    pgStatementTimeoutMs: integer(env, "KVM_PG_STATEMENT_TIMEOUT_MS", 5000, 100, 3_600_000),
    pgBulkStatementTimeoutMs: integer(env, "KVM_PG_BULK_STATEMENT_TIMEOUT_MS", 30_000, 100, 3_600_000),
    pgStartupTimeoutMs: integer(env, "KVM_PG_STARTUP_TIMEOUT_MS", 30_000, 0, 3_600_000),
    shutdownTimeoutMs: integer(env, "KVM_SHUTDOWN_TIMEOUT_MS", 10_000, 0, 3_600_000),
    ...httpTimeouts(env),
    cacheMaxBytes: integer(env, "KVM_CACHE_MAX_BYTES", 64 * 1024 * 1024, 0, 64 * 1024 * 1024 * 1024),
    cacheMaxStalenessMs: integer(env, "KVM_CACHE_MAX_STALENESS_MS", 1000, 100, 600_000),
    logLevel: env.LOG_LEVEL && env.LOG_LEVEL !== "" ? env.LOG_LEVEL : "info",
    embeddedDataDir: path.resolve(
      cwd,
      env.KVM_DATA_DIR && env.KVM_DATA_DIR !== "" ? env.KVM_DATA_DIR : ".data/postgres",
    ),
    embeddedPort:
      embeddedPortRaw === undefined || embeddedPortRaw === ""
        ? null
        : integer(env, "KVM_EMBEDDED_PG_PORT", 0, 1, 65535),
  };
}
