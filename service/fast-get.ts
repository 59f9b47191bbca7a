// The data plane's read, answered before Fastify sees the request. Reads are most of the load the filter's
// `cluster` policy makes (hot configuration keys, answered from the read cache), and Fastify's per-request work
// around them — routing, the request and reply objects, four hooks, schema validation — cost more CPU than the
// read itself (BENCHMARKS.md, "Profile"). This handler takes only what it answers exactly as the Fastify route
// (routes/data-plane.ts GET) would: an authorised plain GET of a well-formed entry URL, from the cache or the
// database through it. Everything else — a bad token, a bad name or key, a HEAD, a body, a closing server —
// returns false and goes to Fastify untouched, which answers it as before; so does a read the database fails.
// test/service/fast-get.test.ts sends the same requests to a service with and without this handler and
// compares the answers, the log lines and the counters.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyBaseLogger } from "fastify";
import { performance } from "node:perf_hooks";
import { KVM_NAME_PATTERN } from "./config.ts";
import { keyFromUrl } from "./keys.ts";
import { bearerToken } from "./auth.ts";
import type { EntryCache, Lookup } from "./cache.ts";
import type { KvmRepository } from "./repository.ts";
import { matchesVersion } from "./routes/conditions.ts";
import { ENTRY_ROUTE, NOT_FOUND_MESSAGE, readHeaders } from "./routes/data-plane.ts";
import type { RequestLog } from "./request-log.ts";
import type { ServiceMetrics } from "./metrics.ts";

/** `/v1/kvms/{kvm}/entries/…` with the map name as the router would pass it to the schema: no '%' to decode. */
const ENTRY_PREFIX = "/v1/kvms/";
const ENTRIES = "/entries/";
const KVM_NAME = new RegExp(KVM_NAME_PATTERN);

export interface FastGetDeps {
  cache: EntryCache;
  repository: KvmRepository;
  metrics: ServiceMetrics;
  requestLog: RequestLog;
  /** The data plane's token check (auth.ts bearerCheck, as its requireBearer hook makes it). */
  accepts: (token: string | null) => boolean;
  /** True once the server is closing: Fastify then answers (503, or Connection: close). */
  closing: () => boolean;
  /** For errors of this handler's own (none expected: see unexpected()). */
  log: Pick<FastifyBaseLogger, "error">;
}

const NOT_FOUND_BODY = Buffer.from(JSON.stringify({ error: "not_found", message: NOT_FOUND_MESSAGE }));

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Returns a request listener's first step: true when it has taken the request (answered now, or once the
 * database has answered), false to hand it to Fastify (`fastify`) untouched. A read that fails (database
 * unavailable, an undecryptable value) is handed to Fastify too, which reads again and answers the error.
 */
export function fastEntryGet(
  deps: FastGetDeps,
): (req: IncomingMessage, res: ServerResponse, fastify: Listener) => boolean {
  const { cache, repository, accepts, requestLog } = deps;
  const getHit = deps.metrics.operations.labels("get", "hit");
  const getMiss = deps.metrics.operations.labels("get", "miss");
  const getNotModified = deps.metrics.operations.labels("get", "not_modified");

  /** The answers of routes/data-plane.ts's GET handler, header for header. */
  function answer(req: IncomingMessage, res: ServerResponse, entry: Lookup, start: number): void {
    // A close began while the database was asked: the connection ends with this answer (app.ts onSend).
    const closing = deps.closing() ? ["connection", "close"] : [];
    let status: number;
    if (entry === null) {
      getMiss.inc();
      status = 404;
      res.writeHead(404, [
        "content-type",
        "application/json; charset=utf-8",
        "content-length",
        String(NOT_FOUND_BODY.length),
        ...closing,
      ]);
      res.end(NOT_FOUND_BODY);
    } else {
      const out = readHeaders(entry);
      out.push(...closing);
      if (matchesVersion(req.headers["if-none-match"], entry.version)) {
        getNotModified.inc();
        status = 304;
        res.writeHead(304, out);
        res.end();
      } else {
        getHit.inc();
        status = 200;
        out.push("content-type", "application/octet-stream", "content-length", String(entry.value.length));
        res.writeHead(200, out);
        res.end(entry.value);
      }
    }
    requestLog.completed(req, ENTRY_ROUTE, status, performance.now() - start);
  }

  /**
   * What Fastify does for a handler that throws, here for code that should not: the request goes to Fastify
   * while nothing has been written (it answers, or fails, the same way), its connection is closed otherwise.
   * Either way the process stays up (a throw here would otherwise reach the server's listener, uncaught).
   */
  function unexpected(err: unknown, req: IncomingMessage, res: ServerResponse, fastify: Listener): void {
    deps.log.error({ err }, "data-plane read failed before Fastify");
    if (!res.headersSent) fastify(req, res);
    else res.destroy();
  }

  function take(req: IncomingMessage, res: ServerResponse, fastify: Listener): boolean {
    const start = performance.now();
    const url = req.url;
    if (req.method !== "GET" || url === undefined || !url.startsWith(ENTRY_PREFIX) || deps.closing()) {
      return false;
    }
    const headers = req.headers;
    if (headers["content-length"] !== undefined || headers["transfer-encoding"] !== undefined) return false;
    const nameEnd = url.indexOf("/", ENTRY_PREFIX.length);
    if (nameEnd < 0 || !url.startsWith(ENTRIES, nameEnd)) return false;
    const kvm = url.slice(ENTRY_PREFIX.length, nameEnd);
    if (!KVM_NAME.test(kvm)) return false;
    if (!accepts(bearerToken(headers.authorization))) return false; // Fastify answers 401
    let key: Buffer;
    try {
      key = keyFromUrl(url);
    } catch {
      return false; // Fastify answers 400 with the reason
    }
    // As the route: the read cache first, then the database through it (cache.ts).
    const entry = cache.lookup(kvm, key);
    if (entry !== undefined) {
      answer(req, res, entry, start);
      return true;
    }
    cache
      .load(kvm, key, () => repository.readEntry(kvm, key))
      .then(
        (found) => answer(req, res, found, start),
        // The read failed (database unavailable, a value that can not be decrypted): Fastify reads again and
        // answers with the error (app.ts setErrorHandler).
        () => fastify(req, res),
      )
      .catch((err: unknown) => unexpected(err, req, res, fastify));
    return true;
  }

  return (req, res, fastify) => {
    try {
      return take(req, res, fastify);
    } catch (err) {
      unexpected(err, req, res, fastify);
      return true;
    }
  };
}
