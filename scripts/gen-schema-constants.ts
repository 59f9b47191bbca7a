// Writes assembly/generated/schema_constants.ts from schema/plugin-config.schema.json: the field
// names, enum values, bounds, defaults and reserved shared-context names the filter's
// configuration check (assembly/config.ts) and model (assembly/model.ts) use, so the schema is
// their single source. test/unit/config-schema.test.ts fails while the file is stale.
//
//   node --import tsx scripts/gen-schema-constants.ts           rewrite the file
//   node --import tsx scripts/gen-schema-constants.ts --check   exit 1 when it is stale
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as prettier from "prettier";
import { SCHEMA_PATH, type SchemaNode } from "./gen-config-reference.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const CONSTANTS_PATH = join(ROOT, "assembly", "generated", "schema_constants.ts");

type AsType = "string" | "string[]" | "i32" | "u32" | "f64" | "bool";

export interface SchemaConstant {
  name: string;
  type: AsType;
  value: string | string[] | number | boolean;
  comment?: string;
}

function loadSchema(): SchemaNode {
  return JSON.parse(readFileSync(SCHEMA_PATH, "utf8")) as SchemaNode;
}

// The node at `path` (property names from the root), failing loudly when the schema moved.
function at(schema: SchemaNode, path: string[]): unknown {
  let node: unknown = schema;
  for (const step of path) {
    if (typeof node !== "object" || node === null || !(step in node)) {
      throw new Error(`schema has nothing at ${path.join(".")}`);
    }
    node = (node as Record<string, unknown>)[step];
  }
  return node;
}

function strings(schema: SchemaNode, path: string[]): string[] {
  const value = at(schema, path);
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new Error(`schema ${path.join(".")} is not a list of strings`);
  }
  return value as string[];
}

function number(schema: SchemaNode, path: string[]): number {
  const value = at(schema, path);
  if (typeof value !== "number") throw new Error(`schema ${path.join(".")} is not a number`);
  return value;
}

function text(schema: SchemaNode, path: string[]): string {
  const value = at(schema, path);
  if (typeof value !== "string") throw new Error(`schema ${path.join(".")} is not a string`);
  return value;
}

function bool(schema: SchemaNode, path: string[]): boolean {
  const value = at(schema, path);
  if (typeof value !== "boolean") throw new Error(`schema ${path.join(".")} is not a boolean`);
  return value;
}

const op = (field: string, ...rest: string[]) => ["definitions", "operation", "properties", field, ...rest];
const service = (field: string, ...rest: string[]) => [
  "definitions",
  "kvmService",
  "properties",
  field,
  ...rest,
];
const fields = (definition: string) => ["definitions", definition, "properties"];

