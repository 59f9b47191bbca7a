// A small client for the admin API, used by `envoy-kvm kvm …`. Node's global fetch; no extra dependency.
import { percentEncodeBytes } from "./keys.ts";

export class ServiceError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface BulkEntry {
  name?: string;
  name_base64?: string;
  value?: string;
  value_base64?: string;
  expires_at?: number | null;
}

export interface ImportResult {
  received: number;
  created: number;
  replaced: number;
  skipped: number;
  expired: number;
  duplicates: number;
}

export class AdminClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string | undefined,
  ) {}

  static entryPath(kvm: string, key: Buffer): string {
    return `/admin/v1/kvms/${encodeURIComponent(kvm)}/entries/${percentEncodeBytes(key)}`;
  }

  async request(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    const url = new URL(path, this.baseUrl);
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: {
          ...(this.token === undefined ? {} : { authorization: `Bearer ${this.token}` }),
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      // fetch only says "fetch failed"; the reason (ECONNREFUSED, ENOTFOUND, …) is its cause.
      const cause = (err as { cause?: unknown }).cause;
      const reason = cause instanceof Error ? cause.message : (err as Error).message;
      throw new ServiceError(0, "unreachable", `cannot reach ${url.origin}: ${reason}`);
    }
    if (res.status >= 400) {
      const text = await res.text();
      let parsed: { error?: string; message?: string } = {};
      try {
        parsed = JSON.parse(text) as typeof parsed;
      } catch {
        parsed = { message: text };
      }
      throw new ServiceError(
        res.status,
        parsed.error ?? String(res.status),
        parsed.message ?? res.statusText,
      );
    }
    return res;
  }

  async json<T>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<T> {
    const res = await this.request(method, path, body, headers);
    return (res.status === 204 ? {} : await res.json()) as T;
  }
}
