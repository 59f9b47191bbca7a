// Encryption at rest under /admin/v1/encryption: which keys hold how many rows, and the re-encryption of rows
// under the active key in batches (what `envoy-kvm kvm reencrypt` calls). Key ids only: never key material.
import type { FastifyInstance } from "fastify";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { badRequest } from "../errors.ts";
import { KVM_NAME_PATTERN } from "../config.ts";
import type { AppContext } from "../context.ts";
import type { RowPosition } from "../bulk-repository.ts";
import { ErrorSchema } from "./schemas.ts";

const KeyId = Type.Union([Type.String(), Type.Null()], { description: "a key id; null = plaintext" });

export const EncryptionStatusSchema = Type.Object({
  mode: Type.Union([Type.Literal("plaintext"), Type.Literal("aes-256-gcm")]),
  active_key_id: KeyId,
  configured_key_ids: Type.Array(Type.String()),
  rows: Type.Array(Type.Object({ key_id: KeyId, rows: Type.Integer() }), {
    description: "rows per key id, expired rows not yet purged included",
  }),
});

export const ReencryptResultSchema = Type.Object({
  rewritten: Type.Integer(),
  failed: Type.Integer({ description: "rows this service can not decrypt: left as they are" }),
  failed_maps: Type.Array(Type.String(), { description: "maps holding failed rows (at most 10)" }),
  changed: Type.Integer({
    description: "rows replaced by a writer meanwhile (already under the active key)",
  }),
  next_token: Type.Union([Type.String(), Type.Null()], { description: "pass as after; null = done" }),
});

const MAP_NAME = new RegExp(KVM_NAME_PATTERN);

/** The position token: base64url of "<map>\0<key bytes>" (a map name holds no NUL). */
export function encodePosition(position: RowPosition): string {
  return Buffer.concat([Buffer.from(`${position.kvm}\0`, "utf8"), position.key]).toString("base64url");
}

function decodePosition(token: string | undefined): RowPosition | null {
  if (token === undefined || token === "") return null;
  const raw = /^[A-Za-z0-9_-]+$/.test(token) ? Buffer.from(token, "base64url") : Buffer.alloc(0);
  const nul = raw.indexOf(0);
  const kvm = nul < 0 ? "" : raw.subarray(0, nul).toString("utf8");
  if (!MAP_NAME.test(kvm)) throw badRequest("invalid_page_token", "after is not a token reencrypt returned");
  return { kvm, key: raw.subarray(nul + 1) };
}

export async function encryptionRoutes(plane: FastifyInstance, ctx: AppContext): Promise<void> {
  const { bulk, repository } = ctx;
  const app = plane.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ["admin"];

  app.get(
    "/admin/v1/encryption",
    {
      schema: {
        summary: "Encryption at rest: the active key id and the rows under each key id",
        tags,
        response: { 200: EncryptionStatusSchema },
      },
    },
    async () => {
      const { cipher } = repository;
      return {
        mode: cipher.keyIds.length === 0 ? ("plaintext" as const) : ("aes-256-gcm" as const),
        active_key_id: cipher.activeKeyId,
        configured_key_ids: cipher.keyIds,
        rows: await bulk.rowsByKeyId(),
      };
    },
  );

  app.post(
    "/admin/v1/encryption/reencrypt",
    {
      schema: {
        summary: "Rewrite the next batch of rows not under the active key (one transaction)",
        description:
          "Follow next_token (as `after`) until it is null. A new pass from the start finds only the rows left.",
        tags,
        querystring: Type.Object({
          after: Type.Optional(Type.String()),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
        }),
        response: { 200: ReencryptResultSchema, 400: ErrorSchema },
      },
    },
    async (request) => {
      const result = await bulk.reencrypt(decodePosition(request.query.after), request.query.limit ?? 100);
      return {
        rewritten: result.rewritten,
        failed: result.failed,
        failed_maps: result.failedMaps,
        changed: result.changed,
        next_token: result.next === null ? null : encodePosition(result.next),
      };
    },
  );
}
