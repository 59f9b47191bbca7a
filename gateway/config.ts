// Reads an Envoy bootstrap (envoy.yaml) into what the local gateway serves: listeners with their
// routes and HTTP filters, and clusters. Only the part of Envoy's configuration the gateway models is
// accepted. A field that does not change behaviour here (stat_prefix, admin, stats_config, …) is
// accepted and ignored; any other field — one that would change routing or filtering — is a start-up
// error naming its path, never silently ignored.
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { compileRe2, type HeaderMatch, type Re2, type RouteMatch } from "./match.ts";

export const WASM_FILTER = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const ROUTER_FILTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const HCM =
  "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const FILTER_CONFIG = "type.googleapis.com/envoy.config.route.v3.FilterConfig";
const STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue";

export class GatewayConfigError extends Error {}

export interface RouteSpec extends RouteMatch {
  name: string;
  cluster: string;
  /** Headers the router adds upstream; values may hold %FILTER_STATE(key:PLAIN)%. */
  requestHeadersToAdd: { key: string; value: string; append: boolean }[];
  /** http_filters entry names this route switches on (typed_per_filter_config with FilterConfig). */
  enables: string[];
  /** route.timeout in ms (Envoy's default 15 s); 0 = none. */
  timeoutMs: number;
}

export interface VirtualHostSpec {
  name: string;
  domains: string[];
  routes: RouteSpec[];
}

export interface WasmFilterSpec {
  /** The http_filters entry's name. */
  name: string;
  disabled: boolean;
  pluginName: string;
  rootId: string;
  vmId: string;
  wasmFile: string;
  configuration: string;
  allowOnHeadersStopIteration: boolean;
  failOpen: boolean;
  /** vm_config.environment_variables: host_env_keys read from the environment, plus key_values. */
  environment: Record<string, string>;
}

export interface ListenerSpec {
  name: string;
  address: string;
  port: number;
  bufferLimitBytes: number;
  virtualHosts: VirtualHostSpec[];
  filters: WasmFilterSpec[];
}

export interface ClusterSpec {
  name: string;
  endpoints: { address: string; port: number }[];
  /** The cluster's TLS transport_socket (Envoy speaks TLS to it; the gateway only plain HTTP, see server.ts). */
  tls?: { sni?: string };
}

