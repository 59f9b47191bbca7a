// What `convert` writes: the plugin configuration (checked by config check first), an envoy.yaml fragment with
// the routes the configuration is keyed by, import files for seed entries, and the report with a summary line.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { ROOT_ID, checkConfiguration } from "./check.ts";
import { count, type Conversion } from "./model.ts";

export interface OutputOptions {
  /** What was converted, for the fragment's header comment (e.g. `apigee examples/apigee/orders-proxy`). */
  source: string;
  output?: string;
  envoy?: string;
  importDir?: string;
  dryRun?: boolean;
  /** Cluster for routes without one of their own. */
  upstream: string;
  /** Kong services' URLs, written as clusters in the fragment. */
  clusters?: Record<string, string>;
}

export interface Outcome {
  /** 0 complete, 2 incomplete (written, with what was left out reported), 1 nothing usable or a check failure. */
  exitCode: number;
  /** The report (stdout, or stderr when the configuration goes to stdout). */
  report: string[];
  /** The configuration when it goes to stdout. */
  stdout: string | null;
}

function cluster(name: string, url: string): Record<string, unknown> {
  const u = new URL(url);
  const port = u.port === "" ? (u.protocol === "https:" ? 443 : 80) : Number(u.port);
  // An https:// upstream needs TLS from Envoy (UpstreamTlsContext; sni so virtual-hosted servers answer).
  const tls =
    u.protocol === "https:"
      ? {
          transport_socket: {
            name: "envoy.transport_sockets.tls",
            typed_config: {
              "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
              sni: u.hostname,
            },
          },
        }
      : {};
  return {
    name,
    ...tls,
    type: "STRICT_DNS",
    connect_timeout: "1s",
    load_assignment: {
      cluster_name: name,
      endpoints: [
        {
          lb_endpoints: [
            { endpoint: { address: { socket_address: { address: u.hostname, port_value: port } } } },
          ],
        },
      ],
    },
  };
}

// The cluster the filter's callouts use by default (kvm_service.cluster) and the service's default address
// (`envoy-kvm service` listens there; `envoy-kvm kvm --url` defaults to it).
const KVM_SERVICE_CLUSTER = "kvm_service";
const KVM_SERVICE_DEFAULT_URL = "http://127.0.0.1:8081";

function usesCluster({ config }: Conversion): boolean {
  return [...(config.operations ?? []), ...Object.values(config.routes ?? {}).flat()].some(
    (op) => op.policy === "cluster",
  );
}

export function envoyFragment(conversion: Conversion, configText: string, opts: OutputOptions): string {
  const fragment: Record<string, unknown> = {
    route_config: {
      name: "converted",
      virtual_hosts: [
        {
          name: "converted",
          domains: ["*"],
          routes: conversion.envoyRoutes.map((r) => ({
            name: r.name,
            match: r.match,
            route: { cluster: r.cluster ?? opts.upstream },
          })),
        },
      ],
    },
    http_filters: [
      {
        name: "envoy.filters.http.wasm",
        typed_config: {
          "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
          config: {
            name: ROOT_ID,
            root_id: ROOT_ID,
            allow_on_headers_stop_iteration: true,
            failure_policy: "FAIL_CLOSED",
            vm_config: {
              vm_id: ROOT_ID,
              runtime: "envoy.wasm.runtime.v8",
              code: { local: { filename: "/etc/envoy/kvm_filter.wasm" } },
            },
            configuration: { "@type": "type.googleapis.com/google.protobuf.StringValue", value: configText },
          },
        },
      },
      {
        name: "envoy.filters.http.router",
        typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
      },
    ],
  };
  const urls: Record<string, string> = { ...opts.clusters };
  if (conversion.upstreamUrl !== undefined && urls[opts.upstream] === undefined) {
    urls[opts.upstream] = conversion.upstreamUrl;
  }
  if (usesCluster(conversion) && urls[KVM_SERVICE_CLUSTER] === undefined) {
    urls[KVM_SERVICE_CLUSTER] = KVM_SERVICE_DEFAULT_URL;
  }
  const clusters = Object.entries(urls).map(([name, url]) => cluster(name, url));
  if (clusters.length > 0) fragment.clusters = clusters;
  const header =
    `# envoy-kvm convert ${opts.source}: the route configuration and http_filters of an http_connection_manager` +
    `${clusters.length > 0 ? ", and static_resources clusters" : ""}.\n` +
    '# Route names are the keys of the plugin configuration\'s "routes": keep them when merging into envoy.yaml.\n';
  return header + stringify(fragment, { lineWidth: 0 });
}

