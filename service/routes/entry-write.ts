// The one write path behind both PUTs: the data plane's (raw body, x-kvm-ttl header) and the admin API's (JSON
// body with value and ttl). Each route reads the value and the TTL its own way; from there on the conditional
// write, its metric, the 412 and the etag / expiry headers are this function's.
import type { FastifyReply } from "fastify";
import { HttpError } from "../errors.ts";
import type { Condition } from "../repository.ts";
import type { AppContext } from "../context.ts";
import { etag } from "./conditions.ts";

export interface EntryWrite {
  kvm: string;
  key: Buffer;
  value: Buffer;
  /** null = never expires. */
  ttlSeconds: number | null;
  condition: Condition;
}

/** Writes the entry and sets the reply's etag / expiry headers; the status to answer is 201 created or 200 replaced. */
export async function writeEntry(
  { repository, metrics, cache }: AppContext,
  reply: FastifyReply,
  write: EntryWrite,
): Promise<{ status: 200 | 201; version: number; expires_at: number | null }> {
  const { kvm, key, value, ttlSeconds, condition } = write;
  let result;
  try {
    result = await repository.putEntry(kvm, key, value, ttlSeconds, condition);
  } finally {
    // This replica's read cache forgets the key at once (others read it from the change log);
    // also after a failure, since the statement may have committed before the connection was lost.
    cache.invalidate(kvm, key);
  }
  metrics.operations.inc({ operation: "put", result: result.outcome });
  if (result.outcome === "precondition_failed") {
    throw new HttpError(
      412,
      "precondition_failed",
      condition.kind === "absent" ? "the entry already exists" : "the entry is absent or has another version",
    );
  }
  reply.header("etag", etag(result.version));
  if (result.expiresAt !== null) reply.header("x-kvm-expires-at", String(result.expiresAt));
  const status = result.outcome === "created" ? 201 : 200;
  return { status, version: result.version, expires_at: result.expiresAt };
}
