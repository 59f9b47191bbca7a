// envoy/envoy.yaml, checked statically (no Envoy binary runs here): every wasm filter is wired the
// way the filter needs, carries exactly one of the plugin configurations in envoy/plugins/ (valid,
// naming real routes and clusters), per-route enabling is consistent, and the stats_tags turn the
// filter's counter names into labels the way Envoy's tag extractors would.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import Ajv from "ajv";
import {
  FILTER_CONFIG_TYPE,
  ROOT_ID,
  clusterNames,
  envoy,
  hcm,
  pluginFiles,
  root,
  routeNames,
  routes,
  wasmFilters,
} from "./envoy-yaml.ts";

/* eslint-disable @typescript-eslint/no-explicit-any */
interface PluginConfiguration {
  policy?: string;
  operations?: { policy?: string }[];
  routes?: Record<string, { policy?: string }[]>;
  kvm_service?: { cluster?: string };
}

const parsed = (text: string) => JSON.parse(text) as PluginConfiguration;

// The routes that switch a filter entry on through typed_per_filter_config.
const enablingRoutes = (entryName: string): string[] =>
  routes.filter((r: any) => r.typed_per_filter_config?.[entryName] !== undefined).map((r: any) => r.name);

describe("envoy/envoy.yaml", () => {
  it("has wasm filters, the first enabled everywhere, the router last", () => {
    assert.ok(wasmFilters.length >= 2, "one filter keyed by route names, at least one enabled per route");
    assert.equal(wasmFilters[0].disabled, false);
    assert.equal(hcm.http_filters.at(-1).name, "envoy.filters.http.router");
  });

  it("runs every filter under its root id, with the flag body operations need and an explicit failure policy", () => {
    for (const { entryName, config } of wasmFilters) {
      assert.equal(config.root_id, ROOT_ID, entryName);
      assert.equal(config.allow_on_headers_stop_iteration, true, entryName);
      assert.equal(config.failure_policy, "FAIL_CLOSED", entryName);
      assert.equal(config.vm_config.runtime, "envoy.wasm.runtime.v8", entryName);
      assert.match(config.vm_config.code.local.filename, /^\/.+\.wasm$/, "Envoy needs an absolute path");
    }
  });

  it("gives every filter the same vm_config: one VM per worker, one local store", () => {
    for (const { entryName, config } of wasmFilters.slice(1)) {
      assert.deepEqual(config.vm_config, wasmFilters[0].config.vm_config, entryName);
    }
  });

  it("carries exactly the JSON documents in envoy/plugins/, one filter each, byte for byte", () => {
    assert.deepEqual(
      wasmFilters.map(({ config }) => config.name).sort(),
      Object.keys(pluginFiles).sort(),
      "one wasm filter named after each envoy/plugins/<name>.json",
    );
    for (const { config } of wasmFilters) {
      assert.equal(config.configuration["@type"], "type.googleapis.com/google.protobuf.StringValue");
      assert.equal(config.configuration.value, pluginFiles[config.name], `envoy/plugins/${config.name}.json`);
    }
  });

  it("carries plugin configurations the schema accepts", () => {
    const schema = JSON.parse(readFileSync(`${root}schema/plugin-config.schema.json`, "utf8"));
    const validate = new Ajv().compile(schema);
    for (const { config } of wasmFilters) {
      assert.ok(
        validate(parsed(config.configuration.value)),
        `${config.name}: ${JSON.stringify(validate.errors)}`,
      );
    }
  });

  it("keys route lists by route names that exist and reach the filter", () => {
    for (const { entryName, disabled, config } of wasmFilters) {
      for (const name of Object.keys(parsed(config.configuration.value).routes ?? {})) {
        assert.ok(routeNames.includes(name), `${config.name}: no route named ${name}`);
        if (disabled)
          assert.ok(enablingRoutes(entryName).includes(name), `${entryName} is off on route ${name}`);
      }
    }
  });

  it("switches disabled filters on per route with an empty FilterConfig, and names only wasm filters", () => {
    const entries = new Map(wasmFilters.map((f) => [f.entryName, f]));
    for (const route of routes) {
      for (const [name, perRoute] of Object.entries<any>(route.typed_per_filter_config ?? {})) {
        assert.ok(
          entries.get(name)?.disabled,
          `route ${route.name} enables ${name}, not a disabled wasm filter`,
        );
        assert.equal(perRoute["@type"], FILTER_CONFIG_TYPE, `route ${route.name}`);
        assert.deepEqual(perRoute.config, {}, "config present but empty: the filter's own JSON applies");
      }
    }
    for (const { entryName, disabled } of wasmFilters) {
      if (disabled) assert.ok(enablingRoutes(entryName).length > 0, `${entryName} is never enabled`);
    }
    assert.equal(new Set(routeNames).size, routeNames.length, "route names are unique");
  });

  it("names only clusters that exist: on routes and as the KVM service of cluster-policy operations", () => {
    for (const route of routes) assert.ok(clusterNames.includes(route.route.cluster), `route ${route.name}`);
    for (const { config } of wasmFilters) {
      const plugin = parsed(config.configuration.value);
      const operations = [plugin, ...(plugin.operations ?? []), ...Object.values(plugin.routes ?? {}).flat()];
      if (operations.some((op) => op.policy === "cluster")) {
        const cluster = plugin.kvm_service?.cluster ?? "kvm_service"; // the schema's default
        assert.ok(clusterNames.includes(cluster), `${config.name}: no cluster ${cluster}`);
      }
    }
  });

  it("stats_tags lift policy, operation, result and kvm_name out of the counter names", () => {
    // Envoy's TagExtractorImpl: each regex runs on the full name; the first capture group is
    // removed from the name, the second (or the first, if alone) is the tag value.
    const extract = (name: string) => {
      const tags: Record<string, string> = {};
      const removed: [number, number][] = [];
      for (const { tag_name, regex } of envoy.stats_config.stats_tags) {
        const m = new RegExp(regex, "d").exec(name);
        if (!m) continue;
        tags[tag_name] = m[2] ?? m[1];
        removed.push(m.indices![1]!);
      }
      let rest = "";
      for (let i = 0; i < name.length; i++) if (!removed.some(([s, e]) => i >= s && i < e)) rest += name[i];
      return { rest, tags };
    };
    // Envoy names a wasm metric wasmcustom.<name> (context.cc defineMetric) and extracts tags from
    // that full name; the namespace is dropped only on output.
    assert.deepEqual(extract("wasmcustom.envoy_kvm.local.get.hit.api.v1-settings"), {
      rest: "wasmcustom.envoy_kvm",
      tags: { kvm_policy: "local", kvm_operation: "get", kvm_result: "hit", kvm_name: "api.v1-settings" },
    });
    assert.deepEqual(extract("wasmcustom.envoy_kvm.cluster.delete.error.x").tags, {
      kvm_policy: "cluster",
      kvm_operation: "delete",
      kvm_result: "error",
      kvm_name: "x",
    });
    assert.deepEqual(extract("cluster.upstream.upstream_rq_total").tags, {});
    // The bare name (without the namespace Envoy adds) is not what Envoy matches against.
    assert.deepEqual(extract("envoy_kvm.local.get.hit.x").tags, {});
  });
});
/* eslint-enable @typescript-eslint/no-explicit-any */
