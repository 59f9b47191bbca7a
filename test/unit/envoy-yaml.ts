// envoy/envoy.yaml, parsed once for the tests that check it.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

export const root = fileURLToPath(new URL("../../", import.meta.url));
export const envoy = parse(readFileSync(`${root}envoy/envoy.yaml`, "utf8"));
export const ROOT_ID = /ROOT_ID = "([^"]+)"/.exec(readFileSync(`${root}assembly/constants.ts`, "utf8"))![1];

/* eslint-disable @typescript-eslint/no-explicit-any */
export const hcm = envoy.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
const wasmFilter = hcm.http_filters.find((f: any) => f.name === "envoy.filters.http.wasm");
export const wasm = wasmFilter.typed_config.config;
export const routeNames: string[] = hcm.route_config.virtual_hosts.flatMap((vh: any) =>
  vh.routes.map((r: any) => r.name),
);
/* eslint-enable @typescript-eslint/no-explicit-any */

export const envoyPluginConfiguration: string = wasm.configuration.value;