export async function writeConversion(conversion: Conversion, opts: OutputOptions): Promise<Outcome> {
  const { config, report } = conversion;
  const lines = report.format();
  const operations =
    (config.operations?.length ?? 0) + Object.values(config.routes ?? {}).reduce((n, l) => n + l.length, 0);
  const unsupported = report.lines.filter((l) => l.severity === "unsupported").length;
  if (operations === 0) {
    lines.push("nothing converted: no operation to write");
    return { exitCode: 1, report: lines, stdout: null };
  }
  const compact: Record<string, unknown> = {};
  if (config.operations !== undefined && config.operations.length > 0) compact.operations = config.operations;
  if (config.routes !== undefined && Object.keys(config.routes).length > 0) compact.routes = config.routes;
  const text = `${JSON.stringify(compact, null, 2)}\n`;
  const verdict = await checkConfiguration(text);
  if (!verdict.ok) {
    for (const l of verdict.filter) lines.push(`config check: ${l}`);
    for (const l of verdict.schema) lines.push(`config check: schema: ${l}`);
    lines.push("the converted configuration failed config check: nothing written");
    return { exitCode: 1, report: lines, stdout: null };
  }
  const routeCount = Object.keys(config.routes ?? {}).length;
  const where = routeCount > 0 ? ` on ${count(routeCount, "route")}` : " for every request";
  const summary = `${count(operations, "operation")}${where}; config check passed`;
  lines.push(
    unsupported === 0
      ? `complete: ${summary}`
      : `incomplete: ${count(unsupported, "element")} not converted (unsupported above); ${summary}`,
  );
  if (usesCluster(conversion)) {
    lines.push(
      opts.envoy === undefined || opts.dryRun === true
        ? `cluster operations call the KVM service through the Envoy cluster "${KVM_SERVICE_CLUSTER}" (kvm_service defaults): define it in envoy.yaml`
        : `cluster operations call the KVM service through the Envoy cluster "${KVM_SERVICE_CLUSTER}": the fragment defines it at ${new URL(KVM_SERVICE_DEFAULT_URL).host}, the service's default address`,
    );
  }
  let stdout: string | null = null;
  if (!opts.dryRun) {
    if (opts.output !== undefined) {
      writeFileSync(opts.output, text);
      lines.push(`wrote ${opts.output}`);
    } else stdout = text;
    if (opts.envoy !== undefined) {
      writeFileSync(opts.envoy, envoyFragment(conversion, text, opts));
      lines.push(`wrote ${opts.envoy} (${conversion.envoyRoutes.length} Envoy routes)`);
    }
    if (opts.importDir !== undefined && conversion.imports.length > 0) {
      mkdirSync(opts.importDir, { recursive: true });
      for (const file of conversion.imports) {
        const path = join(opts.importDir, `${file.kvm}.json`);
        writeFileSync(path, `${JSON.stringify({ keyValueEntries: file.entries }, null, 2)}\n`);
        lines.push(`wrote ${path}: envoy-kvm kvm import ${file.kvm} ${path} --mode insert`);
      }
    }
  }
  if (conversion.imports.length > 0 && opts.importDir === undefined) {
    lines.push(
      `${count(conversion.imports.length, "map has", "maps have")} initial entries: --import-dir DIR writes their import files`,
    );
  }
  return { exitCode: unsupported === 0 ? 0 : 2, report: lines, stdout };
}
