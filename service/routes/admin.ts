// The admin API under /admin/v1: maps, entries as JSON, paginated listings, bulk import/export in the
// apigeecli file shape. Keys and values appear as UTF-8 strings, or as <field>_base64 when not valid UTF-8.
import type { FastifyInstance } from "fastify";
import { Type, type Static } from "@sinclair/typebox";
import { HttpError, badRequest } from "../errors.ts";
import {
  bytesFromJson,
  bytesToJson,
  checkKey,
  decodePageToken,
  encodePageToken,
  keyFromRequest,
} from "../keys.ts";
import type { ImportEntry, StoredEntry } from "../repository.ts";
import { etag, parseCondition, parseTtlSeconds } from "./conditions.ts";
import { ErrorSchema, KvmName, KvmParams, PageQuery } from "./schemas.ts";
import type { AppContext } from "../app.ts";

const Bytes = (what: string) => ({
  [what]: Type.Optional(Type.String({ description: `${what} as UTF-8 text` })),
  [`${what}_base64`]: Type.Optional(
    Type.String({ description: `${what} bytes, base64 (when not valid UTF-8)` }),
  ),
});

const EntrySchema = Type.Object({
  ...Bytes("key"),
  ...Bytes("value"),
  version: Type.Number({ description: "Same number as the data plane's etag" }),
  expires_at: Type.Union([Type.Number(), Type.Null()], { description: "Unix milliseconds; null = never" }),
  created_at: Type.Number({ description: "Unix milliseconds" }),
  updated_at: Type.Number({ description: "Unix milliseconds" }),
});

const BulkEntrySchema = Type.Object(
  {
    ...Bytes("name"),
    ...Bytes("value"),
    // Whole milliseconds the database can store (PostgreSQL's timestamps end in the year 294276): anything
    // else is the client's mistake, a 400, not a failed SQL cast.
    expires_at: Type.Optional(
      Type.Union([Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }), Type.Null()], {
        description: "Unix milliseconds",
      }),
    ),
  },
  {
    description:
      "apigeecli entry {name, value}; name_base64/value_base64/expires_at are envoy-kvm extensions",
  },
);

const BulkFileSchema = Type.Object({
  keyValueEntries: Type.Array(BulkEntrySchema, { maxItems: 10_000 }),
  nextPageToken: Type.Optional(Type.String()),
});

type BulkEntry = Static<typeof BulkEntrySchema>;

function entryJson(e: StoredEntry) {
  return {
    ...bytesToJson("key", e.key),
    ...bytesToJson("value", e.value),
    version: e.version,
    expires_at: e.expiresAt,
    created_at: e.createdAt,
    updated_at: e.updatedAt,
  };
}

function bulkJson(e: StoredEntry): BulkEntry {
  return {
    ...bytesToJson("name", e.key),
    ...bytesToJson("value", e.value),
    ...(e.expiresAt === null ? {} : { expires_at: e.expiresAt }),
  };
}

interface PageRequest {
  page_size?: number;
  page_token?: string;
  prefix?: string;
  prefix_base64?: string;
}

function prefixFrom(query: { prefix?: string; prefix_base64?: string }): Buffer {
  if (query.prefix !== undefined && query.prefix_base64 !== undefined) {
    throw badRequest("bad_request", "send prefix or prefix_base64, not both");
  }
  if (query.prefix_base64 !== undefined) return bytesFromJson(query, "prefix", "query");
  return Buffer.from(query.prefix ?? "", "utf8");
}

