// Keyset pages of the admin listings, bounded in entries (page_size) and in bytes, and the export page written
// as a stream. A map may hold many values at the 1 MiB limit: a page of 1,000 of them would be a gigabyte of
// JSON (more than a JavaScript string can hold), so a page also ends once its keys and values pass
// PAGE_MAX_BYTES (always after at least one entry; next_page_token says there is more).
import { Readable } from "node:stream";
import type { Static } from "typebox";
import { badRequest } from "../errors.ts";
import { KVM_NAME_PATTERN } from "../config.ts";
import { bytesFromJson, bytesToJson, decodePageToken, encodePageToken } from "../keys.ts";
import type { KvmRepository, StoredEntry } from "../repository.ts";
import type { BulkRepository } from "../bulk-repository.ts";
import type { BulkEntrySchema } from "./schemas.ts";

/** Key and value bytes per page (JSON can be up to six times that: control bytes are written \u0001). */
export const PAGE_MAX_BYTES = 8 * 1024 * 1024;
/** Key and value bytes read from the database at a time while an export page streams. */
const EXPORT_READ_BYTES = 1024 * 1024;

export interface PageQuery {
  page_size?: number;
  page_token?: string;
  prefix?: string;
  prefix_base64?: string;
}

/**
 * Ajv's type coercion turns "Infinity", "-Infinity" and "1e309" into numbers that pass the schema's integer
 * range check (ajv 8), so the page size is checked again here.
 */
export function pageSize(query: { page_size?: number }): number {
  const size = query.page_size ?? 100;
  if (!Number.isSafeInteger(size) || size < 1 || size > 1000) {
    throw badRequest("bad_request", "querystring/page_size must be an integer from 1 to 1000");
  }
  return size;
}

const MAP_NAME = new RegExp(KVM_NAME_PATTERN);

/** A map page token holds the last map name of the previous page: anything else is not a token we issued. */
export function mapAfter(token: string | undefined): string | null {
  const after = decodePageToken("map", token);
  if (after === null) return null;
  const name = after.toString("utf8");
  if (!MAP_NAME.test(name)) {
    throw badRequest("invalid_page_token", "page_token is not a token this listing returned");
  }
  return name;
}

function prefixFrom(query: PageQuery): Buffer {
  if (query.prefix !== undefined && query.prefix_base64 !== undefined) {
    throw badRequest("bad_request", "send prefix or prefix_base64, not both");
  }
  if (query.prefix_base64 !== undefined) return bytesFromJson({ ...query }, "prefix", "query");
  return Buffer.from(query.prefix ?? "", "utf8");
}

interface PagePlan {
  kvm: string;
  prefix: Buffer;
  after: Buffer | null;
  /** How many entries the page holds. */
  count: number;
  /** Their sizes (key + value bytes), in key order. */
  sizes: number[];
  /** Entries follow the page. */
  more: boolean;
}

/** Decides the page from the entries' sizes alone (values are not read), so it holds to PAGE_MAX_BYTES. */
async function planPage(repository: KvmRepository, kvm: string, query: PageQuery): Promise<PagePlan> {
  const size = pageSize(query);
  const prefix = prefixFrom(query);
  const after = decodePageToken("entry", query.page_token);
  const sizes = await repository.listEntrySizes(kvm, prefix, after, size + 1);
  let count = 0;
  let bytes = 0;
  while (count < size && count < sizes.length && (count === 0 || bytes + sizes[count] <= PAGE_MAX_BYTES)) {
    bytes += sizes[count];
    count++;
  }
  return { kvm, prefix, after, count, sizes: sizes.slice(0, count), more: sizes.length > count };
}

/**
 * Reads the planned entries. Entries written since the plan are read in key order like any others (the page's
 * token is its last key, so nothing is skipped); when fewer come back, entries were deleted and none follow.
 */
async function* readPlanned(
  repository: KvmRepository,
  plan: PagePlan,
  entriesPerRead: (from: number) => number,
): AsyncGenerator<StoredEntry[], { last: Buffer | null; exhausted: boolean }> {
  let after = plan.after;
  let read = 0;
  while (read < plan.count) {
    const want = entriesPerRead(read);
    const rows = await repository.listEntries(plan.kvm, plan.prefix, after, want);
    if (rows.length > 0) after = rows[rows.length - 1].key;
    read += rows.length;
    yield rows;
    if (rows.length < want) return { last: after, exhausted: true };
  }
  return { last: after, exhausted: false };
}

function nextToken(plan: PagePlan, result: { last: Buffer | null; exhausted: boolean }): string | null {
  if (!plan.more || result.exhausted || result.last === null) return null;
  return encodePageToken("entry", result.last);
}

/** One page of live entries after the token, and the token of the next page (null on the last page). */
export async function readPage(
  repository: KvmRepository,
  kvm: string,
  query: PageQuery,
): Promise<{ entries: StoredEntry[]; next: string | null }> {
  const plan = await planPage(repository, kvm, query);
  const entries: StoredEntry[] = [];
  const reads = readPlanned(repository, plan, () => plan.count);
  for (;;) {
    const step = await reads.next();
    if (step.done === true) return { entries, next: nextToken(plan, step.value) };
    entries.push(...step.value);
  }
}

export function bulkJson(e: StoredEntry): Static<typeof BulkEntrySchema> {
  return {
    ...bytesToJson("name", e.key),
    ...bytesToJson("value", e.value),
    ...(e.expiresAt === null ? {} : { expires_at: e.expiresAt }),
  };
}

/**
 * One export page as a stream of JSON text, read from one snapshot (BulkRepository.snapshot) about
 * EXPORT_READ_BYTES at a time: the service holds one read's entries, never the whole page. `all`: the page is the
 * rest of the map, so a whole export is one consistent snapshot. The first read happens before the first byte is
 * sent, so a bad token or a database failure still answers with a status; a failure later cuts the response
 * short (invalid JSON).
 */
export async function exportPage(
  bulk: BulkRepository,
  kvm: string,
  query: PageQuery & { all?: boolean },
): Promise<Readable> {
  const whole = query.all === true;
  const reads = bulk.snapshot({
    kvm,
    prefix: prefixFrom(query),
    after: decodePageToken("entry", query.page_token),
    maxEntries: whole ? Infinity : pageSize(query),
    maxBytes: whole ? Infinity : PAGE_MAX_BYTES,
    readBytes: EXPORT_READ_BYTES,
  });
  const first = await reads.next();
  async function* text(): AsyncGenerator<string> {
    // One entry per line: a client can read the text line by line (AdminClient.exportSnapshot) instead of
    // holding a whole map's JSON; the newlines are JSON whitespace, so the page is one JSON document too.
    yield '{"keyValueEntries":[\n';
    let separator = "";
    for (let step = first; ; step = await reads.next()) {
      if (step.done === true) {
        const next =
          step.value.more && step.value.last !== null ? encodePageToken("entry", step.value.last) : "";
        yield `],"nextPageToken":${JSON.stringify(next)}}`;
        return;
      }
      for (const entry of step.value) {
        yield `${separator}${JSON.stringify(bulkJson(entry))}\n`;
        separator = ",";
      }
    }
  }
  // A response closed early returns the generator, which ends the snapshot's transaction.
  const stream = Readable.from(text());
  stream.once("close", () => void reads.return({ last: null, more: false }).catch(() => {}));
  return stream;
}
