// `convert kong` on the sample deck file (examples/kong/kong.yaml): the converted configuration runs in the filter
// on the host as Kong runs the plugin — one instance per request, the most specific (route, then service, then
// global) — and every instance or field without an equivalent is reported with file:line.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { convertKong, sharedDicts } from "../../convert/kong.ts";
import { checkConfiguration } from "../../convert/check.ts";
import { cli, gateway, root, routeFor, seedEntry } from "./support.ts";

const SAMPLE = "examples/kong/kong.yaml";
let scratch: string;
before(() => {
  scratch = mkdtempSync(join(tmpdir(), "convert-kong-"));
});
after(() => rmSync(scratch, { recursive: true, force: true }));

const sample = (policy: "local" | "cluster" | null) => {
  process.chdir(root);
  return convertKong(SAMPLE, { policy });
};

describe("convert kong: the sample deck file on the host (local policy)", () => {
  it("put stores the JSON body field under the header's key; get writes it to the request header; delete removes it", async () => {
    const { config, envoyRoutes } = sample("local");
    const gw = await gateway(config, envoyRoutes);
    const put = await gw.request("PUT", "/tenants", [["x-tenant", "acme"]], JSON.stringify({ plan: "gold" }));
    assert.equal(put.status, 200);
    assert.equal(
      (await gw.request("GET", "/tenants", [["x-tenant", "acme"]])).upstreamHeader("x-tenant-plan"),
      "gold",
    );
    assert.equal((await gw.request("DELETE", "/tenants", [["x-tenant", "acme"]])).status, 200);
    assert.equal(
      (await gw.request("GET", "/tenants", [["x-tenant", "acme"]])).upstreamHeader("x-tenant-plan"),
      "free",
    );
  });

  it("the put's ttl expires the entry; a miss writes default_value", async () => {
    const { config, envoyRoutes } = sample("local");
    const gw = await gateway(config, envoyRoutes);
    await gw.request("PUT", "/tenants", [["x-tenant", "acme"]], JSON.stringify({ plan: "gold" }));
    (gw.plugin.clock as unknown as { advance(ms: number): void }).advance(3600 * 1000);
    assert.equal(
      (await gw.request("GET", "/tenants", [["x-tenant", "acme"]])).upstreamHeader("x-tenant-plan"),
      "free",
    );
  });

  it("a route with its own instance runs only that one; the global instance runs where nothing more specific exists", async () => {
    const { config, envoyRoutes } = sample("local");
    const gw = await gateway(config, envoyRoutes);
    await seedEntry(gw.plugin, "site-flags", "maintenance", "on");
    assert.equal((await gw.request("GET", "/status")).responseHeader("x-maintenance"), "on");
    assert.equal(
      (await gw.request("GET", "/tenants", [["x-tenant", "acme"]])).responseHeader("x-maintenance"),
      undefined,
    );
    // The service instance (a shared_context get) replaces the global one on the service's route.
    await seedEntry(gw.plugin, "api-settings", "backend-timeout", "5s");
    const settings = await gw.request("GET", "/settings");
    assert.equal(settings.status, 200);
    assert.equal(settings.responseHeader("x-maintenance"), undefined);
  });

  it("routes keep Kong's names and ranking: regex paths, then longer prefixes before shorter ones, methods as :method matches", () => {
    const { envoyRoutes, config } = sample("local");
    assert.deepEqual(
      envoyRoutes.map((r) => [r.name, r.match.prefix, r.cluster]),
      [
        ["tenant-plan-read-v2", undefined, "tenants"],
        ["settings-read", "/settings", "settings"],
        ["tenant-plan-put", "/tenants", "tenants"],
        ["tenant-plan-read", "/tenants", "tenants"],
        ["tenant-plan-delete", "/tenants", "tenants"],
        ["status", "/", "status"],
      ],
    );
    assert.deepEqual(Object.keys(config.routes!).sort(), envoyRoutes.map((r) => r.name).sort());
  });
});

describe("convert kong: as configured (cluster instances stay cluster)", () => {
  it("passes config check; the service instance keeps policy cluster and cache_ttl", async () => {
    const { config } = sample(null);
    assert.deepEqual(await checkConfiguration(JSON.stringify(config)), { ok: true, filter: [], schema: [] });
    assert.deepEqual(config.routes!["settings-read"], [
      {
        policy: "cluster",
        kvm_name: "api-settings",
        operation_type: "get",
        key_source_type: "literal",
        key_source_name: "backend-timeout",
        output_destination_type: "shared_context",
        output_destination_name: "backend_timeout",
        cache_ttl: 30,
      },
    ]);
    assert.equal(config.routes!["tenant-plan-put"][0].policy, "local");
  });

  it("the CLI writes the configuration and an envoy.yaml fragment with the routes, the services' clusters and kvm_service; exit 2", () => {
    const out = join(scratch, "kong.json");
    const fragment = join(scratch, "kong-envoy.yaml");
    const r = cli(["convert", "kong", SAMPLE, "-o", out, "--envoy", fragment]);
    assert.equal(r.status, 2, r.stderr);
    assert.deepEqual(JSON.parse(readFileSync(out, "utf8")), sample(null).config);
    const yaml = parse(readFileSync(fragment, "utf8"));
    assert.deepEqual(
      yaml.clusters.map((c: { name: string }) => c.name),
      ["settings", "tenants", "status", "kvm_service"],
      "the services, and the KVM service the cluster instance calls",
    );
    assert.deepEqual(
      JSON.parse(yaml.http_filters[0].typed_config.config.configuration.value),
      sample(null).config,
    );
    assert.equal(cli(["config", "check", fragment]).status, 0);
  });
});

