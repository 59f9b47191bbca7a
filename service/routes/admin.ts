// The admin API under /admin/v1: maps, entries as JSON, paginated listings, bulk import/export in the
// apigeecli file shape. Keys and values appear as UTF-8 strings, or as <field>_base64 when not valid UTF-8.
import type { Readable } from "node:stream";
import type { FastifyInstance } from "fastify";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { HttpError } from "../errors.ts";
import { bytesFromJson, bytesToJson, checkKey, encodePageToken, keyFromRequest } from "../keys.ts";
import type { ImportEntry, StoredEntry } from "../repository.ts";
import type { AppContext } from "../context.ts";
import { exportPage, mapAfter, pageSize, readPage } from "./pages.ts";
import { etag, parseCondition, parseTtlSeconds } from "./conditions.ts";
import { writeEntry } from "./entry-write.ts";
import {
  IMPORT_MAX_ENTRIES,
  BulkFileSchema,
  DeleteMapResultSchema,
  EntryListSchema,
  EntryParams,
  EntrySchema,
  ErrorSchema,
  ExportPageSchema,
  IfMatchHeader,
  IfNoneMatchHeader,
  ImportModeSchema,
  ImportResultSchema,
  KvmParams,
  MapListSchema,
  NoBody,
  PageQuery,
  PrefixQuery,
  PutEntryBodySchema,
  PutEntryResultSchema,
} from "./schemas.ts";

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

const ListQuery = Type.Object({ ...PrefixQuery, ...PageQuery });

