// Helpers of the converter tests: pick the Envoy route a request takes from the converted routes (as Envoy's
// first-match route table would), run it through the filter, and read or seed map entries on the same store.
import { execFile, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ManualClock, Plugin } from "../../host/index.ts";
import type { EnvoyRoute } from "../../convert/model.ts";
import { parseRoute } from "../../gateway/config.ts";
import { matchRoute } from "../../gateway/match.ts";
import { send, startKvm, type Pairs } from "../filter/support.ts";

export const root = fileURLToPath(new URL("../../", import.meta.url));

/** The route the local gateway's route table (gateway/match.ts, RE2 regexes) gives the request. */
export function routeFor(
  routes: EnvoyRoute[],
  method: string,
  path: string,
  headers: Pairs = [],
): string | undefined {
  const table = routes.map((r, i) =>
    parseRoute({ name: r.name, match: r.match, route: { cluster: "upstream" } }, `routes[${i}]`),
  );
  // HTTP/1 carries :authority as Host.
  const byName = Object.fromEntries(headers.map(([k, v]) => [k === ":authority" ? "host" : k, v]));
  return matchRoute(table, method, path, byName)?.name;
}

/** A gateway over the converted configuration: route selection, then the filter on the host. */
export async function gateway(config: unknown, routes: EnvoyRoute[]) {
  const plugin = await startKvm(config);
  const request = (method: string, path: string, headers: Pairs = [], body?: string) =>
    send(plugin.worker(0), {
      method,
      path,
      headers,
      body,
      routeName: routeFor(routes, method, path, headers),
    });
  return { plugin, request };
}

/** Reads a key of a local map on the plugin's store (a second filter on the same shared data). */
export async function readEntry(plugin: Plugin, kvm: string, key: string): Promise<string | undefined> {
  const reader = await startKvm(
    {
      policy: "local",
      kvm_name: kvm,
      operation_type: "get",
      key_source_type: "literal",
      key_source_name: key,
      output_destination_type: "response_header",
      output_destination_name: "x-value",
    },
    { sharedData: plugin.sharedData, clock: plugin.clock as ManualClock },
  );
  return (await send(reader.worker(0), { path: "/" })).responseHeader("x-value");
}

/** Writes an entry of a local map on the plugin's store. */
export async function seedEntry(plugin: Plugin, kvm: string, key: string, value: string): Promise<void> {
  const writer = await startKvm(
    {
      policy: "local",
      kvm_name: kvm,
      operation_type: "put",
      key_source_type: "literal",
      key_source_name: key,
      value_source_type: "literal",
      value_source_name: value,
    },
    { sharedData: plugin.sharedData, clock: plugin.clock as ManualClock },
  );
  const res = await send(writer.worker(0), { path: "/" });
  if (res.status !== 200) throw new Error(`seeding failed: ${res.status}`);
}

/** Runs the envoy-kvm binary; stdout, stderr and the exit status. */
export function cli(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [`${root}bin/envoy-kvm.js`, ...args], {
    cwd: root,
    encoding: "utf8",
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the envoy-kvm binary without blocking this process (for commands that call a service running here). */
export function cliAsync(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [`${root}bin/envoy-kvm.js`, ...args], { cwd: root }, (err, stdout, stderr) => {
      const status = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
      resolve({ status, stdout, stderr });
    });
  });
}
