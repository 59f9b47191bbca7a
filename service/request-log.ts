// What every answered request leaves behind: its HTTP metrics and one access-log line. Shared by Fastify's
// onResponse hook (app.ts) and the cache-hit read that answers before Fastify (fast-get.ts), so both write the
// same line and count in the same series.
import type { IncomingMessage } from "node:http";
import type { FastifyBaseLogger } from "fastify";
import type { ServiceMetrics } from "./metrics.ts";
import { rewriteEntryUrl } from "./keys.ts";
import { serializeRequest, type LoggedRequest } from "./http-input.ts";
import { ENTRY_ROUTE } from "./routes/data-plane.ts";

const DONE = "request completed";

/** Fastify's default request ids (req-1, req-2, … in base 36), one sequence for both paths. */
export function requestIds(): () => string {
  let next = 0;
  return () => {
    next = (next + 1) & 0x7fffffff;
    return `req-${next.toString(36)}`;
  };
}

export class RequestLog {
  // Label children are looked up once per method, route and status rather than hashed on every request
  // (BENCHMARKS.md, "Profile"). Entry URLs carry the key placeholder (rewriteEntryUrl), never the key.
  private readonly counters = new Map<string, ReturnType<ServiceMetrics["httpRequests"]["labels"]>>();
  private readonly histograms = new Map<string, ReturnType<ServiceMetrics["httpDuration"]["labels"]>>();
  /**
   * The access lines' logger: the request arrives already reduced to the fields serializeRequest keeps (no
   * headers, the URL with keys and query values replaced), so the app logger's redaction, which walks every
   * line's fields for `*.value`, has nothing to find in it and is left out (BENCHMARKS.md, "Profile").
   */
  private readonly access: FastifyBaseLogger;

  constructor(
    private readonly metrics: ServiceMetrics,
    log: FastifyBaseLogger,
    private readonly nextId: () => string,
  ) {
    this.access = log.child({}, { redact: [], serializers: { req: (req: unknown) => req } } as object);
  }

  /** The metrics of one answered request; `elapsedMs` from its arrival to its answer. */
  record(method: string, route: string, status: number, elapsedMs: number): void {
    const labels = `${method} ${route}`;
    const countKey = `${labels} ${status}`;
    let counter = this.counters.get(countKey);
    if (counter === undefined) {
      counter = this.metrics.httpRequests.labels(method, route, String(status));
      this.counters.set(countKey, counter);
    }
    counter.inc();
    let histogram = this.histograms.get(labels);
    if (histogram === undefined) {
      histogram = this.metrics.httpDuration.labels(method, route);
      this.histograms.set(labels, histogram);
    }
    histogram.observe(elapsedMs / 1000);
  }

  /**
   * The level of a request's access line, null when it is not written. A data-plane read answered as such — the
   * value, 304, or 404 — is logged at debug, everything else (writes, admin, errors) at info: reads are the
   * filter's callouts, as many as the API requests Envoy already logs, and their line cost a quarter to a third of
   * a read's CPU (BENCHMARKS.md, "The read before Fastify, and logging the reads"). LOG_LEVEL=debug logs them too.
   */
  private levelOf(method: string, route: string, status: number): "debug" | "info" | null {
    const read =
      route === ENTRY_ROUTE &&
      (status === 200 || status === 304 || status === 404) &&
      (method === "GET" || method === "HEAD");
    if (!read) return "info";
    // Checked first: at info, a read's line is not even built.
    const log = this.access as { isLevelEnabled?: (level: string) => boolean };
    return log.isLevelEnabled === undefined || log.isLevelEnabled("debug") ? "debug" : null;
  }

  /** The access-log line: `request` as serializeRequest (http-input.ts) reads it. */
  line(reqId: string, request: LoggedRequest, route: string, status: number, elapsedMs: number): void {
    const level = this.levelOf(request.method, route, status);
    if (level !== null) this.write(level, reqId, request, status, elapsedMs);
  }

  /** Metrics and the access-log line of a request answered outside Fastify, with an id from the same sequence. */
  completed(req: IncomingMessage, route: string, status: number, elapsedMs: number): void {
    const method = req.method ?? "GET";
    this.record(method, route, status, elapsedMs);
    const level = this.levelOf(method, route, status);
    if (level === null) return;
    const request: LoggedRequest = {
      method,
      url: rewriteEntryUrl(req.url ?? "/"),
      headers: req.headers,
      host: req.headers.host ?? "",
      ip: req.socket.remoteAddress,
      socket: req.socket,
    };
    this.write(level, this.nextId(), request, status, elapsedMs);
  }

  private write(
    level: "debug" | "info",
    reqId: string,
    request: LoggedRequest,
    status: number,
    elapsedMs: number,
  ): void {
    this.access[level](
      { reqId, req: serializeRequest(request), res: { statusCode: status }, responseTime: elapsedMs },
      DONE,
    );
  }
}