export async function adminRoutes(plane: FastifyInstance, ctx: AppContext): Promise<void> {
  const { repository, metrics, config } = ctx;
  const app = plane.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ["admin"];
  // Admin bodies are JSON only: without this, Fastify's text/plain parser would hand the JSON text to the
  // schema as a string ("body must be object") instead of answering 415.
  plane.removeContentTypeParser("text/plain");
  // JSON is UTF-8 (RFC 8259 §8.1) and Fastify reads it as UTF-8 whatever the charset says: a body labelled
  // otherwise would be read as something its sender did not mean, so the label is refused instead.
  plane.addHook("onRequest", async (request) => {
    const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(request.headers["content-type"] ?? "")?.[1];
    if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
      throw new HttpError(
        415,
        "unsupported_media_type",
        "a JSON body must be UTF-8: send charset=utf-8 or none",
      );
    }
  });

  app.get(
    "/admin/v1/kvms",
    {
      schema: {
        summary: "List maps (those holding live entries) with entry counts",
        tags,
        querystring: Type.Object(PageQuery),
        response: { 200: MapListSchema },
      },
    },
    async (request) => {
      const size = pageSize(request.query);
      const rows = await repository.listMaps(mapAfter(request.query.page_token), size + 1);
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
        params: KvmParams,
        response: { 200: DeleteMapResultSchema },
      },
    },
    async (request) => {
      const deleted = await repository.deleteMap(request.params.kvm);
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
        params: KvmParams,
        querystring: ListQuery,
        response: { 200: EntryListSchema, 400: ErrorSchema },
      },
    },
    async (request) => {
      const { entries, next } = await readPage(ctx.bulk, request.params.kvm, request.query);
      return { entries: entries.map(entryJson), next_page_token: next };
    },
  );

  app.get(
    "/admin/v1/kvms/:kvm/entries/:key",
    {
      schema: {
        summary: "Read an entry as JSON",
        tags,
        params: EntryParams,
        response: { 200: EntrySchema, 404: ErrorSchema },
      },
    },
    async (request, reply) => {
      const entry = await repository.getEntry(request.params.kvm, keyFromRequest(request));
      metrics.operations.inc({ operation: "get", result: entry === null ? "miss" : "hit" });
      if (entry === null) throw new HttpError(404, "not_found", "no such entry (absent or expired)");
      reply.header("etag", etag(entry.version));
      return entryJson(entry);
    },
  );

  app.put(
    "/admin/v1/kvms/:kvm/entries/:key",
    {
      // A value as JSON text can be six times its size (a control byte is written \u0001), as base64 4/3 of
      // it: a value at the limit, read through GET, can always be written back. The decoded size is checked
      // against the limit below.
      bodyLimit: config.maxValueBytes * 6 + 64 * 1024,
      schema: {
        summary: "Write an entry from JSON (If-Match / If-None-Match as on the data plane)",
        tags,
        params: EntryParams,
        headers: Type.Object({ ...IfMatchHeader, ...IfNoneMatchHeader }),
        body: PutEntryBodySchema,
        response: {
          200: PutEntryResultSchema,
          201: PutEntryResultSchema,
          400: ErrorSchema,
          412: ErrorSchema,
          413: ErrorSchema,
        },
      },
    },
    async (request, reply) => {
      const key = keyFromRequest(request);
      const value = bytesFromJson(request.body, "value", "body");
      if (value.length > config.maxValueBytes) {
        throw new HttpError(
          413,
          "value_too_large",
          `value is ${value.length} bytes; the limit is ${config.maxValueBytes}`,
        );
      }
      const { ttl } = request.body;
      const ttlSeconds = parseTtlSeconds(ttl === undefined ? undefined : String(ttl), "ttl");
      const condition = parseCondition(request.headers);
      const { status, ...written } = await writeEntry(ctx, reply, {
        kvm: request.params.kvm,
        key,
        value,
        ttlSeconds,
        condition,
      });
      return reply.code(status).send(written);
    },
  );

  app.delete(
    "/admin/v1/kvms/:kvm/entries/:key",
    {
      schema: {
        summary: "Delete an entry (204 also when absent)",
        tags,
        params: EntryParams,
        headers: Type.Object(IfMatchHeader),
        response: { 204: NoBody("Deleted or absent"), 412: ErrorSchema },
      },
    },
    async (request, reply) => {
      const outcome = await repository.deleteEntry(
        request.params.kvm,
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
        description:
          'Follow nextPageToken until it is "" (the last page). Each page is read from one snapshot; all=true ' +
          "makes the page the rest of the map (page_size ignored), so the whole export is one consistent snapshot.",
        tags,
        params: KvmParams,
        querystring: Type.Object({
          ...PrefixQuery,
          ...PageQuery,
          all: Type.Optional(Type.Boolean({ description: "the rest of the map in this one response" })),
        }),
        // Streamed (routes/pages.ts exportPage): the schema documents the page, it does not serialize it.
        response: { 200: Type.Unsafe<Readable>(ExportPageSchema) },
      },
    },
    async (request, reply) => {
      const page = await exportPage(ctx.bulk, request.params.kvm, request.query);
      return reply.type("application/json; charset=utf-8").send(page);
    },
  );

  app.post(
    "/admin/v1/kvms/:kvm/import",
    {
      bodyLimit: config.maxImportBytes,
      schema: {
        summary: `Import one batch (≤ ${IMPORT_MAX_ENTRIES.toLocaleString("en")} entries) in one transaction: all or nothing`,
        description:
          "Body: an apigeecli file {keyValueEntries:[{name,value}]}. Duplicate names in a batch: the last wins. " +
          "mode=upsert (default) replaces existing entries; mode=insert keeps them (counted as skipped).",
        tags,
        params: KvmParams,
        querystring: Type.Object({ mode: Type.Optional(ImportModeSchema) }),
        body: BulkFileSchema,
        response: { 200: ImportResultSchema, 400: ErrorSchema, 413: ErrorSchema },
      },
    },
    async (request) => {
      const { mode = "upsert" } = request.query;
      const body = request.body;
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
      // Entries already expired are counted and dropped by the database, on its clock (repository.ts).
      const counts = await repository.importEntries(request.params.kvm, [...byKey.values()], mode);
      for (const result of ["created", "replaced", "skipped"] as const) {
        metrics.importedEntries.inc({ result }, counts[result]);
      }
      return {
        received: body.keyValueEntries.length,
        ...counts,
        duplicates: body.keyValueEntries.length - byKey.size,
      };
    },
  );
}
