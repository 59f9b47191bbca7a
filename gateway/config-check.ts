// `envoy-kvm config check FILE…`: judges plugin configurations before Envoy does. A FILE is a plugin
// configuration (the JSON in a wasm filter's `configuration`) or an envoy.yaml, whose every wasm
// filter configuration is checked. Each configuration goes through the JSON Schema and through the
// compiled filter on the Node host (as Envoy's canary would load it); a refusal prints the line the
// filter logs in Envoy, and the command exits 1.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Ajv from "ajv";
import { Command } from "commander";
import { parse } from "yaml";
import { PluginStartError, startPlugin } from "../host/index.ts";
import { WASM_FILTER } from "./config.ts";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const ROOT_ID = /ROOT_ID = "([^"]+)"/.exec(
  readFileSync(path.join(ROOT, "assembly", "constants.ts"), "utf8"),
)![1];

export interface Checked {
  /** `FILE` for a plugin configuration, `FILE (<filter name>)` for one inside an envoy.yaml. */
  where: string;
  /** null = accepted; else the filter's refusal (or the schema's, when the filter accepted it). */
  error: string | null;
}

/** The wasm filter configurations in an envoy.yaml: every object typed as the Wasm HTTP filter. */
function wasmConfigurations(document: unknown, file: string): { where: string; text: string }[] {
  const found: { where: string; text: string }[] = [];
  const walk = (node: unknown, entryName: string | undefined) => {
    if (Array.isArray(node)) return node.forEach((item) => walk(item, entryName));
    if (typeof node !== "object" || node === null) return;
    const object = node as Record<string, unknown>;
    const name = typeof object.name === "string" ? object.name : entryName;
    if (object["@type"] === WASM_FILTER) {
      const config = object.config as { configuration?: { value?: unknown } } | undefined;
      const text = config?.configuration?.value;
      found.push({ where: `${file} (${name ?? "wasm filter"})`, text: typeof text === "string" ? text : "" });
      return;
    }
    for (const value of Object.values(object)) walk(value, name);
  };
  walk(document, undefined);
  return found;
}

export async function checkConfigurations(
  file: string,
  wasm: string = path.join(ROOT, "build", "kvm_filter.wasm"),
): Promise<Checked[]> {
  const text = readFileSync(file, "utf8");
  const targets = /\.ya?ml$/.test(file) ? wasmConfigurations(parse(text), file) : [{ where: file, text }];
  const schema = JSON.parse(readFileSync(path.join(ROOT, "schema", "plugin-config.schema.json"), "utf8"));
  // strictTypes off: the schema leaves `type` to its $refs in places, which Ajv would warn about on stderr.
  const validate = new Ajv({ strictTypes: false }).compile(schema);
  const results: Checked[] = [];
  for (const { where, text: configuration } of targets) {
    let error: string | null = null;
    try {
      await startPlugin({ wasm, rootId: ROOT_ID, configuration, workers: 1 });
    } catch (err) {
      if (!(err instanceof PluginStartError)) throw err;
      // The filter's one critical line; the SDK's debug lines come before it.
      error = err.logs.at(-1) ?? err.message;
    }
    if (error === null) {
      let parsed: unknown = undefined;
      try {
        parsed = JSON.parse(configuration);
      } catch {
        // the filter accepted it, so it is JSON; keep undefined for the schema to refuse otherwise
      }
      if (!validate(parsed))
        error = `the filter accepts it but the schema does not: ${JSON.stringify(validate.errors)}`;
    }
    results.push({ where, error });
  }
  return results;
}

export function configCommand(): Command {
  const config = new Command("config").description("plugin configurations");
  config
    .command("check <files...>")
    .description("check plugin configurations (JSON files, or every wasm filter of an envoy.yaml)")
    .action(async (files: string[]) => {
      let failed = false;
      for (const file of files) {
        const results = await checkConfigurations(file);
        if (results.length === 0) {
          console.log(`${file}: no wasm filter configuration`);
          failed = true;
        }
        for (const { where, error } of results) {
          console.log(error === null ? `${where}: ok` : `${where}: ${error}`);
          if (error !== null) failed = true;
        }
      }
      if (failed) process.exitCode = 1;
    });
  return config;
}
