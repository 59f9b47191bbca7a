// `config check`: a plugin configuration is judged twice — by the JSON Schema
// (schema/plugin-config.schema.json) and by the compiled filter itself, loaded on the Node proxy-wasm host
// the way Envoy loads it (start + configure on a canary VM, docs/envoy-behaviour.md §8). The filter's
// verdict is the one Envoy would act on; its critical log line (`invalid configuration: …`) is reported
// as Envoy would log it. The converters run every configuration they write through checkConfiguration.
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import Ajv from "ajv";
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node } from "yaml";
import { PluginStartError, startPlugin } from "../host/index.ts";

const root = fileURLToPath(new URL("../", import.meta.url));
export const FILTER_WASM = `${root}build/kvm_filter.wasm`;
const SCHEMA_FILE = `${root}schema/plugin-config.schema.json`;
/** The filter's root id (assembly/constants.ts), read rather than repeated. */
export const ROOT_ID = /ROOT_ID = "([^"]+)"/.exec(readFileSync(`${root}assembly/constants.ts`, "utf8"))![1];

const WASM_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const STRING_VALUE_TYPE = "type.googleapis.com/google.protobuf.StringValue";
/** proxy-wasm LogLevel critical: the level of the filter's `invalid configuration` line. */
const CRITICAL = 5;

export interface Verdict {
  ok: boolean;
  /** The filter's critical log lines (`invalid configuration: …`), or why it could not start. */
  filter: string[];
  /** Schema violations, `<instance path> <message>`. */
  schema: string[];
}

let validator: ((data: unknown) => boolean) & {
  errors?: { instancePath: string; keyword: string; message?: string }[] | null;
};
let compiled: Promise<WebAssembly.Module> | undefined;
let vmCounter = 0;

function schemaErrors(text: string): string[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return ["not JSON"];
  }
  validator ??= new Ajv({ allErrors: false, strict: false }).compile(
    JSON.parse(readFileSync(SCHEMA_FILE, "utf8")),
  );
  if (validator(value)) return [];
  // The first violation that is not only a combinator (if/then, anyOf, oneOf) reporting its branch failed.
  const errors = validator.errors ?? [];
  const first = errors.find((e) => !["if", "anyOf", "oneOf"].includes(e.keyword)) ?? errors[0];
  return first === undefined
    ? ["is invalid"]
    : [`${first.instancePath || "/"} ${first.message ?? "is invalid"}`];
}

async function filterModule(): Promise<WebAssembly.Module> {
  if (!existsSync(FILTER_WASM)) {
    throw new Error(`${FILTER_WASM} does not exist: build the filter first (npm run build:release)`);
  }
  compiled ??= WebAssembly.compile(readFileSync(FILTER_WASM));
  return compiled;
}

/** Judges one plugin configuration (the JSON text Envoy hands the filter). */
export async function checkConfiguration(text: string): Promise<Verdict> {
  const schema = schemaErrors(text);
  const critical: string[] = [];
  let started = true;
  try {
    await startPlugin({
      wasm: await filterModule(),
      rootId: ROOT_ID,
      vmId: `config-check-${process.pid}-${++vmCounter}`,
      configuration: text,
      workers: 0,
      allowOnHeadersStopIteration: true,
      logSink: (level, message) => {
        if (level === CRITICAL) critical.push(message);
      },
    });
  } catch (err) {
    if (!(err instanceof PluginStartError)) throw err;
    started = false;
    if (critical.length === 0) critical.push(err.message.split("\n")[0]);
  }
  const filter = started ? [] : critical;
  return { ok: started && schema.length === 0, filter, schema };
}

/** One plugin configuration found in a file, with where it is (line 1 for a JSON file). */
export interface Located {
  line: number;
  /** Where in the document, e.g. `static_resources.listeners[0]…http_filters[0]`; "" for a JSON file. */
  path: string;
  text: string | null;
  /** Why the configuration could not be read (then `text` is null). */
  problem?: string;
}

/**
 * Every envoy-kvm filter configuration in an envoy.yaml (wasm filters with our root id, in http_filters and in
 * typed_per_filter_config), or the file itself when it is a plugin configuration JSON.
 */
export function locateConfigurations(fileText: string): { kind: "json" | "envoy"; found: Located[] } {
  // JSON is a plugin configuration (judged even when it is not an object); YAML, including flow-style YAML that
  // only looks like JSON, an envoy.yaml.
  let json = true;
  try {
    JSON.parse(fileText);
  } catch {
    json = false;
  }
  if (json) return { kind: "json", found: [{ line: 1, path: "", text: fileText }] };
  const lines = new LineCounter();
  const doc = parseDocument(fileText, { lineCounter: lines });
  if (doc.errors.length > 0) throw new Error(`not YAML or JSON: ${doc.errors[0].message.split("\n")[0]}`);
  const found: Located[] = [];
  const lineOf = (node: Node | null | undefined) => (node?.range ? lines.linePos(node.range[0]).line : 1);
  const walk = (node: unknown, path: string): void => {
    if (isSeq(node)) node.items.forEach((item, i) => walk(item, `${path}[${i}]`));
    if (!isMap(node)) return;
    const type = node.get("@type");
    if (type === WASM_FILTER_TYPE) {
      const config = node.get("config", true);
      const rootId = isMap(config) ? config.get("root_id") : undefined;
      if (isMap(config) && rootId === ROOT_ID) {
        const configuration = config.get("configuration", true);
        const at = path || "(top)";
        if (!isMap(configuration)) {
          found.push({ line: lineOf(config), path: at, text: null, problem: "no configuration" });
        } else if (configuration.get("@type") !== STRING_VALUE_TYPE) {
          found.push({
            line: lineOf(configuration),
            path: at,
            text: null,
            problem: `configuration is not a ${STRING_VALUE_TYPE}`,
          });
        } else {
          const value = configuration.get("value", true);
          found.push({
            line: lineOf(isScalar(value) ? value : configuration),
            path: at,
            text: isScalar(value) ? String(value.value) : "",
          });
        }
      }
    }
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : "?";
      walk(pair.value, path === "" ? key : `${path}.${key}`);
    }
  };
  walk(doc.contents, "");
  return { kind: "envoy", found };
}

/** The report lines of `config check FILE` and whether every configuration passed. */
export async function checkFile(file: string, display = file): Promise<{ ok: boolean; lines: string[] }> {
  const { kind, found } = locateConfigurations(readFileSync(file, "utf8"));
  const lines: string[] = [];
  let ok = true;
  if (kind === "envoy" && found.length === 0) {
    return { ok: false, lines: [`${display}: no envoy-kvm wasm filter (root_id ${ROOT_ID}) found`] };
  }
  for (const c of found) {
    const where = kind === "json" ? display : `${display}:${c.line}`;
    if (c.text === null) {
      ok = false;
      lines.push(`${where}: ${c.problem}`);
      continue;
    }
    const verdict = await checkConfiguration(c.text);
    if (verdict.ok) {
      lines.push(`${where}: ok`);
      continue;
    }
    ok = false;
    for (const line of verdict.filter) lines.push(`${where}: ${line}`);
    for (const line of verdict.schema) lines.push(`${where}: schema: ${line}`);
  }
  return { ok, lines };
}
