// envoy/envoy.yaml, docker-compose.yml and envoy/plugins/*.json, parsed once for the tests that
// check them.
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

export const root = fileURLToPath(new URL("../../", import.meta.url));
export const envoy = parse(readFileSync(`${root}envoy/envoy.yaml`, "utf8"));
export const compose = parse(readFileSync(`${root}docker-compose.yml`, "utf8"));
export const ROOT_ID = /ROOT_ID = "([^"]+)"/.exec(readFileSync(`${root}assembly/constants.ts`, "utf8"))![1];

export const WASM_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
export const FILTER_CONFIG_TYPE = "type.googleapis.com/envoy.config.route.v3.FilterConfig";

/* eslint-disable @typescript-eslint/no-explicit-any */
export const hcm = envoy.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
export const routes: any[] = hcm.route_config.virtual_hosts.flatMap((vh: any) => vh.routes);
export const routeNames: string[] = routes.map((r: any) => r.name);
export const clusterNames: string[] = envoy.static_resources.clusters.map((c: any) => c.name);

// Every wasm filter entry of the HTTP filter chain, in order.
export interface WasmFilterEntry {
  entryName: string; // the http_filters entry's name (what typed_per_filter_config is keyed by)
  disabled: boolean;
  config: any; // envoy.extensions.wasm.v3.PluginConfig
}
export const wasmFilters: WasmFilterEntry[] = hcm.http_filters
  .filter((f: any) => f.typed_config?.["@type"] === WASM_FILTER_TYPE)
  .map((f: any) => ({ entryName: f.name, disabled: f.disabled === true, config: f.typed_config.config }));
/* eslint-enable @typescript-eslint/no-explicit-any */

// The filter that runs on every route (the first wasm entry) and its plugin configuration.
export const wasm = wasmFilters[0].config;
export const envoyPluginConfiguration: string = wasm.configuration.value;

// envoy/plugins/<name>.json: name → the file's text.
export const pluginFiles: Record<string, string> = Object.fromEntries(
  readdirSync(`${root}envoy/plugins`)
    .filter((file) => file.endsWith(".json"))
    .sort()
    .map((file) => [file.slice(0, -".json".length), readFileSync(`${root}envoy/plugins/${file}`, "utf8")]),
);
