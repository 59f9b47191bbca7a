// `envoy-kvm convert kong`: a Kong declarative configuration (deck's kong.yaml, or a `deck gateway dump`) →
// the list configuration. Kong runs one instance of a plugin per request, the most specific one (route, then
// service, then global; Kong's plugin precedence), so every Kong route gets the list with exactly that instance,
// and becomes Envoy routes of the same name (one per path) in the order Kong's router ranks them.
import { readFileSync } from "node:fs";
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node, type YAMLMap } from "yaml";
import { Report, type Conversion, type EnvoyRoute, type Operation, type Policy } from "./model.ts";
import { OPERATION_FIELDS, ordered } from "./model.ts";
import { compileRe2 } from "../gateway/match.ts";

export const PLUGIN = "key-value-map-operations";

/** The filter's Kong-shape fields (docs/filter.md, Operation). */
const FIELDS = new Set(OPERATION_FIELDS);
/** Plugin-instance fields with no effect on what the plugin does to a request. */
const INSTANCE_FIELDS = new Set([
  "name",
  "config",
  "enabled",
  "protocols",
  "tags",
  "id",
  "instance_name",
  "route",
  "service",
  "created_at",
  "updated_at",
]);

interface Instance {
  op: Operation;
  line: number;
  scope: string;
}