describe("convert kong: without -o", () => {
  it("the configuration goes to stdout and the report to stderr, so the output can be piped", () => {
    const r = cli(["convert", "kong", SAMPLE, "--policy", "local"]);
    assert.equal(r.status, 2);
    assert.deepEqual(JSON.parse(r.stdout), sample("local").config);
    assert.match(
      r.stderr,
      /^incomplete: 1 element not converted \(unsupported above\); 6 operations on 6 routes; config check passed$/m,
    );
    assert.doesNotMatch(r.stderr, /kvm_service/, "no cluster operation is left with --policy local");
  });
});

describe("convert kong: config check before writing", () => {
  it("a configuration the filter would refuse is not written: the check's lines, exit 1; --dry-run writes nothing either", async () => {
    const { existsSync } = await import("node:fs");
    const file = join(scratch, "bad-ttl.yaml");
    writeFileSync(
      file,
      [
        '_format_version: "3.0"',
        "plugins:",
        "  - name: key-value-map-operations",
        "    config: { policy: local, kvm_name: m, operation_type: put, key_source_type: literal,",
        "              key_source_name: k, value_source_type: literal, value_source_name: v, ttl: -5 }",
        "routes:",
        "  - { name: all, paths: [/] }",
        "",
      ].join("\n"),
    );
    const out = join(scratch, "bad.json");
    const fragment = join(scratch, "bad-envoy.yaml");
    const r = cli(["convert", "kong", file, "-o", out, "--envoy", fragment]);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.ok(
      lines.some((l) => l.startsWith("config check: ") && l.includes("ttl")),
      r.stdout,
    );
    assert.equal(lines.at(-1), "the converted configuration failed config check: nothing written");
    assert.equal(existsSync(out), false);
    assert.equal(existsSync(fragment), false);

    const dry = cli(["convert", "kong", SAMPLE, "-o", out, "--envoy", fragment, "--dry-run"]);
    assert.equal(dry.status, 2, "the exit status still says incomplete");
    assert.doesNotMatch(dry.stdout, /^wrote /m);
    assert.match(dry.stdout, /^examples\/kong\/kong\.yaml:109: unsupported: /m);
    assert.equal(existsSync(out), false);
    assert.equal(existsSync(fragment), false);
  });
});

describe("convert kong: every instance or field without an equivalent is reported with file:line", () => {
  it("the sample's consumer-scoped instance", () => {
    const lines = sample(null)
      .report.format()
      .filter((l) => l.includes(": unsupported: "));
    assert.deepEqual(lines, [
      `${SAMPLE}:109: unsupported: key-value-map-operations on consumer partner-app: consumer-scoped instances have no Envoy equivalent (no Kong consumers); not converted`,
    ]);
  });

  it("local maps: one note per map with kong.conf's lua_shared_dict size and what Envoy's shared data does differently", () => {
    process.chdir(root);
    const notes = convertKong(SAMPLE, { policy: null, kongConf: "examples/kong/kong.conf" })
      .report.format()
      .filter((l) => l.includes("lua_shared_dict"));
    const differs =
      "Envoy shared data (one store per vm_id) has no size cap and no eviction: memory grows with every distinct key";
    const kong = (map: string) =>
      `note: map ${map} is local: Kong keeps it in a lua_shared_dict of fixed size that evicts least-recently-used entries when full (examples/kong/kong.conf sets kong_kvm_local 5m (line 3)); ${differs}`;
    assert.deepEqual(notes, [`${SAMPLE}:34: ${kong("tenant-plans")}`, `${SAMPLE}:98: ${kong("site-flags")}`]);
  });

  it("unknown config fields, instance fields, consumer plugins, routing fields; disabled and unused instances are notes", () => {
    const file = join(scratch, "odd.yaml");
    writeFileSync(
      file,
      [
        '_format_version: "3.0"',
        "services:",
        "  - name: s",
        "    url: http://s:80",
        "    routes:",
        "      - name: r",
        "        paths: [/r]",
        "        snis: [a.example.com]",
        "        plugins:",
        "          - name: key-value-map-operations",
        "            ordering: { before: { access: [acl] } }",
        "            config: { kvm_name: m, operation_type: delete, key_source_type: literal, key_source_name: k }",
        "          - name: key-value-map-operations",
        "            enabled: false",
        "            config: { kvm_name: m, operation_type: delete, key_source_type: literal, key_source_name: k }",
        "plugins:",
        "  - name: key-value-map-operations",
        "    config: { kvm_name: m, operation_type: delete, key_source_type: literal, key_source_name: k, redis_host: r, ttl: null }",
        "  - name: key-value-map-operations",
        "    service: nowhere",
        "    config: { kvm_name: m, operation_type: delete, key_source_type: literal, key_source_name: k }",
        "consumers:",
        "  - username: c",
        "    plugins:",
        "      - name: key-value-map-operations",
        "        config: { kvm_name: m, operation_type: delete, key_source_type: literal, key_source_name: k }",
        "",
      ].join("\n"),
    );
    const lines = convertKong(file, { policy: null }).report.format();
    assert.deepEqual(
      lines.filter((l) => !l.includes(": converted: ") && !l.includes("is local:")),
      [
        `${file}:6: note: route r: no key-value-map-operations instance applies; an Envoy route without operations`,
        `${file}:8: unsupported: route r: snis has no Envoy route-match equivalent here; add it by hand`,
        `${file}:11: unsupported: key-value-map-operations on route r: field ordering has no envoy-kvm equivalent`,
        `${file}:13: note: key-value-map-operations on route r is disabled (enabled: false): not converted, as Kong skips it`,
        `${file}:18: unsupported: config.redis_host of key-value-map-operations has no envoy-kvm equivalent`,
        `${file}:19: note: key-value-map-operations on service nowhere applies to no route: not converted`,
        `${file}:25: unsupported: key-value-map-operations on consumer c: consumer-scoped plugins have no Envoy equivalent`,
      ],
    );
  });
});

