// The API the filter's `cluster` policy calls: raw value bodies and plain headers, cheap to build and parse
// from AssemblyScript. GET → 200 value | 404; PUT → 201 created | 200 replaced | 412; DELETE → 204 | 412.
import type { FastifyInstance } from "fastify";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { HttpError } from "../errors.ts";
import { keyFromRequest } from "../keys.ts";
import type { AppContext } from "../context.ts";
import type { CachedValue } from "../cache.ts";
import { etag, matchesVersion, parseCondition, parseTtlSeconds } from "./conditions.ts";
import { writeEntry } from "./entry-write.ts";
import { EntryParams, ErrorSchema, IfMatchHeader, IfNoneMatchHeader, NoBody, RawBytes } from "./schemas.ts";

export const ENTRY_ROUTE = "/v1/kvms/:kvm/entries/:key";
export const NOT_FOUND_MESSAGE = "no such entry (absent or expired)";

/** Response headers for OpenAPI (@fastify/swagger takes a header → schema map here). */
const entryHeaders = {
  etag: { type: "string", description: 'The entry version as a strong entity tag, e.g. "42"' },
  "x-kvm-expires-at": { type: "string", description: "Expiry, Unix milliseconds (expiring entries only)" },
};

/** The headers of a read's 200 and 304 as name, value, name, value…: for this route and service/fast-get.ts. */
export function readHeaders(entry: CachedValue): string[] {
  const out = ["etag", etag(entry.version)];
  if (entry.expiresAt !== null) out.push("x-kvm-expires-at", String(entry.expiresAt));
  out.push("cache-control", "no-store");
  return out;
}

export async function dataPlaneRoutes(plane: FastifyInstance, ctx: AppContext): Promise<void> {
  const { repository, metrics, config, cache } = ctx;
  // Label children looked up once: the counter's label hashing is not repeated on every request.
  const getMiss = metrics.operations.labels("get", "miss");
  const getHit = metrics.operations.labels("get", "hit");
  const getNotModified = metrics.operations.labels("get", "not_modified");
  const app = plane.withTypeProvider<TypeBoxTypeProvider>();

  // Values are opaque bytes whatever the caller labels them: every content type (and none) is read as a raw
  // Buffer, capped at the value limit. The parsers are replaced only inside this plugin's scope.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    "*",
    { parseAs: "buffer", bodyLimit: config.maxValueBytes },
    (_req, body, done) => {
      done(null, body);
    },
  );
  // Fastify answers 415 before any parser runs when Content-Type is not a syntactically valid media type;
  // a value is a value, so such a label is replaced by the neutral one.
  app.addHook("onRequest", async (request) => {
    const type = request.headers["content-type"];
    if (
      type !== undefined &&
      !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+\s*(;.*)?$/.test(type)
    ) {
      request.headers["content-type"] = "application/octet-stream";
    }
  });

  app.get(
    ENTRY_ROUTE,
    {
      schema: {
        summary: "Read an entry (raw value body)",
        tags: ["data plane"],
        params: EntryParams,
        headers: Type.Object({
          "if-none-match": Type.Optional(
            Type.String({ description: 'Versions the caller holds ("42", W/"42", *): 304 when current' }),
          ),
        }),
        response: {
          200: RawBytes("The raw value", entryHeaders),
          304: NoBody("If-None-Match names the current version: the caller's copy is current", entryHeaders),
          404: ErrorSchema,
        },
      },
    },
    // Over a socket, service/fast-get.ts answers these reads before Fastify, the same way: a change to this
    // handler's answers (headers, statuses, log line, counters) is a change to that file too, and
    // test/service/fast-get.test.ts fails until both agree.
    async (request, reply) => {
      const key = keyFromRequest(request);
      const kvm = request.params.kvm;
      // The read cache first (service/cache.ts: within KVM_CACHE_MAX_STALENESS_MS of every replica's writes,
      // never past an entry's expiry), then the database.
      let entry = cache.lookup(kvm, key);
      if (entry === undefined) entry = await cache.load(kvm, key, () => repository.readEntry(kvm, key));
      if (entry === null) {
        getMiss.inc();
        throw new HttpError(404, "not_found", NOT_FOUND_MESSAGE);
      }
      const headers = readHeaders(entry);
      for (let i = 0; i < headers.length; i += 2) reply.header(headers[i], headers[i + 1]);
      // Revalidation for a caller's read cache (RFC 9110 §13.1.2): its copy is current, skip the value.
      if (matchesVersion(request.headers["if-none-match"], entry.version)) {
        getNotModified.inc();
        return reply.code(304).send();
      }
      getHit.inc();
      reply.type("application/octet-stream");
      return reply.send(entry.value);
    },
  );

  app.put(
    ENTRY_ROUTE,
    {
      bodyLimit: config.maxValueBytes,
      schema: {
        summary: "Write an entry (raw value body, any content type)",
        tags: ["data plane"],
        params: EntryParams,
        headers: Type.Object({
          "x-kvm-ttl": Type.Optional(
            Type.String({ description: "Time to live in seconds; 0 or absent = never" }),
          ),
          ...IfMatchHeader,
          ...IfNoneMatchHeader,
        }),
        response: {
          200: NoBody("Replaced", entryHeaders),
          201: NoBody("Created", entryHeaders),
          400: ErrorSchema,
          412: ErrorSchema,
          413: ErrorSchema,
        },
      },
    },
    async (request, reply) => {
      const key = keyFromRequest(request);
      const condition = parseCondition(request.headers);
      const ttlSeconds = parseTtlSeconds(request.headers["x-kvm-ttl"]);
      const value = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const { status } = await writeEntry(ctx, reply, {
        kvm: request.params.kvm,
        key,
        value,
        ttlSeconds,
        condition,
      });
      return reply.code(status).send();
    },
  );

  app.delete(
    ENTRY_ROUTE,
    {
      schema: {
        summary: "Delete an entry (204 also when absent)",
        tags: ["data plane"],
        params: EntryParams,
        headers: Type.Object(IfMatchHeader),
        response: { 204: NoBody("Deleted or absent"), 412: ErrorSchema },
      },
    },
    async (request, reply) => {
      const key = keyFromRequest(request);
      const condition = parseCondition(request.headers, false);
      let outcome;
      try {
        outcome = await repository.deleteEntry(request.params.kvm, key, condition);
      } finally {
        // Also after a failure: the statement may have committed before the connection was lost.
        cache.invalidate(request.params.kvm, key);
      }
      metrics.operations.inc({ operation: "delete", result: outcome });
      if (outcome === "precondition_failed") {
        throw new HttpError(412, "precondition_failed", "the entry is absent or has another version");
      }
      return reply.code(204).send();
    },
  );
}
