// The JSON Schema of the plugin configuration gives the same verdict as the filter on every case of
// the shared table (the filter side is test/filter/config.test.ts), documents every field, and the
// reference in docs/filter.md is generated from its current text.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import Ajv from "ajv";
import { configCases } from "../filter/config-cases.ts";
import {
  REFERENCE_DOC_PATH,
  SCHEMA_PATH,
  expectedReferenceDoc,
  type SchemaNode,
} from "../../scripts/gen-config-reference.ts";
import { CONSTANTS_PATH, renderConstants, schemaConstants } from "../../scripts/gen-schema-constants.ts";

const schema = JSON.parse(readFileSync(SCHEMA_PATH, "utf8")) as SchemaNode;
const validate = new Ajv().compile(schema);

// What the filter receives is text: a raw-text case is parsed as is, anything else goes through
// JSON.stringify first (as the filter test does), so both sides judge the same document.
function schemaAccepts(config: unknown): boolean {
  const text = typeof config === "string" ? config : JSON.stringify(config);
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    return false;
  }
  return validate(document);
}

describe("plugin configuration schema", () => {
  it("has enough cases to cover every rule", () => {
    assert.ok(configCases.length >= 60, `only ${configCases.length} cases`);
    assert.ok(configCases.some((c) => c.error === null));
    assert.ok(configCases.some((c) => c.error !== null));
  });

  for (const c of configCases) {
    it(`${c.error === null ? "accepts" : "rejects"}: ${c.name}`, () => {
      const accepted = schemaAccepts(c.config);
      const details = accepted ? "" : JSON.stringify(validate.errors?.slice(0, 3));
      assert.equal(accepted, c.error === null, `schema ${accepted ? "accepts" : "rejects"} ${details}`);
    });
  }

  it("describes every property", () => {
    const missing: string[] = [];
    for (const [name, definition] of Object.entries(schema.definitions ?? {})) {
      if (!definition.description) missing.push(name);
      for (const [field, property] of Object.entries(definition.properties ?? {})) {
        if (!property.description) missing.push(`${name}.${field}`);
      }
    }
    assert.deepEqual(missing, []);
  });

  it("gives the defaults the filter applies", () => {
    // The filter's model (assembly/model.ts) takes every default from the generated constants
    // (assembly/__tests__/config.spec.ts checks that), and these are the schema's.
    const operation = schema.definitions?.operation.properties ?? {};
    const service = schema.definitions?.kvmService.properties ?? {};
    const generated = new Map(schemaConstants(schema).map((c) => [c.name, c.value]));
    const policies = operation.policy.enum ?? [];
    assert.deepEqual(
      {
        policy: policies[generated.get("DEFAULT_POLICY") as number],
        override: generated.get("DEFAULT_OVERRIDE"),
        ttl: generated.get("DEFAULT_TTL"),
        cache_ttl: generated.get("DEFAULT_CACHE_TTL"),
        on_error_continue: generated.get("DEFAULT_ON_ERROR_CONTINUE"),
        cluster: generated.get("DEFAULT_SERVICE_CLUSTER"),
        authority: generated.get("DEFAULT_SERVICE_AUTHORITY"),
        path_prefix: generated.get("DEFAULT_SERVICE_PATH_PREFIX"),
        timeout_ms: generated.get("DEFAULT_SERVICE_TIMEOUT_MS"),
        token: generated.get("DEFAULT_SERVICE_TOKEN"),
        token_env: generated.get("DEFAULT_SERVICE_TOKEN_ENV"),
      },
      {
        policy: operation.policy.default,
        override: operation.override.default,
        ttl: operation.ttl.default,
        cache_ttl: operation.cache_ttl.default,
        on_error_continue: operation.on_error_continue.default,
        cluster: service.cluster.default,
        authority: service.authority.default,
        path_prefix: service.path_prefix.default,
        timeout_ms: service.timeout_ms.default,
        token: service.token.default,
        token_env: service.token_env.default,
      },
    );
  });

  it("says next to on_error_continue that nothing is rolled back (configuration reference included)", () => {
    const description = schema.definitions?.operation.properties?.on_error_continue.description ?? "";
    assert.match(description, /nothing is rolled back/);
    assert.match(description, /Apigee/);
    assert.match(
      readFileSync(REFERENCE_DOC_PATH, "utf8"),
      /nothing is rolled back: operations that ran before/,
    );
  });

  it("is what assembly/generated/schema_constants.ts holds (the filter's copy is not stale)", async () => {
    assert.equal(
      readFileSync(CONSTANTS_PATH, "utf8"),
      await renderConstants(schema),
      "run npm run gen:schema",
    );
  });

  it("lists the reserved shared-context names once: the filter's list is the schema's", () => {
    const reserved = (schema.definitions?.sharedContextName as { not?: { enum?: string[] } }).not?.enum;
    assert.ok(reserved && reserved.length > 0);
    const generated = schemaConstants(schema).find((c) => c.name === "RESERVED_SHARED_CONTEXT_NAMES");
    assert.deepEqual(generated?.value, reserved);
    // No other copy in the filter's sources or the schema's prose.
    const config = ["config.ts", "config_fields.ts", "config_validator.ts", "config_text.ts"]
      .map((f) => readFileSync(new URL(`../../assembly/${f}`, import.meta.url), "utf8"))
      .join("\n");
    assert.doesNotMatch(config, /"upstream_filter_state"/);
    assert.doesNotMatch(schema.definitions?.sharedContextName.description ?? "", /upstream_filter_state/);
  });

  it("is what the configuration reference in docs/filter.md shows", async () => {
    const document = readFileSync(REFERENCE_DOC_PATH, "utf8");
    assert.equal(
      document,
      await expectedReferenceDoc(document, schema),
      "run node --import tsx scripts/gen-config-reference.ts",
    );
  });
});
