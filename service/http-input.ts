// What happens to a request before a route handler sees it: schema validation (which parts may be coerced),
// requests Node refuses before Fastify does (answered in the common error shape), and what of a request's URL
// reaches the logs.
import type { Socket } from "node:net";
import type { IncomingHttpHeaders } from "node:http";
import { STATUS_CODES } from "node:http";
import { Ajv, type Options } from "ajv";
import addFormats from "ajv-formats";
import type { FastifySchemaCompiler } from "fastify";

// Fastify's own defaults (@fastify/ajv-compiler), except where coercion is decided per part below.
const AJV_OPTIONS: Options = {
  useDefaults: true,
  removeAdditional: true,
  addUsedSchema: false,
  // allErrors would let one request make the validator do unbounded work.
  allErrors: false,
};

function ajv(options: Options): Ajv {
  const instance = new Ajv({ ...AJV_OPTIONS, ...options });
  addFormats.default(instance);
  return instance;
}

/**
 * Query strings, headers and path parameters are text, so "50" has to become the integer 50. A JSON body
 * already carries its types: coercing it would store {"value":null} as "", {"value":123} as "123" and read
 * {"ttl":true} as 1 second. Bodies are validated exactly.
 */
export function validatorCompiler(): FastifySchemaCompiler<unknown> {
  const coercing = ajv({ coerceTypes: "array" });
  const exact = ajv({ coerceTypes: false });
  return ({ schema, httpPart }) => (httpPart === "body" ? exact : coercing).compile(schema as object);
}

/**
 * Node's HTTP parser refuses some requests before Fastify routes them (raw bytes HTTP does not allow in the
 * path, bad header names, unknown methods, headers over its limit, timeouts). Fastify's default answer to those
 * is {"error":"Bad Request","message":"Client Error","statusCode":400}; this one is the common shape.
 * https://nodejs.org/api/http.html#event-clienterror
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  let status = 400;
  let body = { error: "bad_request", message: "the request is not valid HTTP/1.1" };
  if (err.code === "HPE_HEADER_OVERFLOW") {
    status = 431;
    body = { error: "headers_too_large", message: "the request headers are larger than the limit" };
  } else if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    status = 408;
    body = { error: "request_timeout", message: "the request did not arrive in time" };
  }
  const text = JSON.stringify(body);
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
    );
  }
  socket.destroy();
}

/** Query parameters whose values are safe to log: they never carry keys (prefix and page tokens do). */
const LOGGED_QUERY_VALUES = new Set(["page_size", "mode"]);

/** A URL for the logs: the path as routed (keys replaced by rewriteEntryUrl), query values of keys redacted. */
export function loggedUrl(url: string): string {
  const q = url.indexOf("?");
  if (q < 0) return url;
  const query = url
    .slice(q + 1)
    .split("&")
    .map((pair) => {
      const eq = pair.indexOf("=");
      const name = eq < 0 ? pair : pair.slice(0, eq);
      return eq < 0 || LOGGED_QUERY_VALUES.has(name) ? pair : `${name}=[redacted]`;
    })
    .join("&");
  return `${url.slice(0, q)}?${query}`;
}

/** What serializeRequest reads of a request: a FastifyRequest, or the same fields of a plain Node request. */
export interface LoggedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  host: string;
  ip: string | undefined;
  socket?: { remotePort?: number };
}

const firstValue = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

/** Fastify's request serializer with the URL from loggedUrl. */
export function serializeRequest(request: LoggedRequest) {
  return {
    method: request.method,
    url: loggedUrl(request.url),
    // The first value if repeated (Array.prototype.flat here cost 3 µs of a 30 µs cached read: BENCHMARKS.md).
    version: firstValue(request.headers?.["accept-version"]),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}
