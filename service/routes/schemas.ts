// TypeBox schemas of the routes: they validate requests, type the handlers (through the TypeBox type
// provider), generate the OpenAPI document at /docs, and give the CLI's client its response types (Static<>).
import { Type, type TOptional, type TSchema, type TString } from "typebox";
import { KVM_NAME_PATTERN } from "../config.ts";

export const ErrorSchema = Type.Object(
  {
    error: Type.String({ description: "Stable snake_case code" }),
    message: Type.String(),
  },
  { description: "Every non-2xx answer" },
);

export const KvmName = Type.String({
  pattern: KVM_NAME_PATTERN,
  description: "Map name: 1–128 of letters, digits, '.', '_', '-'",
});

export const KvmParams = Type.Object({ kvm: KvmName });

/**
 * The key is read from the raw URL (keys.ts keyFromRequest): the router only ever sees the placeholder that
 * rewriteEntryUrl puts in its place.
 */
export const EntryParams = Type.Object({
  kvm: KvmName,
  key: Type.String({ description: "Percent-encoded key bytes (1–512 bytes decoded)" }),
});

export const PageQuery = {
  page_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  page_token: Type.Optional(Type.String({ description: "next_page_token of the previous page" })),
};

export const PrefixQuery = {
  prefix: Type.Optional(Type.String({ description: "Key prefix, UTF-8" })),
  prefix_base64: Type.Optional(Type.String({ description: "Key prefix bytes, base64" })),
};

/** `<field>` as UTF-8 text, or `<field>_base64` when the bytes are not valid UTF-8 (keys.ts bytesToJson). */
function bytes<F extends string>(field: F) {
  return {
    [field]: Type.Optional(Type.String({ description: `${field} as UTF-8 text` })),
    [`${field}_base64`]: Type.Optional(
      Type.String({ description: `${field} bytes, base64 (when not valid UTF-8)` }),
    ),
  } as Record<F | `${F}_base64`, TOptional<TString>>;
}

const Nullable = <T extends TSchema>(schema: T, options: { description?: string } = {}) =>
  Type.Union([schema, Type.Null()], options);

export const EntrySchema = Type.Object({
  ...bytes("key"),
  ...bytes("value"),
  version: Type.Number({ description: "Same number as the data plane's etag" }),
  expires_at: Nullable(Type.Number(), { description: "Unix milliseconds; null = never" }),
  created_at: Type.Number({ description: "Unix milliseconds" }),
  updated_at: Type.Number({ description: "Unix milliseconds" }),
});

export const EntryListSchema = Type.Object({
  entries: Type.Array(EntrySchema),
  next_page_token: Nullable(Type.String()),
});

export const MapListSchema = Type.Object({
  kvms: Type.Array(Type.Object({ name: Type.String(), entries: Type.Integer() })),
  next_page_token: Nullable(Type.String()),
});

export const PutEntryBodySchema = Type.Object({
  ...bytes("value"),
  ttl: Type.Optional(Type.Integer({ minimum: 0, description: "Seconds; 0 or absent = never expires" })),
});

export const PutEntryResultSchema = Type.Object({
  version: Type.Number(),
  expires_at: Nullable(Type.Number()),
});

export const DeleteMapResultSchema = Type.Object({
  deleted: Type.Integer({ description: "Live entries deleted" }),
});

export const BulkEntrySchema = Type.Object(
  {
    ...bytes("name"),
    ...bytes("value"),
    // Whole milliseconds the database can store (PostgreSQL's timestamps end in the year 294276): anything
    // else is the client's mistake, a 400, not a failed SQL cast.
    expires_at: Type.Optional(
      Nullable(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }), {
        description: "Unix milliseconds",
      }),
    ),
  },
  {
    description:
      "apigeecli entry {name, value}; name_base64/value_base64/expires_at are envoy-kvm extensions",
  },
);

export const IMPORT_MAX_ENTRIES = 10_000;

export const BulkFileSchema = Type.Object({
  keyValueEntries: Type.Array(BulkEntrySchema, { maxItems: IMPORT_MAX_ENTRIES }),
  nextPageToken: Type.Optional(Type.String()),
});

export const ExportPageSchema = Type.Object({
  keyValueEntries: Type.Array(BulkEntrySchema),
  nextPageToken: Type.String(),
});

export const ImportModeSchema = Type.Union([Type.Literal("upsert"), Type.Literal("insert")], {
  default: "upsert",
});

export const ImportResultSchema = Type.Object({
  received: Type.Integer(),
  created: Type.Integer(),
  replaced: Type.Integer(),
  skipped: Type.Integer({ description: "insert mode: already present" }),
  expired: Type.Integer({ description: "expires_at already in the past: not written" }),
  duplicates: Type.Integer({ description: "earlier copies of a name repeated later in the batch" }),
});

/** Conditional-write headers (conditions.ts); TTL only on the data plane, where the body is the raw value. */
export const IfMatchHeader = {
  "if-match": Type.Optional(
    Type.String({ description: '"*" = only if present; "<version>" = compare-and-set' }),
  ),
};
export const IfNoneMatchHeader = {
  "if-none-match": Type.Optional(Type.String({ description: '"*" = only if absent' })),
};

type HeaderDocs = Record<string, { type: string; description: string }>;

/** An answer without a body; `headers` documents its response headers for @fastify/swagger. */
export const NoBody = (description: string, headers?: HeaderDocs) =>
  Type.Unsafe<undefined>({ description, type: "null", ...(headers === undefined ? {} : { headers }) });

/** An answer whose body is raw bytes (the data plane's value), which JSON Schema can only describe. */
export const RawBytes = (description: string, headers: HeaderDocs) =>
  Type.Unsafe<Buffer>({ description, headers, type: "string", format: "binary" });