describe("convert kong: route matching", () => {
  it("regex paths, several methods, hosts with wildcards and headers become matches, ranked as Kong's router ranks them", () => {
    const file = join(scratch, "routing.yaml");
    const config = "{ kvm_name: m, operation_type: delete, key_source_type: literal, key_source_name: k }";
    writeFileSync(
      file,
      [
        '_format_version: "3.0"',
        "services:",
        "  - name: s",
        "    url: https://s.internal",
        "    plugins:",
        `      - { name: key-value-map-operations, config: ${config} }`,
        "    routes:",
        "      - { name: short, paths: [/a] }",
        "      - { name: long, paths: [/a/b], methods: [GET, HEAD], hosts: ['*.example.com'], headers: { x-version: [v1, v2] } }",
        "      - { name: re, paths: ['~/a/[0-9]+$'] }",
        "      - { name: users, paths: ['~/users/(?<id>[0-9]+)'], headers: { x-client: ['~*^mobile-'] } }",
        "      - name: lookahead",
        "        paths:",
        "          - /ok",
        "          - ~/(?!admin)[a-z]+/",
        "",
      ].join("\n"),
    );
    const { envoyRoutes, report } = convertKong(file, { policy: null });
    assert.deepEqual(
      envoyRoutes.map((r) => r.name),
      ["long", "users", "re", "lookahead", "short"],
    );
    assert.deepEqual(
      report.format().filter((l) => l.includes("unsupported")),
      [
        `${file}:15: unsupported: route lookahead: regex path ~/(?!admin)[a-z]+/ is not RE2 syntax (Envoy's only regex engine): error parsing regexp: invalid or unsupported Perl syntax: \`(?!\`; not converted`,
      ],
    );
    const take = (method: string, path: string, headers: [string, string][] = []) =>
      routeFor(envoyRoutes, method, path, headers);
    assert.equal(take("GET", "/a/12"), "re");
    assert.equal(
      take("GET", "/a/b/c", [
        [":authority", "api.example.com:8443"],
        ["x-version", "v2"],
      ]),
      "long",
    );
    assert.equal(
      take("POST", "/a/b/c", [
        [":authority", "api.example.com"],
        ["x-version", "v2"],
      ]),
      "short",
    );
    assert.equal(
      take("GET", "/a/b/c", [
        [":authority", "example.com"],
        ["x-version", "v2"],
      ]),
      "short",
    );
    assert.equal(
      take("GET", "/a/b/c", [
        [":authority", "api.example.com"],
        ["x-version", "v3"],
      ]),
      "short",
    );
    assert.equal(take("GET", "/b"), undefined);
    // Kong anchors regex paths at the start only; header values compare without case, `~*` is a regex search.
    assert.equal(take("GET", "/users/7/orders", [["x-client", "Mobile-iOS"]]), "users");
    assert.equal(take("GET", "/users/7", [["x-client", "web"]]), undefined);
    assert.equal(
      take("GET", "/a/b", [
        [":authority", "API.eu.Example.com"],
        ["x-version", "V1"],
      ]),
      "long",
    );
  });
});

describe("sharedDicts", () => {
  it("reads nginx_http_lua_shared_dict lines of a kong.conf, several joined with ;", () => {
    assert.deepEqual(
      sharedDicts(
        [
          "# nginx_http_lua_shared_dict = commented 1m",
          "nginx_http_lua_shared_dict = kvm 10m",
          "nginx_http_lua_shared_dict=a 1m; lua_shared_dict b 2m  # two",
          "nginx_http_other = x 1m",
        ].join("\n"),
      ),
      [
        { name: "kvm", size: "10m", line: 2 },
        { name: "a", size: "1m", line: 3 },
        { name: "b", size: "2m", line: 3 },
      ],
    );
  });
});
