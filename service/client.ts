// A typed client for the admin API, used by `envoy-kvm kvm …`. Node's http/https modules; no extra dependency.
// Response types come from the route schemas (routes/schemas.ts), so client and service can not drift apart.
import http from "node:http";
import https from "node:https";
import { createInterface } from "node:readline";
import type { Static } from "typebox";
import type { EncryptionStatusSchema, ReencryptResultSchema } from "./routes/encryption.ts";
import { percentEncodeBytes } from "./keys.ts";
import type {
  BulkEntrySchema,
  DeleteMapResultSchema,
  EntryListSchema,
  EntrySchema,
  ImportResultSchema,
  MapListSchema,
  PutEntryResultSchema,
} from "./routes/schemas.ts";

export type Entry = Static<typeof EntrySchema>;
export type BulkEntry = Static<typeof BulkEntrySchema>;
export type ImportResult = Static<typeof ImportResultSchema>;
export type MapSummary = Static<typeof MapListSchema>["kvms"][number];
export type PutResult = Static<typeof PutEntryResultSchema> & { created: boolean };

export class ServiceError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Whether the request carried a bearer token (a 401 without one wants the token configured). */
    readonly tokenSent = true,
  ) {
    super(message);
  }
}

/** A base URL the client can not use; the message says how to write it. */
export class BaseUrlError extends Error {}

/** The service's base URL, refused with a one-line fix when it has no http:// or https:// scheme. */
export function parseBaseUrl(raw: string): URL {
  let url: URL | null = null;
  try {
    url = new URL(raw);
  } catch {
    url = null;
  }
  if (url !== null && (url.protocol === "http:" || url.protocol === "https:")) return url;
  // "localhost:8081" parses as a URL whose scheme is "localhost:": that is a missing scheme, not a URL.
  if (/^[^/:@\s]+:\d+(\/.*)?$/.test(raw) || (url === null && !/^[a-z][a-z0-9+.-]*:/i.test(raw))) {
    return fail(`--url ${raw} has no scheme: write http://${raw}`);
  }
  return fail(`--url ${raw} is not an http:// or https:// URL, e.g. http://127.0.0.1:8081`);
}

function fail(message: string): never {
  throw new BaseUrlError(message);
}

export interface PutOptions {
  /** Seconds; 0 = never expires. */
  ttlSeconds?: number;
  /** Create only: 412 when the entry exists. */
  ifAbsent?: boolean;
  /** Compare-and-set against this version. */
  ifVersion?: string;
}

/** Listings ask for the largest page the service allows. */
const PAGE_SIZE = 1000;

export class AdminClient {
  private readonly baseUrl: URL;

  constructor(
    baseUrl: string,
    private readonly token: string | undefined,
  ) {
    this.baseUrl = parseBaseUrl(baseUrl);
  }

  static entryPath(kvm: string, key: Buffer): string {
    return `${AdminClient.mapPath(kvm)}/entries/${percentEncodeBytes(key)}`;
  }

  static mapPath(kvm: string): string {
    return `/admin/v1/kvms/${encodeURIComponent(kvm)}`;
  }

  async getEntry(kvm: string, key: Buffer): Promise<Entry> {
    return this.json<Entry>("GET", AdminClient.entryPath(kvm, key));
  }

  async putEntry(kvm: string, key: Buffer, value: Buffer, options: PutOptions = {}): Promise<PutResult> {
    const headers: Record<string, string> = {};
    if (options.ifAbsent === true) headers["if-none-match"] = "*";
    if (options.ifVersion !== undefined) headers["if-match"] = `"${options.ifVersion}"`;
    const body = {
      value_base64: value.toString("base64"),
      ...(options.ttlSeconds === undefined ? {} : { ttl: options.ttlSeconds }),
    };
    const res = await this.request("PUT", AdminClient.entryPath(kvm, key), body, headers);
    const written = JSON.parse(res.body.toString("utf8")) as Static<typeof PutEntryResultSchema>;
    return { ...written, created: res.status === 201 };
  }

  async deleteEntry(kvm: string, key: Buffer): Promise<void> {
    await this.request("DELETE", AdminClient.entryPath(kvm, key));
  }

  /** Deletes a whole map; returns how many live entries it held. */
  async deleteMap(kvm: string): Promise<number> {
    const res = await this.json<Static<typeof DeleteMapResultSchema>>("DELETE", AdminClient.mapPath(kvm));
    return res.deleted;
  }

  /** Every map holding live entries, by name, page after page. */
  async *listMaps(): AsyncGenerator<MapSummary> {
    let token = "";
    do {
      const page = await this.json<Static<typeof MapListSchema>>("GET", `/admin/v1/kvms?${pageQuery(token)}`);
      yield* page.kvms;
      token = page.next_page_token ?? "";
    } while (token !== "");
  }

