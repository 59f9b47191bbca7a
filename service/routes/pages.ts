// Keyset pages of the admin listings, bounded in entries (page_size) and in bytes, and the export page written
// as a stream. A map may hold many values at the 1 MiB limit: a page of 1,000 of them would be a gigabyte of
// JSON (more than a JavaScript string can hold), so a page also ends once its keys and values pass
// PAGE_MAX_BYTES (always after at least one entry; next_page_token says there is more).
import { Readable } from "node:stream";
import type { Static } from "typebox";
import { badRequest } from "../errors.ts";
import { KVM_NAME_PATTERN } from "../config.ts";
import { bytesFromJson, bytesToJson, decodePageToken, encodePageToken } from "../keys.ts";
import type { StoredEntry } from "../repository.ts";
import type { BulkRepository, SnapshotEnd, SnapshotRange } from "../bulk-repository.ts";
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

/** The snapshot read of one page after the token: bounded in entries (page_size) and bytes (PAGE_MAX_BYTES). */
function pageRange(kvm: string, query: PageQuery, readBytes: number, whole = false): SnapshotRange {
  return {
    kvm,
    prefix: prefixFrom(query),
    after: decodePageToken("entry", query.page_token),
    maxEntries: whole ? Infinity : pageSize(query),
    maxBytes: whole ? Infinity : PAGE_MAX_BYTES,
    readBytes,
  };
}

const nextToken = (end: SnapshotEnd) =>
  end.more && end.last !== null ? encodePageToken("entry", end.last) : null;

/** One page of live entries after the token (read from one snapshot), and the next page's token (null: last). */
export async function readPage(
  bulk: BulkRepository,
  kvm: string,
  query: PageQuery,
): Promise<{ entries: StoredEntry[]; next: string | null }> {
  const entries: StoredEntry[] = [];
  const reads = bulk.snapshot(pageRange(kvm, query, PAGE_MAX_BYTES));
  for (;;) {
    const step = await reads.next();
    if (step.done === true) return { entries, next: nextToken(step.value) };
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
  const reads = bulk.snapshot(pageRange(kvm, query, EXPORT_READ_BYTES, query.all === true));
  const first = await reads.next();
  async function* text(): AsyncGenerator<string> {
    // One entry per line: a client can read the text line by line (AdminClient.exportSnapshot) instead of
    // holding a whole map's JSON; the newlines are JSON whitespace, so the page is one JSON document too.
    yield '{"keyValueEntries":[\n';
    let separator = "";
    for (let step = first; ; step = await reads.next()) {
      if (step.done === true) {
        yield `],"nextPageToken":${JSON.stringify(nextToken(step.value) ?? "")}}`;
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