// The constants, in the order the file lists them.
export function schemaConstants(schema: SchemaNode): SchemaConstant[] {
  const keys = (path: string[]) => Object.keys(at(schema, path) as object);
  const policies = strings(schema, op("policy", "enum"));
  const defaultPolicy = text(schema, op("policy", "default"));
  const kvmNamePattern = text(schema, op("kvm_name", "pattern"));
  const kvmNameLength = /\{(\d+),(\d+)\}\$$/.exec(kvmNamePattern);
  if (!kvmNameLength) throw new Error(`kvm_name pattern ${kvmNamePattern} has no {min,max} length`);
  return [
    { name: "LIST_FIELDS", type: "string[]", value: keys(fields("listConfiguration")) },
    { name: "KVM_SERVICE_FIELDS", type: "string[]", value: keys(fields("kvmService")) },
    { name: "OPERATION_FIELDS", type: "string[]", value: keys(fields("operation")) },
    { name: "KEY_FRAGMENT_FIELDS", type: "string[]", value: keys(fields("keyFragment")) },
    { name: "POLICY_VALUES", type: "string[]", value: policies },
    { name: "OPERATION_TYPE_VALUES", type: "string[]", value: strings(schema, op("operation_type", "enum")) },
    {
      name: "SOURCE_TYPE_VALUES",
      type: "string[]",
      value: strings(schema, ["definitions", "sourceType", "enum"]),
    },
    {
      name: "DESTINATION_TYPE_VALUES",
      type: "string[]",
      value: strings(schema, ["definitions", "destinationType", "enum"]),
    },
    { name: "KVM_NAME_MIN_LENGTH", type: "i32", value: Number(kvmNameLength[1]) },
    { name: "KVM_NAME_MAX_LENGTH", type: "i32", value: Number(kvmNameLength[2]) },
    { name: "KEY_FRAGMENTS_MIN", type: "i32", value: number(schema, op("key", "minItems")) },
    { name: "KEY_FRAGMENTS_MAX", type: "i32", value: number(schema, op("key", "maxItems")) },
    { name: "TTL_MIN", type: "f64", value: number(schema, op("ttl", "minimum")) },
    { name: "TTL_MAX", type: "f64", value: number(schema, op("ttl", "maximum")) },
    { name: "CACHE_TTL_MIN", type: "f64", value: number(schema, op("cache_ttl", "minimum")) },
    { name: "CACHE_TTL_MAX", type: "f64", value: number(schema, op("cache_ttl", "maximum")) },
    { name: "TIMEOUT_MS_MIN", type: "f64", value: number(schema, service("timeout_ms", "minimum")) },
    { name: "TIMEOUT_MS_MAX", type: "f64", value: number(schema, service("timeout_ms", "maximum")) },
    {
      name: "DEFAULT_POLICY",
      type: "i32",
      value: policies.indexOf(defaultPolicy),
      comment: `"${defaultPolicy}", as its index in POLICY_VALUES`,
    },
    { name: "DEFAULT_TTL", type: "u32", value: number(schema, op("ttl", "default")) },
    { name: "DEFAULT_OVERRIDE", type: "bool", value: bool(schema, op("override", "default")) },
    {
      name: "DEFAULT_ALLOW_KEY_SEPARATOR",
      type: "bool",
      value: bool(schema, op("allow_key_separator", "default")),
    },
    { name: "DEFAULT_CACHE_TTL", type: "u32", value: number(schema, op("cache_ttl", "default")) },
    {
      name: "DEFAULT_ON_ERROR_CONTINUE",
      type: "bool",
      value: bool(schema, op("on_error_continue", "default")),
    },
    { name: "DEFAULT_SERVICE_CLUSTER", type: "string", value: text(schema, service("cluster", "default")) },
    {
      name: "DEFAULT_SERVICE_AUTHORITY",
      type: "string",
      value: text(schema, service("authority", "default")),
    },
    {
      name: "DEFAULT_SERVICE_PATH_PREFIX",
      type: "string",
      value: text(schema, service("path_prefix", "default")),
    },
    {
      name: "DEFAULT_SERVICE_TIMEOUT_MS",
      type: "u32",
      value: number(schema, service("timeout_ms", "default")),
    },
    { name: "DEFAULT_SERVICE_TOKEN", type: "string", value: text(schema, service("token", "default")) },
    {
      name: "DEFAULT_SERVICE_TOKEN_ENV",
      type: "string",
      value: text(schema, service("token_env", "default")),
    },
    {
      name: "RESERVED_SHARED_CONTEXT_NAMES",
      type: "string[]",
      value: strings(schema, ["definitions", "sharedContextName", "not", "enum"]),
      comment: "names Envoy answers itself before filter state",
    },
  ];
}

function literal(c: SchemaConstant): string {
  if (Array.isArray(c.value)) return "[" + c.value.map((v) => JSON.stringify(v)).join(", ") + "]";
  return JSON.stringify(c.value);
}

// The module's source, formatted with the project's Prettier settings.
export async function renderConstants(schema: SchemaNode = loadSchema()): Promise<string> {
  const lines = [
    "// Generated from schema/plugin-config.schema.json by scripts/gen-schema-constants.ts; do not edit.",
    "// Run `npm run gen:schema` after changing the schema.",
    "",
  ];
  for (const c of schemaConstants(schema)) {
    if (c.comment) lines.push(`// ${c.comment}`);
    lines.push(`export const ${c.name}: ${c.type} = ${literal(c)};`);
  }
  const options = (await prettier.resolveConfig(CONSTANTS_PATH)) ?? {};
  return prettier.format(lines.join("\n") + "\n", { ...options, filepath: CONSTANTS_PATH });
}

async function main(argv: string[]): Promise<number> {
  const expected = await renderConstants();
  const current = existsSync(CONSTANTS_PATH) ? readFileSync(CONSTANTS_PATH, "utf8") : "";
  if (argv.includes("--check")) {
    if (expected === current) return 0;
    console.error(`${CONSTANTS_PATH} is stale: run npm run gen:schema`);
    return 1;
  }
  if (expected !== current) writeFileSync(CONSTANTS_PATH, expected);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