export async function adminRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const { repository, metrics, config } = ctx;
  const tags = ["admin"];
  const entryParams = KvmParams(
    Type.String({ description: "Percent-encoded key bytes (1–512 bytes decoded)" }),
  );
  const kvmParams = Type.Object({ kvm: KvmName });

  /** One page of live entries after the token, plus the token of the next page (null on the last page). */
  async function page(kvm: string, query: PageRequest) {
    const size = query.page_size ?? 100;
    const rows = await repository.listEntries(
      kvm,
      prefixFrom(query),
      decodePageToken("entry", query.page_token),
      size + 1,
    );
    const more = rows.length > size;
    const entries = more ? rows.slice(0, size) : rows;
    return { entries, next: more ? encodePageToken("entry", entries[entries.length - 1].key) : null };
  }

  app.get(
    "/admin/v1/kvms",
    {
      schema: {
        summary: "List maps (those holding live entries) with entry counts",
        tags,
        querystring: Type.Object(PageQuery),
        response: {
          200: Type.Object({
            kvms: Type.Array(Type.Object({ name: Type.String(), entries: Type.Integer() })),
            next_page_token: Type.Union([Type.String(), Type.Null()]),
          }),
        },
      },
    },
    async (request) => {
      const query = request.query as { page_size?: number; page_token?: string };
      const size = query.page_size ?? 100;
      const after = decodePageToken("map", query.page_token);
      const rows = await repository.listMaps(after === null ? null : after.toString("utf8"), size + 1);
      const more = rows.length > size;
      const kvms = more ? rows.slice(0, size) : rows;
      return {
        kvms,
        next_page_token: more
          ? encodePageToken("map", Buffer.from(kvms[kvms.length - 1].name, "utf8"))
          : null,
      };
    },
  );

  app.delete(
    "/admin/v1/kvms/:kvm",
    {
      schema: {
        summary: "Delete a whole map",
        tags,
        params: kvmParams,
        response: { 200: Type.Object({ deleted: Type.Integer({ description: "Live entries deleted" }) }) },
      },
    },
    async (request) => {
      const { kvm } = request.params as { kvm: string };
      const deleted = await repository.deleteMap(kvm);
      metrics.operations.inc({ operation: "delete_map", result: "deleted" });
      return { deleted };
    },
  );

  app.get(
    "/admin/v1/kvms/:kvm/entries",
    {
      schema: {
        summary: "List live entries in key (byte) order, optionally by prefix",
        tags,
        params: kvmParams,
        querystring: Type.Object({
          prefix: Type.Optional(Type.String({ description: "Key prefix, UTF-8" })),
          prefix_base64: Type.Optional(Type.String({ description: "Key prefix bytes, base64" })),
          ...PageQuery,
        }),
        response: {
          200: Type.Object({
            entries: Type.Array(EntrySchema),
            next_page_token: Type.Union([Type.String(), Type.Null()]),
          }),
          400: ErrorSchema,
        },
      },
    },
    async (request) => {
      const { kvm } = request.params as { kvm: string };
      const { entries, next } = await page(kvm, request.query as PageRequest);
      return { entries: entries.map(entryJson), next_page_token: next };
    },
  );

  app.get(
    "/admin/v1/kvms/:kvm/entries/:key",
    {
      schema: {
        summary: "Read an entry as JSON",
        tags,
        params: entryParams,
        response: { 200: EntrySchema, 404: ErrorSchema },
      },
    },
    async (request, reply) => {
      const { kvm } = request.params as { kvm: string };
      const entry = await repository.getEntry(kvm, keyFromRequest(request));
      metrics.operations.inc({ operation: "get", result: entry === null ? "miss" : "hit" });
      if (entry === null) throw new HttpError(404, "not_found", "no such entry (absent or expired)");
      reply.header("etag", etag(entry.version));
      return entryJson(entry);
    },
  );

  app.put(
    "/admin/v1/kvms/:kvm/entries/:key",
    {
      // base64 grows a value by 4/3; the decoded size is checked against the limit below.
      bodyLimit: Math.ceil((config.maxValueBytes * 4) / 3) + 64 * 1024,
      schema: {
        summary: "Write an entry from JSON (If-Match / If-None-Match as on the data plane)",
        tags,
        params: entryParams,
        body: Type.Object({
          ...Bytes("value"),
          ttl: Type.Optional(
            Type.Integer({ minimum: 0, description: "Seconds; 0 or absent = never expires" }),
          ),
        }),
        response: {
          200: Type.Object({ version: Type.Number(), expires_at: Type.Union([Type.Number(), Type.Null()]) }),
          201: Type.Object({ version: Type.Number(), expires_at: Type.Union([Type.Number(), Type.Null()]) }),
          400: ErrorSchema,
          412: ErrorSchema,
          413: ErrorSchema,
        },
      },
    },
    async (request, reply) => {
      const { kvm } = request.params as { kvm: string };
      const key = keyFromRequest(request);
      const body = request.body as { value?: string; value_base64?: string; ttl?: number };
      const value = bytesFromJson(body, "value", "body");
      if (value.length > config.maxValueBytes) {
        throw new HttpError(
          413,
          "value_too_large",
          `value is ${value.length} bytes; the limit is ${config.maxValueBytes}`,
        );
      }
      const ttl = parseTtlSeconds(body.ttl === undefined ? undefined : String(body.ttl), "ttl");
      const condition = parseCondition(request.headers);
      const result = await repository.putEntry(kvm, key, value, ttl, condition);
      metrics.operations.inc({ operation: "put", result: result.outcome });
      if (result.outcome === "precondition_failed") {
        throw new HttpError(412, "precondition_failed", "the entry's state does not match the precondition");
      }
      reply.header("etag", etag(result.version));
      return reply
        .code(result.outcome === "created" ? 201 : 200)
        .send({ version: result.version, expires_at: result.expiresAt });
    },
  );

  app.delete(
    "/admin/v1/kvms/:kvm/entries/:key",
    {
      schema: {
        summary: "Delete an entry (204 also when absent)",
        tags,
        params: entryParams,
        response: { 204: { description: "Deleted or absent", type: "null" }, 412: ErrorSchema },
      },
    },
    async (request, reply) => {
      const { kvm } = request.params as { kvm: string };
      const outcome = await repository.deleteEntry(
        kvm,
        keyFromRequest(request),
        parseCondition(request.headers, false),
      );
      metrics.operations.inc({ operation: "delete", result: outcome });
      if (outcome === "precondition_failed") {
        throw new HttpError(412, "precondition_failed", "the entry is absent or has another version");
      }
      return reply.code(204).send();
    },
  );

  app.get(
    "/admin/v1/kvms/:kvm/export",
    {
      schema: {
        summary: "Export one page of entries in the apigeecli file shape",
        description: 'Follow nextPageToken until it is "" (the last page).',
        tags,
        params: kvmParams,
        querystring: Type.Object({
          prefix: Type.Optional(Type.String()),
          prefix_base64: Type.Optional(Type.String()),
          ...PageQuery,
        }),
        response: {
          200: Type.Object({ keyValueEntries: Type.Array(BulkEntrySchema), nextPageToken: Type.String() }),
        },
      },
    },
    async (request) => {
      const { kvm } = request.params as { kvm: string };
      const { entries, next } = await page(kvm, request.query as PageRequest);
      return { keyValueEntries: entries.map(bulkJson), nextPageToken: next ?? "" };
    },
  );

  app.post(
    "/admin/v1/kvms/:kvm/import",
    {
      bodyLimit: config.maxImportBytes,
      schema: {
        summary: "Import one batch (≤ 10,000 entries) in one transaction: all or nothing",
        description:
          "Body: an apigeecli file {keyValueEntries:[{name,value}]}. Duplicate names in a batch: the last wins. " +
          "mode=upsert (default) replaces existing entries; mode=insert keeps them (counted as skipped).",
        tags,
        params: kvmParams,
        querystring: Type.Object({
          mode: Type.Optional(
            Type.Union([Type.Literal("upsert"), Type.Literal("insert")], { default: "upsert" }),
          ),
        }),
        body: BulkFileSchema,
        response: {
          200: Type.Object({
            received: Type.Integer(),
            created: Type.Integer(),
            replaced: Type.Integer(),
            skipped: Type.Integer({ description: "insert mode: already present" }),
            expired: Type.Integer({ description: "expires_at already in the past: not written" }),
            duplicates: Type.Integer({ description: "earlier copies of a name repeated later in the batch" }),
          }),
          400: ErrorSchema,
          413: ErrorSchema,
        },
      },
    },
    async (request) => {
      const { kvm } = request.params as { kvm: string };
      const { mode = "upsert" } = request.query as { mode?: "upsert" | "insert" };
      const body = request.body as Static<typeof BulkFileSchema>;
      const byKey = new Map<string, ImportEntry>();
      body.keyValueEntries.forEach((raw, i) => {
        const where = `keyValueEntries[${i}]`;
        const key = checkKey(bytesFromJson(raw, "name", where), `${where}.name`);
        const value = bytesFromJson(raw, "value", where);
        if (value.length > config.maxValueBytes) {
          throw new HttpError(
            413,
            "value_too_large",
            `${where}.value is ${value.length} bytes; the limit is ${config.maxValueBytes}`,
          );
        }
        byKey.set(key.toString("hex"), { key, value, expiresAt: raw.expires_at ?? null });
      });
      const now = Date.now();
      const entries = [...byKey.values()].filter((e) => e.expiresAt === null || e.expiresAt > now);
      const counts = await repository.importEntries(kvm, entries, mode);
      for (const result of ["created", "replaced", "skipped"] as const) {
        metrics.importedEntries.inc({ result }, counts[result]);
      }
      return {
        received: body.keyValueEntries.length,
        ...counts,
        expired: byKey.size - entries.length,
        duplicates: body.keyValueEntries.length - byKey.size,
      };
    },
  );
}
