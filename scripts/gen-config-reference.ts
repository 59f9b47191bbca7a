// Writes the configuration reference in docs/filter.md from schema/plugin-config.schema.json, between
// the `<!-- config-reference:start -->` and `<!-- config-reference:end -->` markers; nothing else in
// the document changes. The reference is formatted with the project's Prettier settings so that
// `prettier --check` and this script agree.
//
//   node --import tsx scripts/gen-config-reference.ts           rewrite docs/filter.md
//   node --import tsx scripts/gen-config-reference.ts --check   exit 1 when docs/filter.md is stale
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as prettier from "prettier";

export const START_MARKER = "<!-- config-reference:start -->";
export const END_MARKER = "<!-- config-reference:end -->";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const SCHEMA_PATH = join(ROOT, "schema", "plugin-config.schema.json");
export const REFERENCE_DOC_PATH = join(ROOT, "docs", "filter.md");

export interface SchemaNode {
  title?: string;
  description?: string;
  type?: string;
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  $ref?: string;
  properties?: Record<string, SchemaNode>;
  required?: string[];
  items?: SchemaNode;
  additionalProperties?: SchemaNode | boolean;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  definitions?: Record<string, SchemaNode>;
}

// The definitions in the order the reference presents them.
const SECTIONS = [
  "listConfiguration",
  "kvmService",
  "operation",
  "keyFragment",
  "sourceType",
  "destinationType",
  "headerName",
  "bodyPath",
];

function loadSchema(): SchemaNode {
  return JSON.parse(readFileSync(SCHEMA_PATH, "utf8")) as SchemaNode;
}

function definitionName(ref: string): string {
  const prefix = "#/definitions/";
  if (!ref.startsWith(prefix)) throw new Error(`unsupported $ref ${ref}`);
  return ref.slice(prefix.length);
}

// GitHub's heading anchors: lower case, spaces to dashes, punctuation other than - and _ dropped.
function anchor(title: string): string {
  return title
    .toLowerCase()
    .replace(/ /g, "-")
    .replace(/[^a-z0-9_-]/g, "");
}

function definition(schema: SchemaNode, name: string): SchemaNode {
  const found = schema.definitions?.[name];
  if (!found) throw new Error(`schema has no definition ${name}`);
  return found;
}

function link(schema: SchemaNode, ref: string): string {
  const title = definition(schema, definitionName(ref)).title ?? definitionName(ref);
  return `[${title}](#${anchor(title)})`;
}

function code(value: unknown): string {
  return "`" + JSON.stringify(value) + "`";
}

function range(node: SchemaNode): string {
  if (node.minimum !== undefined && node.maximum !== undefined)
    return ` (${node.minimum} to ${node.maximum})`;
  return "";
}

function typeOf(schema: SchemaNode, node: SchemaNode): string {
  if (node.$ref) return link(schema, node.$ref);
  if (node.enum) return "one of " + node.enum.map(code).join(", ");
  if (node.type === "array" && node.items) {
    const count =
      node.minItems !== undefined && node.maxItems !== undefined
        ? ` ${node.minItems} to ${node.maxItems}`
        : "";
    return `list of${count} ${typeOf(schema, node.items)}`;
  }
  if (node.type === "object" && typeof node.additionalProperties === "object") {
    return `object: name → ${typeOf(schema, node.additionalProperties)}`;
  }
  if (node.type === "integer") return "whole number" + range(node);
  return node.type ?? "any";
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

function fieldTable(schema: SchemaNode, node: SchemaNode): string {
  const required = new Set(node.required ?? []);
  const rows = Object.entries(node.properties ?? {}).map(([name, property]) => {
    const field = "`" + name + "`" + (required.has(name) ? " (required)" : "");
    const fallback = property.default === undefined ? "" : code(property.default);
    return `| ${cell(field)} | ${cell(typeOf(schema, property))} | ${cell(fallback)} | ${cell(property.description ?? "")} |`;
  });
  return ["| Field | Type | Default | Description |", "| --- | --- | --- | --- |", ...rows].join("\n");
}

// The reference's Markdown (before formatting), without the markers.
export function renderReference(schema: SchemaNode): string {
  const parts = [
    "<!-- Generated from schema/plugin-config.schema.json by scripts/gen-config-reference.ts; do not edit. -->",
    schema.description ?? "",
  ];
  for (const name of SECTIONS) {
    const node = definition(schema, name);
    parts.push(`### ${node.title ?? name}`);
    if (node.description) parts.push(node.description);
    if (node.properties) parts.push(fieldTable(schema, node));
    else if (node.enum) parts.push("Values: " + node.enum.map(code).join(", ") + ".");
  }
  return parts.join("\n\n");
}

// `document` with the region between the markers replaced by `reference`.
export function replaceRegion(document: string, reference: string): string {
  const start = document.indexOf(START_MARKER);
  const end = document.indexOf(END_MARKER);
  if (start < 0 || end < start) {
    throw new Error(`docs/filter.md needs ${START_MARKER} followed by ${END_MARKER}`);
  }
  return document.slice(0, start + START_MARKER.length) + "\n\n" + reference + "\n\n" + document.slice(end);
}

// docs/filter.md as it should be: the current text with a fresh reference. Only the reference is
// formatted (as Prettier formats Markdown here), so the rest of the document stays byte for byte.
export async function expectedReferenceDoc(
  document: string,
  schema: SchemaNode = loadSchema(),
): Promise<string> {
  const options = (await prettier.resolveConfig(REFERENCE_DOC_PATH)) ?? {};
  const reference = await prettier.format(renderReference(schema), {
    ...options,
    filepath: REFERENCE_DOC_PATH,
  });
  return replaceRegion(document, reference.trimEnd());
}

async function main(argv: string[]): Promise<number> {
  const check = argv.includes("--check");
  const document = existsSync(REFERENCE_DOC_PATH)
    ? readFileSync(REFERENCE_DOC_PATH, "utf8")
    : `${START_MARKER}\n${END_MARKER}\n`;
  const expected = await expectedReferenceDoc(document);
  if (check) {
    if (expected === document) return 0;
    console.error(
      "docs/filter.md's configuration reference is stale: run node --import tsx scripts/gen-config-reference.ts",
    );
    return 1;
  }
  if (expected !== document) writeFileSync(REFERENCE_DOC_PATH, expected);
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