export interface GatewayConfig {
  listeners: ListenerSpec[];
  clusters: Map<string, ClusterSpec>;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
type Node = Record<string, any>;

// Checks that `node` is an object whose fields are all in `modelled` or `ignored`; returns it.
function fields(node: unknown, at: string, modelled: string[], ignored: string[] = []): Node {
  if (typeof node !== "object" || node === null || Array.isArray(node)) {
    throw new GatewayConfigError(`${at}: expected an object`);
  }
  for (const key of Object.keys(node)) {
    if (!modelled.includes(key) && !ignored.includes(key)) {
      const where = at === "" ? key : `${at}.${key}`;
      throw new GatewayConfigError(
        `${where}: not supported by the local gateway (it would change behaviour)`,
      );
    }
  }
  return node as Node;
}

function list(node: unknown, at: string): unknown[] {
  if (node === undefined) return [];
  if (!Array.isArray(node)) throw new GatewayConfigError(`${at}: expected a list`);
  return node;
}

function text(node: unknown, at: string): string {
  if (typeof node !== "string") throw new GatewayConfigError(`${at}: expected a string`);
  return node;
}

function socketAddress(node: unknown, at: string): { address: string; port: number } {
  const outer = fields(node, at, ["socket_address"]);
  const inner = fields(outer.socket_address, `${at}.socket_address`, ["address", "port_value"], ["protocol"]);
  const port = Number(inner.port_value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new GatewayConfigError(`${at}.socket_address.port_value: expected a port number`);
  }
  return { address: text(inner.address, `${at}.socket_address.address`), port };
}

// envoy.type.matcher.v3.RegexMatcher: `regex`, and the deprecated `google_re2` (RE2 either way).
function safeRegex(node: unknown, at: string): Re2 {
  const matcher = fields(node, at, ["regex"], ["google_re2"]);
  const compiled = compileRe2(text(matcher.regex, `${at}.regex`));
  if ("error" in compiled) {
    throw new GatewayConfigError(
      `${at}.regex: not a valid RE2 pattern (Envoy refuses it): ${compiled.error}`,
    );
  }
  return compiled;
}

// A google.protobuf.Duration as Envoy's YAML writes it: seconds with an "s", e.g. "15s" or "0.25s".
function durationMs(node: unknown, at: string): number {
  const match = typeof node === "string" ? /^(\d+(?:\.\d+)?)s$/.exec(node) : null;
  if (match === null) throw new GatewayConfigError(`${at}: expected a duration such as "15s" or "0.25s"`);
  return Math.round(Number(match[1]) * 1000);
}

/** One route of a virtual host's `routes`; `at` is its path in the configuration, for messages. */
export function parseRoute(node: unknown, at: string): RouteSpec {
  const r = fields(
    node,
    at,
    ["name", "match", "route", "request_headers_to_add", "typed_per_filter_config"],
    ["metadata", "decorator"],
  );
  const match = fields(r.match, `${at}.match`, ["prefix", "path", "safe_regex", "headers"]);
  if (["prefix", "path", "safe_regex"].filter((k) => match[k] !== undefined).length !== 1) {
    throw new GatewayConfigError(`${at}.match: exactly one of prefix, path and safe_regex`);
  }
  const headers: HeaderMatch[] = list(match.headers, `${at}.match.headers`).map((h, i) => {
    const where = `${at}.match.headers[${i}]`;
    const header = fields(h, where, ["name", "string_match"]);
    const name = text(header.name, `${where}.name`).toLowerCase();
    const sm = fields(header.string_match, `${where}.string_match`, ["exact", "safe_regex"]);
    if ((sm.exact === undefined) === (sm.safe_regex === undefined)) {
      throw new GatewayConfigError(`${where}.string_match: exactly one of exact and safe_regex`);
    }
    return sm.exact !== undefined
      ? { name, exact: text(sm.exact, `${where}.string_match.exact`) }
      : { name, regex: safeRegex(sm.safe_regex, `${where}.string_match.safe_regex`) };
  });
  const action = fields(r.route, `${at}.route`, ["cluster", "timeout"]);
  const requestHeadersToAdd = list(r.request_headers_to_add, `${at}.request_headers_to_add`).map((h, i) => {
    const where = `${at}.request_headers_to_add[${i}]`;
    const option = fields(h, where, ["header", "append_action"]);
    const header = fields(option.header, `${where}.header`, ["key", "value"]);
    const append = option.append_action === undefined || option.append_action === "APPEND_IF_EXISTS_OR_ADD";
    if (!append && option.append_action !== "OVERWRITE_IF_EXISTS_OR_ADD") {
      throw new GatewayConfigError(`${where}.append_action: ${option.append_action} is not supported`);
    }
    return {
      key: text(header.key, `${where}.header.key`).toLowerCase(),
      value: text(header.value, `${where}.header.value`),
      append,
    };
  });
  const enables: string[] = [];
  for (const [name, perFilter] of Object.entries<any>(r.typed_per_filter_config ?? {})) {
    const where = `${at}.typed_per_filter_config.${name}`;
    const config = fields(perFilter, where, ["@type", "config", "disabled", "is_optional"]);
    if (config["@type"] !== FILTER_CONFIG) {
      throw new GatewayConfigError(`${where}: only ${FILTER_CONFIG} is supported`);
    }
    if (config.config !== undefined && Object.keys(config.config).length > 0) {
      throw new GatewayConfigError(`${where}.config: a per-route configuration is not supported (give {})`);
    }
    if (config.disabled !== true) enables.push(name);
  }
  return {
    name: r.name === undefined ? "" : text(r.name, `${at}.name`),
    prefix: match.prefix === undefined ? undefined : text(match.prefix, `${at}.match.prefix`),
    path: match.path === undefined ? undefined : text(match.path, `${at}.match.path`),
    regex: match.safe_regex === undefined ? undefined : safeRegex(match.safe_regex, `${at}.match.safe_regex`),
    headers,
    cluster: text(action.cluster, `${at}.route.cluster`),
    requestHeadersToAdd,
    enables,
    timeoutMs: action.timeout === undefined ? 15_000 : durationMs(action.timeout, `${at}.route.timeout`),
  };
}

function wasmFilter(entry: Node, at: string, env: NodeJS.ProcessEnv): WasmFilterSpec {
  const typed = fields(entry.typed_config, `${at}.typed_config`, ["@type", "config"]);
  const where = `${at}.typed_config.config`;
  const config = fields(
    typed.config,
    where,
    [
      "name",
      "root_id",
      "vm_config",
      "configuration",
      "allow_on_headers_stop_iteration",
      "failure_policy",
      "fail_open",
    ],
    [],
  );
  const vm = fields(
    config.vm_config,
    `${where}.vm_config`,
    ["vm_id", "runtime", "code", "environment_variables"],
    ["allow_precompiled"],
  );
  const code = fields(vm.code, `${where}.vm_config.code`, ["local"]);
  const local = fields(code.local, `${where}.vm_config.code.local`, ["filename"]);
  const environment: Record<string, string> = {};
  if (vm.environment_variables !== undefined) {
    const vars = fields(vm.environment_variables, `${where}.vm_config.environment_variables`, [
      "host_env_keys",
      "key_values",
    ]);
    for (const key of list(vars.host_env_keys, `${where}.vm_config.environment_variables.host_env_keys`)) {
      const value = env[text(key, "host_env_keys")];
      if (value !== undefined) environment[key as string] = value;
    }
    Object.assign(environment, vars.key_values ?? {});
  }
  let configuration = "";
  if (config.configuration !== undefined) {
    const c = fields(config.configuration, `${where}.configuration`, ["@type", "value"]);
    if (c["@type"] !== STRING_VALUE)
      throw new GatewayConfigError(`${where}.configuration: only ${STRING_VALUE}`);
    configuration = text(c.value, `${where}.configuration.value`);
  }
  const policy = config.failure_policy ?? (config.fail_open === true ? "FAIL_OPEN" : "FAIL_CLOSED");
  if (policy !== "FAIL_CLOSED" && policy !== "FAIL_OPEN") {
    throw new GatewayConfigError(
      `${where}.failure_policy: ${policy} is not supported (FAIL_CLOSED or FAIL_OPEN)`,
    );
  }
  return {
    name: text(entry.name, `${at}.name`),
    disabled: entry.disabled === true,
    pluginName: config.name === undefined ? "" : text(config.name, `${where}.name`),
    rootId: config.root_id === undefined ? "" : text(config.root_id, `${where}.root_id`),
    vmId: vm.vm_id === undefined ? "" : text(vm.vm_id, `${where}.vm_config.vm_id`),
    wasmFile: text(local.filename, `${where}.vm_config.code.local.filename`),
    configuration,
    allowOnHeadersStopIteration: config.allow_on_headers_stop_iteration === true,
    failOpen: policy === "FAIL_OPEN",
    environment,
  };
}

function listener(node: unknown, at: string, env: NodeJS.ProcessEnv): ListenerSpec {
  const l = fields(node, at, ["name", "address", "filter_chains", "per_connection_buffer_limit_bytes"]);
  const chains = list(l.filter_chains, `${at}.filter_chains`);
  if (chains.length !== 1)
    throw new GatewayConfigError(`${at}.filter_chains: exactly one filter chain is supported`);
  const chain = fields(chains[0], `${at}.filter_chains[0]`, ["filters"]);
  const filters = list(chain.filters, `${at}.filter_chains[0].filters`);
  if (filters.length !== 1) {
    throw new GatewayConfigError(`${at}.filter_chains[0].filters: exactly one (the HTTP connection manager)`);
  }
  const hcmAt = `${at}.filter_chains[0].filters[0]`;
  const network = fields(filters[0], hcmAt, ["name", "typed_config"]);
  const hcm = fields(
    network.typed_config,
    `${hcmAt}.typed_config`,
    ["@type", "route_config", "http_filters"],
    ["stat_prefix", "access_log", "codec_type", "use_remote_address", "generate_request_id"],
  );
  if (hcm["@type"] !== HCM)
    throw new GatewayConfigError(`${hcmAt}.typed_config: only the HTTP connection manager`);
  const rc = fields(hcm.route_config, `${hcmAt}.typed_config.route_config`, ["virtual_hosts"], ["name"]);
  const virtualHosts = list(rc.virtual_hosts, `${hcmAt}.typed_config.route_config.virtual_hosts`).map(
    (v, i) => {
      const where = `${hcmAt}.typed_config.route_config.virtual_hosts[${i}]`;
      const vh = fields(v, where, ["name", "domains", "routes"]);
      return {
        name: text(vh.name, `${where}.name`),
        domains: list(vh.domains, `${where}.domains`).map((d, j) =>
          text(d, `${where}.domains[${j}]`).toLowerCase(),
        ),
        routes: list(vh.routes, `${where}.routes`).map((r, j) => parseRoute(r, `${where}.routes[${j}]`)),
      };
    },
  );
  const httpFilters = list(hcm.http_filters, `${hcmAt}.typed_config.http_filters`);
  const wasm: WasmFilterSpec[] = [];
  httpFilters.forEach((f, i) => {
    const where = `${hcmAt}.typed_config.http_filters[${i}]`;
    const entry = fields(f, where, ["name", "typed_config", "disabled"]);
    const type = entry.typed_config?.["@type"];
    if (type === WASM_FILTER) wasm.push(wasmFilter(entry, where, env));
    else if (type === ROUTER_FILTER) {
      if (i !== httpFilters.length - 1)
        throw new GatewayConfigError(`${where}: the router must be the last filter`);
      fields(entry.typed_config, `${where}.typed_config`, ["@type"]);
    } else
      throw new GatewayConfigError(`${where}: ${type} is not supported (wasm filters and the router only)`);
  });
  const last = httpFilters.at(-1) as Node | undefined;
  if (last?.typed_config?.["@type"] !== ROUTER_FILTER) {
    throw new GatewayConfigError(`${hcmAt}.typed_config.http_filters: the router must be the last filter`);
  }
  const known = new Set(wasm.map((w) => w.name));
  for (const vh of virtualHosts) {
    for (const r of vh.routes) {
      for (const name of r.enables) {
        if (!known.has(name))
          throw new GatewayConfigError(
            `route ${r.name}: typed_per_filter_config names ${name}, no such wasm filter`,
          );
      }
    }
  }
  const { address, port } = socketAddress(l.address, `${at}.address`);
  return {
    name: text(l.name, `${at}.name`),
    address,
    port,
    bufferLimitBytes:
      l.per_connection_buffer_limit_bytes === undefined
        ? 1024 * 1024
        : Number(l.per_connection_buffer_limit_bytes),
    virtualHosts,
    filters: wasm,
  };
}

function cluster(node: unknown, at: string): ClusterSpec {
  const c = fields(
    node,
    at,
    ["name", "load_assignment", "transport_socket"],
    ["type", "connect_timeout", "lb_policy", "dns_lookup_family"],
  );
  const assignment = fields(c.load_assignment, `${at}.load_assignment`, ["endpoints"], ["cluster_name"]);
  const endpoints = list(assignment.endpoints, `${at}.load_assignment.endpoints`).flatMap((e, i) => {
    const locality = fields(e, `${at}.load_assignment.endpoints[${i}]`, ["lb_endpoints"]);
    return list(locality.lb_endpoints, `${at}.load_assignment.endpoints[${i}].lb_endpoints`).map((lb, j) => {
      const where = `${at}.load_assignment.endpoints[${i}].lb_endpoints[${j}]`;
      const endpoint = fields(fields(lb, where, ["endpoint"]).endpoint, `${where}.endpoint`, ["address"]);
      return socketAddress(endpoint.address, `${where}.endpoint.address`);
    });
  });
  const spec: ClusterSpec = { name: text(c.name, `${at}.name`), endpoints };
  if (c.transport_socket !== undefined) spec.tls = upstreamTls(c.transport_socket, `${at}.transport_socket`);
  return spec;
}

// The one transport socket a converted configuration writes: TLS to an https:// upstream
// (envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, with at most `sni`). Anything more is refused.
function upstreamTls(node: unknown, at: string): { sni?: string } {
  const socket = fields(node, at, ["name", "typed_config"]);
  const config = fields(socket.typed_config, `${at}.typed_config`, ["@type", "sni"]);
  const type = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
  if (config["@type"] !== type) {
    throw new GatewayConfigError(
      `${at}.typed_config: ${String(config["@type"])} is not supported (${type} only)`,
    );
  }
  return config.sni === undefined ? {} : { sni: text(config.sni, `${at}.typed_config.sni`) };
}

/** Parses envoy.yaml text. `env` supplies vm_config.environment_variables.host_env_keys. */
export function parseGatewayConfig(yamlText: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const root = fields(
    parse(yamlText),
    "",
    ["static_resources"],
    ["admin", "stats_config", "node", "layered_runtime"],
  );
  const resources = fields(root.static_resources, "static_resources", ["listeners", "clusters"]);
  const listeners = list(resources.listeners, "static_resources.listeners").map((l, i) =>
    listener(l, `static_resources.listeners[${i}]`, env),
  );
  const clusters = new Map<string, ClusterSpec>();
  list(resources.clusters, "static_resources.clusters").forEach((c, i) => {
    const spec = cluster(c, `static_resources.clusters[${i}]`);
    clusters.set(spec.name, spec);
  });
  for (const l of listeners) {
    for (const vh of l.virtualHosts) {
      for (const r of vh.routes) {
        if (!clusters.has(r.cluster))
          throw new GatewayConfigError(`route ${r.name}: no cluster named ${r.cluster}`);
      }
    }
  }
  return { listeners, clusters };
}

export function loadGatewayConfig(file: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  return parseGatewayConfig(readFileSync(file, "utf8"), env);
}
/* eslint-enable @typescript-eslint/no-explicit-any */