interface KongRoute {
  name: string;
  service: string | null;
  node: YAMLMap;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function js(node: unknown): unknown {
  return isMap(node) || isSeq(node) || isScalar(node) ? (node as Node).toJSON() : node;
}

/** A plugin's `route:` / `service:` reference: a name, or `{ name }` / `{ id }`. */
function reference(node: unknown): string | null {
  const v = js(node);
  if (typeof v === "string") return v;
  if (v !== null && typeof v === "object") {
    const o = v as { name?: string; id?: string };
    return o.name ?? o.id ?? null;
  }
  return null;
}

/**
 * The lua_shared_dict directives a kong.conf adds (`nginx_http_lua_shared_dict = <name> <size>`, several joined
 * with `;` as Kong injects the value verbatim), with their lines.
 */
export function sharedDicts(kongConf: string): { name: string; size: string; line: number }[] {
  const dicts: { name: string; size: string; line: number }[] = [];
  kongConf.split("\n").forEach((text, i) => {
    const m = /^\s*nginx_http_lua_shared_dict\s*=\s*(.*?)\s*(?:#.*)?$/.exec(text);
    if (m === null) return;
    for (const part of m[1].split(";")) {
      const words = part
        .trim()
        .replace(/^lua_shared_dict\s+/, "")
        .split(/\s+/);
      if (words.length === 2) dicts.push({ name: words[0], size: words[1], line: i + 1 });
    }
  });
  return dicts;
}

export function convertKong(
  file: string,
  opts: { policy: Policy | null; kongConf?: string },
): Conversion & { clusters: Record<string, string> } {
  const report = new Report();
  let dictSizes = "its size is set in kong.conf (--kong-conf reads it)";
  if (opts.kongConf !== undefined) {
    const dicts = sharedDicts(readFileSync(opts.kongConf, "utf8"));
    dictSizes =
      dicts.length === 0
        ? `${opts.kongConf} sets no nginx_http_lua_shared_dict, so Kong's defaults apply`
        : `${opts.kongConf} sets ${dicts.map((d) => `${d.name} ${d.size} (line ${d.line})`).join(", ")}`;
  }
  const lines = new LineCounter();
  const doc = parseDocument(readFileSync(file, "utf8"), { lineCounter: lines });
  if (doc.errors.length > 0) throw new Error(`${file} is not YAML: ${doc.errors[0].message.split("\n")[0]}`);
  const top = doc.contents;
  if (!isMap(top)) throw new Error(`${file} is not a Kong declarative configuration (no mapping at the top)`);
  const lineOf = (node: unknown) => {
    const range = (node as Node | null)?.range;
    return range ? lines.linePos(range[0]).line : 1;
  };
  const seq = (map: YAMLMap | null | undefined, key: string): YAMLMap[] => {
    const v = map?.get(key, true);
    return isSeq(v) ? (v.items.filter((i) => isMap(i)) as YAMLMap[]) : [];
  };
  const str = (map: YAMLMap, key: string): string | null => {
    const v = map.get(key);
    return typeof v === "string" ? v : null;
  };

  const localMaps = new Set<string>();
  /** A key-value-map-operations plugin instance → the filter operation, or null (reported). */
  const instance = (plugin: YAMLMap, scope: string): Instance | null => {
    if (str(plugin, "name") !== PLUGIN) return null;
    const line = lineOf(plugin);
    if (plugin.get("enabled") === false) {
      report.add(
        file,
        line,
        "note",
        `${PLUGIN} on ${scope} is disabled (enabled: false): not converted, as Kong skips it`,
      );
      return null;
    }
    let ok = true;
    for (const pair of plugin.items) {
      const key = String(js(pair.key));
      if (key === "consumer" || key === "consumer_group") {
        report.add(
          file,
          lineOf(pair.key),
          "unsupported",
          `${PLUGIN} on ${scope}: ${key}-scoped instances have no Envoy equivalent (no Kong consumers); not converted`,
        );
        ok = false;
      } else if (!INSTANCE_FIELDS.has(key)) {
        report.add(
          file,
          lineOf(pair.key),
          "unsupported",
          `${PLUGIN} on ${scope}: field ${key} has no envoy-kvm equivalent`,
        );
        ok = false;
      }
    }
    const config = plugin.get("config", true);
    if (!isMap(config)) {
      report.add(file, line, "unsupported", `${PLUGIN} on ${scope} has no config: not converted`);
      return null;
    }
    const op: Operation = {};
    for (const pair of config.items) {
      const key = String(js(pair.key));
      const value = js(pair.value);
      if (value === null) continue; // deck dumps list unset fields as null
      if (!FIELDS.has(key)) {
        report.add(
          file,
          lineOf(pair.key),
          "unsupported",
          `config.${key} of ${PLUGIN} has no envoy-kvm equivalent`,
        );
        ok = false;
        continue;
      }
      op[key] = value;
    }
    if (!ok) return null;
    if (opts.policy !== null) op.policy = opts.policy;
    const policy = (op.policy as string | undefined) ?? "local";
    if (policy === "local" && op.cache_ttl !== undefined) {
      delete op.cache_ttl;
      report.add(
        file,
        line,
        "note",
        `${PLUGIN} on ${scope}: cache_ttl dropped with policy local (no read cache: the filter reads Envoy shared data directly)`,
      );
    }
    if (policy === "local" && typeof op.kvm_name === "string" && !localMaps.has(op.kvm_name)) {
      localMaps.add(op.kvm_name);
      report.add(
        file,
        line,
        "note",
        `map ${op.kvm_name} is local: Kong keeps it in a lua_shared_dict of fixed size that evicts least-recently-used entries when full (${dictSizes}); Envoy shared data (one store per vm_id) has no size cap and no eviction: memory grows with every distinct key`,
      );
    }
    return { op: ordered(op), line, scope };
  };

  // Global, per-service and per-route instances (nested or top-level with route: / service:).
  let global: Instance | null = null;
  const byService = new Map<string, Instance>();
  const byRoute = new Map<string, Instance>();
  const place = (plugin: YAMLMap, serviceName: string | null, routeName: string | null) => {
    const route = routeName ?? reference(plugin.get("route", true));
    const service = serviceName ?? reference(plugin.get("service", true));
    const consumer = reference(plugin.get("consumer", true));
    const scope =
      consumer !== null
        ? `consumer ${consumer}`
        : route !== null
          ? `route ${route}`
          : service !== null
            ? `service ${service}`
            : "global";
    const found = instance(plugin, scope);
    if (found === null) return;
    if (route !== null) byRoute.set(route, found);
    else if (service !== null) byService.set(service, found);
    else global = found;
  };

  const routes: KongRoute[] = [];
  const clusters: Record<string, string> = {};
  for (const service of seq(top, "services")) {
    const name = str(service, "name") ?? str(service, "id") ?? `service-line-${lineOf(service)}`;
    const url = str(service, "url");
    const host = str(service, "host");
    if (url !== null) clusters[name] = url;
    else if (host !== null)
      clusters[name] = `${str(service, "protocol") ?? "http"}://${host}:${service.get("port") ?? 80}`;
    for (const plugin of seq(service, "plugins")) place(plugin, name, null);
    seq(service, "routes").forEach((route, i) => {
      const routeName = str(route, "name") ?? str(route, "id") ?? `${name}-${i}`;
      routes.push({ name: routeName, service: name, node: route });
      for (const plugin of seq(route, "plugins")) place(plugin, name, routeName);
    });
  }
  seq(top, "routes").forEach((route, i) => {
    const routeName = str(route, "name") ?? str(route, "id") ?? `route-${i}`;
    routes.push({ name: routeName, service: reference(route.get("service", true)), node: route });
    for (const plugin of seq(route, "plugins")) place(plugin, null, routeName);
  });
  for (const plugin of seq(top, "plugins")) place(plugin, null, null);
  for (const consumer of seq(top, "consumers")) {
    for (const plugin of seq(consumer, "plugins")) {
      if (str(plugin, "name") === PLUGIN) {
        report.add(
          file,
          lineOf(plugin),
          "unsupported",
          `${PLUGIN} on consumer ${str(consumer, "username") ?? "?"}: consumer-scoped plugins have no Envoy equivalent`,
        );
      }
    }
  }

  const config: Record<string, Operation[]> = {};
  const ranked: { route: EnvoyRoute; priority: number[] }[] = [];
  const used = new Set<Instance>();
  for (const route of routes) {
    const applied =
      byRoute.get(route.name) ??
      (route.service === null ? undefined : byService.get(route.service)) ??
      global ??
      undefined;
    const line = lineOf(route.node);
    if (applied !== undefined) {
      config[route.name] = [applied.op];
      used.add(applied);
      report.add(
        file,
        line,
        "converted",
        `route ${route.name}: ${applied.op.operation_type} ${applied.op.kvm_name} (the ${applied.scope} instance, line ${applied.line})`,
      );
    } else {
      report.add(
        file,
        line,
        "note",
        `route ${route.name}: no ${PLUGIN} instance applies; an Envoy route without operations`,
      );
    }
    const paths = (js(route.node.get("paths", true)) as string[] | null) ?? ["/"];
    const methods = (js(route.node.get("methods", true)) as string[] | null) ?? [];
    const hosts = (js(route.node.get("hosts", true)) as string[] | null) ?? [];
    const headers = (js(route.node.get("headers", true)) as Record<string, string[]> | null) ?? {};
    for (const field of ["snis", "sources", "destinations", "expression"]) {
      if (route.node.get(field) !== undefined && route.node.get(field) !== null) {
        report.add(
          file,
          lineOf(route.node.get(field, true)),
          "unsupported",
          `route ${route.name}: ${field} has no Envoy route-match equivalent here; add it by hand`,
        );
      }
    }
    const headerMatches: Record<string, unknown>[] = [];
    if (methods.length === 1) headerMatches.push({ name: ":method", string_match: { exact: methods[0] } });
    if (methods.length > 1)
      headerMatches.push({
        name: ":method",
        string_match: { safe_regex: { regex: `^(${methods.join("|")})$` } },
      });
    if (hosts.length > 0) {
      // Kong's router: a `*` is any run of characters (`.+`), a host without a port takes any port, and hosts
      // compare without case (kong/router/traditional.lua's wildcard_host_regex).
      const alternatives = hosts.map((h) => {
        const host = escapeRegex(h).replace(/\\\*/g, ".+");
        return /:[0-9]+$/.test(h) ? host : `${host}(:[0-9]+)?`;
      });
      headerMatches.push({
        name: ":authority",
        string_match: { safe_regex: { regex: `(?i)^(${alternatives.join("|")})$` } },
      });
    }
    for (const [name, values] of Object.entries(headers)) {
      // Kong compares header values without case; a `~*` value is a regex searched in the value
      // (kong/router/transform.lua). Envoy's safe_regex must match the whole value.
      const alternatives = values.map((v) => (v.startsWith("~*") ? `.*(?:${v.slice(2)}).*` : escapeRegex(v)));
      headerMatches.push({
        name: name.toLowerCase(),
        string_match: { safe_regex: { regex: `(?i)^(${alternatives.join("|")})$` } },
      });
    }
    const refused = headerMatches
      .map((h) => (h.string_match as { safe_regex?: { regex: string } }).safe_regex?.regex)
      .map((r) => (r === undefined ? null : compileRe2(r)))
      .find((c) => c !== null && "error" in c);
    if (refused !== undefined) {
      report.add(
        file,
        line,
        "unsupported",
        `route ${route.name}: a header value regex is not RE2 syntax (Envoy's only regex engine): ${(refused as { error: string }).error}; no Envoy route written`,
      );
      continue;
    }
    const pathNodes = route.node.get("paths", true);
    // Kong's route priority (kong/router/transform.lua get_priority, the traditional router's categories): more
    // kinds of condition first, then plain hosts, more headers, regex paths (by regex_priority), longer prefixes.
    const given = (v: unknown) => (Array.isArray(v) ? v.length > 0 : Object.keys(v as object).length > 0);
    const routePriority = [
      [methods, hosts, headers, (js(pathNodes) as string[] | null) ?? []].filter(given).length,
      hosts.length > 0 && hosts.every((h) => !h.includes("*")) ? 1 : 0,
      Object.keys(headers).length,
    ];
    for (const [i, path] of paths.entries()) {
      const regex = path.startsWith("~");
      const rejected = regex ? compileRe2(path.slice(1)) : null;
      if (rejected !== null && "error" in rejected) {
        report.add(
          file,
          isSeq(pathNodes) ? lineOf(pathNodes.items[i]) : line,
          "unsupported",
          `route ${route.name}: regex path ${path} is not RE2 syntax (Envoy's only regex engine): ${rejected.error}; not converted`,
        );
        continue;
      }
      const match: Record<string, unknown> = regex
        ? // Kong anchors a regex path at the start only (kong/router/transform.lua prefixes `^`, the traditional
          // router matches anchored): it takes longer paths too. Envoy's safe_regex must match the whole path.
          { safe_regex: { regex: `^(?:${path.slice(1).replace(/^\^/, "")}).*` } }
        : { prefix: path };
      if (headerMatches.length > 0) match.headers = headerMatches;
      ranked.push({
        route: { name: route.name, match, ...(route.service === null ? {} : { cluster: route.service }) },
        priority: [
          ...routePriority,
          regex ? 1 : 0,
          regex ? Number(route.node.get("regex_priority") ?? 0) : 0,
          regex ? 0 : path.length,
        ],
      });
    }
  }
  const byPriority = (a: number[], b: number[]) => {
    const at = a.findIndex((v, i) => v !== b[i]);
    return at === -1 ? 0 : b[at] - a[at];
  };
  ranked.sort((a, b) => byPriority(a.priority, b.priority));
  const all = [global, ...byService.values(), ...byRoute.values()].filter((i): i is Instance => i !== null);
  for (const i of all) {
    if (!used.has(i))
      report.add(file, i.line, "note", `${PLUGIN} on ${i.scope} applies to no route: not converted`);
  }
  return {
    config: { routes: config },
    envoyRoutes: ranked.map((r) => r.route),
    imports: [],
    report,
    clusters,
  };
}