  /** A map's live entries in key order (optionally under a UTF-8 prefix), page after page. */
  async *listEntries(kvm: string, prefix?: string): AsyncGenerator<Entry> {
    let token = "";
    do {
      const page = await this.json<Static<typeof EntryListSchema>>(
        "GET",
        `${AdminClient.mapPath(kvm)}/entries?${pageQuery(token, prefix)}`,
      );
      yield* page.entries;
      token = page.next_page_token ?? "";
    } while (token !== "");
  }

  /**
   * A map's entries in the apigeecli file shape, all from one snapshot (export with all=true): read line by line
   * as the service writes one entry per line, so a large map is never held whole. A response cut short (the
   * service or the network failed) is an error, not a shorter export.
   */
  async *exportSnapshot(kvm: string, prefix?: string): AsyncGenerator<BulkEntry> {
    const query = new URLSearchParams({ all: "true" });
    if (prefix !== undefined) query.set("prefix", prefix);
    const res = await this.open("GET", `${AdminClient.mapPath(kvm)}/export?${query}`);
    let complete = false;
    for await (const line of createInterface({ input: res, crlfDelay: Infinity })) {
      const text = line.startsWith(",") ? line.slice(1) : line;
      if (text.startsWith('{"name')) yield JSON.parse(text) as BulkEntry;
      else if (text.startsWith("]")) complete = true;
    }
    if (!complete)
      throw new ServiceError(0, "incomplete", "the export ended before its last entry (see the service log)");
  }

  /** Re-encryption: the rows per key id, then one batch after another (routes/encryption.ts). */
  async encryptionStatus(): Promise<Static<typeof EncryptionStatusSchema>> {
    return this.json("GET", "/admin/v1/encryption");
  }

  async reencryptBatch(after: string | null, limit: number): Promise<Static<typeof ReencryptResultSchema>> {
    const query = new URLSearchParams({ limit: String(limit) });
    if (after !== null) query.set("after", after);
    return this.json("POST", `/admin/v1/encryption/reencrypt?${query}`);
  }

  /** One import batch: one transaction on the service, all or nothing. */
  async importBatch(kvm: string, entries: BulkEntry[], mode: "upsert" | "insert"): Promise<ImportResult> {
    return this.json<ImportResult>("POST", `${AdminClient.mapPath(kvm)}/import?mode=${mode}`, {
      keyValueEntries: entries,
    });
  }

  /**
   * The path goes out exactly as built: fetch (WHATWG URL) would resolve the dot segments of a map or key named
   * "." or ".." (also when written %2E), which the service accepts, and so reach another URL.
   */
  private async request(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: Buffer }> {
    const res = await this.send(method, path, body, headers);
    const buffer = await this.collect(res);
    if ((res.statusCode ?? 0) >= 400) throw this.failure(res, buffer);
    return { status: res.statusCode ?? 0, body: buffer };
  }

  /** The response of a 2xx answer, its body unread (a large export is read as it arrives). */
  private async open(method: string, path: string): Promise<http.IncomingMessage> {
    const res = await this.send(method, path);
    if ((res.statusCode ?? 0) >= 400) throw this.failure(res, await this.collect(res));
    return res;
  }

  private async send(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<http.IncomingMessage> {
    const base = this.baseUrl;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), "utf8");
    try {
      return await new Promise((resolve, reject) => {
        const req = (base.protocol === "https:" ? https : http).request(
          {
            method,
            host: base.hostname.replace(/^\[(.*)\]$/, "$1"),
            port: base.port === "" ? undefined : Number(base.port),
            path: `${base.pathname.replace(/\/$/, "")}${path}`,
            headers: {
              ...(this.token === undefined ? {} : { authorization: `Bearer ${this.token}` }),
              ...(payload === undefined ? {} : { "content-type": "application/json" }),
              ...headers,
            },
          },
          resolve,
        );
        req.on("error", reject);
        req.end(payload);
      });
    } catch (err) {
      throw new ServiceError(0, "unreachable", `cannot reach ${base.origin}: ${(err as Error).message}`);
    }
  }

  private async collect(res: http.IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of res) chunks.push(chunk as Buffer);
    } catch (err) {
      throw new ServiceError(
        0,
        "unreachable",
        `cannot reach ${this.baseUrl.origin}: ${(err as Error).message}`,
      );
    }
    return Buffer.concat(chunks);
  }

  private failure(res: http.IncomingMessage, body: Buffer): ServiceError {
    const text = body.toString("utf8");
    let parsed: { error?: string; message?: string } = {};
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      parsed = { message: text };
    }
    return new ServiceError(
      res.statusCode ?? 0,
      parsed.error ?? String(res.statusCode),
      parsed.message ?? res.statusMessage ?? "",
      this.token !== undefined,
    );
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.request(method, path, body);
    return (res.status === 204 ? {} : JSON.parse(res.body.toString("utf8"))) as T;
  }
}

function pageQuery(token: string, prefix?: string): URLSearchParams {
  const query = new URLSearchParams({ page_size: String(PAGE_SIZE) });
  if (token !== "") query.set("page_token", token);
  if (prefix !== undefined) query.set("prefix", prefix);
  return query;
}
