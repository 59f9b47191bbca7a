// TypeBox schemas shared by the routes; they validate requests and generate the OpenAPI document at /docs.
import { Type, type TSchema } from "@sinclair/typebox";
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

export const KvmParams = <K extends TSchema>(key: K) => Type.Object({ kvm: KvmName, key });

export const PageQuery = {
  page_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  page_token: Type.Optional(Type.String({ description: "next_page_token of the previous page" })),
};
