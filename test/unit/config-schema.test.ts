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
    const operation = schema.definitions?.operation.properties ?? {};
    const service = schema.definitions?.kvmService.properties ?? {};
    const defaults = {
      policy: operation.policy.default,
      override: operation.override.default,
      ttl: operation.ttl.default,
      on_error_continue: operation.on_error_continue.default,
      cluster: service.cluster.default,
      authority: service.authority.default,
      path_prefix: service.path_prefix.default,
      timeout_ms: service.timeout_ms.default,
    };
    // assembly/model.ts holds the filter's defaults; read them from its source.
    const model = readFileSync(new URL("../../assembly/model.ts", import.meta.url), "utf8");
    const initializer = (field: string) => model.match(new RegExp(`\\b${field}: [\\w | ]+ = ([^;]+);`))?.[1];
    assert.deepEqual(defaults, {
      policy: initializer("policy") === "Policy.Local" ? "local" : initializer("policy"),
      override: JSON.parse(initializer("override") ?? "null"),
      ttl: JSON.parse(initializer("ttlSeconds") ?? "null"),
      on_error_continue: JSON.parse(initializer("onErrorContinue") ?? "null"),
      cluster: JSON.parse(initializer("cluster") ?? "null"),
      authority: JSON.parse(initializer("authority") ?? "null"),
      path_prefix: JSON.parse(initializer("pathPrefix") ?? "null"),
      timeout_ms: JSON.parse(initializer("timeoutMs") ?? "null"),
    });
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
